"""The run configuration of a distillation, and the storage-budget arithmetic.

A :class:`DistillationConfig` holds every hyper-parameter of a run; it saves itself as JSON next to
checkpoints and inside the distilled dataset, so a run can be reproduced from its output alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from .checkpointing import atomic_write_json

BUDGETS = ("storage", "count")


class BudgetError(ValueError):
    """Raised when an IPC budget cannot be turned into a usable number of samples per class."""


class SavedConfig:
    """Base of the run-configuration dataclasses: a dict / JSON round trip that rejects unknown keys."""

    #: How error messages name the config.
    config_name: ClassVar[str] = "config"
    #: Keys of configs saved by earlier versions -> the fields they were renamed to.
    legacy_keys: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def upgrade_dict(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Renames the :attr:`legacy_keys` of a saved config to the current field names.

        Args:
            values: a config dict, possibly written by an earlier version.

        Returns:
            A new dict with current field names (``values`` itself is left unchanged).

        Raises:
            ValueError: when a dict holds both a legacy key and the field it was renamed to.
        """
        upgraded = dict(values)
        for old, new in cls.legacy_keys.items():
            if old in upgraded:
                if new in upgraded:
                    raise ValueError(f"The {cls.config_name} holds both {old!r} (its name before the rename) and "
                                     f"{new!r}: keep {new!r} only.")
                upgraded[new] = upgraded.pop(old)
        return upgraded

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Builds a config from a dict, rejecting unknown keys with the list of valid ones.

        Args:
            values: the config's fields; legacy keys (:attr:`legacy_keys`) are renamed first.

        Returns:
            The config.

        Raises:
            ValueError: for unknown keys, listing the valid ones.
        """
        values = cls.upgrade_dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"Unknown {cls.config_name} keys {sorted(unknown)}; valid keys are {sorted(known)}.")
        return cls(**values)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> None:
        atomic_write_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class DistillationConfig(SavedConfig):
    """Every hyper-parameter of a gradient-based distillation run.

    Args:
        objective: matching objective, a name of the objective registry (``"dm"``, ...;
            :func:`~latent_distill.objectives.list_objectives`). Saved configs that call it
            ``"method"`` still load (:meth:`from_dict`).
        representation: what is optimised, a name of the representation registry
            (``"latent"`` for LatentDD, ``"pixel"`` for the classic baselines).
        ipc: images per class of the budget.
        budget: ``"storage"`` (the bytes of ``ipc`` images per class, turned into more latents per
            class by the size ratio, as in LatentDD) or ``"count"`` (``ipc`` samples per class).
        samples_per_class: explicit number of synthetic samples per class (overrides the budget).
        resolution: working image resolution; ``None`` takes the autoencoder's ``sample_size``.
        resample: upsampling before encoding, undone after decoding (LatentDD's ``f`` trick).
        iterations: optimisation steps.
        learning_rate: base learning rate of the synthetic samples; the effective one is
            ``learning_rate * samples_per_class`` when ``scale_learning_rate`` (Dataset
            Distillation in Latent Space, Eq. 10).
        scale_learning_rate: multiply the base learning rate by the samples per class.
        momentum: SGD momentum of the synthetic samples.
        batch_real: real samples per class drawn at each step.
        init: ``"real"`` (random real samples of the class) or ``"noise"``.
        augmentation: differentiable siamese augmentation strategy used inside matching
            (e.g. ``"color_crop_cutout_flip_scale_rotate"``), or ``None``.
        network: name of the matching network in the network registry.
        network_kwargs: extra arguments of the matching network (depth, width, norm, ...).
        objective_kwargs: objective-specific hyper-parameters.
        representation_kwargs: representation-specific options (e.g. ``num_steps`` and ``skip`` of
            the ``"diffusion"`` representation, LD3M); validated by the representation.
        seed: seed of every random choice; randomness is derived from (seed, step, class).
        checkpoint_every: steps between checkpoints (0 disables).
        encode_batch_size: images per autoencoder forward pass; ``None`` sizes batches by pixels
            (:func:`encode_batch_size_for`), so a 256 px run does not batch like a 28 px one.
        preset: the named method preset the config was built from (``"pixel-dsa"``, ...), if any.
    """

    #: Saved before the rename: ``"method"`` was the objective's name.
    legacy_keys: ClassVar[dict[str, str]] = {"method": "objective"}
    #: Fields a run may change when it resumes a saved state: the budget can grow (continue a
    #: finished run), checkpoints can come more or less often. Nothing else in a run depends on them.
    resumable_changes: ClassVar[tuple[str, ...]] = ("iterations", "checkpoint_every")

    objective: str = "dm"
    representation: str = "latent"
    ipc: int = 10
    budget: str = "storage"
    samples_per_class: Optional[int] = None
    resolution: Optional[int] = None
    resample: int = 1
    iterations: int = 1000
    learning_rate: float = 0.1
    scale_learning_rate: bool = True
    momentum: float = 0.5
    batch_real: int = 256
    init: str = "real"
    augmentation: Optional[str] = None
    network: str = "convnet"
    network_kwargs: dict = field(default_factory=dict)
    objective_kwargs: dict = field(default_factory=dict)
    representation_kwargs: dict = field(default_factory=dict)
    seed: int = 0
    checkpoint_every: int = 100
    encode_batch_size: Optional[int] = None
    preset: Optional[str] = None

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {BUDGETS}, got {self.budget!r}.")
        if self.init not in ("real", "noise"):
            raise ValueError(f"init must be 'real' or 'noise', got {self.init!r}.")
        if self.ipc < 1:
            raise BudgetError(f"ipc must be at least 1, got {self.ipc}.")

    @classmethod
    def resume_settings(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The part of a (saved) config dict that a resumed run must share with the saved state.

        Args:
            values: a config dict, possibly written by an earlier version.

        Returns:
            ``values`` in current field names, without :attr:`resumable_changes`.
        """
        return {k: v for k, v in cls.upgrade_dict(values).items() if k not in cls.resumable_changes}

    @property
    def method_name(self) -> str:
        """The library-wide method name: the preset's (``"pixel-dsa"``) or ``<representation>-<objective>``."""
        return self.preset or f"{self.representation}-{self.objective}"


def parse_options(options_class: Optional[type], values: dict[str, Any], *, field_name: str, owner: str,
                  error: type[Exception] = ValueError) -> Any:
    """Turns a config's options dict (``objective_kwargs``, ``representation_kwargs``) into a dataclass.

    Args:
        options_class: the dataclass of the owner's options (``None``: it takes none).
        values: the options dict of the run configuration.
        field_name: the config field the dict comes from, for error messages.
        owner: what takes the options (e.g. ``"the 'diffusion' representation"``), for error messages.
        error: the exception type raised for unknown keys.

    Returns:
        An ``options_class`` instance, or ``None`` when the owner takes no options.

    Raises:
        error: for keys the owner does not know, listing the valid ones.
    """
    known = sorted(f.name for f in dataclasses.fields(options_class)) if options_class else []
    unknown = sorted(set(values) - set(known))
    if unknown:
        valid = f"valid keys are {known}" if known else "it takes none: remove them"
        raise error(f"Unknown {field_name} {unknown} for {owner}; {valid}.")
    return options_class(**values) if options_class else None


#: Pixels per autoencoder batch when ``encode_batch_size`` is ``None``: 500 images at 28 x 28.
ENCODE_PIXELS_PER_BATCH = 500 * 28 * 28


def encode_batch_size_for(resolution: int, resample: int = 1, requested: Optional[int] = None) -> int:
    """Images per autoencoder pass: ``requested``, else as many as fit :data:`ENCODE_PIXELS_PER_BATCH`.

    Activation memory grows with the pixels of a batch, so 500 images of 28 x 28 and 5 of 256 x 256
    cost about the same.

    Args:
        resolution: working resolution.
        resample: upsampling before encoding.
        requested: an explicit batch size (``config.encode_batch_size``).

    Returns:
        The batch size (at least 1).
    """
    if requested is not None:
        return int(requested)
    return max(1, ENCODE_PIXELS_PER_BATCH // (resolution * resample) ** 2)


def samples_per_class_for_budget(ipc: int, budget: str, image_shape: tuple[int, ...],
                                 sample_shape: tuple[int, ...], class_size: int,
                                 explicit: Optional[int] = None) -> int:
    """Turns an IPC budget into a number of synthetic samples per class.

    Under the ``"storage"`` budget a class may hold as many samples as fit in the bytes of ``ipc``
    images (float32 values at the working resolution, as synthetic images are stored in dataset
    distillation): ``floor(ipc * prod(image_shape) / prod(sample_shape))``. Under ``"count"`` it
    is ``ipc``.

    Args:
        ipc: images per class of the budget.
        budget: ``"storage"`` or ``"count"``.
        image_shape: ``(C, H, W)`` of one image at the working resolution.
        sample_shape: shape of one synthetic sample (a latent, or an image for pixel methods).
        class_size: number of real samples in the smallest class (synthetic samples start from
            distinct real ones).
        explicit: a number that overrides the budget.

    Returns:
        Samples per class.

    Raises:
        BudgetError: when fewer than one sample per class fits, or more than the class holds.
    """
    if explicit is not None:
        per_class = int(explicit)
    elif budget == "storage":
        per_class = math.floor(ipc * math.prod(image_shape) / math.prod(sample_shape))
    else:
        per_class = int(ipc)
    if per_class < 1:
        raise BudgetError(
            f"An IPC-{ipc} storage budget ({ipc} x {math.prod(image_shape)} values) holds no sample of shape "
            f"{tuple(sample_shape)} ({math.prod(sample_shape)} values): raise ipc, lower the resample factor, "
            "or pass samples_per_class."
        )
    if per_class > class_size:
        raise BudgetError(
            f"The budget asks for {per_class} samples per class but the smallest class has only {class_size} "
            "real samples to start from: lower ipc (or samples_per_class), or use budget='count'."
        )
    return per_class
