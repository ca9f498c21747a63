"""The starting point of a gradient-based distillation: the synthetic samples before any iteration."""

from __future__ import annotations

import torch

from ..representations import RealPool
from ..seeding import generator_for


def initial_samples(real: RealPool, per_class: int, init: str, seed: int,
                    sample_shape: tuple[int, ...]) -> torch.Tensor:
    """The initial synthetic samples of every class, as ``LatentDistillationPipeline`` starts from.

    Args:
        real: the real samples in the matching space.
        per_class: samples per class.
        init: ``"real"`` (random real samples of the class) or anything else (standard normal noise).
        seed: seed of the run; each class draws from its own generator keyed by it.
        sample_shape: shape of one sample (used by noise initialisation).

    Returns:
        ``(num_classes * per_class, *sample_shape)`` samples, ordered by class.
    """
    chunks = []
    for class_index in range(real.num_classes):
        generator = generator_for(seed, "init", class_index)
        if init == "real":
            chunks.append(real.draw(class_index, per_class, generator))
        else:
            chunks.append(torch.randn((per_class, *sample_shape), generator=generator))
    return torch.cat(chunks)
