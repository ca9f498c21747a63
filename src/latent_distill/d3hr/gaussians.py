"""Per-class diagonal Gaussians fitted in one streamed pass.

Batches of (flattened) inverted latents are folded into per-class count, sum and sum of squares
held in float64, so the fit never needs all latents in memory and the result does not depend on how
the data were batched or split over processes (up to float64 rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class GaussianFitError(ValueError):
    """Raised when a class has too few samples for a Gaussian."""


@dataclass
class ClassGaussians:
    """Diagonal Gaussians, one per class.

    Args:
        mean: float32 ``(K, D)``.
        std: float32 ``(K, D)`` (unbiased per-dimension standard deviation).
        counts: int64 ``(K,)`` samples behind each class's fit.
    """

    mean: torch.Tensor
    std: torch.Tensor
    counts: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.mean)


class GaussianAccumulator:
    """Streams samples into per-class moments.

    Args:
        num_classes: number of classes.
        dim: flattened sample size ``D``.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        self.counts = torch.zeros(num_classes, dtype=torch.int64)
        self.sums = torch.zeros(num_classes, dim, dtype=torch.float64)
        self.squares = torch.zeros(num_classes, dim, dtype=torch.float64)

    def update(self, samples: torch.Tensor, labels: torch.Tensor) -> None:
        """Adds a batch: ``samples`` ``(B, ...)`` (flattened per row), ``labels`` int64 ``(B,)``."""
        flat = samples.reshape(len(samples), -1).to(torch.float64)
        labels = labels.to(torch.int64).cpu()
        self.counts += torch.bincount(labels, minlength=len(self.counts))
        self.sums.index_add_(0, labels, flat.cpu())
        self.squares.index_add_(0, labels, flat.cpu().square())

    def merge_(self, other: "GaussianAccumulator") -> "GaussianAccumulator":
        """Adds another accumulator's moments (e.g. gathered from another process)."""
        self.counts += other.counts
        self.sums += other.sums
        self.squares += other.squares
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts, "sums": self.sums, "squares": self.squares}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.counts, self.sums, self.squares = state["counts"].clone(), state["sums"].clone(), state["squares"].clone()

    def finalize(self, classes: list[int] | None = None) -> ClassGaussians:
        """Returns the Gaussians of ``classes`` (all by default).

        Raises:
            GaussianFitError: when a class has fewer than two samples (no variance).
        """
        classes = list(range(len(self.counts))) if classes is None else classes
        counts = self.counts[classes]
        if int(counts.min()) < 2:
            short = [c for c, n in zip(classes, counts.tolist()) if n < 2]
            raise GaussianFitError(f"Classes {short} have fewer than two samples, so no variance can be fitted: "
                                   "add samples to them or remove them from the label set.")
        n = counts.to(torch.float64).unsqueeze(1)
        mean = self.sums[classes] / n
        variance = ((self.squares[classes] - n * mean.square()) / (n - 1)).clamp_min(0.0)
        return ClassGaussians(mean=mean.float(), std=variance.sqrt().float(), counts=counts.clone())
