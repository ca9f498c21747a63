"""Shared fixtures: tiny random models and a 20-image synthetic dataset."""

from __future__ import annotations

import os
import tempfile

# A fresh datasets cache per test session: folders written at recycled temporary paths must never
# be served from an earlier session's cache.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="latent-distill-tests-datasets-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image
from diffusers import AutoencoderKL, DDIMScheduler, DiTTransformer2DModel
from PIL import Image as PILImage

# Tiny tensors gain nothing from threads, and thread barriers stall on a busy machine.
torch.set_num_threads(1)


def make_tiny_vae(seed: int = 0) -> AutoencoderKL:
    """A random ``AutoencoderKL`` of the default design, scaled down: 28x28 grey -> 4x7x7 latents."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 8, 16), layers_per_block=1,
        latent_channels=4, norm_num_groups=4, sample_size=28,
    )


def make_tiny_dit(num_classes: int = 2, seed: int = 0, learned_sigma: bool = True) -> DiTTransformer2DModel:
    """A random class-conditional DiT for 4x7x7 latents (with DiT-XL/2's learned-sigma channels)."""
    torch.manual_seed(seed)
    return DiTTransformer2DModel(sample_size=7, patch_size=1, in_channels=4, out_channels=8 if learned_sigma else 4,
                                 num_layers=1, attention_head_dim=8, num_attention_heads=2,
                                 num_embeds_ada_norm=num_classes, norm_num_groups=4)


def make_dit_scheduler() -> DDIMScheduler:
    """DiT's noise schedule (linear betas 1e-4 to 0.02 over 1000 steps) as a DDIM scheduler."""
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         clip_sample=False)


def make_image_dataset(num_per_class: int = 10, num_classes: int = 2, size: int = 28, seed: int = 0,
                       mode: str = "L") -> Dataset:
    """A toy image-classification dataset: class c is a bright square at a class-specific place."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(num_classes):
        for _ in range(num_per_class):
            array = rng.integers(0, 60, size=(size, size), dtype=np.uint8)
            offset = 3 + 12 * label
            array[offset: offset + 9, offset: offset + 9] = 230
            image = PILImage.fromarray(array, mode="L")
            images.append(image.convert(mode) if mode != "L" else image)
            labels.append(label)
    features = Features({"image": Image(), "label": ClassLabel(names=[f"class_{c}" for c in range(num_classes)])})
    return Dataset.from_dict({"image": images, "label": labels}, features=features)


@pytest.fixture
def tiny_vae() -> AutoencoderKL:
    return make_tiny_vae()


@pytest.fixture
def toy_dataset() -> Dataset:
    return make_image_dataset()
