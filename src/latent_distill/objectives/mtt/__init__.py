"""MTT / LatentMTT: trajectory matching, its unrolled student and the expert trajectories it matches."""

from .objective import MTTObjectiveConfig, TrajectoryMatching
from .student import (
    FlatStudent,
    StudentPlan,
    constant_memory_gradients,
    unrolled_matching_loss,
)
from .trajectories import (
    ExpertBuffer,
    ExpertBufferError,
    ParameterLayout,
    expert_recipe,
    train_expert,
    train_expert_trajectories,
)

__all__ = [
    "ExpertBuffer",
    "ExpertBufferError",
    "FlatStudent",
    "MTTObjectiveConfig",
    "ParameterLayout",
    "StudentPlan",
    "TrajectoryMatching",
    "constant_memory_gradients",
    "expert_recipe",
    "train_expert",
    "train_expert_trajectories",
    "unrolled_matching_loss",
]
