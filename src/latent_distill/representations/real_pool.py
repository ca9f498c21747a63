"""The real training data in the matching space, drawn class by class by the objectives."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Callable, Iterator, Optional, Union

import torch

from ..codec import tensor_fingerprint


@dataclass
class RealPool:
    """Real samples of every class in the matching space.

    Args:
        samples: all samples, ``uint8`` images or float latents.
        labels: int64 labels.
        num_classes: number of classes.
        to_float: conversion applied to drawn batches (``uint8_to_float`` for images).
        device: where drawn batches and their labels are put (the samples themselves stay where they
            are, usually in CPU memory): the process device of the run.
    """

    samples: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    to_float: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    device: torch.device = torch.device("cpu")

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

    def to(self, device: Union[str, torch.device]) -> "RealPool":
        """The same pool, drawing its batches onto ``device``."""
        return replace(self, device=torch.device(device))

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        """The samples at ``index`` as float32 (``to_float`` applied) on :attr:`device`."""
        batch = self.samples[index.to(self.samples.device)].to(self.device)
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
        return self.gather(picks), self.labels[picks.to(self.labels.device)].to(self.device)

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
            yield self.gather(picks), self.labels[picks.to(self.labels.device)].to(self.device)
