"""Training fresh networks on a (distilled) set and measuring their accuracy on the real test set.

Everything stays in memory as tensors: batches are index permutations of one float tensor, the test
set is converted once and scored in batches under ``torch.inference_mode``. ``bf16=True`` runs the
forward passes under bfloat16 autocast (on CPUs with AMX/AVX-512-BF16 this roughly halves the
training time), and ``torch_compile=True`` fuses the memory-bound norm/activation/pooling kernels
that dominate small ConvNets on CPU (roughly another 2x). Library code never changes the thread
count; call :func:`~latent_distill.evaluation.configure_threads` once in a script if needed.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..augment import DifferentiableSiameseAugmentation, DSAParams, parse_strategy
from ..data import ImageClassificationTensors
from ..networks import get_network
from .common import EvaluationError, to_float_samples
from .protocols import (
    HardLabelProtocol,
    Protocol,
    SoftLabelProtocol,
    get_eval_augmentation,
    soft_label_batch_size,
)

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
    """bfloat16 autocast on ``device`` when ``enabled`` (a no-op context otherwise)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _batches(num: int, batch_size: int, generator: torch.Generator):
    """Yields the index batches of one shuffled pass over ``num`` samples."""
    permutation = torch.randperm(num, generator=generator)
    for start in range(0, num, batch_size):
        yield permutation[start: start + batch_size]


def _augmenter(name: str, params: DSAParams) -> Optional[DifferentiableSiameseAugmentation]:
    """The augmenter of a named preset (see :func:`list_eval_augmentations`), ``None`` for ``"none"``."""
    preset = get_eval_augmentation(name)
    if preset.strategy == "none":
        return None
    return DifferentiableSiameseAugmentation(preset.strategy, params=params, mode=preset.mode)


def train_hard_label(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, protocol: HardLabelProtocol,
                     generator: torch.Generator, num_classes: int, teacher: Optional[nn.Module],
                     on_epoch: Callable[[], None]) -> None:
    """Cross-entropy on hard labels (soft targets where CutMix mixed them), SGD, one step decay.

    Args:
        model: the network to train, in place.
        images: ``(N, C, H, W)`` float training samples, on the model's device.
        labels: ``(N,)`` int64 labels.
        protocol: the recipe (epochs, SGD settings, augmentation).
        generator: CPU generator of shuffling and augmentation.
        num_classes: number of classes (for CutMix targets).
        teacher: unused (the signature is shared with the soft-label loop).
        on_epoch: called after every epoch.
    """
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
    """AdamW parameter groups: weight decay on parameters with more than one dimension only."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _train_soft(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, protocol: SoftLabelProtocol,
                generator: torch.Generator, num_classes: int, teacher: Optional[nn.Module],
                on_epoch: Callable[[], None]) -> None:
    """Teacher-labelled augmented batches, KL at temperature T, AdamW with a half-cosine schedule.

    The arguments are those of :func:`train_hard_label`; ``teacher`` is required here.
    """
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


_TRAINERS: dict[str, Callable[..., None]] = {HardLabelProtocol.kind: train_hard_label,
                                              SoftLabelProtocol.kind: _train_soft}


def default_test_batch_size(device: torch.device) -> int:
    """Inference batch size when the protocol leaves it open: 64 on CPU, 2048 on accelerators.

    Args:
        device: where the test images are scored.

    Returns:
        The batch size.
    """
    return 64 if device.type == "cpu" else 2048


def cpu_compiler_available() -> bool:
    """Whether a C++ compiler is on the ``PATH`` (``$CXX``, ``c++``, ``g++`` or ``clang++``): what
    ``torch.compile`` needs to build CPU kernels."""
    candidates = [os.environ.get("CXX"), "c++", "g++", "clang++"]
    return any(shutil.which(name) for name in candidates if name)


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile`` the network (sharing its parameters) when ``enabled``.

    Compilation fuses the memory-bound norm/activation/pooling kernels, which dominate small
    ConvNets on CPU; it costs a few seconds per architecture and input shape (cached on disk by
    torch across processes) and needs a C++ compiler on CPU. A CPU network on a machine without one
    runs uncompiled (same results, slower) with a warning that names the fix.

    Args:
        model: the network.
        enabled: compile or not.

    Returns:
        The compiled module, or ``model`` itself when not ``enabled`` or not compilable here.
    """
    if not enabled:
        return model
    on_cpu = all(parameter.device.type == "cpu" for parameter in model.parameters())
    if on_cpu and not cpu_compiler_available():
        warnings.warn("torch_compile=True needs a C++ compiler on CPU and none was found (CXX, c++, g++, clang++): "
                      "training runs uncompiled. Install one (e.g. apt-get install g++, as setup.sh does) to "
                      "compile.", RuntimeWarning, stacklevel=2)
        return model
    return torch.compile(model)


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
# Evaluation
# ----------------------------------------------------------------------------------------------

def _test_tensors(test: ImageClassificationTensors, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split as float samples and labels on ``device``."""
    return to_float_samples(test.images).to(device), test.labels.to(device)


def _check_training_set(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor,
                        num_classes: int) -> None:
    """Raises an :class:`EvaluationError` naming the fix when the training set cannot be trained on."""
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
        teacher = maybe_compile(teacher.to(device).eval(), torch_compile)
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
            model = maybe_compile(model, torch_compile)
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
