"""A training split in memory (:class:`ImageClassificationTensors`) or read lazily from its table
(:class:`StreamedImageClassification`), with the checks every split passes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch
from datasets import Dataset

from ..codec import tensor_fingerprint
from .errors import DataError
from .images import (
    ImagePreprocessor,
    check_image_tensor,
    decoded_images,
    uint8_to_float,
)


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
