"""The offline default: Fashion-MNIST from the idx files of Debian's ``dataset-fashion-mnist`` package."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Union

import datasets
import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features
from PIL import Image as PILImage

from .errors import DataError
from .splits import ImageClassificationTensors

FASHION_MNIST_DIR = Path(os.environ.get("LATENT_DISTILL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))

FASHION_MNIST_HUB_ID = "zalando-datasets/fashion_mnist"

FASHION_MNIST_CLASSES = [
    "T - shirt / top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

def _read_idx(path: Path) -> np.ndarray:
    """Reads one gzipped idx file (the MNIST container format) into a numpy array."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise DataError(f"{path} is not an unsigned-byte idx file (magic {magic:#x}); reinstall the dataset package.")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

def fashion_mnist_arrays(split: str, root: Union[str, Path] = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Reads one split of Fashion-MNIST from idx files.

    Args:
        split: ``"train"`` or ``"test"``.
        root: folder holding the four ``*-ubyte.gz`` files.

    Returns:
        ``(images, labels)``: ``uint8`` arrays of shape ``(N, 28, 28)`` and ``(N,)``.
    """
    image_file, label_file = _IDX_FILES[split]
    return _read_idx(Path(root) / image_file), _read_idx(Path(root) / label_file)

def load_fashion_mnist(root: Union[str, Path, None] = None, hub_id: str = FASHION_MNIST_HUB_ID) -> DatasetDict:
    """Loads Fashion-MNIST as a ``DatasetDict`` with ``image`` (Image) and ``label`` (ClassLabel).

    Reads Debian's ``dataset-fashion-mnist`` idx files when present (fully offline); otherwise loads
    ``hub_id`` from the Hugging Face Hub.

    Args:
        root: folder of the idx files; defaults to ``/usr/share/datasets/fashion-mnist`` or the
            ``LATENT_DISTILL_FASHION_MNIST`` environment variable.
        hub_id: the Hub dataset used when the idx files are absent.

    Returns:
        ``DatasetDict`` with ``train`` (60,000 rows) and ``test`` (10,000 rows) splits.
    """
    root = Path(root) if root is not None else FASHION_MNIST_DIR
    if not all((root / name).exists() for files in _IDX_FILES.values() for name in files):
        return datasets.load_dataset(hub_id)
    features = Features({"image": datasets.Image(), "label": ClassLabel(names=FASHION_MNIST_CLASSES)})
    splits = {}
    for split in _IDX_FILES:
        images, labels = fashion_mnist_arrays(split, root)
        splits[split] = Dataset.from_dict(
            {"image": [PILImage.fromarray(image, mode="L") for image in images], "label": labels.tolist()},
            features=features,
        )
    return DatasetDict(splits)

def fashion_mnist_tensors(split: str, root: Union[str, Path, None] = None) -> ImageClassificationTensors:
    """Fast path for Fashion-MNIST: one split straight from the idx files as tensors (no decoding).

    Args:
        split: ``"train"`` or ``"test"``.
        root: folder of the idx files.

    Returns:
        ``ImageClassificationTensors`` with images ``(N, 1, 28, 28)``.
    """
    images, labels = fashion_mnist_arrays(split, root or FASHION_MNIST_DIR)
    return ImageClassificationTensors(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=list(FASHION_MNIST_CLASSES),
    )
