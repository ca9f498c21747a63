"""The real samples D3HR fits its Gaussians on: a seeded subset of at most ``n`` per class."""

from __future__ import annotations

from typing import Optional

import torch

from ..data import TrainingSplit
from ..seeding import generator_for


def fit_subset(data: TrainingSplit, max_samples_per_class: Optional[int], seed: int) -> TrainingSplit:
    """Picks at most ``max_samples_per_class`` rows of every class, as ``D3HRPipeline.fit`` does.

    Each class keeps the first rows of its own seeded shuffle (keyed by the seed and the class, so
    the choice does not depend on the other classes), sorted back into dataset order; the classes
    follow each other in class order.

    Args:
        data: the training split (in memory, or streamed: only the kept rows are decoded later).
        max_samples_per_class: rows kept per class; ``None`` keeps them all.
        seed: seed of the choice (``D3HRConfig.seed``).

    Returns:
        The subset (``data`` itself when ``max_samples_per_class`` is ``None``).
    """
    if max_samples_per_class is None:
        return data
    picks = [rows[torch.randperm(len(rows), generator=generator_for(seed, "d3hr-fit", c))[:max_samples_per_class]]
             .sort().values
             for c, rows in enumerate(data.indices_by_class())]
    return data.select(torch.cat(picks))
