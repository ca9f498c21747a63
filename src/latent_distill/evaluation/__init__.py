"""Train on distilled data, test on real data.

Two protocols, whose numbers must never be compared with each other:

* :class:`HardLabelProtocol` (DC, DSA, DM, MTT, GLaD, LD3M, LatentDD): fresh networks trained with
  cross-entropy on the hard labels of the distilled set, SGD with momentum, the learning rate divided
  by 10 at half the epochs, DSA augmentation (or DSA with CutMix instead of cutout, as in IDC and
  LatentDD).
* :class:`SoftLabelProtocol` (D3HR, RDED, SRe2L): a teacher trained on the full real set
  (:func:`train_teacher`) labels CutMix batches of the distilled images; the student minimises the
  KL divergence at temperature T with AdamW and a half-cosine schedule.

Everything stays in memory as tensors: batches are index permutations of one float tensor, the test
set is converted once and scored in batches under ``torch.inference_mode``. ``bf16=True`` runs the
forward passes under bfloat16 autocast (on CPUs with AMX/AVX-512-BF16 this roughly halves the
training time), and ``torch_compile=True`` fuses the memory-bound norm/activation/pooling kernels
that dominate small ConvNets on CPU (roughly another 2x). Library code never changes the thread
count; call :func:`configure_threads` once in a script if needed.

References reported beside every result: :func:`random_subset_reference` (random real images with
the same per-class count) and :func:`full_data_reference` (the whole training set, cached on disk),
both trained with the *same* protocol object as the distilled set.
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
from .common import EvaluationError, dataset_fingerprint, recipe_digest, to_float_samples
from .protocols import (
    EVAL_AUGMENTATIONS,
    AugmentationPreset,
    HardLabelProtocol,
    Protocol,
    SoftLabelProtocol,
    protocol_from_dict,
    rded_convnet_kwargs,
    register_eval_augmentation,
    soft_label_batch_size,
)
from .threads import configure_threads
from .training import (
    EvaluationResult,
    accuracy,
    default_test_batch_size,
    evaluate_synthetic,
    maybe_compile,
    train_hard_label,
)

def random_subset(train: ImageClassificationTensors, per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws ``per_class`` random real samples of every class (the classic baseline).

    Args:
        train: the real training split.
        per_class: samples per class.
        seed: sampling seed.

    Returns:
        ``(images, labels)``: float images in [-1, 1] grouped by class, and int64 labels.

    Raises:
        EvaluationError: when a class has fewer than ``per_class`` samples.
    """
    if per_class < 1:
        raise EvaluationError(f"per_class must be >= 1, got {per_class}.")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label, indices in enumerate(train.indices_by_class()):
        if len(indices) < per_class:
            raise EvaluationError(
                f"Class {label} ({train.class_names[label]!r}) has {len(indices)} samples, fewer than "
                f"per_class={per_class}: lower per_class."
            )
        chosen.append(indices[torch.randperm(len(indices), generator=generator)[:per_class]])
    index = torch.cat(chosen)
    return to_float_samples(train.images[index]), train.labels[index].clone()


def random_subset_reference(train: ImageClassificationTensors, test: ImageClassificationTensors, per_class: int,
                            protocol: Optional[Protocol] = None, runs: int = 3, seed: int = 0,
                            teacher: Optional[nn.Module] = None, device: Union[str, torch.device, None] = None,
                            progress: bool = True, torch_compile: bool = False) -> EvaluationResult:
    """Evaluates a random real subset of ``per_class`` samples per class with ``protocol``.

    The subset is drawn with ``seed``; the networks are seeded as in :func:`evaluate_synthetic`,
    whose other arguments this function shares.

    Returns:
        An :class:`EvaluationResult`.
    """
    images, labels = random_subset(train, per_class, seed)
    return evaluate_synthetic(images, labels, test, protocol, runs=runs, seed=seed, teacher=teacher,
                              device=device, progress=progress, torch_compile=torch_compile)


def full_data_reference(train: ImageClassificationTensors, test: ImageClassificationTensors,
                        protocol: Optional[Protocol] = None, runs: int = 1, cache_dir: Optional[PathLike] = None,
                        seed: int = 0, teacher: Optional[nn.Module] = None,
                        device: Union[str, torch.device, None] = None, progress: bool = True,
                        torch_compile: bool = False) -> EvaluationResult:
    """Trains on the whole real training set with ``protocol``; cached as JSON in ``cache_dir``.

    The cache key covers both splits' fingerprints, the protocol, ``runs``, ``seed`` and the teacher
    recipe, so a changed protocol never returns a stale number. Use a protocol with fewer epochs for
    large sets (``dataclasses.replace(protocol, epochs=...)``): one epoch over 60,000 images costs as
    much as 600 epochs over 100. The other arguments are those of :func:`evaluate_synthetic`.

    Returns:
        An :class:`EvaluationResult`.
    """
    protocol = protocol if protocol is not None else HardLabelProtocol()
    cache_file = None
    if cache_dir is not None:
        key = recipe_digest({
            "train": dataset_fingerprint(train), "test": dataset_fingerprint(test), "protocol": protocol.to_dict(),
            "runs": runs, "seed": seed, "teacher": getattr(teacher, "latent_distill_recipe", None),
        })
        cache_file = Path(cache_dir) / f"full-data-{protocol.kind}-{protocol.arch}-{key[:20]}.json"
        if cache_file.exists():
            return EvaluationResult.from_dict(json.loads(cache_file.read_text()))
    images = to_float_samples(train.images)
    result = evaluate_synthetic(images, train.labels, test, protocol, runs=runs, seed=seed, teacher=teacher,
                                device=device, progress=progress, torch_compile=torch_compile)
    if cache_file is not None:
        atomic_write_json(result.to_dict(), cache_file)
    return result


# ----------------------------------------------------------------------------------------------
# Teachers
# ----------------------------------------------------------------------------------------------

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
        train_hard_label(maybe_compile(model, torch_compile), images.to(device), train.labels.to(device), protocol,
                    generator, train.num_classes, None, lambda: bar.update(1))
    recipe["train_seconds"] = time.perf_counter() - start
    model = model.cpu().eval()
    model.latent_distill_recipe = recipe
    if folder is not None:
        with atomic_directory(folder) as staging:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(staging / TEACHER_WEIGHTS))
            atomic_write_json(recipe, staging / TEACHER_RECIPE)
    return model
