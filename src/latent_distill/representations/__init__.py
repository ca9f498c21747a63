"""How a synthetic set is represented, and how it becomes samples in the space where matching runs.

- :class:`LearnableLatents` (``"latent"``, LatentDD): learnable autoencoder latents; matching runs on
  latents; the images are decoded once at the end.
- :class:`LearnablePixels` (``"pixel"``, DC/DSA/DM/MTT baselines): learnable images; matching runs on
  pixels.
- :class:`DiffusionPrior` (``"diffusion"``, LD3M): learnable initial latents and class embeddings
  rendered to images by a frozen denoiser and decoder.
"""

from .base import (
    REPRESENTATIONS,
    Representation,
    RepresentationConfigError,
    get_representation,
    list_representations,
    register_representation,
)
from .diffusion_prior import EXPORT_NOISE_KEY, DiffusionPrior
from .diffusion_renderer import (
    DiffusionPriorError,
    DiffusionPriorOptions,
    DiffusionRenderer,
)
from .latent import LearnableLatents
from .pixel import LearnablePixels
from .real_pool import RealPool
from .skip_connection import (
    SKIP_CONNECTIONS,
    SkipConnection,
    get_skip_connection,
    list_skip_connections,
    register_skip_connection,
    skip_ddim_step,
    skip_weight,
)

__all__ = [
    "EXPORT_NOISE_KEY",
    "REPRESENTATIONS",
    "SKIP_CONNECTIONS",
    "DiffusionPrior",
    "DiffusionPriorError",
    "DiffusionPriorOptions",
    "DiffusionRenderer",
    "LearnableLatents",
    "LearnablePixels",
    "RealPool",
    "Representation",
    "RepresentationConfigError",
    "SkipConnection",
    "get_representation",
    "get_skip_connection",
    "list_representations",
    "list_skip_connections",
    "register_representation",
    "register_skip_connection",
    "skip_ddim_step",
    "skip_weight",
]
