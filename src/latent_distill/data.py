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
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

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


EVALUATION_SPLIT_NAMES = ("test", "validation", "valid", "val")


def evaluation_split(splits: DatasetDict, name: Optional[str] = None) -> Dataset:
    """The split that distilled sets are evaluated on: ``name``, else the first of ``test``,
    ``validation``, ``valid``, ``val`` that the dataset has.

    Args:
        splits: the dataset's splits.
        name: the split to use (e.g. ``--eval_split``), or ``None`` to pick one.

    Returns:
        The split.

    Raises:
        DataError: when ``name`` is not a split, or no evaluation split is found.
    """
    if name is not None:
        if name not in splits:
            raise DataError(f"The dataset has no split {name!r} (it has {list(splits)}): pass one of those.")
        return splits[name]
    for candidate in EVALUATION_SPLIT_NAMES:
        if candidate in splits:
            return splits[candidate]
    raise DataError(f"The dataset has no test or validation split (it has {list(splits)}): name the held-out split "
                    "to evaluate on (e.g. --eval_split <name>), or hold out part of train with "
                    "dataset['train'].train_test_split(test_size=...).")


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
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", *STRING_DTYPES
    ):
        raise DataError(
            f"Labels in column {label_column!r} are {label_feature}, not class indices or class names: convert them "
            f"with dataset.class_encode_column({label_column!r}) or cast them to datasets.ClassLabel."
        )
    return image_column, label_column


STRING_DTYPES = ("string", "large_string")


def encode_string_labels(dataset: Dataset, label_column: str, names: Optional[Sequence[str]] = None) -> Dataset:
    """Turns a column of class *names* into ``ClassLabel`` indices (other columns pass through).

    Args:
        dataset: a ``datasets.Dataset``.
        label_column: its label column.
        names: the class names in index order (e.g. the training split's, to encode a test split the
            same way); ``None`` takes the sorted distinct names of the column, as
            ``datasets.Dataset.class_encode_column`` does.

    Returns:
        ``dataset`` itself when the column is not a string column, else the encoded dataset; the class
        names are its ``ClassLabel`` names (recorded with the distilled set).

    Raises:
        DataError: for rows without a name, or names outside ``names``.
    """
    feature = dataset.features[label_column]
    if getattr(feature, "dtype", None) not in STRING_DTYPES:
        return dataset
    values = dataset.unique(label_column)
    if None in values:
        raise DataError(f"Some rows have no class name (None) in column {label_column!r}: drop them first with "
                        f"dataset.filter(lambda row: row[{label_column!r}] is not None).")
    names = list(names) if names is not None else sorted(values)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise DataError(f"Column {label_column!r} holds class names {unknown[:5]} that are not among {names}: "
                        "encode every split with the training split's class names, or drop those rows.")
    return dataset.cast_column(label_column, ClassLabel(names=names))


def column_class_names(dataset: Dataset, label_column: str) -> list[str]:
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


class LabelledSplit:
    """What every split knows without its images: ``labels`` and ``class_names`` (set by subclasses)."""

    labels: torch.Tensor
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def indices_by_class(self) -> list[torch.Tensor]:
        """Returns, for each class, the indices of its samples."""
        return [torch.nonzero(self.labels == c, as_tuple=False).flatten() for c in range(self.num_classes)]


@dataclass
class ImageClassificationTensors(LabelledSplit):
    """A preprocessed split: ``uint8`` images ``(N, C, H, W)``, ``int64`` labels and class names."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        check_image_tensor(self.images)
        check_label_tensor(self.labels, len(self.images))
        self.labels = self.labels.long()

    def float_images(self, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Returns images (all, or ``index``) as float32 in [-1, 1]."""
        images = self.images if index is None else self.images[index]
        return uint8_to_float(images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.images.shape[1:])

    def images_between(self, start: int, stop: int) -> torch.Tensor:
        """The ``uint8`` images of rows ``[start, stop)``."""
        return self.images[start:stop]

    def load(self) -> "ImageClassificationTensors":
        """The split in memory: itself (a :class:`StreamedImageClassification` decodes here)."""
        return self

    def select(self, index: torch.Tensor) -> "ImageClassificationTensors":
        """The rows at ``index`` (same class names)."""
        return ImageClassificationTensors(self.images[index], self.labels[index], list(self.class_names))

    def fingerprint(self) -> str:
        """A content hash of the images and labels (keys the latent cache)."""
        from .codec import tensor_fingerprint

        return tensor_fingerprint(self.images, self.labels)


@dataclass
class StreamedImageClassification(LabelledSplit):
    """A training split whose labels are in memory and whose images are decoded only when read.

    What latent methods distil from: the encoder reads it batch by batch, so memory holds one batch
    of images at a time, whatever the size of the split (its latents are what stays).

    Args:
        dataset: the ``datasets.Dataset`` (label column already class-encoded).
        image_column: its image column.
        labels: int64 labels ``(N,)``.
        class_names: names of the classes, indexed by label.
        preprocessor: the resize / crop / mode conversion applied to each decoded image.
    """

    dataset: Dataset
    image_column: str
    labels: torch.Tensor
    class_names: list[str]
    preprocessor: ImagePreprocessor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one preprocessed image."""
        return (self.preprocessor.channels, self.preprocessor.resolution, self.preprocessor.resolution)

    def images_between(self, start: int, stop: int) -> torch.Tensor:
        """Decodes and preprocesses rows ``[start, stop)`` into ``uint8`` images ``(n, C, H, W)``."""
        rows = self.dataset.select(range(start, stop))
        arrays = [self.preprocessor(image) for image in decoded_images(rows, self.image_column)]
        if not arrays:
            return torch.empty((0, self.preprocessor.channels, self.preprocessor.resolution,
                                self.preprocessor.resolution), dtype=torch.uint8)
        return torch.from_numpy(np.stack(arrays))

    def select(self, index: torch.Tensor) -> "StreamedImageClassification":
        """The rows at ``index``, still read lazily."""
        return StreamedImageClassification(self.dataset.select(index.tolist()), self.image_column,
                                           self.labels[index], list(self.class_names), self.preprocessor)

    def fingerprint(self) -> str:
        """A hash of the table's fingerprint, the image column and the preprocessing (keys the latent cache)."""
        key = json.dumps([table_fingerprint(self.dataset), self.image_column, self.preprocessor.resolution,
                          self.preprocessor.channels])
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def load(self) -> ImageClassificationTensors:
        """Decodes every image into memory."""
        return ImageClassificationTensors(self.images_between(0, len(self)), self.labels, list(self.class_names))


def check_image_tensor(images: torch.Tensor) -> None:
    """Checks that ``images`` are ``uint8`` ``(N, C, H, W)`` tensors, as every split is held.

    Raises:
        DataError: for another type, dtype or rank; float images name their NaN count and the conversion.
    """
    if not isinstance(images, torch.Tensor):
        raise DataError(f"Images must be a torch.Tensor, got {type(images).__name__}: use torch.as_tensor(...).")
    if images.dtype != torch.uint8:
        detail = ""
        if images.is_floating_point():
            nan = int(torch.isnan(images).sum())
            detail = f" ({nan} NaN values: drop or repair those images first)" if nan else ""
        raise DataError(
            f"Images are {images.dtype}{detail}, but splits hold uint8 images in [0, 255]: convert float images in "
            "[-1, 1] with latent_distill.data.float_to_uint8(images), or images in [0, 1] with "
            "(images * 255).round().clamp(0, 255).to(torch.uint8)."
        )
    if images.dim() != 4:
        raise DataError(f"Images must be (N, C, H, W), got shape {tuple(images.shape)}: add the channel axis with "
                        "images.unsqueeze(1) for grey images.")


def check_label_tensor(labels: torch.Tensor, num_images: int) -> None:
    """Checks that ``labels`` are one integer class index per image.

    Raises:
        DataError: for float, NaN or multi-dimensional labels, or a count that differs from the images'.
    """
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex() \
            or labels.dtype == torch.bool:
        dtype = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        whole = (isinstance(labels, torch.Tensor) and labels.is_floating_point()
                 and bool(torch.isfinite(labels).all()) and bool((labels == labels.round()).all()))
        fix = "labels.long()" if whole else "integer class indices (NaN or fractional labels cannot be classes)"
        raise DataError(f"Labels are {dtype}, but class indices must be an integer tensor: use {fix}.")
    if labels.dim() != 1 or len(labels) != num_images:
        raise DataError(f"Labels of shape {tuple(labels.shape)} do not give one class index per image "
                        f"({num_images} images): pass a 1-D tensor of {num_images} labels.")


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """Maps ``uint8`` images in [0, 255] to float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Maps float images in [-1, 1] to ``uint8`` in [0, 255] (clamped, rounded)."""
    return images.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def dataset_to_tensors(dataset: Dataset, resolution: int = 28, channels: int = 1,
                       image_column: Optional[str] = None, label_column: Optional[str] = None,
                       batch_size: int = 1000, class_names: Optional[Sequence[str]] = None) -> ImageClassificationTensors:
    """Preprocesses a whole split into memory.

    Args:
        dataset: an image-classification ``datasets.Dataset``.
        resolution: working resolution (square).
        channels: 1 (grey) or 3 (RGB).
        image_column: image column (detected when ``None``).
        label_column: label column (detected when ``None``).
        batch_size: rows decoded at a time.
        class_names: for a column of class *names* (strings), the names in index order (e.g. the
            training split's when converting a test split); ``None`` sorts the column's names.

    Returns:
        ``ImageClassificationTensors`` with ``uint8`` images ``(N, channels, resolution, resolution)``.

    Raises:
        DataError: on missing columns, non-integer, missing or negative labels, rows without an
            image or with image bytes that do not decode (the row is named), or empty datasets.
    """
    if len(dataset) == 0:
        raise DataError("The dataset is empty: pass a split with at least one image per class.")
    image_column, label_column = detect_columns(dataset, image_column, label_column)
    dataset = encode_string_labels(dataset, label_column, class_names)
    labels = _dataset_labels(dataset, label_column)
    preprocess = ImagePreprocessor(resolution, channels)
    arrays = np.empty((len(dataset), channels, resolution, resolution), dtype=np.uint8)
    for row, image in enumerate(decoded_images(dataset, image_column, batch_size)):
        arrays[row] = preprocess(image)
    return ImageClassificationTensors(
        images=torch.from_numpy(arrays),
        labels=labels,
        class_names=column_class_names(dataset, label_column),
    )


def decoded_images(dataset: Dataset, image_column: str, batch_size: int = 1000) -> Iterator[PILImage.Image]:
    """The images of a column, decoded row by row so that a bad row is named.

    Args:
        dataset: a ``datasets.Dataset``.
        image_column: its ``datasets.Image`` column.
        batch_size: rows read from the table at a time.

    Yields:
        One decoded PIL image per row, in order.

    Raises:
        DataError: for a row without an image, or whose bytes (or file) do not decode as an image.
    """
    decoder = datasets.Image()  # the preprocessor converts modes; a decode=False column still decodes here
    view = dataset.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))
    for start in range(0, len(view), batch_size):
        for offset, encoded in enumerate(view[start: start + batch_size][image_column]):
            row = start + offset
            if encoded is None or (encoded.get("bytes") is None and encoded.get("path") is None):
                raise DataError(
                    f"Row {row} has no image in column {image_column!r}: drop rows without an image "
                    f"first with dataset.filter(lambda row: row[{image_column!r}] is not None)."
                )
            try:
                image = decoder.decode_example(encoded)
                image.load()
            except Exception as error:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ... by format
                raise DataError(
                    f"Row {row} of column {image_column!r} does not decode as an image ({type(error).__name__}: "
                    f"{error}): repair or drop it, e.g. dataset.select([i for i in range(len(dataset)) if i != {row}])."
                ) from error
            yield image


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
    check_training_labels(data.labels, data.class_names)
    return data


def check_training_labels(labels: torch.Tensor, class_names: Sequence[str]) -> None:
    """Checks that every label is a class index and every class has a sample.

    Raises:
        DataError: for labels outside ``[0, len(class_names))`` or a class without a sample.
    """
    num_classes = len(class_names)
    outside = (labels < 0) | (labels >= num_classes)
    if bool(outside.any()):
        raise DataError(
            f"{int(outside.sum())} of {len(labels)} labels are not class indices in [0, {num_classes}) "
            f"(e.g. {int(labels[outside][0])}): drop those rows, or list every class in class_names."
        )
    counts = torch.bincount(labels, minlength=num_classes)
    empty = [class_names[c] for c in range(num_classes) if counts[c] == 0]
    if empty:
        raise DataError(f"Classes {empty} have no training sample: remove them from the label set "
                        "(dataset.filter / cast_column with fewer ClassLabel names) or add samples.")


#: A training split in memory or streamed: what encoding, subsetting and the run record accept.
TrainingSplit = Union[ImageClassificationTensors, StreamedImageClassification]


def streamed_training_split(dataset: DatasetLike, resolution: int, channels: int,
                            image_column: Optional[str] = None, label_column: Optional[str] = None
                            ) -> Union[ImageClassificationTensors, StreamedImageClassification]:
    """Like :func:`training_tensors`, but a ``datasets`` split stays on disk: its images are decoded when read.

    Args:
        dataset: a ``datasets.Dataset``, a ``DatasetDict`` (its ``train`` split is used) or
            preprocessed :class:`ImageClassificationTensors` (checked and returned as they are).
        resolution: the working resolution (square).
        channels: image channels the autoencoder takes.
        image_column: name of the image column (detected when ``None``).
        label_column: name of the label column (detected when ``None``).

    Returns:
        :class:`StreamedImageClassification` for ``datasets`` input, else the checked tensors.

    Raises:
        DataError: as :func:`training_tensors` (rows that do not decode are named when they are read).
    """
    if isinstance(dataset, ImageClassificationTensors):
        return training_tensors(dataset, resolution, channels, image_column, label_column)
    if isinstance(dataset, DatasetDict):
        if "train" not in dataset:
            raise DataError(f"The DatasetDict has no 'train' split ({list(dataset)}): pass the split to distil.")
        dataset = dataset["train"]
    if len(dataset) == 0:
        raise DataError("The dataset is empty: pass a split with at least one image per class.")
    image_column, label_column = detect_columns(dataset, image_column, label_column)
    dataset = encode_string_labels(dataset, label_column)
    labels = _dataset_labels(dataset, label_column)
    names = column_class_names(dataset, label_column)
    check_training_labels(labels, names)
    return StreamedImageClassification(dataset.select_columns([image_column]), image_column, labels, names,
                                       ImagePreprocessor(resolution, channels))


def table_fingerprint(dataset: Dataset) -> str:
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
        source.update(id=split.info.dataset_name, fingerprint=table_fingerprint(split),
                      config_name=split.info.config_name,
                      version=str(split.info.version) if split.info.version else None)
    return source
