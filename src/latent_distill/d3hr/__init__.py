"""D3HR building blocks: the fit subset, per-class Gaussians (fitted, with their provenance and stored
form), representative group sampling and the groups kept, the run config.

The diffusion pieces it runs on (guided denoiser, DDIM inversion and regeneration) are shared with
LD3M and live in :mod:`latent_distill.diffusion`."""

from .config import D3HRConfig
from .fit_subset import fit_subset
from .fitted import FittedGaussians
from .gaussians import ClassGaussians, GaussianAccumulator, GaussianFitError
from .group_sampling import (
    GroupChoice,
    GroupScoreWeights,
    redraw_group,
    score_groups,
    select_group,
)
from .kept_groups import kept_groups, search_key

__all__ = [
    "ClassGaussians",
    "D3HRConfig",
    "FittedGaussians",
    "GaussianAccumulator",
    "GaussianFitError",
    "GroupChoice",
    "GroupScoreWeights",
    "fit_subset",
    "kept_groups",
    "redraw_group",
    "score_groups",
    "search_key",
    "select_group",
]
