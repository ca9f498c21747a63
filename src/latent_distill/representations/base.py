"""The representation interface: how a synthetic set is stored and rendered into the matching space.

A representation is an ``nn.Module`` holding the learnable tensors of the synthetic set, ordered by
class (``samples_per_class`` consecutive rows per class). ``render(c)`` returns the samples of class
``c`` (with gradients) in the matching space; ``export(codec)`` returns what is stored at the end.
Each representation also says how the *real* data is brought into its space
(:meth:`Representation.real_pool`), so an objective never needs to know which one it works on.
Representations are chosen by name from :data:`REPRESENTATIONS` (:func:`list_representations`).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn

from ..codec import LatentCache, LatentCodec
from ..config import parse_options
from ..data import ImageClassificationTensors
from ..registry import Registry
from .real_pool import RealPool


class RepresentationConfigError(ValueError):
    """Raised for unusable representation options; the message names the problem and the fix."""


REPRESENTATIONS: Registry[type["Representation"]] = Registry("representation", "@register_representation(name)")
register_representation = REPRESENTATIONS.register
get_representation = REPRESENTATIONS.get
list_representations = REPRESENTATIONS.names


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
        """int64 labels of the samples, on the samples' device."""
        return torch.arange(self.num_classes, device=self.samples.device).repeat_interleave(self.samples_per_class)

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
