"""Diffusion pieces shared by LD3M and D3HR: the guided denoiser, DDIM steps, inversion and
regeneration, and per-sample class embeddings of a class-conditional DiT."""

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
    "override_class_embeddings",
    "sampling_start_index",
]
