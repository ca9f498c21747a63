"""Checks of the fields of a distilled set; each returns the field in its canonical form or raises
:class:`~latent_distill.distilled.errors.DistilledDatasetError` naming the fix."""

from __future__ import annotations

import json
import math
from typing import Any, Optional

import torch

from ..data import float_to_uint8
from .errors import DistilledDatasetError

GAUSSIAN_FIELDS = ("mean", "std", "latent_shape", "timestep", "group_seeds")


def require_json(value: Any, name: str) -> None:
    """Raises a clear error when ``value`` cannot be written to JSON."""
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as error:
        raise DistilledDatasetError(
            f"{name} must hold only JSON values (str, int, float, bool, None, lists, dicts): {error}. "
            "Convert tensors with .tolist() and paths with str()."
        ) from None


def cpu_tensor(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """Returns ``tensor`` detached, on the CPU and contiguous."""
    if not isinstance(tensor, torch.Tensor):
        raise DistilledDatasetError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}.")
    return tensor.detach().cpu().contiguous()


def as_float32(tensor: torch.Tensor, name: str, ndim: int) -> torch.Tensor:
    """Checks a floating tensor of ``ndim`` dimensions and returns it as float32."""
    tensor = cpu_tensor(tensor, name)
    if not tensor.is_floating_point() or tensor.ndim != ndim:
        raise DistilledDatasetError(
            f"{name} must be a floating tensor with {ndim} dimensions, got {tensor.dtype} {tuple(tensor.shape)}."
        )
    return tensor.to(torch.float32)


def as_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """Checks ``(N, C, H, W)`` images with 1 or 3 channels; float images in [-1, 1] become uint8."""
    images = cpu_tensor(images, "images")
    if images.is_floating_point():
        images = float_to_uint8(images)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DistilledDatasetError(
            f"images must be uint8 (N, C, H, W) with C = 1 (grey) or 3 (RGB), or float in [-1, 1]; "
            f"got {images.dtype} {tuple(images.shape)}."
        )
    return images


def check_rows(name: str, tensor: Optional[torch.Tensor], num_rows: int) -> None:
    """Checks that ``tensor`` has one row per label."""
    if tensor is not None and tensor.shape[0] != num_rows:
        raise DistilledDatasetError(
            f"{name} has {tensor.shape[0]} rows but labels has {num_rows}: give one label per row."
        )


def normalise_gaussians(gaussians: dict, num_classes: int) -> dict:
    """Checks the D3HR Gaussian parameters and returns them with canonical types.

    Args:
        gaussians: ``{"mean": (K, D), "std": (K, D), "latent_shape": [C, h, w], "timestep": int}``,
            optional ``"group_seeds"`` (K ints) and any further JSON-valued entries.
        num_classes: K.

    Returns:
        A new dict with float32 ``mean``/``std``, ``latent_shape`` and ``group_seeds`` as lists of
        ints, ``timestep`` as int.
    """
    missing = [key for key in ("mean", "std", "latent_shape", "timestep") if key not in gaussians]
    if missing:
        raise DistilledDatasetError(
            f"gaussians is missing {missing}: D3HR sets need mean, std, latent_shape and timestep."
        )
    out = dict(gaussians)
    out["mean"] = as_float32(gaussians["mean"], "gaussians['mean']", 2)
    out["std"] = as_float32(gaussians["std"], "gaussians['std']", 2)
    out["latent_shape"] = [int(size) for size in gaussians["latent_shape"]]
    out["timestep"] = int(gaussians["timestep"])
    expected = (num_classes, math.prod(out["latent_shape"]))
    for key in ("mean", "std"):
        if tuple(out[key].shape) != expected:
            raise DistilledDatasetError(
                f"gaussians[{key!r}] has shape {tuple(out[key].shape)}, expected (num_classes, prod(latent_shape)) "
                f"= {expected}: flatten each class's latent statistics into one row."
            )
    if gaussians.get("group_seeds") is not None:
        out["group_seeds"] = [int(seed) for seed in gaussians["group_seeds"]]
        if len(out["group_seeds"]) != num_classes:
            raise DistilledDatasetError(
                f"gaussians['group_seeds'] has {len(out['group_seeds'])} entries, "
                f"expected one per class ({num_classes})."
            )
    else:
        out.pop("group_seeds", None)
    require_json(gaussian_extras(out), f"gaussians (entries other than {', '.join(GAUSSIAN_FIELDS)})")
    return out


def gaussian_extras(gaussians: dict) -> dict:
    """Returns the entries of ``gaussians`` beyond the standard fields (stored in the JSON file)."""
    return {key: value for key, value in gaussians.items() if key not in GAUSSIAN_FIELDS}
