"""Batched, differentiable augmentation: DSA (Differentiable Siamese Augmentation) and CutMix.

Every transformation is a tensor operation on the whole batch (``affine_grid``/``grid_sample`` for
geometry, masks for cutout, arithmetic for colour), so gradients flow from the augmented batch back
to the images: dataset-distillation objectives back-propagate through it into the synthetic set.

A *strategy* is an underscore-joined list of registered operation names, e.g. the DSA default
``"color_crop_cutout_flip_scale_rotate"``. Two kinds of operations exist:

* image operations (:func:`register_augmentation`, :func:`list_augmentations`): ``color``
  (= brightness, saturation, contrast), ``brightness``, ``saturation``, ``contrast``, ``crop``
  (integer shift with zero fill), ``cutout``, ``flip``, ``scale``, ``rotate``, ``resizedcrop``
  (random-resized crop, used by the soft-label protocol);
* mixing operations (:func:`register_mixing`, :func:`list_mixings`), which also change the targets:
  ``cutmix``.

:func:`list_operations` lists both kinds.

``mode="single"`` (the DSA reference default) applies ONE image operation per call, chosen at
random from the strategy; ``mode="all"`` applies every image operation in order. Mixing operations
run after the image operations, each with probability ``DSAParams.mix_prob``.
``"color_crop_cutmix_flip_scale_rotate"`` is the evaluation augmentation of IDC and LatentDD
(DSA with cutout replaced by CutMix; IDC mixes half of the batches).

Randomness and the Siamese property:

* ``seed=<int>``: parameters come from a fresh ``torch.Generator`` seeded with ``seed``. By default
  (``per_sample=False``) one parameter set is drawn and shared by the whole batch, as in the DSA
  reference when it is given a seed: a real batch and a synthetic batch augmented with the same seed
  get the *identical* transformation whatever their sizes. With ``per_sample=True`` every position
  in the batch gets its own parameters; the same seed and the same batch size then give identical
  parameters position by position (batches of different sizes do not share parameters).
* ``seed=None``: parameters are drawn per sample from ``generator`` (or torch's global generator);
  this is how networks are trained on a distilled set at evaluation time.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .registry import Registry, RegistryError

DEFAULT_DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"
DSA_CUTMIX_STRATEGY = "color_crop_cutmix_flip_scale_rotate"


class AugmentationError(ValueError):
    """Raised for an unusable strategy or input; the message names the problem and the fix."""


class AugmentationNameError(AugmentationError, RegistryError):
    """Raised for an unknown or already registered operation name (also a ``KeyError``)."""


@dataclass
class DSAParams:
    """Magnitudes of the augmentation operations (DSA defaults, DatasetCondensation's ``ParamDiffAug``).

    Args:
        flip_prob: probability of a horizontal flip.
        scale_ratio: x and y scale factors are drawn independently from ``[1/ratio, ratio]``.
        rotate_degrees: rotation angle drawn from ``[-rotate_degrees, rotate_degrees]``.
        crop_pad: maximal shift, as a fraction of the side (rounded to whole pixels).
        cutout_ratio: side of the cutout square, as a fraction of the image side.
        brightness: additive brightness offset drawn from ``[-brightness/2, brightness/2]``.
        saturation: saturation factor drawn from ``[0, saturation]`` (no-op on one channel).
        contrast: contrast factor drawn from ``[contrast, contrast + 1]``.
        cutmix_alpha: CutMix box area is ``1 - lam`` with ``lam ~ Beta(alpha, alpha)``.
        mix_prob: probability that a mixing operation (CutMix) is applied to a batch.
        resized_crop_scale: area fraction range of ``resizedcrop``.
        resized_crop_ratio: aspect-ratio range of ``resizedcrop``.
    """

    flip_prob: float = 0.5
    scale_ratio: float = 1.2
    rotate_degrees: float = 15.0
    crop_pad: float = 0.125
    cutout_ratio: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    cutmix_alpha: float = 1.0
    mix_prob: float = 0.5
    resized_crop_scale: tuple[float, float] = (0.08, 1.0)
    resized_crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)

    def to_dict(self) -> dict:
        """Returns the parameters as a JSON-friendly dictionary (ranges as lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "DSAParams":
        """Builds parameters from :meth:`to_dict` output (lists become tuples)."""
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise AugmentationError(f"Unknown DSAParams fields {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# ----------------------------------------------------------------------------------------------
# Random parameters
# ----------------------------------------------------------------------------------------------

class ParameterSampler:
    """Draws augmentation parameters for a batch, per sample or shared by the whole batch.

    Args:
        generator: source of randomness (``None``: torch's global generator).
        batch_size: number of samples.
        per_sample: draw one value per sample; otherwise one value expanded over the batch.
        device: device of the returned tensors.
        dtype: floating dtype of the returned tensors.
    """

    def __init__(self, generator: Optional[torch.Generator], batch_size: int, per_sample: bool,
                 device: torch.device, dtype: torch.dtype) -> None:
        self.generator, self.batch_size, self.per_sample = generator, batch_size, per_sample
        self.device, self.dtype = device, dtype

    def _count(self) -> int:
        return self.batch_size if self.per_sample else 1

    def uniform(self, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """Returns ``(N,)`` values uniform in ``[low, high)``."""
        values = torch.rand(self._count(), generator=self.generator) * (high - low) + low
        return values.expand(self.batch_size).to(self.device, self.dtype)

    def integers(self, low: int, high: int) -> torch.Tensor:
        """Returns ``(N,)`` int64 values uniform in ``[low, high)``."""
        values = torch.randint(low, high, (self._count(),), generator=self.generator)
        return values.expand(self.batch_size).to(self.device)

    def choice(self, count: int) -> int:
        """Returns one index in ``[0, count)`` for the whole batch."""
        return int(torch.randint(count, (1,), generator=self.generator).item())


# ----------------------------------------------------------------------------------------------
# Registries
# ----------------------------------------------------------------------------------------------

ImageOp = Callable[[torch.Tensor, DSAParams, ParameterSampler], torch.Tensor]
MixingOp = Callable[[torch.Tensor, torch.Tensor, DSAParams, Optional[torch.Generator]],
                    tuple[torch.Tensor, torch.Tensor]]

AUGMENTATIONS: Registry[ImageOp] = Registry("augmentation", "@register_augmentation(name)",
                                             error=AugmentationNameError)
MIXINGS: Registry[MixingOp] = Registry("mixing", "@register_mixing(name)", error=AugmentationNameError)
get_augmentation = AUGMENTATIONS.get
list_augmentations = AUGMENTATIONS.names
get_mixing = MIXINGS.get
list_mixings = MIXINGS.names


def _check_operation_name(name: str) -> None:
    """Refuses a strategy token that cannot be parsed back or is taken by either kind of operation."""
    if "_" in name:
        raise AugmentationError(f"Operation names cannot contain '_' (it separates strategy parts): {name!r}.")
    if name in AUGMENTATIONS or name in MIXINGS:
        raise AugmentationNameError(f"An augmentation named {name!r} is already registered.")


def register_augmentation(name: str) -> Callable[[ImageOp], ImageOp]:
    """Decorator registering an image operation ``op(images, params, sampler) -> images``.

    Args:
        name: the strategy token (no underscores, not taken by an image or mixing operation).

    Returns:
        The decorator.

    Raises:
        AugmentationError: for a name with an underscore; :class:`AugmentationNameError` for a taken one.
    """
    _check_operation_name(name)
    return AUGMENTATIONS.register(name)


def register_mixing(name: str) -> Callable[[MixingOp], MixingOp]:
    """Decorator registering a mixing operation ``op(images, targets, params, generator)``.

    Args:
        name: the strategy token (no underscores, not taken by an image or mixing operation).

    Returns:
        The decorator.

    Raises:
        AugmentationError: for a name with an underscore; :class:`AugmentationNameError` for a taken one.
    """
    _check_operation_name(name)
    return MIXINGS.register(name)


def list_operations() -> list[str]:
    """Lists every token a strategy may name: image operations and mixing operations.

    Returns:
        The names of :func:`list_augmentations` and :func:`list_mixings`, sorted.
    """
    return sorted(list_augmentations() + list_mixings())


@dataclass(frozen=True)
class Strategy:
    """A parsed strategy: the image operations and the mixing operations, in order."""

    image_ops: tuple[str, ...]
    mixing_ops: tuple[str, ...]


@functools.lru_cache(maxsize=64)
def parse_strategy(strategy: str) -> Strategy:
    """Splits an underscore-joined strategy into registered image and mixing operations.

    Args:
        strategy: e.g. ``"color_crop_cutout_flip_scale_rotate"``; ``""`` or ``"none"`` for no-op.

    Returns:
        The parsed :class:`Strategy`.

    Raises:
        AugmentationNameError: for an unknown operation name, listing the registered ones.
    """
    if strategy in ("", "none", "None"):
        return Strategy((), ())
    image_ops, mixing_ops = [], []
    for token in strategy.split("_"):
        if token in AUGMENTATIONS:
            image_ops.append(token)
        elif token in MIXINGS:
            mixing_ops.append(token)
        else:
            raise AugmentationNameError(
                f"Unknown augmentation {token!r} in strategy {strategy!r}; available: {list_operations()}. "
                "Register a new one with @register_augmentation(name) (@register_mixing(name) if it mixes targets)."
            )
    return Strategy(tuple(image_ops), tuple(mixing_ops))


# ----------------------------------------------------------------------------------------------
# Image operations
# ----------------------------------------------------------------------------------------------

def _column(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def _affine(images: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Resamples ``images`` through per-sample ``(N, 2, 3)`` affine maps, zeros outside."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=True)


def _theta(a: torch.Tensor, b: torch.Tensor, tx: torch.Tensor, c: torch.Tensor, d: torch.Tensor,
           ty: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.stack([a, b, tx], dim=-1), torch.stack([c, d, ty], dim=-1)], dim=1)


@register_augmentation("brightness")
def brightness(images: torch.Tensor, params: DSAParams, sampler: ParameterSampler) -> torch.Tensor:
    """Adds an offset uniform in ``[-brightness/2, brightness/2]``."""
    return images + _column(sampler.uniform(-0.5, 0.5) * params.brightness)


@register_augmentation("saturation")
def saturation(images: torch.Tensor, params: DSAParams, sampler: ParameterSampler) -> torch.Tensor:
    """Scales the deviation from the per-pixel channel mean by a factor in ``[0, saturation]``."""
    factor = _column(sampler.uniform() * params.saturation)
    if images.shape[1] == 1:
        return images
    mean = images.mean(dim=1, keepdim=True)
    return (images - mean) * factor + mean


@register_augmentation("contrast")
def contrast(images: torch.Tensor, params: DSAParams, sampler: ParameterSampler) -> torch.Tensor:
    """Scales the deviation from the per-image mean by a factor in ``[contrast, contrast + 1]``."""
    factor = _column(sampler.uniform() + params.contrast)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * factor + mean


@register_augmentation("color")
def color(images: torch.Tensor, params: DSAParams, sampler: ParameterSampler) -> torch.Tensor:
    """Brightness, then saturation, then contrast (DSA's ``color`` group)."""
    return contrast(saturation(brightness(images, params, sampler), params, sampler), params, sampler)


@register_augmentation("crop")
def crop(images: torch.Tensor, params: DSAParams, sampler: ParameterSampler) -> torch.Tensor:
    """Shifts by whole pixels, up to ``crop_pad`` of the side each way, filling with zeros.

    Equivalent to padding by the maximal shift and cropping back at a random offset.
    """
    height, width = images.shape[-2:]
    shift_y, shift_x = int(height * params.crop_pad + 0.5), int(width * params.crop_pad + 0.5)
    dy = sampler.integers(-shift_y, shift_y + 1).to(images.dtype)
    dx = sampler.integers(-shift_x, shift_x + 1).to(images.dtype)
    one, zero = torch.ones_like(dx), torch.zeros_like(dx)
    tx = 2.0 * dx / max(width - 1, 1)
    ty = 2.0 * dy / max(height - 1, 1)
    # Integer shifts land exactly on pixel centres, so nearest sampling copies pixels unchanged.
    return _affine(images, _theta(one, zero, tx, zero, one, ty), mode="nearest")


@register_augmentation("cutout")
def cutout(images: torch.Tensor, params: DSAParams, sampler: ParameterSampler) -> torch.Tensor:
    """Zeros a square of side ``cutout_ratio`` of the image, centred anywhere (clipped at borders)."""
    height, width = images.shape[-2:]
    size_y, size_x = int(height * params.cutout_ratio + 0.5), int(width * params.cutout_ratio + 0.5)
    centre_y = sampler.integers(0, height + (1 - size_y % 2))
    centre_x = sampler.integers(0, width + (1 - size_x % 2))
    top = (centre_y - size_y // 2).view(-1, 1)
    left = (centre_x - size_x // 2).view(-1, 1)
    rows = torch.arange(height, device=images.device).view(1, -1)
    cols = torch.arange(width, device=images.device).view(1, -1)
    inside_rows = (rows >= top) & (rows < top + size_y)
    inside_cols = (cols >= left) & (cols < left + size_x)
    keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
    return images * keep.unsqueeze(1).to(images.dtype)


@register_augmentation("flip")
def flip(images: torch.Tensor, params: DSAParams, sampler: ParameterSampler) -> torch.Tensor:
    """Mirrors left-right with probability ``flip_prob``."""
    flipped = _column(sampler.uniform() < params.flip_prob)
    return torch.where(flipped, images.flip(3), images)


@register_augmentation("scale")
def scale(images: torch.Tensor, params: DSAParams, sampler: ParameterSampler) -> torch.Tensor:
    """Scales x and y independently by factors in ``[1/scale_ratio, scale_ratio]`` about the centre."""
    low, high = 1.0 / params.scale_ratio, params.scale_ratio
    sx, sy = sampler.uniform(low, high), sampler.uniform(low, high)
    zero = torch.zeros_like(sx)
    return _affine(images, _theta(sx, zero, zero, zero, sy, zero))


@register_augmentation("rotate")
def rotate(images: torch.Tensor, params: DSAParams, sampler: ParameterSampler) -> torch.Tensor:
    """Rotates about the centre by an angle in ``[-rotate_degrees, rotate_degrees]``."""
    angle = sampler.uniform(-1.0, 1.0) * math.radians(params.rotate_degrees)
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    return _affine(images, _theta(cos, -sin, zero, sin, cos, zero))


@register_augmentation("resizedcrop")
def resized_crop(images: torch.Tensor, params: DSAParams, sampler: ParameterSampler) -> torch.Tensor:
    """Random-resized crop back to the input size (area and aspect ratio from ``params``).

    The box side fractions are ``sqrt(area * ratio)`` and ``sqrt(area / ratio)``, clipped to 1; the
    box is placed uniformly inside the image and resampled bilinearly.
    """
    low, high = params.resized_crop_scale
    log_low, log_high = math.log(params.resized_crop_ratio[0]), math.log(params.resized_crop_ratio[1])
    area = sampler.uniform(low, high)
    ratio = torch.exp(sampler.uniform(log_low, log_high))
    box_w = torch.sqrt(area * ratio).clamp(max=1.0)
    box_h = torch.sqrt(area / ratio).clamp(max=1.0)
    centre_x = sampler.uniform(-1.0, 1.0) * (1.0 - box_w)
    centre_y = sampler.uniform(-1.0, 1.0) * (1.0 - box_h)
    zero = torch.zeros_like(box_w)
    return _affine(images, _theta(box_w, zero, centre_x, zero, box_h, centre_y))


# ----------------------------------------------------------------------------------------------
# CutMix
# ----------------------------------------------------------------------------------------------

def _beta(alpha: float, generator: Optional[torch.Generator]) -> float:
    """One Beta(alpha, alpha) draw, reproducible from a torch generator."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def cutmix(images: torch.Tensor, targets: torch.Tensor, generator: Optional[torch.Generator] = None,
           alpha: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix: pastes a random box of a permuted batch into the batch and mixes targets by area.

    ``lam ~ Beta(alpha, alpha)``; the box has sides ``sqrt(1 - lam)`` of the image, a uniformly drawn
    centre, and is clipped at the borders. The targets are mixed with the area actually pasted, so
    every row of the mixed targets still sums to one. One box and one permutation per batch.

    Args:
        images: ``(N, C, H, W)`` float images (gradients flow through both sources).
        targets: ``(N, K)`` one-hot or soft float targets.
        generator: source of randomness (``None``: torch's global generator).
        alpha: Beta distribution parameter (> 0).

    Returns:
        ``(mixed_images, mixed_targets)`` with the shapes of the inputs.

    Raises:
        AugmentationError: for mismatched shapes or a non-positive ``alpha``.
    """
    if images.dim() != 4 or targets.dim() != 2 or targets.shape[0] != images.shape[0]:
        raise AugmentationError(
            f"cutmix needs images (N, C, H, W) and targets (N, K), got {tuple(images.shape)} and "
            f"{tuple(targets.shape)}; one-hot encode class indices with F.one_hot(labels, K).float()."
        )
    if alpha <= 0:
        raise AugmentationError(f"cutmix alpha must be > 0, got {alpha}.")
    n, _, height, width = images.shape
    lam = _beta(alpha, generator)
    permutation = torch.randperm(n, generator=generator).to(images.device)
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    centre_y = int(torch.randint(height, (1,), generator=generator).item())
    centre_x = int(torch.randint(width, (1,), generator=generator).item())
    top, bottom = max(centre_y - cut_h // 2, 0), min(centre_y + cut_h // 2, height)
    left, right = max(centre_x - cut_w // 2, 0), min(centre_x + cut_w // 2, width)
    rows = torch.arange(height, device=images.device).view(-1, 1)
    cols = torch.arange(width, device=images.device).view(1, -1)
    box = ((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)).view(1, 1, height, width)
    mixed = torch.where(box, images[permutation], images)
    area = (bottom - top) * (right - left) / float(height * width)
    mixed_targets = targets * (1.0 - area) + targets[permutation.to(targets.device)] * area
    return mixed, mixed_targets


@register_mixing("cutmix")
def _cutmix_op(images: torch.Tensor, targets: torch.Tensor, params: DSAParams,
               generator: Optional[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    return cutmix(images, targets, generator=generator, alpha=params.cutmix_alpha)


# ----------------------------------------------------------------------------------------------
# DSA
# ----------------------------------------------------------------------------------------------

def _apply_single(images: torch.Tensor, names: tuple[str, ...], params: DSAParams,
                  sampler: ParameterSampler) -> torch.Tensor:
    return get_augmentation(names[sampler.choice(len(names))])(images, params, sampler)


def _apply_all(images: torch.Tensor, names: tuple[str, ...], params: DSAParams,
               sampler: ParameterSampler) -> torch.Tensor:
    for name in names:
        images = get_augmentation(name)(images, params, sampler)
    return images


APPLY_MODES: dict[str, Callable[..., torch.Tensor]] = {"single": _apply_single, "all": _apply_all}


class DifferentiableSiameseAugmentation:
    """DSA: seeded, batched, differentiable augmentation (see the module docstring for seeding).

    Args:
        strategy: default strategy, underscore-joined operation names.
        params: operation magnitudes; DSA defaults when ``None``.
        mode: ``"single"`` (one random image operation per call, the DSA reference) or ``"all"``.

    Example::

        dsa = DifferentiableSiameseAugmentation()
        seed = 1234
        real_aug = dsa(real_batch, seed=seed)        # same transformation ...
        syn_aug = dsa(synthetic_batch, seed=seed)    # ... for both batches
    """

    def __init__(self, strategy: str = DEFAULT_DSA_STRATEGY, params: Optional[DSAParams] = None,
                 mode: str = "single") -> None:
        if mode not in APPLY_MODES:
            raise AugmentationError(f"Unknown mode {mode!r}; choose one of {sorted(APPLY_MODES)}.")
        parse_strategy(strategy)
        self.strategy, self.params, self.mode = strategy, params or DSAParams(), mode

    def __repr__(self) -> str:
        return f"DifferentiableSiameseAugmentation(strategy={self.strategy!r}, mode={self.mode!r}, params={self.params})"

    @staticmethod
    def _generator(seed: Optional[int], generator: Optional[torch.Generator]) -> Optional[torch.Generator]:
        if seed is not None and generator is not None:
            raise AugmentationError("Pass either seed or generator, not both.")
        if seed is not None:
            return torch.Generator().manual_seed(int(seed))
        return generator

    def _image_ops(self, images: torch.Tensor, strategy: Strategy, generator: Optional[torch.Generator],
                   per_sample: bool) -> torch.Tensor:
        if images.dim() != 4 or not images.is_floating_point():
            raise AugmentationError(
                f"DSA needs float images (N, C, H, W), got {images.dtype} {tuple(images.shape)}; "
                "convert uint8 images with latent_distill.data.uint8_to_float."
            )
        if not strategy.image_ops or images.shape[0] == 0:
            return images
        sampler = ParameterSampler(generator, images.shape[0], per_sample, images.device, images.dtype)
        return APPLY_MODES[self.mode](images, strategy.image_ops, self.params, sampler)

    def __call__(self, images: torch.Tensor, seed: Optional[int] = None, strategy: Optional[str] = None,
                 generator: Optional[torch.Generator] = None, per_sample: Optional[bool] = None) -> torch.Tensor:
        """Augments a batch of images (image operations only).

        Args:
            images: ``(N, C, H, W)`` float images, any number of channels.
            seed: Siamese seed; see the module docstring.
            strategy: overrides the default strategy for this call.
            generator: randomness when ``seed`` is ``None`` (``None``: torch's global generator).
            per_sample: one parameter set per sample; defaults to ``False`` with a seed (the whole
                batch shares the transformation, as in DSA) and ``True`` without one.

        Returns:
            The augmented images, same shape, differentiable w.r.t. ``images``.

        Raises:
            AugmentationError: when the strategy contains a mixing operation (use
                :meth:`augment_batch`), or for invalid inputs.
        """
        parsed = parse_strategy(strategy or self.strategy)
        if parsed.mixing_ops:
            raise AugmentationError(
                f"Strategy {strategy or self.strategy!r} contains {list(parsed.mixing_ops)}, which also change "
                "the targets: call augment_batch(images, targets, ...) instead."
            )
        per_sample = (seed is None) if per_sample is None else per_sample
        return self._image_ops(images, parsed, self._generator(seed, generator), per_sample)

    augment = __call__

    def augment_batch(self, images: torch.Tensor, targets: torch.Tensor, seed: Optional[int] = None,
                      strategy: Optional[str] = None, generator: Optional[torch.Generator] = None,
                      per_sample: Optional[bool] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Augments images, then applies the strategy's mixing operations (each with ``mix_prob``).

        Args:
            images: ``(N, C, H, W)`` float images.
            targets: ``(N, K)`` one-hot or soft float targets.
            seed: Siamese seed; see the module docstring.
            strategy: overrides the default strategy for this call.
            generator: randomness when ``seed`` is ``None``.
            per_sample: as in :meth:`__call__`.

        Returns:
            ``(images, targets)``; targets change only when a mixing operation was applied.
        """
        parsed = parse_strategy(strategy or self.strategy)
        generator = self._generator(seed, generator)
        per_sample = (seed is None) if per_sample is None else per_sample
        images = self._image_ops(images, parsed, generator, per_sample)
        for name in parsed.mixing_ops:
            if float(torch.rand(1, generator=generator).item()) < self.params.mix_prob:
                images, targets = get_mixing(name)(images, targets, self.params, generator)
        return images, targets


DSA = DifferentiableSiameseAugmentation
