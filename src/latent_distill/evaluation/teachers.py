"""Teachers of the soft-label protocol: networks trained on the full real set, cached on disk.

A teacher folder holds :data:`TEACHER_WEIGHTS` and :data:`TEACHER_RECIPE`; the loaded network
carries its recipe in ``latent_distill_recipe``, which evaluation results record.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ..checkpointing import PathLike, atomic_directory, atomic_write_json
from ..data import ImageClassificationTensors
from ..networks import get_network
from .common import dataset_fingerprint, recipe_digest, to_float_samples
from .protocols import HardLabelProtocol, rded_convnet_kwargs
from .training import maybe_compile, train_hard_label

TEACHER_WEIGHTS = "model.safetensors"
TEACHER_RECIPE = "recipe.json"


def load_teacher(folder: PathLike) -> nn.Module:
    """Loads a teacher saved by :func:`train_teacher` (weights + recipe) in eval mode.

    Args:
        folder: the teacher's cache folder.

    Returns:
        The network, with its recipe in ``latent_distill_recipe``.
    """
    folder = Path(folder)
    recipe = json.loads((folder / TEACHER_RECIPE).read_text())
    model = get_network(recipe["arch"], recipe["in_channels"], recipe["num_classes"], recipe["resolution"],
                        **recipe["arch_kwargs"])
    model.load_state_dict(load_file(str(folder / TEACHER_WEIGHTS)))
    model.latent_distill_recipe = recipe
    return model.eval()


def train_teacher(train: ImageClassificationTensors, arch: str = "convnet", epochs: int = 30, seed: int = 0,
                  cache_dir: Optional[PathLike] = None, arch_kwargs: Optional[dict] = None,
                  protocol: Optional[HardLabelProtocol] = None, device: Union[str, torch.device, None] = None,
                  progress: bool = True, torch_compile: bool = False) -> nn.Module:
    """Trains (or loads from ``cache_dir``) a teacher on the full real training set.

    The recipe is :class:`HardLabelProtocol` (SGD, step decay, DSA) with ``arch``, ``arch_kwargs``
    and ``epochs`` taken from the arguments. The cache folder
    ``teacher-<arch>-e<epochs>-s<seed>-<key>`` holds ``model.safetensors`` and ``recipe.json``;
    ``key`` hashes the dataset fingerprint and the full recipe.

    Args:
        train: the real training split.
        arch: network name.
        epochs: training epochs over ``train``.
        seed: initialisation, shuffling and augmentation seed.
        cache_dir: folder of cached teachers; ``None`` disables caching.
        arch_kwargs: network options; batch norm ConvNet (RDED's ``conv3``) when ``None`` and
            ``arch == "convnet"``.
        protocol: base training recipe (defaults to :class:`HardLabelProtocol`).
        device: where to train.
        progress: show a tqdm bar.
        torch_compile: train through ``torch.compile`` (the returned module is the plain network).

    Returns:
        The teacher in eval mode, with its recipe in ``latent_distill_recipe``.
    """
    if arch_kwargs is None:
        arch_kwargs = rded_convnet_kwargs() if arch == "convnet" else {}
    protocol = replace(protocol or HardLabelProtocol(), arch=arch, arch_kwargs=dict(arch_kwargs), epochs=epochs)
    images = to_float_samples(train.images)
    recipe = {
        "arch": arch, "arch_kwargs": dict(arch_kwargs), "in_channels": int(images.shape[1]),
        "num_classes": train.num_classes, "resolution": int(images.shape[-1]), "epochs": epochs, "seed": seed,
        "protocol": protocol.to_dict(), "dataset_fingerprint": dataset_fingerprint(train),
        "class_names": list(train.class_names),
    }
    folder = None
    if cache_dir is not None:
        folder = Path(cache_dir) / f"teacher-{arch}-e{epochs}-s{seed}-{recipe_digest(recipe)[:16]}"
        if (folder / TEACHER_WEIGHTS).exists() and (folder / TEACHER_RECIPE).exists():
            return load_teacher(folder)
    device = torch.device(device) if device is not None else images.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_network(arch, recipe["in_channels"], recipe["num_classes"], recipe["resolution"],
                            **arch_kwargs).to(device)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with tqdm(total=epochs, disable=not progress, leave=False, desc=f"teacher {arch}") as bar:
        train_hard_label(maybe_compile(model, torch_compile), images.to(device), train.labels.to(device),
                         protocol, generator, train.num_classes, None, lambda: bar.update(1))
    recipe["train_seconds"] = time.perf_counter() - start
    model = model.cpu().eval()
    model.latent_distill_recipe = recipe
    if folder is not None:
        with atomic_directory(folder) as staging:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(staging / TEACHER_WEIGHTS))
            atomic_write_json(recipe, staging / TEACHER_RECIPE)
    return model
