"""Image-classification data in, as Hugging Face ``datasets``, out as normalised tensors.

The library accepts any ``datasets.Dataset`` (or ``DatasetDict``) with one image column and one
integer/``ClassLabel`` label column. Columns are detected by feature type, or named explicitly.
Preprocessing (mode conversion, resize of the shorter side, centre crop, scaling to [-1, 1]) is done
once, batched, into a ``uint8`` tensor held in memory; the float conversion happens per batch.

The offline default is Fashion-MNIST, read from the idx files of Debian's ``dataset-fashion-mnist``
package; without those files the same function loads the Hub copy.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import datasets
import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features
from PIL import Image as PILImage

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


class DataError(ValueError):
    """Raised when a dataset cannot be used as given; the message names the problem and the fix."""


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST
# ----------------------------------------------------------------------------------------------

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


DEFAULT_DATASET = "fashion-mnist"


def load_image_classification(name: str = DEFAULT_DATASET) -> DatasetDict:
    """Loads a dataset with train/test splits: ``"fashion-mnist"`` (offline default, see
    :func:`load_fashion_mnist`) or any ``datasets.load_dataset`` id or local folder."""
    return load_fashion_mnist() if name == DEFAULT_DATASET else datasets.load_dataset(name)


def dataset_id(name: str) -> str:
    """The Hub id recorded for a dataset name (the default's Hub copy for ``"fashion-mnist"``)."""
    return FASHION_MNIST_HUB_ID if name == DEFAULT_DATASET else name


# ----------------------------------------------------------------------------------------------
# Column detection
# ----------------------------------------------------------------------------------------------

def detect_columns(dataset: Dataset, image_column: Optional[str] = None,
                   label_column: Optional[str] = None) -> tuple[str, str]:
    """Finds the image and label columns of an image-classification dataset.

    Args:
        dataset: a ``datasets.Dataset``.
        image_column: name to use instead of detection.
        label_column: name to use instead of detection.

    Returns:
        ``(image_column, label_column)``.

    Raises:
        DataError: when a column is missing, or the labels are not integers or all missing.
    """
    features = dataset.features
    if image_column is None:
        candidates = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
        if not candidates:
            raise DataError(
                f"No image column found among {list(features)}: cast it to datasets.Image() "
                "(dataset.cast_column(name, datasets.Image())) or pass image_column=<name>."
            )
        image_column = candidates[0]
    elif image_column not in features:
        raise DataError(f"image_column={image_column!r} is not a column of the dataset {list(features)}.")
    if label_column is None:
        candidates = [name for name, feature in features.items() if isinstance(feature, ClassLabel)]
        candidates += [name for name in ("label", "labels", "fine_label", "class") if name in features]
        if not candidates:
            raise DataError(
                f"No label column found among {list(features)}: name it with label_column=<name>, "
                "or cast it to datasets.ClassLabel."
            )
        label_column = candidates[0]
    elif label_column not in features:
        raise DataError(f"label_column={label_column!r} is not a column of the dataset {list(features)}.")
    label_feature = features[label_column]
    if getattr(label_feature, "dtype", None) == "null":
        raise DataError(
            f"Column {label_column!r} holds no label at all (every value is None): distil a labelled split, "
            "or name the right column with label_column=<name>."
        )
    if not isinstance(label_feature, ClassLabel) and getattr(label_feature, "dtype", None) not in (
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"
    ):
        raise DataError(
            f"Labels in column {label_column!r} are {label_feature}, not class indices: convert them with "
            f"dataset.class_encode_column({label_column!r})."
        )
    return image_column, label_column


def class_names(dataset: Dataset, label_column: str) -> list[str]:
    """Returns the class names of ``label_column`` (``ClassLabel`` names, or stringified indices)."""
    feature = dataset.features[label_column]
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    return [str(i) for i in range(int(max(dataset[label_column])) + 1)]


# ----------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------

@dataclass
class ImagePreprocessor:
    """Turns PIL images of any mode and size into fixed-size ``uint8`` arrays.

    Args:
        resolution: side of the square output; the shorter side is resized to it, then centre-cropped.
        channels: 1 (grey) or 3 (RGB). Transparent images are composited on white; palette images
            are converted through RGB(A); 16-bit (and 32-bit integer) grey images are scaled from
            [0, 65535] to [0, 255] instead of being clipped.
    """

    resolution: int = 28
    channels: int = 1

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise DataError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}.")

    def _to_mode(self, image: PILImage.Image) -> PILImage.Image:
        if image.mode.startswith("I"):  # 16-bit PNGs open as I;16 (or I): PIL's own conversion clips at 255
            scaled = np.asarray(image, dtype=np.float64) / 257.0
            image = PILImage.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        if image.mode in ("RGBA", "LA", "PA"):
            background = PILImage.new("RGBA", image.size, (255, 255, 255, 255))
            image = PILImage.alpha_composite(background, image.convert("RGBA"))
        return image.convert("L" if self.channels == 1 else "RGB")

    def __call__(self, image: PILImage.Image) -> np.ndarray:
        """Converts one image to a ``(channels, resolution, resolution)`` ``uint8`` array."""
        image = self._to_mode(image)
        width, height = image.size
        if (width, height) != (self.resolution, self.resolution):
            scale = self.resolution / min(width, height)
            size = (max(self.resolution, round(width * scale)), max(self.resolution, round(height * scale)))
            image = image.resize(size, PILImage.BICUBIC)
            left = (size[0] - self.resolution) // 2
            top = (size[1] - self.resolution) // 2
            image = image.crop((left, top, left + self.resolution, top + self.resolution))
        array = np.asarray(image, dtype=np.uint8)
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


@dataclass
class ImageClassificationTensors:
    """A preprocessed split: ``uint8`` images ``(N, C, H, W)``, ``int64`` labels and class names."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def float_images(self, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Returns images (all, or ``index``) as float32 in [-1, 1]."""
        images = self.images if index is None else self.images[index]
        return uint8_to_float(images)

    def indices_by_class(self) -> list[torch.Tensor]:
        """Returns, for each class, the indices of its samples."""
        return [torch.nonzero(self.labels == c, as_tuple=False).flatten() for c in range(self.num_classes)]


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """Maps ``uint8`` images in [0, 255] to float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Maps float images in [-1, 1] to ``uint8`` in [0, 255] (clamped, rounded)."""
    return images.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def dataset_to_tensors(dataset: Dataset, resolution: int = 28, channels: int = 1,
                       image_column: Optional[str] = None, label_column: Optional[str] = None,
                       batch_size: int = 1000) -> ImageClassificationTensors:
    """Preprocesses a whole split into memory.

    Args:
        dataset: an image-classification ``datasets.Dataset``.
        resolution: working resolution (square).
        channels: 1 (grey) or 3 (RGB).
        image_column: image column (detected when ``None``).
        label_column: label column (detected when ``None``).
        batch_size: rows decoded at a time.

    Returns:
        ``ImageClassificationTensors`` with ``uint8`` images ``(N, channels, resolution, resolution)``.

    Raises:
        DataError: on missing columns, non-integer, missing or negative labels, rows without an
            image, or empty datasets.
    """
    if len(dataset) == 0:
        raise DataError("The dataset is empty: pass a split with at least one image per class.")
    image_column, label_column = detect_columns(dataset, image_column, label_column)
    labels = _dataset_labels(dataset, label_column)
    preprocess = ImagePreprocessor(resolution, channels)
    arrays = np.empty((len(dataset), channels, resolution, resolution), dtype=np.uint8)
    view = dataset.select_columns([image_column])
    for start in range(0, len(dataset), batch_size):
        batch = view[start: start + batch_size][image_column]
        for offset, image in enumerate(batch):
            if image is None:
                raise DataError(
                    f"Row {start + offset} has no image in column {image_column!r}: drop rows without an image "
                    f"first with dataset.filter(lambda row: row[{image_column!r}] is not None)."
                )
            arrays[start + offset] = preprocess(image)
    return ImageClassificationTensors(
        images=torch.from_numpy(arrays),
        labels=labels,
        class_names=class_names(dataset, label_column),
    )


def _dataset_labels(dataset: Dataset, label_column: str) -> torch.Tensor:
    """Reads the label column as int64 class indices, refusing rows without a usable label.

    Args:
        dataset: a ``datasets.Dataset``.
        label_column: its (already checked) label column.

    Returns:
        int64 labels ``(N,)``.

    Raises:
        DataError: for ``None`` labels, negative labels (``-1`` marks an unlabelled row in
            ``datasets``) or ``ClassLabel`` indices beyond its names.
    """
    labels = list(dataset[label_column])
    total = len(labels)
    missing = sum(label is None for label in labels)
    if missing:
        raise DataError(
            f"{missing} of {total} rows have no label (None) in column {label_column!r}: drop them first "
            f"with dataset.filter(lambda row: row[{label_column!r}] is not None)."
        )
    labels = torch.tensor(labels, dtype=torch.long)
    negative = int((labels < 0).sum())
    if negative:
        raise DataError(
            f"{negative} of {total} rows have a negative label in column {label_column!r} (datasets marks "
            f"unlabelled rows, e.g. of test splits, with -1): drop them first with "
            f"dataset.filter(lambda row: row[{label_column!r}] >= 0), or distil a labelled split."
        )
    feature = dataset.features[label_column]
    if isinstance(feature, ClassLabel) and total and int(labels.max()) >= feature.num_classes:
        raise DataError(
            f"Column {label_column!r} holds label {int(labels.max())} but its ClassLabel has only "
            f"{feature.num_classes} names: cast it with every class name, "
            f"dataset.cast_column({label_column!r}, ClassLabel(names=[...]))."
        )
    return labels


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


# ----------------------------------------------------------------------------------------------
# What a pipeline distils
# ----------------------------------------------------------------------------------------------

DatasetLike = Union[Dataset, DatasetDict, ImageClassificationTensors]


def training_tensors(dataset: DatasetLike, resolution: int, channels: int, image_column: Optional[str] = None,
                     label_column: Optional[str] = None) -> ImageClassificationTensors:
    """Turns what a pipeline is given into checked training tensors.

    Args:
        dataset: a ``datasets.Dataset``, a ``DatasetDict`` (its ``train`` split is used) or
            preprocessed :class:`ImageClassificationTensors`.
        resolution: the working resolution (square).
        channels: image channels the autoencoder takes.
        image_column: name of the image column (detected when ``None``).
        label_column: name of the label column (detected when ``None``).

    Returns:
        ``ImageClassificationTensors`` at ``resolution`` with ``channels`` channels.

    Raises:
        DataError: for a missing ``train`` split, a wrong size or channel count, labels outside
            ``[0, num_classes)``, or an empty class.
    """
    if isinstance(dataset, ImageClassificationTensors):
        data = dataset
    else:
        if isinstance(dataset, DatasetDict):
            if "train" not in dataset:
                raise DataError(f"The DatasetDict has no 'train' split ({list(dataset)}): pass the split to distil.")
            dataset = dataset["train"]
        data = dataset_to_tensors(dataset, resolution=resolution, channels=channels,
                                  image_column=image_column, label_column=label_column)
    if data.images.shape[-1] != resolution or data.images.shape[-2] != resolution:
        raise DataError(f"Images are {tuple(data.images.shape[-2:])}, not {resolution}x{resolution}: "
                        "preprocess them with dataset_to_tensors(dataset, resolution=...).")
    if data.images.shape[1] != channels:
        raise DataError(f"Images have {data.images.shape[1]} channels but the autoencoder takes "
                        f"{channels}: build the tensors with channels={channels}.")
    outside = (data.labels < 0) | (data.labels >= data.num_classes)
    if bool(outside.any()):
        raise DataError(
            f"{int(outside.sum())} of {len(data.labels)} labels are not class indices in [0, {data.num_classes}) "
            f"(e.g. {int(data.labels[outside][0])}): drop those rows, or list every class in class_names."
        )
    counts = torch.bincount(data.labels, minlength=data.num_classes)
    empty = [data.class_names[c] for c in range(data.num_classes) if counts[c] == 0]
    if empty:
        raise DataError(f"Classes {empty} have no training sample: remove them from the label set "
                        "(dataset.filter / cast_column with fewer ClassLabel names) or add samples.")
    return data


def dataset_fingerprint(dataset: Dataset) -> str:
    """The ``datasets`` fingerprint of a split: it changes with the split's content and transforms.

    Recorded as ``source_dataset["fingerprint"]`` of a distilled set, so the data a set was distilled
    from can be told apart from other versions of it.

    Args:
        dataset: a ``datasets.Dataset``.

    Returns:
        The fingerprint (a hex string).
    """
    return dataset._fingerprint


def source_record(dataset: DatasetLike, data: ImageClassificationTensors) -> dict:
    """What a distilled set records of its source data: id, fingerprint, version, sizes."""
    source = {"id": None, "num_samples": len(data.labels), "num_classes": data.num_classes}
    if isinstance(dataset, (Dataset, DatasetDict)):
        split = dataset["train"] if isinstance(dataset, DatasetDict) else dataset
        source.update(id=split.info.dataset_name, fingerprint=dataset_fingerprint(split),
                      config_name=split.info.config_name,
                      version=str(split.info.version) if split.info.version else None)
    return source
