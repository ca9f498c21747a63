"""Learnable autoencoder latents (LatentDD): matching runs on latents, images are decoded at the end."""

from __future__ import annotations

from ..data import float_to_uint8
from ..encoding import encode_training_latents
from .base import Representation, register_representation
from .real_pool import RealPool


@register_representation("latent")
class LearnableLatents(Representation):
    """Learnable autoencoder latents (LatentDD); decoded to images once, at the end."""

    space = "latent"

    @classmethod
    def sample_shape(cls, image_shape, codec):
        if codec is None:
            raise ValueError("The latent representation needs an autoencoder: load the pipeline with a vae.")
        return codec.latent_shape

    @classmethod
    def real_pool(cls, data, codec, cache, progress=None):
        return RealPool(encode_training_latents(data, codec, cache, progress), data.labels, data.num_classes)

    def export(self, codec):
        latents = self.samples.detach().cpu().clone()
        return {"latents": latents, "images": float_to_uint8(codec.decode(latents))}
