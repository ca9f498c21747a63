"""D3HR building blocks: the fit subset, per-class Gaussians, representative group sampling, the run config.

The diffusion pieces it runs on (guided denoiser, DDIM inversion and regeneration) are shared with
LD3M and live in :mod:`latent_distill.diffusion`."""

from .config import D3HRConfig
from .fit_subset import fit_subset
from .gaussians import ClassGaussians, GaussianAccumulator, GaussianFitError
from .group_sampling import (
    GroupChoice,
    GroupScoreWeights,
    redraw_group,
    score_groups,
    select_group,
)

__all__ = [
    "ClassGaussians",
    "D3HRConfig",
    "GaussianAccumulator",
    "GaussianFitError",
    "GroupChoice",
    "GroupScoreWeights",
    "fit_subset",
    "redraw_group",
    "score_groups",
    "select_group",
]
