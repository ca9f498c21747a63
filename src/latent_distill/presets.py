"""Named hyper-parameter presets: one per method of the library.

A preset is a partial :class:`~latent_distill.config.DistillationConfig`; ``config_for_method``
fills a config from a preset and user overrides. Method names are ``<representation>-<objective>``
(``latent-dm``, ``pixel-dm``, ...), the names used by ``examples/distill.py --method``.
"""

from __future__ import annotations

from typing import Any

from .config import DistillationConfig
from .registry import Registry

DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"

PRESETS: Registry[dict[str, Any]] = Registry("method")


def register_preset(name: str, **values: Any) -> None:
    """Adds a named preset (a partial config)."""
    PRESETS.add(name, values)


def list_presets() -> list[str]:
    return PRESETS.names()


def config_for_method(name: str, **overrides: Any) -> DistillationConfig:
    """Builds the config of a named method, with ``overrides`` (``None`` values are ignored).

    Raises:
        KeyError: for an unknown method name, listing the known ones.
    """
    values = {**PRESETS.get(name), **{key: value for key, value in overrides.items() if value is not None}}
    return DistillationConfig.from_dict(values)


# LatentDM (seed 001, Algorithm 2 and Table 6): real-latent init, a fresh random ConvNet per
# iteration, learning rate scaled by latents per class (Eq. 10). Latents are unit-variance, so the
# base rate is that of pixel DM scaled by the latent/pixel value ratio.
register_preset("latent-dm", representation="latent", method="dm", iterations=1000, learning_rate=0.1,
                scale_learning_rate=True, momentum=0.5, batch_real=256, init="real", augmentation=None)

# DM (Zhao & Bilen 2023): learning rate 1 on normalised images, DSA inside matching, 20k iterations
# in the original; fewer by default here for CPU runs (set iterations to reproduce).
register_preset("pixel-dm", representation="pixel", method="dm", iterations=1000, learning_rate=1.0,
                scale_learning_rate=False, momentum=0.5, batch_real=256, init="real", augmentation=DSA_STRATEGY)
