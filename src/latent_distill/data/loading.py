"""From what a user passes (a dataset id, a ``datasets`` split or dict, tensors) to checked training and
evaluation splits, and what a distilled set records of its source."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import datasets
import numpy as np
import torch
from datasets import Dataset, DatasetDict

from .columns import (
    column_class_names,
    dataset_labels,
    detect_columns,
    encode_string_labels,
)
from .errors import DataError
from .fashion_mnist import FASHION_MNIST_HUB_ID, load_fashion_mnist
from .images import ImagePreprocessor, decoded_images
from .splits import (
    ImageClassificationTensors,
    StreamedImageClassification,
    check_training_labels,
    table_fingerprint,
)

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
    labels = dataset_labels(dataset, label_column)
    preprocess = ImagePreprocessor(resolution, channels)
    arrays = np.empty((len(dataset), channels, resolution, resolution), dtype=np.uint8)
    for row, image in enumerate(decoded_images(dataset, image_column, batch_size)):
        arrays[row] = preprocess(image)
    return ImageClassificationTensors(
        images=torch.from_numpy(arrays),
        labels=labels,
        class_names=column_class_names(dataset, label_column),
    )

DatasetLike = Union[Dataset, DatasetDict, ImageClassificationTensors, StreamedImageClassification]

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
    if isinstance(dataset, (ImageClassificationTensors, StreamedImageClassification)):
        data = dataset.load()
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
    if isinstance(dataset, StreamedImageClassification):
        if dataset.image_shape != (channels, resolution, resolution):
            raise DataError(f"The streamed split makes {dataset.image_shape} images but the autoencoder takes "
                            f"{(channels, resolution, resolution)}: stream it with resolution={resolution}, "
                            f"channels={channels}.")
        return dataset
    if isinstance(dataset, DatasetDict):
        if "train" not in dataset:
            raise DataError(f"The DatasetDict has no 'train' split ({list(dataset)}): pass the split to distil.")
        dataset = dataset["train"]
    if len(dataset) == 0:
        raise DataError("The dataset is empty: pass a split with at least one image per class.")
    image_column, label_column = detect_columns(dataset, image_column, label_column)
    dataset = encode_string_labels(dataset, label_column)
    labels = dataset_labels(dataset, label_column)
    names = column_class_names(dataset, label_column)
    check_training_labels(labels, names)
    return StreamedImageClassification(dataset.select_columns([image_column]), image_column, labels, names,
                                       ImagePreprocessor(resolution, channels))

def source_record(dataset: DatasetLike, data: ImageClassificationTensors) -> dict:
    """What a distilled set records of its source data: id, fingerprint, version, sizes."""
    source = {"id": None, "num_samples": len(data.labels), "num_classes": data.num_classes}
    if isinstance(dataset, (Dataset, DatasetDict)):
        split = dataset["train"] if isinstance(dataset, DatasetDict) else dataset
        source.update(id=split.info.dataset_name, fingerprint=table_fingerprint(split),
                      config_name=split.info.config_name,
                      version=str(split.info.version) if split.info.version else None)
    return source
