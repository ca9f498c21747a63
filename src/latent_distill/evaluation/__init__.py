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
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ..augment import DifferentiableSiameseAugmentation, DSAParams, parse_strategy
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

def _augmenter(name: str, params: DSAParams) -> Optional[DifferentiableSiameseAugmentation]:
    preset = EVAL_AUGMENTATIONS[name]
    if preset.strategy == "none":
        return None
    return DifferentiableSiameseAugmentation(preset.strategy, params=params, mode=preset.mode)


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------

@dataclass
class EvaluationResult:
    """Test accuracies of ``runs`` freshly trained networks.

    Args:
        accuracies: one test accuracy per run, in percent.
        acc_mean: mean accuracy, in percent.
        acc_std: population standard deviation over runs (as DC/DSA/DM/MTT report), in percent.
        seconds: wall time of the whole evaluation.
        protocol: the protocol's ``to_dict()``.
        num_train: number of training samples.
        train_seconds: wall time spent training, summed over runs.
        test_seconds: wall time spent testing, summed over runs.
        teacher: the teacher's recipe (soft-label protocol), else ``None``.
    """

    accuracies: list[float]
    acc_mean: float
    acc_std: float
    seconds: float
    protocol: dict
    num_train: int = 0
    train_seconds: float = 0.0
    test_seconds: float = 0.0
    teacher: Optional[dict] = None

    def to_dict(self) -> dict:
        """Returns the result as a JSON-friendly dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "EvaluationResult":
        """Rebuilds a result from :meth:`to_dict` output."""
        return cls(**values)

    def to_row(self, **labels: Any) -> dict:
        """A compact table row (``arch``, ``protocol`` kind, ``acc_mean``, ``acc_std``, ``runs``,
        ``seconds``) plus ``labels`` such as ``method=`` or ``reference=`` and ``samples_per_class=``,
        as the dataset card and the benchmark tables show it."""
        arch = self.protocol.get("arch", "?")
        depth = self.protocol.get("arch_kwargs", {}).get("depth")
        return {
            **labels,
            "arch": f"{arch}-{depth}" if depth else arch,
            "protocol": self.protocol.get("protocol", "hard"),
            "eval_epochs": self.protocol.get("epochs"),
            "acc_mean": round(self.acc_mean, 2),
            "acc_std": round(self.acc_std, 2),
            "runs": len(self.accuracies),
            "seconds": round(self.seconds, 1),
        }

    def __str__(self) -> str:
        return f"{self.acc_mean:.2f} ± {self.acc_std:.2f} % ({len(self.accuracies)} runs, {self.seconds:.1f} s)"


# ----------------------------------------------------------------------------------------------
# Training loops
# ----------------------------------------------------------------------------------------------

def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _batches(num: int, batch_size: int, generator: torch.Generator):
    permutation = torch.randperm(num, generator=generator)
    for start in range(0, num, batch_size):
        yield permutation[start: start + batch_size]


def _train_hard(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, protocol: HardLabelProtocol,
                generator: torch.Generator, num_classes: int, teacher: Optional[nn.Module],
                on_epoch: Callable[[], None]) -> None:
    """Cross-entropy on hard labels (soft targets where CutMix mixed them), SGD, one step decay."""
    optimizer = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                                weight_decay=protocol.weight_decay)
    augmenter = _augmenter(protocol.augmentation, protocol.dsa_params)
    mixes = augmenter is not None and bool(parse_strategy(augmenter.strategy).mixing_ops)
    decay_epoch = int(protocol.epochs * protocol.lr_decay_at)
    device = images.device
    model.train()
    for epoch in range(protocol.epochs):
        if epoch == decay_epoch and epoch > 0:
            for group in optimizer.param_groups:
                group["lr"] *= protocol.lr_decay_factor
        for index in _batches(len(images), protocol.batch_size, generator):
            batch = images[index]
            targets: torch.Tensor = labels[index]
            if augmenter is not None:
                with torch.no_grad():
                    if mixes:
                        batch, targets = augmenter.augment_batch(
                            batch, F.one_hot(targets, num_classes).float(), generator=generator)
                    else:
                        batch = augmenter(batch, generator=generator)
            with _autocast(device, protocol.bf16):
                logits = model(batch)
            loss = F.cross_entropy(logits.float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        on_epoch()


def _decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _train_soft(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, protocol: SoftLabelProtocol,
                generator: torch.Generator, num_classes: int, teacher: Optional[nn.Module],
                on_epoch: Callable[[], None]) -> None:
    """Teacher-labelled augmented batches, KL at temperature T, AdamW with a half-cosine schedule."""
    if teacher is None:
        raise EvaluationError(
            "The soft-label protocol needs a teacher: pass teacher=train_teacher(train, ...) to evaluate_synthetic."
        )
    optimizer = torch.optim.AdamW(_decay_groups(model, protocol.weight_decay), lr=protocol.lr,
                                  betas=tuple(protocol.betas))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: 0.5 * (1.0 + math.cos(math.pi * epoch / protocol.epochs / 2)))
    augmenter = _augmenter(protocol.augmentation, protocol.dsa_params)
    batch_size = protocol.batch_size or soft_label_batch_size(len(images) / num_classes, num_classes, len(images))
    temperature = protocol.temperature
    device = images.device
    teacher.eval()
    model.train()
    for _ in range(protocol.epochs):
        for index in _batches(len(images), batch_size, generator):
            batch = images[index]
            with torch.no_grad():
                if augmenter is not None:
                    batch, _ = augmenter.augment_batch(batch, F.one_hot(labels[index], num_classes).float(),
                                                       generator=generator)
                with _autocast(device, protocol.bf16):
                    teacher_logits = teacher(batch)
                soft_targets = F.softmax(teacher_logits.float() / temperature, dim=1)
            with _autocast(device, protocol.bf16):
                logits = model(batch)
            loss = F.kl_div(F.log_softmax(logits.float() / temperature, dim=1), soft_targets, reduction="batchmean")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
        on_epoch()


_TRAINERS: dict[str, Callable[..., None]] = {"hard": _train_hard, "soft": _train_soft}


def default_test_batch_size(device: torch.device) -> int:
    """Inference batch size when the protocol leaves it open: 64 on CPU, 2048 on accelerators."""
    return 64 if device.type == "cpu" else 2048


def _maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile`` the network (sharing its parameters) when ``enabled``.

    Compilation fuses the memory-bound norm/activation/pooling kernels, which dominate small
    ConvNets on CPU; it costs a few seconds per architecture and input shape (cached on disk by
    torch across processes) and needs a C++ compiler on CPU.
    """
    return torch.compile(model) if enabled else model


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: Optional[int] = None,
             bf16: bool = False) -> float:
    """Top-1 accuracy (percent) of ``model`` in eval mode, scored in batches.

    Args:
        model: a classifier.
        images: ``(N, C, H, W)`` float inputs, on the model's device.
        labels: ``(N,)`` int64 labels.
        batch_size: images per forward pass (``None``: :func:`default_test_batch_size`).
        bf16: bfloat16 autocast.

    Returns:
        The accuracy in percent.
    """
    batch_size = batch_size or default_test_batch_size(images.device)
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        with _autocast(images.device, bf16):
            logits = model(images[start: start + batch_size])
        correct += int((logits.argmax(dim=1) == labels[start: start + batch_size]).sum())
    model.train(was_training)
    return 100.0 * correct / max(len(images), 1)


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------

def _test_tensors(test: ImageClassificationTensors, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return to_float_samples(test.images).to(device), test.labels.to(device)


def _check_training_set(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor,
                        num_classes: int) -> None:
    if not images.is_floating_point() or images.dim() != 4:
        raise EvaluationError(
            f"images must be float (N, C, H, W) in [-1, 1], got {images.dtype} {tuple(images.shape)}; "
            "convert uint8 images with latent_distill.data.uint8_to_float."
        )
    if labels.dtype != torch.long or labels.dim() != 1 or len(labels) != len(images):
        raise EvaluationError(
            f"labels must be int64 (N,) matching the {len(images)} images, got {labels.dtype} {tuple(labels.shape)}."
        )
    if len(images) == 0:
        raise EvaluationError("The training set is empty.")
    if images.shape[1:] != test_images.shape[1:]:
        raise EvaluationError(
            f"Training samples are {tuple(images.shape[1:])} but test samples are {tuple(test_images.shape[1:])}: "
            "decode latents to images (or encode the test set) so both live in the same space."
        )
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise EvaluationError(f"labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}].")


def evaluate_synthetic(images: torch.Tensor, labels: torch.Tensor, test: ImageClassificationTensors,
                       protocol: Optional[Protocol] = None, runs: int = 3, seed: int = 0,
                       teacher: Optional[nn.Module] = None, device: Union[str, torch.device, None] = None,
                       progress: bool = True, torch_compile: bool = False) -> EvaluationResult:
    """Trains ``runs`` fresh networks on a (distilled) set and tests each on the real test set.

    Run ``r`` seeds its network initialisation, shuffling and augmentation with ``seed + r``, so
    results are reproducible and independent of the global RNG (which is left untouched).

    Args:
        images: ``(N, C, H, W)`` float training samples in [-1, 1] (images, or latents when ``test``
            holds latents too).
        labels: ``(N,)`` int64 class indices.
        test: the real test split (``uint8`` images are mapped to [-1, 1]; float images are used as is).
        protocol: :class:`HardLabelProtocol` (default) or :class:`SoftLabelProtocol`.
        runs: number of networks.
        seed: seed of the first run.
        teacher: frozen teacher network (soft-label protocol only).
        device: where to train; defaults to the device of ``images``.
        progress: show a tqdm bar over runs and epochs.
        torch_compile: run student (and teacher) through ``torch.compile``: about 2x faster training
            and testing of ConvNets on CPU, after a one-off compilation of a few seconds per
            architecture and shape (cached on disk by torch; needs a C++ compiler on CPU). Results
            match the eager run up to floating-point rounding.

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        EvaluationError: for malformed inputs or a soft-label protocol without a teacher.
    """
    protocol = protocol if protocol is not None else HardLabelProtocol()
    if runs < 1:
        raise EvaluationError(f"runs must be >= 1, got {runs}.")
    device = torch.device(device) if device is not None else images.device
    test_images, test_labels = _test_tensors(test, device)
    _check_training_set(images, labels, test_images, test.num_classes)
    images, labels = images.detach().to(device).float().contiguous(), labels.to(device)
    recipe = getattr(teacher, "latent_distill_recipe", None)
    if teacher is not None:
        teacher = _maybe_compile(teacher.to(device).eval(), torch_compile)
    trainer = _TRAINERS[protocol.kind]
    test_batch_size = protocol.test_batch_size or default_test_batch_size(device)
    accuracies, train_seconds, test_seconds = [], 0.0, 0.0
    start = time.perf_counter()
    bar = tqdm(total=runs * protocol.epochs, disable=not progress, leave=False,
               desc=f"{protocol.kind}-label {protocol.arch} on {len(images)} samples")
    with bar:
        for run in range(runs):
            run_seed = seed + run
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(run_seed)
                model = get_network(protocol.arch, images.shape[1], test.num_classes, images.shape[-1],
                                    **protocol.arch_kwargs).to(device)
            model = _maybe_compile(model, torch_compile)
            generator = torch.Generator().manual_seed(run_seed)
            tick = time.perf_counter()
            trainer(model, images, labels, protocol, generator, test.num_classes, teacher, lambda: bar.update(1))
            tock = time.perf_counter()
            accuracies.append(accuracy(model, test_images, test_labels, test_batch_size, protocol.bf16))
            train_seconds += tock - tick
            test_seconds += time.perf_counter() - tock
            bar.set_postfix(run=run + 1, acc=f"{accuracies[-1]:.2f}")
    return EvaluationResult(
        accuracies=accuracies,
        acc_mean=float(np.mean(accuracies)),
        acc_std=float(np.std(accuracies)),
        seconds=time.perf_counter() - start,
        protocol=protocol.to_dict(),
        num_train=len(images),
        train_seconds=train_seconds,
        test_seconds=test_seconds,
        teacher=recipe,
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
        _train_hard(_maybe_compile(model, torch_compile), images.to(device), train.labels.to(device), protocol,
                    generator, train.num_classes, None, lambda: bar.update(1))
    recipe["train_seconds"] = time.perf_counter() - start
    model = model.cpu().eval()
    model.latent_distill_recipe = recipe
    if folder is not None:
        with atomic_directory(folder) as staging:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(staging / TEACHER_WEIGHTS))
            atomic_write_json(recipe, staging / TEACHER_RECIPE)
    return model
