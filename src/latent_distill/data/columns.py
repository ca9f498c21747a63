"""The image and label columns of an image-classification ``datasets`` split: detection, class names
encoded as labels, labels read and checked."""

from __future__ import annotations

from typing import Optional, Sequence

import datasets
import torch
from datasets import ClassLabel, Dataset, Features

from .errors import DataError


def _column(features: Features, given: Optional[str], argument: str, candidates: list[str], missing: str) -> str:
    """The column named by ``given``, else the first candidate; ``missing`` (formatted with the
    ``columns``) is raised when there is none."""
    if given is None:
        if not candidates:
            raise DataError(missing.format(columns=list(features)))
        return candidates[0]
    if given not in features:
        raise DataError(f"{argument}={given!r} is not a column of the dataset {list(features)}.")
    return given


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
    image_column = _column(features, image_column, "image_column",
                           [name for name, feature in features.items() if isinstance(feature, datasets.Image)],
                           "No image column found among {columns}: cast it to datasets.Image() "
                           "(dataset.cast_column(name, datasets.Image())) or pass image_column=<name>.")
    label_column = _column(features, label_column, "label_column",
                           [name for name, feature in features.items() if isinstance(feature, ClassLabel)]
                           + [name for name in ("label", "labels", "fine_label", "class") if name in features],
                           "No label column found among {columns}: name it with label_column=<name>, "
                           "or cast it to datasets.ClassLabel.")
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

def dataset_labels(dataset: Dataset, label_column: str) -> torch.Tensor:
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
