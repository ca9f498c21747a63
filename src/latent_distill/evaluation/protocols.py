"""Evaluation protocols: how fresh networks are trained on a distilled set.

Two protocols, whose numbers must never be compared with each other:

* :class:`HardLabelProtocol` (DC, DSA, DM, MTT, GLaD, LD3M, LatentDD): fresh networks trained with
  cross-entropy on the hard labels of the distilled set, SGD with momentum, the learning rate divided
  by 10 at half the epochs, DSA augmentation (or DSA with CutMix instead of cutout, as in IDC and
  LatentDD).
* :class:`SoftLabelProtocol` (D3HR, RDED, SRe2L): a teacher trained on the full real set
  (:func:`~latent_distill.evaluation.train_teacher`) labels CutMix batches of the distilled images;
  the student minimises the KL divergence at temperature T with AdamW and a half-cosine schedule.

A protocol's ``augmentation`` names a preset of the :data:`EVAL_AUGMENTATIONS` registry
(:func:`list_eval_augmentations`); protocol classes are registered in :data:`PROTOCOLS` under their
``kind`` (:func:`list_protocols`). Protocols are plain dataclasses that round-trip through JSON
(``to_dict`` / :func:`protocol_from_dict`); the training loops that run them live in
:mod:`latent_distill.evaluation.training`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Optional, Union

from ..augment import (
    DEFAULT_DSA_STRATEGY,
    DSA_CUTMIX_STRATEGY,
    DSAParams,
    parse_strategy,
)
from ..registry import Registry
from .common import EvaluationError

# ----------------------------------------------------------------------------------------------
# Augmentation presets
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AugmentationPreset:
    """A named training-time augmentation: a strategy and how it is applied (see ``augment.py``)."""

    strategy: str
    mode: str = "single"


EVAL_AUGMENTATIONS: Registry[AugmentationPreset] = Registry("protocol augmentation",
                                                            "register_eval_augmentation(name, strategy)")
get_eval_augmentation = EVAL_AUGMENTATIONS.get
list_eval_augmentations = EVAL_AUGMENTATIONS.names


def register_eval_augmentation(name: str, strategy: str, mode: str = "single") -> None:
    """Adds a named augmentation preset usable as ``protocol.augmentation``.

    Args:
        name: preset name.
        strategy: underscore-joined augmentation operations.
        mode: ``"single"`` (one random operation per batch) or ``"all"``.

    Raises:
        KeyError: when ``name`` is already registered.
    """
    parse_strategy(strategy)
    EVAL_AUGMENTATIONS.add(name, AugmentationPreset(strategy, mode))


register_eval_augmentation("none", "none")
register_eval_augmentation("dsa", DEFAULT_DSA_STRATEGY)
register_eval_augmentation("dsa_cutmix", DSA_CUTMIX_STRATEGY)
# RDED/SRe2L student training: random-resized crop, flip, then CutMix on every batch.
register_eval_augmentation("rrc_flip_cutmix", "resizedcrop_flip_cutmix", mode="all")


# ----------------------------------------------------------------------------------------------
# Protocols
# ----------------------------------------------------------------------------------------------

def _jsonable(obj: Any) -> Any:
    """Turns tuples into lists, recursively, so a dictionary equals its JSON round trip."""
    if isinstance(obj, dict):
        return {key: _jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(value) for value in obj]
    return obj


class _ProtocolBase:
    """Shared validation and (de)serialisation of protocol dataclasses."""

    kind: ClassVar[str]

    def _validate(self) -> None:
        if self.augmentation not in EVAL_AUGMENTATIONS:
            raise EvaluationError(
                f"Unknown augmentation {self.augmentation!r}; choose one of {list_eval_augmentations()} "
                "or add one with register_eval_augmentation(name, strategy)."
            )
        if self.epochs < 1:
            raise EvaluationError(f"epochs must be >= 1, got {self.epochs}.")
        if isinstance(self.dsa_params, dict):
            self.dsa_params = DSAParams.from_dict(self.dsa_params)

    def to_dict(self) -> dict:
        """Returns every field as a JSON-friendly dictionary (tuples as lists), plus ``"protocol": kind``."""
        return {"protocol": self.kind, **_jsonable(asdict(self))}

    @classmethod
    def from_dict(cls, values: dict):
        """Rebuilds a protocol from :meth:`to_dict` output.

        Raises:
            EvaluationError: for a dictionary of another protocol kind or unknown fields.
        """
        values = dict(values)
        kind = values.pop("protocol", cls.kind)
        if kind != cls.kind:
            raise EvaluationError(f"This is a {kind!r} protocol, not {cls.kind!r}: use protocol_from_dict().")
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise EvaluationError(f"Unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(known)}.")
        if isinstance(values.get("dsa_params"), dict):
            values["dsa_params"] = DSAParams.from_dict(values["dsa_params"])
        for key, value in values.items():
            if isinstance(value, list):
                values[key] = tuple(value)
        return cls(**values)


@dataclass
class HardLabelProtocol(_ProtocolBase):
    """Hard-label evaluation (DC/DSA/DM/MTT/GLaD/LD3M/LatentDD).

    Args:
        arch: network name (see ``networks.list_networks()``).
        arch_kwargs: extra network options (e.g. ``{"depth": 3, "norm": "instancenorm"}``).
        epochs: passes over the training set.
        lr: SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        lr_decay_at: fraction of the epochs after which the rate is multiplied by ``lr_decay_factor``.
        lr_decay_factor: the decay factor.
        batch_size: training batch size (the whole set when it is smaller).
        augmentation: ``"dsa"``, ``"dsa_cutmix"`` (IDC/LatentDD: DSA with CutMix instead of cutout,
            CutMix on ``dsa_params.mix_prob`` of the batches, targets mixed by area), ``"none"``, or
            any name added with :func:`register_eval_augmentation`.
        dsa_params: magnitudes of the augmentation operations.
        bf16: run forward passes under bfloat16 autocast (training and testing).
        test_batch_size: images per inference batch on the test set; ``None`` picks 64 on CPU (small
            batches keep the activations in cache, which is faster than large ones) and 2048 elsewhere.

    The DC reference code rebuilds its SGD optimiser at the decay epoch, which drops the momentum
    buffer; here the rate is lowered in place and the momentum kept.
    """

    kind: ClassVar[str] = "hard"
    arch: str = "convnet"
    arch_kwargs: dict = field(default_factory=dict)
    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_decay_at: float = 0.5
    lr_decay_factor: float = 0.1
    batch_size: int = 256
    augmentation: str = "dsa"
    dsa_params: DSAParams = field(default_factory=DSAParams)
    bf16: bool = True
    test_batch_size: Optional[int] = None

    def __post_init__(self) -> None:
        self._validate()


def rded_convnet_kwargs() -> dict:
    """The options of RDED's ``conv3``, a batch-norm ConvNet: the soft-label student and teacher default.

    Returns:
        A new ``arch_kwargs`` dictionary.
    """
    return {"norm": "batchnorm"}


@dataclass
class SoftLabelProtocol(_ProtocolBase):
    """Soft-label evaluation (D3HR/RDED/SRe2L): teacher-labelled CutMix batches, KL at temperature T.

    Args:
        arch: student network name.
        arch_kwargs: student options; batch norm by default (RDED's ``conv3``).
        epochs: passes over the distilled set (300 for ImageNet/Tiny, 400 for CIFAR in D3HR).
        lr: AdamW learning rate (1e-3 for ConvNets and ResNets in D3HR).
        weight_decay: AdamW weight decay, applied to parameters with more than one dimension only.
        betas: AdamW betas.
        temperature: softmax temperature of both teacher and student (20 with CutMix).
        batch_size: ``None`` follows D3HR: 15 below 10 images per class, 50 from 10, 100 from 50,
            doubled for 100+ classes, capped at the set size.
        augmentation: preset name; ``"rrc_flip_cutmix"`` is random-resized crop, flip, CutMix.
        dsa_params: operation magnitudes; ``mix_prob=1.0`` mixes every batch.
        bf16: bfloat16 autocast for student and teacher forward passes.
        test_batch_size: images per inference batch on the test set (``None``: as in
            :class:`HardLabelProtocol`).

    The learning rate follows ``0.5 * (1 + cos(pi * epoch / epochs / 2))`` per epoch, a *half* cosine
    that ends at half the initial rate (as in the D3HR/RDED code). The loss is
    ``KL(softmax(teacher / T) || softmax(student / T))`` with ``batchmean`` reduction and no ``T^2``.
    """

    kind: ClassVar[str] = "soft"
    arch: str = "convnet"
    arch_kwargs: dict = field(default_factory=rded_convnet_kwargs)
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    temperature: float = 20.0
    batch_size: Optional[int] = None
    augmentation: str = "rrc_flip_cutmix"
    dsa_params: DSAParams = field(default_factory=lambda: DSAParams(mix_prob=1.0))
    bf16: bool = True
    test_batch_size: Optional[int] = None

    def __post_init__(self) -> None:
        self._validate()


Protocol = Union[HardLabelProtocol, SoftLabelProtocol]

#: Protocol classes by ``kind`` (the ``"protocol"`` value of a protocol's ``to_dict()``).
PROTOCOLS: Registry[type[_ProtocolBase]] = Registry("protocol", "register_protocol(kind, ProtocolClass)")
register_protocol = PROTOCOLS.add
get_protocol = PROTOCOLS.get
list_protocols = PROTOCOLS.names

register_protocol(HardLabelProtocol.kind, HardLabelProtocol)
register_protocol(SoftLabelProtocol.kind, SoftLabelProtocol)


def protocol_from_dict(values: dict) -> Protocol:
    """Rebuilds any protocol from its ``to_dict()`` output (dispatching on ``"protocol"``).

    Args:
        values: a protocol's ``to_dict()``, possibly after a JSON round trip.

    Returns:
        The protocol.

    Raises:
        EvaluationError: for an unknown protocol kind, unknown fields or invalid values.
    """
    kind = values.get("protocol")
    if kind not in PROTOCOLS:
        raise EvaluationError(f"Unknown protocol kind {kind!r}; known: {list_protocols()}.")
    return get_protocol(kind).from_dict(values)


def soft_label_batch_size(images_per_class: float, num_classes: int, num_images: int) -> int:
    """D3HR's student batch size: 15 / 50 / 100 for <10 / >=10 / >=50 images per class.

    Args:
        images_per_class: size of the distilled set divided by the number of classes.
        num_classes: number of classes (the size doubles from 100 classes).
        num_images: size of the distilled set (the cap).

    Returns:
        The batch size.
    """
    size = 100 if images_per_class >= 50 else 50 if images_per_class >= 10 else 15
    if num_classes >= 100:
        size *= 2
    return max(1, min(size, num_images))
