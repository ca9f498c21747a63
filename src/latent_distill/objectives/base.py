"""The matching-objective interface and its registry.

An objective pulls a synthetic set toward the real data, one iteration at a time, in whichever
space the representation renders to. It is written once and serves pixels and latents alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from ..augment import DifferentiableSiameseAugmentation
from ..config import DistillationConfig
from ..registry import Registry
from ..representations import RealPool, Representation

OBJECTIVES: Registry[type["MatchingObjective"]] = Registry("objective")
register_objective = OBJECTIVES.register
get_objective = OBJECTIVES.get


def build_augmentation(strategy: Optional[str]) -> Optional[DifferentiableSiameseAugmentation]:
    """The siamese augmentation used inside matching (``augment(x, seed)``), or ``None``."""
    return DifferentiableSiameseAugmentation(strategy) if strategy else None


class MatchingObjective:
    """Base class of matching objectives.

    Args:
        config: the run configuration (objective hyper-parameters in ``config.objective_kwargs``).
        sample_shape: ``(C, H, W)`` of one sample in the matching space.
        num_classes: number of classes.
        augment: differentiable siamese augmentation ``augment(x, seed) -> x`` or ``None``.
    """

    name: str = "base"

    def __init__(self, config: DistillationConfig, sample_shape: Sequence[int], num_classes: int,
                 augment: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None) -> None:
        self.config = config
        self.sample_shape = tuple(sample_shape)
        self.num_classes = num_classes
        self.augment = augment

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
