"""D3HR building blocks: guided denoiser, DDIM inversion/regeneration, Gaussians, group sampling."""

from .config import D3HRConfig
from .ddim import (
    ddim_invert,
    ddim_regenerate,
    ddim_schedulers,
    ddpm_noise,
    inversion_timestep,
)
from .denoiser import DenoiserError, GuidedDenoiser
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
    "DenoiserError",
    "GaussianAccumulator",
    "GaussianFitError",
    "GroupChoice",
    "GroupScoreWeights",
    "GuidedDenoiser",
    "ddim_invert",
    "ddim_regenerate",
    "ddim_schedulers",
    "ddpm_noise",
    "inversion_timestep",
    "redraw_group",
    "score_groups",
    "select_group",
]
