"""Matching objectives, chosen by name from a registry."""

from .base import (
    OBJECTIVES,
    MatchingObjective,
    ObjectiveConfigError,
    build_augmentation,
    get_objective,
    list_objectives,
    parse_objective_options,
    register_objective,
)
from .dc import DCObjectiveConfig, GradientMatching
from .dm import DistributionMatching
from .mtt import MTTObjectiveConfig, TrajectoryMatching

__all__ = [
    "OBJECTIVES",
    "DCObjectiveConfig",
    "DistributionMatching",
    "GradientMatching",
    "MTTObjectiveConfig",
    "MatchingObjective",
    "ObjectiveConfigError",
    "TrajectoryMatching",
    "build_augmentation",
    "get_objective",
    "list_objectives",
    "parse_objective_options",
    "register_objective",
]
