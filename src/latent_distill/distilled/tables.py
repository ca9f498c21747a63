"""The parquet tables of a distilled set: one ``datasets.Dataset`` per config, and the set's
tensors back from the columns of those tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import datasets
import numpy as np
import torch
from datasets import Array2D, Array3D, ClassLabel, Features, List, Value

from .png import decode_png, encode_png

if TYPE_CHECKING:
    from .dataset import DistilledDataset


def build_tables(dataset: DistilledDataset) -> dict[str, datasets.Dataset]:
    """Builds one ``datasets.Dataset`` per config of ``dataset`` (see
    :meth:`~latent_distill.distilled.DistilledDataset.to_dataset_dict`).

    Args:
        dataset: the distilled set.

    Returns:
        Config name -> table, for the configs the set produces, default first.
    """
    builders = {"latents": _latents_table, "images": _images_table, "gaussians": _gaussians_table}
    return {name: builders[name](dataset) for name in dataset.config_names}


def _row_columns(dataset: DistilledDataset) -> tuple[dict, dict]:
    """Label and optional soft-label columns shared by the latents and images configs."""
    columns = {"label": dataset.labels.numpy()}
    features = {"label": ClassLabel(names=dataset.class_names)}
    if dataset.soft_labels is not None:
        columns["soft_label"] = dataset.soft_labels.numpy()
        features["soft_label"] = List(Value("float32"))
    return columns, features


def _latents_table(dataset: DistilledDataset) -> datasets.Dataset:
    columns, features = _row_columns(dataset)
    columns = {"latent": dataset.latents.numpy(), **columns}
    features = {"latent": Array3D(shape=tuple(dataset.latents.shape[1:]), dtype="float32"), **features}
    if dataset.class_embeddings is not None:
        columns["class_embedding"] = dataset.class_embeddings.numpy()
        features["class_embedding"] = Array2D(shape=tuple(dataset.class_embeddings.shape[1:]), dtype="float32")
    return datasets.Dataset.from_dict(columns, features=Features(features))


def _images_table(dataset: DistilledDataset) -> datasets.Dataset:
    columns, features = _row_columns(dataset)
    encoded = [{"bytes": encode_png(image), "path": None} for image in dataset.images.numpy()]
    columns = {"image": encoded, **columns}
    features = {"image": datasets.Image(), **features}
    return datasets.Dataset.from_dict(columns, features=Features(features))


def _gaussians_table(dataset: DistilledDataset) -> datasets.Dataset:
    gaussians, num_classes = dataset.gaussians, dataset.num_classes
    columns = {
        "label": np.arange(num_classes, dtype=np.int64),
        "mean": gaussians["mean"].numpy(),
        "std": gaussians["std"].numpy(),
        "timestep": np.full(num_classes, gaussians["timestep"], dtype=np.int32),
        "latent_shape": [gaussians["latent_shape"]] * num_classes,
    }
    features = {
        "label": ClassLabel(names=dataset.class_names),
        "mean": List(Value("float32")),
        "std": List(Value("float32")),
        "timestep": Value("int32"),
        "latent_shape": List(Value("int32")),
    }
    if "group_seeds" in gaussians:
        columns["group_seed"] = np.asarray(gaussians["group_seeds"], dtype=np.int64)
        features["group_seed"] = Value("int64")
    return datasets.Dataset.from_dict(columns, features=Features(features))


def tensor_fields(tables: dict[str, dict], meta: dict) -> dict:
    """The tensor fields of a distilled set from the columns of its configs.

    Args:
        tables: config name -> column name -> numpy array (the ``image`` column: PNG bytes), as
            read from the parquet files.
        meta: the content of ``distillation_config.json``.

    Returns:
        ``labels``, ``latents``, ``images``, ``soft_labels``, ``class_embeddings`` and
        ``gaussians``, as :class:`~latent_distill.distilled.DistilledDataset` takes them (``None``
        where absent).
    """
    rows = tables.get("latents", tables.get("images"))
    labels = rows["label"] if rows is not None else tables["gaussians"]["label"]
    return {
        "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        "latents": _tensor_or_none(tables.get("latents"), "latent"),
        "images": _decode_images(tables["images"]) if "images" in tables else None,
        "soft_labels": _tensor_or_none(rows, "soft_label") if meta["soft_labels"] else None,
        "class_embeddings": _tensor_or_none(tables.get("latents"), "class_embedding")
        if meta.get("class_embeddings") else None,
        "gaussians": _gaussians_from_table(tables["gaussians"], meta["gaussians"]) if "gaussians" in tables else None,
    }


def _tensor_or_none(table: Optional[dict], column: str) -> Optional[torch.Tensor]:
    """``torch`` view of a numpy column, or ``None`` when the table or column is absent."""
    if table is None or column not in table:
        return None
    return torch.from_numpy(np.ascontiguousarray(table[column]))


def _decode_images(table: dict) -> torch.Tensor:
    """Decodes the PNG column of an images table into uint8 ``(N, C, H, W)``."""
    return torch.from_numpy(np.stack([decode_png(data) for data in table["image"]]))


def _gaussians_from_table(table: dict, meta: dict) -> dict:
    """Rebuilds the ``gaussians`` dict from its parquet columns and the JSON metadata."""
    gaussians = {
        "mean": torch.from_numpy(np.ascontiguousarray(table["mean"], dtype=np.float32)),
        "std": torch.from_numpy(np.ascontiguousarray(table["std"], dtype=np.float32)),
        "latent_shape": list(meta["latent_shape"]),
        "timestep": int(meta["timestep"]),
    }
    if meta["group_seeds"]:
        gaussians["group_seeds"] = [int(seed) for seed in table["group_seed"]]
    gaussians.update(meta["extra"])
    return gaussians
