"""Tiny random models and toy data for tests of code built on latent-distill.

Everything here runs offline in seconds on one CPU thread: an ``AutoencoderKL`` of the default
design scaled down (28x28 grey images to 4x7x7 latents), a class-conditional
``DiTTransformer2DModel`` over those latents with DiT's DDIM schedule, pipelines assembled from them,
and a small image-classification ``datasets.Dataset`` whose classes a network tells apart after a
few steps. Models are seeded, so two calls with the same arguments return the same weights.

    from latent_distill.testing import make_image_dataset, make_tiny_pipeline

    pipe = make_tiny_pipeline()                                   # tiny autoencoder only
    out = pipe(make_image_dataset(), config_for_method("latent-dm", ipc=1, iterations=2))

The library's own test suite uses these helpers (and wraps some in pytest fixtures).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Optional, Type, TypeVar

import numpy as np
import torch
from datasets import ClassLabel, Dataset, Features, Image
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    DiTTransformer2DModel,
)
from PIL import Image as PILImage

__all__ = [
    "FAST_D3HR",
    "make_dit_scheduler",
    "make_image_dataset",
    "make_tiny_dit",
    "make_tiny_pipeline",
    "make_tiny_vae",
]

PipelineT = TypeVar("PipelineT", bound=DiffusionPipeline)

FAST_D3HR: Mapping[str, Any] = MappingProxyType(
    dict(num_candidates=64, inversion_steps=5, num_inference_steps=10, batch_size=8))
"""``D3HRConfig`` settings that keep a D3HR run on the tiny models to seconds: 64 candidate groups per
class, a 10-step DDIM grid inverted 5 steps deep, batches of 8 (``D3HRConfig(**FAST_D3HR, ipc=2)``)."""


def make_tiny_vae(seed: int = 0) -> AutoencoderKL:
    """A random ``AutoencoderKL`` of the default design, scaled down: 28x28 grey -> 4x7x7 latents.

    Args:
        seed: seeds the weight initialisation (the same seed gives the same weights).

    Returns:
        The autoencoder (3 resolution levels of 8, 8 and 16 channels, one block each, 4 latent
        channels), in training mode as diffusers builds it.
    """
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 8, 16), layers_per_block=1,
        latent_channels=4, norm_num_groups=4, sample_size=28,
    )


def make_tiny_dit(num_classes: int = 2, seed: int = 0, learned_sigma: bool = True) -> DiTTransformer2DModel:
    """A random class-conditional DiT for the 4x7x7 latents of :func:`make_tiny_vae`.

    Args:
        num_classes: class labels it embeds (label ``num_classes`` is the null label of
            classifier-free guidance).
        seed: seeds the weight initialisation.
        learned_sigma: give it DiT-XL/2's extra learned-sigma output channels (8 outputs for 4
            inputs), which the library splits off; ``False`` predicts the noise only.

    Returns:
        A one-layer ``DiTTransformer2DModel`` (patch size 1, 2 heads of 8).
    """
    torch.manual_seed(seed)
    return DiTTransformer2DModel(sample_size=7, patch_size=1, in_channels=4, out_channels=8 if learned_sigma else 4,
                                 num_layers=1, attention_head_dim=8, num_attention_heads=2,
                                 num_embeds_ada_norm=num_classes, norm_num_groups=4)


def make_dit_scheduler() -> DDIMScheduler:
    """DiT's noise schedule as a DDIM scheduler.

    Returns:
        A ``DDIMScheduler`` with linear betas from 1e-4 to 0.02 over 1000 training steps, no clipping.
    """
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         clip_sample=False)


def make_tiny_pipeline(pipeline_class: Optional[Type[PipelineT]] = None, num_classes: Optional[int] = None,
                       seed: int = 0, progress_bar: bool = False) -> PipelineT:
    """A pipeline on the tiny random models.

    Args:
        pipeline_class: the pipeline to build, ``LatentDistillationPipeline`` (the default) or
            ``D3HRPipeline``.
        num_classes: when given, the pipeline also holds :func:`make_tiny_dit` for that many classes
            and :func:`make_dit_scheduler` (LD3M and D3HR need them); ``None`` builds it on the
            autoencoder alone.
        seed: seeds the weights of both models.
        progress_bar: keep the pipeline's progress bars (off by default, to keep test logs short).

    Returns:
        The pipeline, with :func:`make_tiny_vae` as its autoencoder.
    """
    if pipeline_class is None:
        from . import LatentDistillationPipeline

        pipeline_class = LatentDistillationPipeline
    components: dict[str, Any] = {"vae": make_tiny_vae(seed)}
    if num_classes is not None:
        components.update(transformer=make_tiny_dit(num_classes, seed=seed), scheduler=make_dit_scheduler())
    pipeline = pipeline_class(**components)
    if not progress_bar:
        pipeline.set_progress_bar_config(disable=True)
    return pipeline


def make_image_dataset(num_per_class: int = 10, num_classes: int = 2, size: int = 28, seed: int = 0,
                       mode: str = "L") -> Dataset:
    """A toy image-classification dataset: class ``c`` is a bright 9x9 square at a class-specific place.

    Args:
        num_per_class: images per class.
        num_classes: number of classes (the square of class ``c`` starts at pixel ``(3 + 12 c, 3 + 12 c)``,
            cut at the image border: classes whose square falls outside differ by noise only).
        size: side of the square images, in pixels.
        seed: seeds the background noise.
        mode: PIL mode of the stored images (drawn grey, then converted: ``"RGB"``, ``"RGBA"``, ...).

    Returns:
        A ``datasets.Dataset`` with an ``image`` column (``Image`` feature) and a ``label`` column
        (``ClassLabel`` named ``class_0``, ``class_1``, ...), sorted by class.
    """
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


class RecordingHubApi:
    """Stands in for ``huggingface_hub.HfApi`` in ``push_to_hub(..., api=...)``: records every call and
    the bytes of every uploaded file (``uploaded``: path in repo -> bytes); ``fail`` makes
    ``create_commit`` raise ``ConnectionError``, as an unreachable Hub would."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, tuple, dict]] = []
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))

    def create_branch(self, *args, **kwargs):
        self.calls.append(("create_branch", args, kwargs))

    def create_commit(self, *args, **kwargs):
        self.calls.append(("create_commit", args, kwargs))
        if self.fail:
            raise ConnectionError("Hub unreachable")
        for operation in kwargs["operations"]:
            self.uploaded[operation.path_in_repo] = Path(operation.path_or_fileobj).read_bytes()
        return "commit-info"
