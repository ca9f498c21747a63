"""Learnable images: the classic pixel-space baselines (DC, DSA, DM, MTT)."""

from __future__ import annotations

from ..data import float_to_uint8, uint8_to_float
from .base import Representation, register_representation
from .real_pool import RealPool


@register_representation("pixel")
class LearnablePixels(Representation):
    """Learnable images in [-1, 1]: the classic pixel-space baselines."""

    space = "pixel"

    @classmethod
    def sample_shape(cls, image_shape, codec):
        return tuple(image_shape)

    @classmethod
    def real_pool(cls, data, codec, cache, progress=None):
        data = data.load()  # pixel matching keeps the real images in memory (a streamed split decodes here)
        return RealPool(data.images, data.labels, data.num_classes, to_float=uint8_to_float)

    def export(self, codec):
        return {"images": float_to_uint8(self.samples.detach().clamp(-1, 1)).cpu()}
