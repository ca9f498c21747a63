"""Lossless PNG encoding of uint8 ``(C, H, W)`` image arrays (C = 1 grey, 3 RGB)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage


def to_pil(array: np.ndarray) -> PILImage.Image:
    """A uint8 ``(C, H, W)`` array as a PIL image: mode ``"L"`` for 1 channel, ``"RGB"`` for 3."""
    if array.shape[0] == 1:
        return PILImage.fromarray(np.ascontiguousarray(array[0]), mode="L")
    return PILImage.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0)), mode="RGB")


def encode_png(image: np.ndarray) -> bytes:
    """Encodes a uint8 ``(C, H, W)`` array (C = 1 grey, 3 RGB) as PNG bytes (lossless)."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Decodes PNG bytes into a uint8 ``(C, H, W)`` array (grey -> 1 channel, else RGB)."""
    with PILImage.open(io.BytesIO(data)) as pil:
        pil = pil.convert("L") if pil.mode in ("L", "1", "I;16", "I") else pil.convert("RGB")
        array = np.asarray(pil, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
