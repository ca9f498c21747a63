"""The matching-objective interface and its registry.

An objective pulls a synthetic set toward the real data, one iteration at a time, in whichever
space the representation renders to. It is written once and serves pixels and latents alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch

from ..augment import DifferentiableSiameseAugmentation
from ..config import DistillationConfig, parse_options
from ..networks import get_network
from ..registry import Registry
from ..representations import RealPool, Representation
from ..seeding import seeded

OBJECTIVES: Registry[type["MatchingObjective"]] = Registry("objective", "@register_objective(name)")
register_objective = OBJECTIVES.register
get_objective = OBJECTIVES.get
list_objectives = OBJECTIVES.names


class ObjectiveConfigError(ValueError):
    """Raised for unusable objective hyper-parameters; the message names the problem and the fix."""


def build_augmentation(strategy: Optional[str]) -> Optional[DifferentiableSiameseAugmentation]:
    """The siamese augmentation used inside matching (``augment(x, seed)``), or ``None``."""
    return DifferentiableSiameseAugmentation(strategy) if strategy else None


def parse_objective_options(options_class: Optional[type], values: dict[str, Any], objective: str) -> Any:
    """Turns ``config.objective_kwargs`` into an objective's options dataclass.

    Args:
        options_class: the objective's dataclass of hyper-parameters (``None``: it takes none).
        values: the ``objective_kwargs`` of the run configuration.
        objective: the objective's registry name, for error messages.

    Returns:
        An ``options_class`` instance, or ``None`` when the objective takes no options.

    Raises:
        ObjectiveConfigError: for keys the objective does not know, listing the valid ones.
    """
    return parse_options(options_class, values, field_name="objective_kwargs", owner=f"the {objective!r} objective",
                         error=ObjectiveConfigError)


class MatchingObjective:
    """Base class of matching objectives.

    Args:
        config: the run configuration (objective hyper-parameters in ``config.objective_kwargs``).
        sample_shape: ``(C, H, W)`` of one sample in the matching space.
        num_classes: number of classes.
        augment: differentiable siamese augmentation ``augment(x, seed) -> x`` or ``None``.
        device: where the objective's networks and tensors live (the run's process device; the
            synthetic set and the real pool's batches must be there too). ``None``: the CPU.

    Raises:
        ObjectiveConfigError: when ``config.objective_kwargs`` holds keys the objective does not know.
    """

    name: str = "base"
    #: Dataclass of the objective's hyper-parameters, filled from ``config.objective_kwargs``
    #: (``None``: the objective takes none).
    options_class: Optional[type] = None
    #: Whether the loss is a sum of per-class terms whose gradients touch only that class's samples.
    #: Class-separable objectives are split by class across processes (gradients summed); the
    #: others run the whole iteration on every process.
    class_separable: bool = False

    def __init__(self, config: DistillationConfig, sample_shape: Sequence[int], num_classes: int,
                 augment: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None,
                 device: Union[str, torch.device, None] = None) -> None:
        self.config = config
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.sample_shape = tuple(sample_shape)
        self.num_classes = num_classes
        self.augment = augment
        self.options = parse_objective_options(self.options_class, dict(config.objective_kwargs), self.name)

    def build_network(self, *seed_keys: int | str) -> torch.nn.Module:
        """A freshly initialised ``config.network`` for the matching space.

        Args:
            *seed_keys: keys of the initialisation randomness (with ``config.seed``), e.g.
                ``("dc-network", step)``.

        Returns:
            The network in training mode, on :attr:`device` (initialised on the CPU, so it is the
            same network on every device).
        """
        with seeded(self.config.seed, *seed_keys):
            network = get_network(self.config.network, in_channels=self.sample_shape[0],
                                  num_classes=self.num_classes, resolution=self.sample_shape[-1],
                                  **self.config.network_kwargs)
        return network.to(self.device)

    def augment_per_sample(self, samples: torch.Tensor, seed: int) -> torch.Tensor:
        """Augments a training batch with parameters drawn per sample, keyed by ``seed``.

        Matching uses :attr:`augment` with one parameter set per batch (siamese); batches a network
        trains on are augmented sample by sample, as DSA does outside matching.

        Args:
            samples: the batch.
            seed: randomness of the augmentation (the same seed gives the same result).

        Returns:
            The augmented batch (``samples`` itself without augmentation).
        """
        if self.augment is None:
            return samples
        if isinstance(self.augment, DifferentiableSiameseAugmentation):
            return self.augment(samples, seed=seed, per_sample=True)
        return self.augment(samples, seed)

    def setup(self, real: RealPool, work_dir: Optional[Path]) -> None:
        """Prepares what the objective needs before the first iteration (e.g. expert trajectories).

        Args:
            real: real samples in the matching space.
            work_dir: a folder for reusable artefacts (``None``: keep them in memory only).
        """

    def state_dict(self) -> dict[str, Any]:
        """Learnable or stateful parts of the objective (saved in checkpoints)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""

    def summary(self) -> dict[str, Any]:
        """JSON values recorded with the distilled set (e.g. a learned learning rate)."""
        return {}

    def iteration(self, synthetic: Representation, real: RealPool, optimizer: torch.optim.Optimizer,
                  step: int, classes: Sequence[int]) -> float:
        """Runs one distillation iteration: computes the loss, updates the synthetic set.

        Args:
            synthetic: the learnable synthetic set.
            real: real samples in the matching space.
            optimizer: optimiser of the synthetic set's parameters.
            step: iteration index (keys the randomness).
            classes: the classes this process handles.

        Returns:
            The loss value of the iteration.
        """
        raise NotImplementedError
