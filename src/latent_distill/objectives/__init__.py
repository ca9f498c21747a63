"""Matching objectives, chosen by name from a registry."""

from .base import OBJECTIVES, MatchingObjective, build_augmentation, get_objective, register_objective
from .dm import DistributionMatching

__all__ = ["OBJECTIVES", "build_augmentation", "MatchingObjective", "get_objective", "register_objective", "DistributionMatching"]
