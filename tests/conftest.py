"""Test-session settings and shared fixtures.

The tiny random models and the toy dataset are the public helpers of :mod:`latent_distill.testing`;
tests import them from there, or take the fixtures below.
"""

from __future__ import annotations

import os
import tempfile

# A fresh datasets cache per test session: folders written at recycled temporary paths must never
# be served from an earlier session's cache.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="latent-distill-tests-datasets-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from datasets import Dataset
from diffusers import AutoencoderKL

from latent_distill.testing import make_image_dataset, make_tiny_vae

# Tiny tensors gain nothing from threads, and thread barriers stall on a busy machine.
torch.set_num_threads(1)


@pytest.fixture
def tiny_vae() -> AutoencoderKL:
    """A fresh :func:`~latent_distill.testing.make_tiny_vae` (seed 0)."""
    return make_tiny_vae()


@pytest.fixture
def toy_dataset() -> Dataset:
    """The default :func:`~latent_distill.testing.make_image_dataset`: 2 classes of 10 28x28 grey images."""
    return make_image_dataset()
