"""The dtype of the frozen models (autoencoder, denoiser) under ``accelerate``'s mixed precision.

``accelerate launch --mixed_precision bf16`` (or ``accelerate config``) exports
``ACCELERATE_MIXED_PRECISION``; the pipelines then hold their frozen models in that half precision,
while everything they learn (latents, class embeddings, and their optimiser state) stays float32:
the models cast their inputs to their own dtype and their outputs back to float32.
"""

from __future__ import annotations

import os
from typing import Optional

import torch

FROZEN_DTYPES = {"no": torch.float32, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionError(ValueError):
    """Raised for an unknown mixed-precision setting."""


def frozen_model_dtype(mixed_precision: Optional[str] = None, device: Optional[torch.device] = None) -> torch.dtype:
    """The dtype frozen models should run in.

    Args:
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"``; ``None`` reads ``ACCELERATE_MIXED_PRECISION``
            (unset: ``"no"``).
        device: where the models run; fp16 on a CPU falls back to bf16 (CPU kernels for fp16
            convolutions are slow or missing).

    Returns:
        ``torch.float32``, ``torch.bfloat16`` or ``torch.float16``.

    Raises:
        PrecisionError: for a setting outside ``no | bf16 | fp16``.
    """
    setting = (mixed_precision or os.environ.get("ACCELERATE_MIXED_PRECISION") or "no").lower()
    if setting not in FROZEN_DTYPES:
        raise PrecisionError(f"Unknown mixed precision {setting!r}: use one of 'no', 'bf16', 'fp16' "
                             "(accelerate launch --mixed_precision ...).")
    dtype = FROZEN_DTYPES[setting]
    if dtype == torch.float16 and device is not None and torch.device(device).type == "cpu":
        return torch.bfloat16
    return dtype


def remember_weights_fingerprint(module: torch.nn.Module) -> None:
    """Stores the fingerprint of a model's full-precision weights on it, before a cast rounds them."""
    from .model_provenance import FINGERPRINT_ATTRIBUTE, weights_fingerprint

    if getattr(module, FINGERPRINT_ATTRIBUTE, None) is None:
        setattr(module, FINGERPRINT_ATTRIBUTE, weights_fingerprint(module))


def freeze(module: torch.nn.Module, device: torch.device | str, mixed_precision: Optional[str] = None) -> torch.nn.Module:
    """Puts a frozen model on ``device`` in :func:`frozen_model_dtype`, in eval mode, without gradients.

    Moves or casts only when needed (diffusers warns on every dtype cast).

    Args:
        module: the autoencoder or denoiser.
        device: where it runs.
        mixed_precision: as in :func:`frozen_model_dtype`.

    Returns:
        ``module`` (changed in place).
    """
    device = torch.device(device)
    dtype = frozen_model_dtype(mixed_precision, device)
    parameter = next(module.parameters())
    if parameter.device != device:
        module.to(device)
    if parameter.dtype != dtype:
        remember_weights_fingerprint(module)  # of the weights as loaded, before rounding them
        module.to(dtype=dtype)
    return module.eval().requires_grad_(False)
