"""Reference results reported beside every distilled set, trained with the *same* protocol object.

:func:`random_subset_reference` trains on random real images with the same per-class count;
:func:`full_data_reference` on the whole training set (cached on disk).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ..checkpointing import PathLike, atomic_write_json
from ..data import ImageClassificationTensors
from .common import (
    EvaluationError,
    dataset_fingerprint,
    recipe_digest,
    to_float_samples,
)
from .protocols import HardLabelProtocol, Protocol
from .training import EvaluationResult, evaluate_synthetic


def random_subset(train: ImageClassificationTensors, per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws ``per_class`` random real samples of every class (the classic baseline).

    Args:
        train: the real training split (in memory, or streamed: only the chosen rows are decoded).
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
    subset = train.select(torch.cat(chosen)).load()  # a streamed split decodes only the chosen rows
    return to_float_samples(subset.images), subset.labels.clone()


def random_subset_reference(train: ImageClassificationTensors, test: ImageClassificationTensors, per_class: int,
                            protocol: Optional[Protocol] = None, runs: int = 3, seed: int = 0,
                            teacher: Optional[nn.Module] = None, device: Union[str, torch.device, None] = None,
                            progress: bool = True, torch_compile: bool = False) -> EvaluationResult:
    """Evaluates a random real subset of ``per_class`` samples per class with ``protocol``.

    The subset is drawn with ``seed``; the networks are seeded as in :func:`evaluate_synthetic`,
    whose other arguments this function shares.

    Args:
        train: the real training split the subset is drawn from.
        test: the real test split.
        per_class: samples per class.
        seed: seed of the subset and of the first run.
        protocol, runs, teacher, device, progress, torch_compile: as in :func:`evaluate_synthetic`.

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
    much as 600 epochs over 100.

    Args:
        train: the real training split.
        test: the real test split.
        cache_dir: folder of cached results; ``None`` disables caching.
        protocol, runs, seed, teacher, device, progress, torch_compile: as in :func:`evaluate_synthetic`.

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
