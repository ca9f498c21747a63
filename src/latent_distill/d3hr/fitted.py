"""Fitted D3HR Gaussians with what sampling them needs, and their storable form.

``D3HRPipeline.fit`` returns :class:`FittedGaussians`; ``D3HRPipeline.sample`` takes them and
returns the storable ``gaussians`` entry of a distilled set (:meth:`FittedGaussians.to_stored`),
which :meth:`FittedGaussians.from_stored` turns back into Gaussians to sample from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from .config import D3HRConfig
from .gaussians import ClassGaussians
from .kept_groups import search_key


@dataclass
class FittedGaussians(ClassGaussians):
    """Per-class Gaussians of inverted latents, with the fit's provenance.

    Args:
        mean: float32 ``(K, D)``.
        std: float32 ``(K, D)``.
        counts: int64 ``(K,)`` samples behind each class's fit (zeros when unknown).
        timestep: the timestep the inverted latents were fitted at (regeneration starts there).
        latent_shape: ``[C, h, w]`` of one latent (``C * h * w = D``).
        class_names: names of the K classes, indexed by label.
        fit_config: the :class:`~latent_distill.d3hr.config.D3HRConfig` of the fit as a dict
            (``{}`` when unknown).
        image_shape: ``[C, H, W]`` of the source images (``None`` when unknown).
        source_dataset: the run record's ``source_dataset`` entry (``{}`` when unknown).
    """

    timestep: int
    latent_shape: list[int]
    class_names: list[str]
    fit_config: dict[str, Any] = field(default_factory=dict)
    image_shape: Optional[list[int]] = None
    source_dataset: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_class_gaussians(cls, gaussians: ClassGaussians, **fields: Any) -> "FittedGaussians":
        """Adds the provenance of a fit to plain Gaussians (e.g. ``GaussianAccumulator.finalize()``'s).

        Args:
            gaussians: the Gaussians.
            **fields: ``timestep``, ``latent_shape``, ``class_names`` and optionally ``fit_config``,
                ``image_shape`` and ``source_dataset``.

        Returns:
            The fitted Gaussians (sharing ``gaussians``' tensors).
        """
        return cls(mean=gaussians.mean, std=gaussians.std, counts=gaussians.counts, **fields)

    @classmethod
    def from_stored(cls, stored: dict[str, Any], class_names: Sequence[str],
                    image_shape: Optional[Sequence[int]] = None,
                    source_dataset: Optional[dict[str, Any]] = None) -> "FittedGaussians":
        """The Gaussians of a stored ``gaussians`` entry (a D3HR set's, or ``D3HROutput.gaussians``).

        Args:
            stored: ``mean``, ``std``, ``timestep``, ``latent_shape`` and optionally
                ``fit_samples_per_class`` and ``fit_config``.
            class_names: names of the classes.
            image_shape: ``[C, H, W]`` of the source images, when known.
            source_dataset: the source dataset entry of the set's run record, when known.

        Returns:
            The Gaussians, ready for ``D3HRPipeline.sample``.
        """
        mean = torch.as_tensor(stored["mean"]).float()
        return cls(mean=mean, std=torch.as_tensor(stored["std"]).float(),
                   counts=torch.as_tensor(stored.get("fit_samples_per_class", [0] * len(mean))),
                   timestep=int(stored["timestep"]), latent_shape=list(stored["latent_shape"]),
                   class_names=list(class_names), fit_config=dict(stored.get("fit_config", {})),
                   image_shape=image_shape, source_dataset=dict(source_dataset or {}))

    def to_stored(self, config: D3HRConfig, groups: list[dict[str, Any]]) -> dict[str, Any]:
        """The storable ``gaussians`` entry of a sampling run.

        Args:
            config: the sampling run's configuration.
            groups: per class, in class order, the kept group's ``chunk_seed``, ``index``,
                ``chunk_count`` and ``score`` (see :func:`~latent_distill.d3hr.kept_groups.kept_groups`).

        Returns:
            ``mean``, ``std``, ``latent_shape``, ``timestep``, the groups' ``group_seeds``,
            ``group_indices`` and ``chunk_counts``, the ``ipc`` and ``seed`` they were kept for, the
            ``search`` settings, ``group_scores``, ``fit_samples_per_class`` and ``fit_config``.
        """
        return {
            "mean": self.mean, "std": self.std, "latent_shape": list(self.latent_shape), "timestep": int(self.timestep),
            "group_seeds": [g["chunk_seed"] for g in groups], "group_indices": [g["index"] for g in groups],
            "chunk_counts": [g["chunk_count"] for g in groups], "ipc": config.ipc, "seed": config.seed,
            "search": search_key(config),
            "group_scores": [g["score"] for g in groups],
            "fit_samples_per_class": self.counts.tolist(),
            "fit_config": self.fit_config,
        }
