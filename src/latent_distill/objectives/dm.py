"""Distribution matching (DM; LatentDM in Dataset Distillation in Latent Space, Algorithm 2).

Each iteration samples a fresh, randomly initialised embedding network and, for every class,
matches the mean embedding of a real batch and of the synthetic samples:
``L = sum_c || mean phi(real_c) - mean phi(syn_c) ||^2``. With augmentation on, real and
synthetic batches of a class share the augmentation parameters (siamese).
"""

from __future__ import annotations

import torch

from ..seeding import derive_seed, generator_for
from .base import MatchingObjective, register_objective


@register_objective("dm")
class DistributionMatching(MatchingObjective):
    """Class-wise mean-embedding matching under random networks."""

    class_separable = True

    def embedding_network(self, step: int) -> torch.nn.Module:
        """The fresh random network of iteration ``step`` (frozen)."""
        network = self.build_network("dm-network", step)
        network.requires_grad_(False)
        return network

    def class_loss(self, network, real: torch.Tensor, synthetic: torch.Tensor, seed: int) -> torch.Tensor:
        if self.augment is not None:
            real = self.augment(real, seed)
            synthetic = self.augment(synthetic, seed)
        with torch.no_grad():
            real_mean = network.embed(real).mean(dim=0)
        return (real_mean - network.embed(synthetic).mean(dim=0)).pow(2).sum()

    def iteration(self, synthetic, real, optimizer, step, classes):
        network = self.embedding_network(step)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for class_index in classes:
            batch = real.draw(class_index, self.config.batch_real, generator_for(self.config.seed, "dm-real", step, class_index))
            loss = self.class_loss(network, batch, synthetic.render(class_index),
                                   derive_seed(self.config.seed, "dm-augment", step, class_index))
            loss.backward()
            total += loss.item()
        optimizer.step()
        return total
