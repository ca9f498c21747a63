"""How a synthetic set is represented, and how it becomes samples in the space where matching runs.

A representation is an ``nn.Module`` holding the learnable tensors of the synthetic set, ordered by
class (``samples_per_class`` consecutive rows per class). ``render(c)`` returns the samples of class
``c`` (with gradients) in the matching space; ``export(codec)`` returns what is stored at the end.

- :class:`LatentCodes` (LatentDD): learnable autoencoder latents; matching runs on latents; the
  images are decoded once at the end.
- :class:`Pixels` (DC/DSA/DM/MTT baselines): learnable images; matching runs on pixels.
- :class:`~latent_distill.diffusion_prior.DiffusionPrior` (LD3M, registered as ``"diffusion"``):
  learnable initial latents and class embeddings rendered to images by a frozen denoiser and decoder.

Each representation also says how the *real* data is brought into its space
(:meth:`Representation.real_pool`), so an objective never needs to know which one it works on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterator, Optional

import torch
from accelerate import PartialState
from torch import nn

from .codec import LatentCache, LatentCodec, tensor_fingerprint
from .config import parse_options
from .data import ImageClassificationTensors, float_to_uint8, uint8_to_float
from .distributed import all_gather_rows, batch_aligned_bounds
from .registry import Registry


class RepresentationConfigError(ValueError):
    """Raised for unusable representation options; the message names the problem and the fix."""


REPRESENTATIONS: Registry[type["Representation"]] = Registry("representation")
register_representation = REPRESENTATIONS.register
get_representation = REPRESENTATIONS.get


@dataclass
class RealPool:
    """Real samples of every class in the matching space.

    Args:
        samples: all samples, ``uint8`` images or float latents.
        labels: int64 labels.
        num_classes: number of classes.
        to_float: conversion applied to drawn batches (``uint8_to_float`` for images).
    """

    samples: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    to_float: Optional[Callable[[torch.Tensor], torch.Tensor]] = None

    def __post_init__(self) -> None:
        self.by_class = [torch.nonzero(self.labels == c).flatten() for c in range(self.num_classes)]

    def class_size(self, class_index: int) -> int:
        return len(self.by_class[class_index])

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def fingerprint(self) -> str:
        """A content hash of the samples and labels (keys caches built from this pool)."""
        return tensor_fingerprint(self.samples, self.labels)

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        """The samples at ``index`` as float32 (``to_float`` applied)."""
        batch = self.samples[index]
        return self.to_float(batch) if self.to_float is not None else batch.float()

    def draw(self, class_index: int, count: int, generator: torch.Generator,
             replace: bool = False) -> torch.Tensor:
        """Returns ``count`` random samples of a class as float32 (fewer when the class is smaller)."""
        pool = self.by_class[class_index]
        if replace:
            picks = pool[torch.randint(len(pool), (count,), generator=generator)]
        else:
            picks = pool[torch.randperm(len(pool), generator=generator)[:count]]
        return self.gather(picks)

    def draw_mixed(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``count`` random samples of any class, without replacement, and their labels.

        Args:
            count: batch size (fewer samples when the pool is smaller).
            generator: randomness of the draw.

        Returns:
            ``(samples, labels)``, float32 samples and int64 labels.
        """
        picks = torch.randperm(len(self), generator=generator)[:count]
        return self.gather(picks), self.labels[picks]

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch over every sample in a random order, as ``(samples, labels)`` minibatches.

        Args:
            batch_size: samples per minibatch (the last one may be smaller).
            generator: randomness of the order.

        Yields:
            ``(samples, labels)``, float32 samples and int64 labels.
        """
        order = torch.randperm(len(self), generator=generator)
        for picks in order.split(batch_size):
            yield self.gather(picks), self.labels[picks]


class Representation(nn.Module):
    """Base class: learnable samples stored class by class.

    Args:
        initial: initial samples ``(num_classes * samples_per_class, ...)``, ordered by class.
        num_classes: number of classes.
    """

    name: str = "base"
    space: str = "pixel"
    #: Dataclass of the representation's options, filled from ``config.representation_kwargs``
    #: (``None``: it takes none).
    options_class: Optional[type] = None
    #: Whether the representation renders with the pipeline's denoiser (transformer + scheduler).
    uses_denoiser: bool = False

    def __init__(self, initial: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.samples_per_class = self.split_per_class(len(initial), num_classes)
        self.samples = nn.Parameter(initial.detach().clone().float())

    @staticmethod
    def split_per_class(count: int, num_classes: int) -> int:
        """Samples per class of a set of ``count`` samples ordered by class.

        Raises:
            ValueError: when ``count`` is not a multiple of ``num_classes``.
        """
        if count % num_classes != 0:
            raise ValueError(f"{count} initial samples cannot be split evenly over {num_classes} classes.")
        return count // num_classes

    @classmethod
    def parse_options(cls, values: Optional[dict[str, Any]]) -> Any:
        """Turns ``config.representation_kwargs`` into an :attr:`options_class` instance.

        Raises:
            RepresentationConfigError: for keys the representation does not know, listing the valid ones.
        """
        return parse_options(cls.options_class, dict(values or {}), field_name="representation_kwargs",
                             owner=f"the {cls.name!r} representation", error=RepresentationConfigError)

    @classmethod
    def create(cls, initial: torch.Tensor, num_classes: int, *, codec: Optional[LatentCodec] = None,
               transformer: Optional[nn.Module] = None, scheduler: Any = None,
               options: Optional[dict[str, Any]] = None, seed: int = 0) -> "Representation":
        """Builds the representation of a run (what the pipeline calls).

        The default ignores the frozen models and returns ``cls(initial, num_classes)``;
        representations that need them (or options) override it.

        Args:
            initial: initial samples in the matching space (drawn from :meth:`real_pool` or noise),
                ordered by class.
            num_classes: number of classes.
            codec: the pipeline's autoencoder codec.
            transformer: the pipeline's denoiser, or ``None``.
            scheduler: the pipeline's noise scheduler, or ``None``.
            options: ``config.representation_kwargs``.
            seed: ``config.seed`` (keys the representation's own randomness).

        Returns:
            The learnable synthetic set.

        Raises:
            RepresentationConfigError: when ``options`` holds keys the representation does not know.
        """
        cls.parse_options(options)
        return cls(initial, num_classes)

    def begin_iteration(self, step: int) -> None:
        """Called by the pipeline before each distillation iteration ``step`` (default: nothing).

        Representations whose rendering is random (e.g. the initial noise of a diffusion sampler)
        key that randomness by ``step``, so every render within one iteration is the same function
        of the parameters, and a resumed run draws what an uninterrupted run draws.
        """

    @property
    def labels(self) -> torch.Tensor:
        return torch.arange(self.num_classes).repeat_interleave(self.samples_per_class)

    def render(self, class_index: int) -> torch.Tensor:
        """The samples of one class in the matching space (differentiable)."""
        start = class_index * self.samples_per_class
        return self.samples[start: start + self.samples_per_class]

    def render_all(self) -> torch.Tensor:
        return self.samples

    @classmethod
    def sample_shape(cls, image_shape: tuple[int, ...], codec: Optional[LatentCodec]) -> tuple[int, ...]:
        """Shape of one synthetic sample."""
        raise NotImplementedError

    @classmethod
    def real_pool(cls, data: ImageClassificationTensors, codec: Optional[LatentCodec],
                  cache: LatentCache, progress: Optional[Callable] = None) -> RealPool:
        """Brings the real training data into the matching space."""
        raise NotImplementedError

    def export(self, codec: Optional[LatentCodec]) -> dict[str, torch.Tensor]:
        """What a distilled dataset stores: ``images`` (uint8) and, for latent methods, ``latents``."""
        raise NotImplementedError


@register_representation("pixel")
class Pixels(Representation):
    """Learnable images in [-1, 1]: the classic pixel-space baselines."""

    space = "pixel"

    @classmethod
    def sample_shape(cls, image_shape, codec):
        return tuple(image_shape)

    @classmethod
    def real_pool(cls, data, codec, cache, progress=None):
        return RealPool(data.images, data.labels, data.num_classes, to_float=uint8_to_float)

    def export(self, codec):
        return {"images": float_to_uint8(self.samples.detach().clamp(-1, 1))}


@register_representation("latent")
class LatentCodes(Representation):
    """Learnable autoencoder latents (LatentDD); decoded to images once, at the end."""

    space = "latent"

    @classmethod
    def sample_shape(cls, image_shape, codec):
        if codec is None:
            raise ValueError("The latent representation needs an autoencoder: load the pipeline with a vae.")
        return codec.latent_shape

    @classmethod
    def real_pool(cls, data, codec, cache, progress=None):
        fingerprint = tensor_fingerprint(data.images, data.labels)
        cached = cache.load(codec, fingerprint)
        if cached is not None:
            return RealPool(cached[0], data.labels, data.num_classes)
        state = PartialState()
        bounds = batch_aligned_bounds(len(data.images), codec.batch_size, state)
        start, stop = bounds[state.process_index]
        local = codec.encode(data.images[start:stop], to_float=uint8_to_float, progress=progress)
        latents = all_gather_rows(local, bounds, state)
        if state.is_main_process:
            cache.store(codec, fingerprint, latents, data.labels)
        state.wait_for_everyone()
        return RealPool(latents, data.labels, data.num_classes)

    def export(self, codec):
        latents = self.samples.detach().clone()
        return {"latents": latents, "images": float_to_uint8(codec.decode(latents))}


# Registers the "diffusion" representation (LD3M); imported last because it builds on the classes above.
from . import diffusion_prior  # noqa: E402,F401
