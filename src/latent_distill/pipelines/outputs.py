"""Output dataclasses of the pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from diffusers.utils import BaseOutput

from ..distilled import DistilledDataset


@dataclass
class LatentDistillationOutput(BaseOutput):
    """What a gradient-based distillation returns.

    Args:
        images: decoded (or learned) synthetic images, ``uint8`` ``(N, C, H, W)``, ordered by class.
        labels: int64 labels ``(N,)``.
        latents: the learned latents ``(N, C, h, w)`` for latent methods (for LD3M, the learned initial
            latents of the sampler: decoding them directly does not give the images), else ``None``.
        class_names: names of the classes, indexed by label.
        record: the run record (:mod:`~latent_distill.pipelines.run_record`): ``ipc``, ``budget``,
            ``samples_per_class``, ``image_shape``, ``sample_shape``, the full
            :class:`~latent_distill.config.DistillationConfig` under ``distillation``, and the
            ``source_dataset`` and ``models`` entries.
        losses: the loss of every iteration.
        distill_seconds: wall time of the run (encoding and setup included), summed over the calls
            that resumed it from ``checkpoint_dir``.
        seconds_per_iteration: wall time of one optimisation step, averaged over the steps this call
            ran (``None`` when it ran none, e.g. a finished run resumed).
        class_embeddings: LD3M's learned class embeddings ``(N, num_blocks, hidden)`` (with the
            latents, the run's ``representation_kwargs`` and ``seed`` they re-render the images:
            :meth:`~latent_distill.representations.DiffusionPrior.restore`), else ``None``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    latents: Optional[torch.Tensor] = None
    class_names: list = field(default_factory=list)
    record: dict = field(default_factory=dict)
    losses: list = field(default_factory=list)
    distill_seconds: float = 0.0
    seconds_per_iteration: Optional[float] = None
    class_embeddings: Optional[torch.Tensor] = None

    def to_distilled_dataset(self, evaluation: Optional[list] = None) -> DistilledDataset:
        """Wraps the output as a :class:`~latent_distill.distilled.DistilledDataset` ready to save or push.

        A diffusion-prior (LD3M) set stores its initial latents with its class embeddings (what
        :meth:`~latent_distill.pipelines.LatentDistillationPipeline.rerender` renders again) beside
        the images.

        Args:
            evaluation: result rows to record with the set (see ``DistilledDataset.evaluation``).

        Returns:
            The distilled set.
        """
        return DistilledDataset(
            method=self.record["distillation"]["method_name"],
            class_names=list(self.class_names),
            labels=self.labels,
            latents=self.latents,
            class_embeddings=self.class_embeddings,
            images=self.images,
            record=self.record,
            evaluation=list(evaluation or []),
        )


@dataclass
class D3HROutput(BaseOutput):
    """What a D3HR run returns.

    Args:
        images: regenerated images, ``uint8`` ``(N, C, H, W)``, ordered by class.
        labels: int64 labels ``(N,)``.
        latents: the regenerated clean latents ``(N, C, h, w)`` (a convenience copy: the set is
            stored as ``gaussians``).
        gaussians: the storable parameters: per-class ``mean`` and ``std`` ``(K, D)``, ``timestep``,
            ``latent_shape``, and the seed, index and chunk size of each class's kept group, with the
            ``ipc`` and ``seed`` they were chosen for.
        class_names: names of the classes, indexed by label.
        record: the run record (:mod:`~latent_distill.pipelines.run_record`: ``ipc``, the
            :class:`~latent_distill.d3hr.config.D3HRConfig` under ``distillation``, ``source_dataset``,
            ``models``).
        distill_seconds: wall time of the run.
    """

    images: torch.Tensor
    labels: torch.Tensor
    latents: Optional[torch.Tensor] = None
    gaussians: dict = field(default_factory=dict)
    class_names: list = field(default_factory=list)
    record: dict = field(default_factory=dict)
    distill_seconds: float = 0.0

    def to_distilled_dataset(self, evaluation: Optional[list] = None) -> DistilledDataset:
        """Wraps the output as a :class:`~latent_distill.distilled.DistilledDataset` (configs
        ``images`` and ``gaussians``; the storage counted is the Gaussians').

        Args:
            evaluation: result rows to record with the set (see ``DistilledDataset.evaluation``).

        Returns:
            The distilled set.
        """
        return DistilledDataset(
            method="d3hr",
            class_names=list(self.class_names),
            labels=self.labels,
            images=self.images,
            gaussians=self.gaussians,
            record=self.record,
            evaluation=list(evaluation or []),
        )
