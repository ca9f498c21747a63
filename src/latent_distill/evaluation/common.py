"""Helpers shared by the evaluation modules: the error type, cache keys, float conversion."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

from ..data import ImageClassificationTensors, uint8_to_float


class EvaluationError(ValueError):
    """Raised when an evaluation cannot run as asked; the message names the problem and the fix."""


def dataset_fingerprint(data: ImageClassificationTensors) -> str:
    """A SHA-256 over images, labels, shapes and class names; the key of every on-disk cache.

    Args:
        data: the split to fingerprint.

    Returns:
        The hexadecimal digest.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([list(data.images.shape), str(data.images.dtype), data.class_names]).encode())
    digest.update(data.images.contiguous().cpu().numpy().tobytes())
    digest.update(data.labels.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def recipe_digest(obj: Any) -> str:
    """A SHA-256 of ``obj`` as JSON (sorted keys, ``str()`` for other values): a cache-key hash.

    Args:
        obj: a JSON-like value, such as a training recipe.

    Returns:
        The hexadecimal digest.
    """
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def to_float_samples(samples: torch.Tensor) -> torch.Tensor:
    """Maps ``uint8`` images to float32 in [-1, 1]; float samples (images or latents) only become float32.

    Args:
        samples: ``(N, C, H, W)`` images or latents.

    Returns:
        The float32 samples.
    """
    return uint8_to_float(samples) if samples.dtype == torch.uint8 else samples.float()
