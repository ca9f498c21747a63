"""Diffusion pieces shared by LD3M and D3HR: the guided denoiser, DDIM steps, inversion and
regeneration, per-sample class embeddings of a class-conditional DiT, and the denoiser's training
loss weights."""

from .class_embeddings import class_embedders, override_class_embeddings
from .ddim import (
    InversionDepthError,
    ddim_invert,
    ddim_regenerate,
    ddim_schedulers,
    ddim_step,
    ddpm_noise,
    inversion_timestep,
    sampling_start_index,
)
from .guidance import DenoiserError, GuidedDenoiser
from .loss_weighting import min_snr_weights, signal_to_noise

__all__ = [
    "DenoiserError",
    "GuidedDenoiser",
    "InversionDepthError",
    "class_embedders",
    "ddim_invert",
    "ddim_regenerate",
    "ddim_schedulers",
    "ddim_step",
    "ddpm_noise",
    "inversion_timestep",
    "min_snr_weights",
    "override_class_embeddings",
    "sampling_start_index",
    "signal_to_noise",
]
