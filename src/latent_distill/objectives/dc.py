"""Gradient matching: DC / DSA, and LatentDC (Dataset Distillation in Latent Space, Algorithm 1),
written once for any space.

Each iteration initialises a fresh network and runs ``outer_loops`` rounds of:

1. for every class, the gradient of the cross-entropy w.r.t. the network parameters on a real
   batch and on the synthetic samples of the class, compared by a layer-wise distance; the sum
   over classes is back-propagated into the synthetic set, which takes one optimiser step;
2. ``inner_steps`` SGD steps of the network (lr ``network_lr``), except after the last round.

The default is LatentDC, which follows IDC (Kim et al. 2022): the MSE-like distance (sum of squared
gradient differences) and a network trained on REAL minibatches. ``distance="dc"`` and
``train_network_on="synthetic"`` give the original DC (Zhao et al. 2021): the per-output-channel
``1 - cosine`` distance and a network trained on the (detached) synthetic set. With augmentation
configured (DSA), real and synthetic batches of a class share the augmentation parameters, and the
network's training batches are augmented sample by sample.

Networks with batch norm see per-class batch statistics here (the DC reference freezes them from a
mixed batch); the default instance-norm ConvNet has no running statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ..representations import RealPool, Representation
from ..seeding import derive_seed, generator_for
from .base import MatchingObjective, ObjectiveConfigError, register_objective

#: DC's (outer loops, inner steps) by images per class (``get_loops`` of the DC reference).
DC_LOOPS_BY_IPC: dict[int, tuple[int, int]] = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15),
                                               50: (50, 10)}
NETWORK_TRAINING_DATA = ("real", "synthetic")

Gradients = Sequence[torch.Tensor]


def mse_gradient_distance(real: Gradients, synthetic: Gradients) -> torch.Tensor:
    """IDC / LatentDC distance: the sum over layers of the summed squared gradient differences."""
    return sum(((s - r) ** 2).sum() for r, s in zip(real, synthetic))


def dc_gradient_distance(real: Gradients, synthetic: Gradients, eps: float = 1e-6) -> torch.Tensor:
    """DC's layer-wise distance: ``sum over output channels of 1 - cosine``, summed over layers.

    Each gradient of two or more dimensions is viewed as ``(out_channels, -1)``; one-dimensional
    gradients (biases, norm affines) contribute nothing, as in the DC reference.
    """
    total = synthetic[0].new_zeros(())
    for r, s in zip(real, synthetic):
        if r.dim() < 2:
            continue
        r, s = r.reshape(r.shape[0], -1), s.reshape(s.shape[0], -1)
        cosine = (r * s).sum(dim=-1) / (r.norm(dim=-1) * s.norm(dim=-1) + eps)
        total = total + (1 - cosine).sum()
    return total


GRADIENT_DISTANCES: dict[str, Callable[[Gradients, Gradients], torch.Tensor]] = {
    "mse": mse_gradient_distance,
    "dc": dc_gradient_distance,
}


@dataclass
class DCObjectiveConfig:
    """Hyper-parameters of gradient matching (``config.objective_kwargs`` of ``objective="dc"``).

    Args:
        outer_loops: M, matching rounds (synthetic-set updates) per fresh network. ``None`` takes
            DC's value for the run's IPC (:data:`DC_LOOPS_BY_IPC`).
        inner_steps: N, network SGD steps between rounds. ``None`` takes DC's value for the IPC.
        network_lr: learning rate of the network's SGD (no momentum).
        distance: ``"mse"`` (IDC / LatentDC) or ``"dc"`` (DC's per-channel ``1 - cosine``).
        train_network_on: ``"real"`` (IDC / LatentDC) or ``"synthetic"`` (DC).
        batch_train: samples per network SGD step, drawn from all classes.
    """

    outer_loops: Optional[int] = 10
    inner_steps: Optional[int] = 50
    network_lr: float = 0.01
    distance: str = "mse"
    train_network_on: str = "real"
    batch_train: int = 256

    def __post_init__(self) -> None:
        if self.distance not in GRADIENT_DISTANCES:
            raise ObjectiveConfigError(f"distance must be one of {sorted(GRADIENT_DISTANCES)}, got {self.distance!r}.")
        if self.train_network_on not in NETWORK_TRAINING_DATA:
            raise ObjectiveConfigError(
                f"train_network_on must be one of {NETWORK_TRAINING_DATA}, got {self.train_network_on!r}.")
        if self.outer_loops is not None and self.outer_loops < 1:
            raise ObjectiveConfigError(
                f"outer_loops must be at least 1 (or None for DC's value), got {self.outer_loops}.")
        if self.inner_steps is not None and self.inner_steps < 0:
            raise ObjectiveConfigError(f"inner_steps must be >= 0 (or None for DC's value), got {self.inner_steps}.")
        if self.batch_train < 1 or self.network_lr <= 0:
            raise ObjectiveConfigError(
                f"batch_train and network_lr must be positive, got {self.batch_train} and {self.network_lr}.")

    def loops(self, ipc: int) -> tuple[int, int]:
        """``(outer_loops, inner_steps)``, filling ``None`` values from DC's table for ``ipc``.

        Raises:
            ObjectiveConfigError: when a value is ``None`` and DC defines none for ``ipc``.
        """
        if self.outer_loops is not None and self.inner_steps is not None:
            return self.outer_loops, self.inner_steps
        if ipc not in DC_LOOPS_BY_IPC:
            raise ObjectiveConfigError(
                f"DC defines outer/inner loops for IPC {sorted(DC_LOOPS_BY_IPC)} only, not {ipc}: set "
                "objective_kwargs={'outer_loops': ..., 'inner_steps': ...}."
            )
        outer, inner = DC_LOOPS_BY_IPC[ipc]
        return (self.outer_loops if self.outer_loops is not None else outer,
                self.inner_steps if self.inner_steps is not None else inner)


@register_objective("dc")
class GradientMatching(MatchingObjective):
    """Class-wise gradient matching under networks trained along the way (DC, DSA, LatentDC)."""

    options_class = DCObjectiveConfig
    # Per-class distances touch only their class's rows; the network (trained on real data or on the
    # whole synthetic set, identical on every process after the summed-gradient step) is shared.
    class_separable = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outer_loops, self.inner_steps = self.options.loops(self.config.ipc)
        self.distance = GRADIENT_DISTANCES[self.options.distance]

    def summary(self):
        return {"outer_loops": self.outer_loops, "inner_steps": self.inner_steps}

    def class_gradients(self, network: torch.nn.Module, samples: torch.Tensor, class_index: int, seed: int,
                        create_graph: bool) -> Gradients:
        """Gradients of the mean cross-entropy of ``samples`` (all of class ``class_index``)."""
        if self.augment is not None:
            samples = self.augment(samples, seed)
        labels = torch.full((len(samples),), class_index, dtype=torch.long, device=samples.device)
        loss = F.cross_entropy(network(samples), labels)
        return torch.autograd.grad(loss, list(network.parameters()), create_graph=create_graph)

    def match_class(self, network: torch.nn.Module, synthetic: Representation, real: RealPool,
                    leaves: list[torch.Tensor], keys: tuple[int, ...], class_index: int) -> float:
        """Back-propagates one class's gradient distance into ``leaves``; returns its value."""
        seed = derive_seed(self.config.seed, "dc-augment", *keys, class_index)
        real_batch = real.draw(class_index, self.config.batch_real,
                               generator_for(self.config.seed, "dc-real", *keys, class_index))
        real_gradients = self.class_gradients(network, real_batch, class_index, seed, create_graph=False)
        synthetic_gradients = self.class_gradients(network, synthetic.render(class_index), class_index, seed,
                                                   create_graph=True)
        distance = self.distance(real_gradients, synthetic_gradients)
        # Per-class backward: the graph of one class is freed before the next is built.
        torch.autograd.backward(distance, inputs=leaves)
        return distance.item()

    def train_network(self, network: torch.nn.Module, synthetic: Representation, real: RealPool,
                      keys: tuple[int, ...]) -> None:
        """``inner_steps`` SGD steps of ``network`` on real or (detached) synthetic minibatches."""
        optimizer = torch.optim.SGD(network.parameters(), lr=self.options.network_lr)
        if self.options.train_network_on == "synthetic":
            pool = RealPool(synthetic.render_all().detach(), synthetic.labels, self.num_classes)
        else:
            pool = real
        for inner in range(self.inner_steps):
            inputs, targets = pool.draw_mixed(self.options.batch_train,
                                              generator_for(self.config.seed, "dc-train", *keys, inner))
            inputs = self.augment_per_sample(inputs, derive_seed(self.config.seed, "dc-train-augment", *keys, inner))
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(network(inputs), targets).backward()
            optimizer.step()

    def iteration(self, synthetic, real, optimizer, step, classes):
        """One fresh network, ``outer_loops`` synthetic-set updates; returns the loss summed over
        classes and outer loops."""
        network = self.build_network("dc-network", step)
        leaves = [p for group in optimizer.param_groups for p in group["params"]]
        total = 0.0
        for outer in range(self.outer_loops):
            optimizer.zero_grad(set_to_none=True)
            for class_index in classes:
                total += self.match_class(network, synthetic, real, leaves, (step, outer), class_index)
            optimizer.step()
            if outer + 1 < self.outer_loops:
                self.train_network(network, synthetic, real, (step, outer))
        return total
