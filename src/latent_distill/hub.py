"""Distilled datasets as Hugging Face dataset repositories.

Every method of the library (latent or pixel distillation, LD3M, D3HR) ends in one
:class:`DistilledDataset`, and every distilled dataset is published with the same layout::

    <folder>/
      README.md                            dataset card: YAML (configs, license, tags) + recipe,
                                           storage budget, evaluation, preview, usage; rendered
                                           from latent_distill/templates/distilled_dataset_card.md
      distillation_config.json             schema version, method, class names, every hyper-parameter
      preview.png                          one row per class, up to 10 samples each (when images exist)
      latents/train-00000-of-00001.parquet    latent (Array3D float32), label (ClassLabel) [, soft_label]
                                              [, class_embedding (Array2D float32): LD3M sets]
      images/train-00000-of-00001.parquet     image (Image, PNG), label (ClassLabel) [, soft_label]
      gaussians/train-00000-of-00001.parquet  one row per class: label, mean, std, timestep,
                                              latent_shape [, group_seed]

Only the configs the method produced are written. The repository is plain parquet plus YAML, so
``datasets.load_dataset(repo, "<config>", split="train")`` reads it without this library; decoding
latents into pixels is done by the library, never by the repository.

Storage convention: :meth:`DistilledDataset.storage_bytes` counts what the method distilled into
(latents as float32, Gaussian parameters as float32, or, for sets that are only images, the uint8
pixels that are published), and :meth:`DistilledDataset.image_budget_bytes` counts IPC images per
class at the source resolution as float32, as dataset-distillation papers do (synthetic images are
optimised and stored as float tensors; LatentDD's budget of ``IPC * 3 f^2 / C`` latents per class
equates latents and images at the same element size).
"""

from __future__ import annotations

import io
import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from accelerate import PartialState
from datasets import Array2D, Array3D, ClassLabel, Features, List, Value
from huggingface_hub import (
    CommitOperationAdd,
    DatasetCard,
    DatasetCardData,
    HfApi,
    snapshot_download,
)
from PIL import Image as PILImage

from .checkpointing import (
    PathLike,
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
)
from .data import float_to_uint8

SCHEMA_VERSION = 1
CONFIG_FILE = "distillation_config.json"
CARD_FILE = "README.md"
CARD_TEMPLATE = "templates/distilled_dataset_card.md"
PREVIEW_FILE = "preview.png"
DATA_FILE = "{config}/train-00000-of-00001.parquet"
DATA_GLOB = "{config}/train-*.parquet"
CONFIG_ORDER = ("latents", "images", "gaussians")
PREVIEW_SAMPLES_PER_CLASS = 10
PREVIEW_MAX_CLASSES = 100
IMAGE_BUDGET_BYTES_PER_VALUE = 4  # float32, see the module docstring
_GAUSSIAN_FIELDS = ("mean", "std", "latent_shape", "timestep", "group_seeds")
_DATASET_KEYS = ("dataset", "source_dataset")


class DistilledDatasetError(ValueError):
    """Raised when a distilled dataset or its folder is invalid; the message names the fix."""


class HubUploadError(RuntimeError):
    """Raised when pushing a distilled dataset fails; the saved local folder is kept.

    Attributes:
        repo_id: the target dataset repository.
        local_dir: the folder holding the complete saved repository.
    """

    def __init__(self, message: str, repo_id: str, local_dir: Path) -> None:
        super().__init__(message)
        self.repo_id = repo_id
        self.local_dir = local_dir


# ----------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------

def _require_json(value: Any, name: str) -> None:
    """Raises a clear error when ``value`` cannot be written to JSON."""
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as error:
        raise DistilledDatasetError(
            f"{name} must hold only JSON values (str, int, float, bool, None, lists, dicts): {error}. "
            "Convert tensors with .tolist() and paths with str()."
        ) from None


def _cpu(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """Returns ``tensor`` detached, on the CPU and contiguous."""
    if not isinstance(tensor, torch.Tensor):
        raise DistilledDatasetError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}.")
    return tensor.detach().cpu().contiguous()


def _as_float32(tensor: torch.Tensor, name: str, ndim: int) -> torch.Tensor:
    """Checks a floating tensor of ``ndim`` dimensions and returns it as float32."""
    tensor = _cpu(tensor, name)
    if not tensor.is_floating_point() or tensor.ndim != ndim:
        raise DistilledDatasetError(
            f"{name} must be a floating tensor with {ndim} dimensions, got {tensor.dtype} {tuple(tensor.shape)}."
        )
    return tensor.to(torch.float32)


def _as_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """Checks ``(N, C, H, W)`` images with 1 or 3 channels; float images in [-1, 1] become uint8."""
    images = _cpu(images, "images")
    if images.is_floating_point():
        images = float_to_uint8(images)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DistilledDatasetError(
            f"images must be uint8 (N, C, H, W) with C = 1 (grey) or 3 (RGB), or float in [-1, 1]; "
            f"got {images.dtype} {tuple(images.shape)}."
        )
    return images


def _check_rows(name: str, tensor: Optional[torch.Tensor], num_rows: int) -> None:
    """Checks that ``tensor`` has one row per label."""
    if tensor is not None and tensor.shape[0] != num_rows:
        raise DistilledDatasetError(
            f"{name} has {tensor.shape[0]} rows but labels has {num_rows}: give one label per row."
        )


def _normalise_gaussians(gaussians: dict, num_classes: int) -> dict:
    """Checks the D3HR Gaussian parameters and returns them with canonical types.

    Args:
        gaussians: ``{"mean": (K, D), "std": (K, D), "latent_shape": [C, h, w], "timestep": int}``,
            optional ``"group_seeds"`` (K ints) and any further JSON-valued entries.
        num_classes: K.

    Returns:
        A new dict with float32 ``mean``/``std``, ``latent_shape`` and ``group_seeds`` as lists of
        ints, ``timestep`` as int.
    """
    missing = [key for key in ("mean", "std", "latent_shape", "timestep") if key not in gaussians]
    if missing:
        raise DistilledDatasetError(
            f"gaussians is missing {missing}: D3HR sets need mean, std, latent_shape and timestep."
        )
    out = dict(gaussians)
    out["mean"] = _as_float32(gaussians["mean"], "gaussians['mean']", 2)
    out["std"] = _as_float32(gaussians["std"], "gaussians['std']", 2)
    out["latent_shape"] = [int(size) for size in gaussians["latent_shape"]]
    out["timestep"] = int(gaussians["timestep"])
    expected = (num_classes, math.prod(out["latent_shape"]))
    for key in ("mean", "std"):
        if tuple(out[key].shape) != expected:
            raise DistilledDatasetError(
                f"gaussians[{key!r}] has shape {tuple(out[key].shape)}, expected (num_classes, prod(latent_shape)) "
                f"= {expected}: flatten each class's latent statistics into one row."
            )
    if gaussians.get("group_seeds") is not None:
        out["group_seeds"] = [int(seed) for seed in gaussians["group_seeds"]]
        if len(out["group_seeds"]) != num_classes:
            raise DistilledDatasetError(
                f"gaussians['group_seeds'] has {len(out['group_seeds'])} entries, "
                f"expected one per class ({num_classes})."
            )
    else:
        out.pop("group_seeds", None)
    _require_json(_gaussian_extras(out), f"gaussians (entries other than {', '.join(_GAUSSIAN_FIELDS)})")
    return out


def _gaussian_extras(gaussians: dict) -> dict:
    """Returns the entries of ``gaussians`` beyond the standard fields (stored in the JSON file)."""
    return {key: value for key, value in gaussians.items() if key not in _GAUSSIAN_FIELDS}


# ----------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------

@dataclass(eq=False, repr=False)
class DistilledDataset:
    """A distilled image-classification dataset, the common output of every method.

    Args:
        method: method name, e.g. ``"latent-dm"``, ``"pixel-dsa"``, ``"d3hr"``, ``"ld3m-dm"``.
        class_names: names of the K classes; label ``k`` is ``class_names[k]``.
        labels: int64 ``(N,)``, one class index per latent/image row. A set holding only Gaussian
            parameters has one row per class: ``labels = torch.arange(K)``.
        latents: float32 ``(N, C, h, w)`` VAE latents.
        images: uint8 ``(N, C, H, W)``, C = 1 (grey) or 3 (RGB); float images in [-1, 1] are
            converted with :func:`latent_distill.data.float_to_uint8`.
        soft_labels: float32 ``(N, K)`` targets stored in the same rows as latents/images.
        class_embeddings: float32 ``(N, num_blocks, hidden)``: LD3M's learned class embeddings, one
            per latent row; the latents are then the *initial* latents of the recorded diffusion
            model's sampler (``LatentDistillationPipeline.rerender`` renders them, the autoencoder
            alone does not).
        gaussians: D3HR per-class Gaussians: ``mean`` and ``std`` float32 ``(K, D)``,
            ``latent_shape`` ``[C, h, w]`` with ``C*h*w = D``, ``timestep`` (int), optional
            ``group_seeds`` (one int per class) and further JSON-valued entries.
        config: every hyper-parameter and provenance (JSON values). Read by this class: ``ipc``,
            ``latents_per_class``, ``budget`` (``"storage"`` or ``"count"``), ``image_shape``
            (``[C, H, W]`` of the source images) or ``resolution``/``channels``, ``license``,
            ``pretty_name``, ``dataset`` (an id or ``{"id", "revision", "fingerprint"}``) and
            ``models`` (name -> ``{"id" or "path", "revision"}``).
        evaluation: result rows ``{"arch", "protocol", "method" or "reference",
            "samples_per_class", "acc_mean", "acc_std", "runs"}``.

    Raises:
        DistilledDatasetError: when the fields are inconsistent; the message names the fix.
    """

    method: str
    class_names: list[str]
    labels: torch.Tensor
    latents: Optional[torch.Tensor] = None
    images: Optional[torch.Tensor] = None
    soft_labels: Optional[torch.Tensor] = None
    gaussians: Optional[dict] = None
    class_embeddings: Optional[torch.Tensor] = None
    config: dict = field(default_factory=dict)
    evaluation: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.class_names = [str(name) for name in self.class_names]
        if not self.class_names or len(set(self.class_names)) != len(self.class_names):
            raise DistilledDatasetError(
                f"class_names must be a non-empty list of distinct names, got {self.class_names}."
            )
        if self.latents is None and self.images is None and self.gaussians is None:
            raise DistilledDatasetError("A distilled dataset needs latents, images or gaussians; all three are None.")
        self._normalise_rows()
        if self.gaussians is not None:
            self.gaussians = _normalise_gaussians(self.gaussians, self.num_classes)
            if not self.has_rows:
                self._check_gaussian_labels()
        _require_json(self.config, "config")
        _require_json(self.evaluation, "evaluation")
        self._check_ipc_known()

    def _normalise_rows(self) -> None:
        """Checks and converts labels, latents, images and soft labels."""
        labels = _cpu(self.labels, "labels")
        if labels.is_floating_point() or labels.ndim != 1:
            raise DistilledDatasetError(
                f"labels must be an integer tensor (N,), got {labels.dtype} {tuple(labels.shape)}."
            )
        self.labels = labels.to(torch.int64)
        if self.labels.numel() and (self.labels.min() < 0 or self.labels.max() >= self.num_classes):
            raise DistilledDatasetError(f"labels must lie in [0, {self.num_classes}) (one per class name).")
        if self.latents is not None:
            self.latents = _as_float32(self.latents, "latents", 4)
        if self.images is not None:
            self.images = _as_uint8_images(self.images)
        if self.soft_labels is not None:
            self.soft_labels = _as_float32(self.soft_labels, "soft_labels", 2)
            if not self.has_rows:
                raise DistilledDatasetError("soft_labels label latent or image rows: give latents or images with them.")
            if self.soft_labels.shape[1] != self.num_classes:
                raise DistilledDatasetError(
                    f"soft_labels has {self.soft_labels.shape[1]} columns, expected one per class ({self.num_classes})."
                )
        if self.class_embeddings is not None:
            if self.latents is None:
                raise DistilledDatasetError(
                    "class_embeddings pair with the sampler's initial latents, row by row: pass latents too."
                )
            self.class_embeddings = _as_float32(self.class_embeddings, "class_embeddings", 3)
        for name in ("latents", "images", "soft_labels", "class_embeddings"):
            _check_rows(name, getattr(self, name), self.num_samples)

    def _check_gaussian_labels(self) -> None:
        """A Gaussians-only set has one row per class, in class order."""
        if not torch.equal(self.labels, torch.arange(self.num_classes)):
            raise DistilledDatasetError(
                "labels of a Gaussians-only set name the class of each Gaussian row: "
                f"pass labels=torch.arange({self.num_classes})."
            )

    def _check_ipc_known(self) -> None:
        """Fails early when neither the config nor the rows tell the images per class."""
        if "ipc" in self.config:
            return
        if self.budget == "storage":
            raise DistilledDatasetError(
                "With budget='storage' the stored samples per class differ from the images per class: "
                "set config['ipc']."
            )
        if not self.has_rows:
            raise DistilledDatasetError(
                "A Gaussians-only set cannot infer its images per class: set config['ipc'] (the group size)."
            )
        if self._uniform_count() is None:
            raise DistilledDatasetError(
                "Classes hold different numbers of rows, so the images per class is ambiguous: set config['ipc']."
            )

    def __repr__(self) -> str:
        shapes = {
            name: tuple(getattr(self, name).shape)
            for name in ("latents", "images", "soft_labels", "class_embeddings")
            if getattr(self, name) is not None
        }
        if self.gaussians is not None:
            shapes["gaussians"] = tuple(self.gaussians["mean"].shape)
        return (
            f"DistilledDataset(method={self.method!r}, num_classes={self.num_classes}, "
            f"num_samples={self.num_samples}, ipc={self.ipc}, {shapes})"
        )

    # ------------------------------------------------------------------------------------------
    # Sizes and budgets
    # ------------------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return len(self.class_names)

    @property
    def num_samples(self) -> int:
        """Number of labelled rows N."""
        return int(self.labels.shape[0])

    @property
    def has_rows(self) -> bool:
        """Whether the set holds latent or image rows (as opposed to only Gaussian parameters)."""
        return self.latents is not None or self.images is not None

    def _uniform_count(self) -> Optional[int]:
        """Rows per class when every class has the same number, else ``None``."""
        counts = torch.bincount(self.labels, minlength=self.num_classes)
        return int(counts[0]) if bool((counts == counts[0]).all()) else None

    @property
    def ipc(self) -> int:
        """Images per class the set stands for: ``config["ipc"]``, else rows per class."""
        if "ipc" in self.config:
            return int(self.config["ipc"])
        return int(self._uniform_count())

    @property
    def samples_per_class(self) -> int:
        """Stored samples per class: ``config["latents_per_class"]``, else rows per class, else IPC.

        With a storage budget (``budget == "storage"``) latent methods store more latents per class
        than IPC images; with a count budget the two are equal.
        """
        if "latents_per_class" in self.config:
            return int(self.config["latents_per_class"])
        count = self._uniform_count() if self.has_rows else None
        return count if count is not None else self.ipc

    @property
    def budget(self) -> str:
        """``"storage"`` (same bytes as IPC images) or ``"count"`` (same number of samples)."""
        return str(self.config.get("budget", "count"))

    @property
    def stored_representation(self) -> str:
        """What :meth:`storage_bytes` counts: ``"latents"``, ``"gaussians"`` or ``"images"``."""
        if self.latents is not None:
            return "latents"
        if self.gaussians is not None:
            return "gaussians"
        return "images"

    def storage_bytes(self, include_soft_labels: bool = False) -> int:
        """Bytes of the distilled representation.

        Latents count as float32 (with an LD3M set's float32 class embeddings); Gaussian parameters
        as float32 ``mean`` and ``std`` plus 8 bytes per group seed; a set that is only images counts its uint8 pixels. Images decoded from
        latents or Gaussians are a convenience copy and are not counted.

        Args:
            include_soft_labels: add the float32 soft labels (soft-label protocols store them too).

        Returns:
            The number of bytes.
        """
        kind = self.stored_representation
        if kind == "latents":
            total = self.latents.numel() * 4
            if self.class_embeddings is not None:
                total += self.class_embeddings.numel() * 4
        elif kind == "gaussians":
            total = (self.gaussians["mean"].numel() + self.gaussians["std"].numel()) * 4
            total += 8 * len(self.gaussians.get("group_seeds", []))
        else:
            total = self.images.numel()
        if include_soft_labels and self.soft_labels is not None:
            total += self.soft_labels.numel() * 4
        return int(total)

    @property
    def source_image_shape(self) -> Optional[tuple[int, int, int]]:
        """``(C, H, W)`` of the source images: ``config["image_shape"]``, else the stored images,
        else ``config["channels"]`` and ``config["resolution"]``; ``None`` when none is known (a
        recorded ``None`` counts as unknown)."""
        if self.config.get("image_shape") is not None:
            return tuple(int(size) for size in self.config["image_shape"])
        if self.images is not None:
            return tuple(int(size) for size in self.images.shape[1:])
        if self.config.get("resolution") is not None and self.config.get("channels") is not None:
            side = int(self.config["resolution"])
            return int(self.config["channels"]), side, side
        return None

    def image_budget_bytes(self) -> int:
        """Bytes of IPC float32 images per class at the source resolution (the DD convention).

        Returns:
            ``ipc * num_classes * C * H * W * 4``.

        Raises:
            DistilledDatasetError: when the source image shape is unknown.
        """
        shape = self.source_image_shape
        if shape is None:
            raise DistilledDatasetError(
                "The source image shape is unknown: set config['image_shape'] = [C, H, W] "
                "(or config['channels'] and config['resolution'])."
            )
        return self.ipc * self.num_classes * math.prod(shape) * IMAGE_BUDGET_BYTES_PER_VALUE

    # ------------------------------------------------------------------------------------------
    # datasets
    # ------------------------------------------------------------------------------------------

    @property
    def config_names(self) -> list[str]:
        """Names of the dataset configs this set produces, default first."""
        present = {"latents": self.latents, "images": self.images, "gaussians": self.gaussians}
        return [name for name in CONFIG_ORDER if present[name] is not None]

    def to_dataset_dict(self) -> dict[str, datasets.Dataset]:
        """Builds one ``datasets.Dataset`` per config.

        Returns:
            ``{"latents": ..., "images": ..., "gaussians": ...}`` for the configs the method produced:
            ``latents`` has ``latent`` (Array3D float32) and ``label`` (ClassLabel); ``images`` has
            ``image`` (Image, PNG bytes) and ``label``; both carry ``soft_label`` when present, and
            ``latents`` carries ``class_embedding`` (Array2D float32) for LD3M sets;
            ``gaussians`` has one row per class with ``label``, ``mean``, ``std``, ``timestep``,
            ``latent_shape`` and ``group_seed`` (when recorded).
        """
        builders = {
            "latents": self._latents_dataset,
            "images": self._images_dataset,
            "gaussians": self._gaussians_dataset,
        }
        return {name: builders[name]() for name in self.config_names}

    def _row_columns(self) -> tuple[dict, dict]:
        """Label and optional soft-label columns shared by the latents and images configs."""
        columns = {"label": self.labels.numpy()}
        features = {"label": ClassLabel(names=self.class_names)}
        if self.soft_labels is not None:
            columns["soft_label"] = self.soft_labels.numpy()
            features["soft_label"] = List(Value("float32"))
        return columns, features

    def _latents_dataset(self) -> datasets.Dataset:
        columns, features = self._row_columns()
        columns = {"latent": self.latents.numpy(), **columns}
        features = {"latent": Array3D(shape=tuple(self.latents.shape[1:]), dtype="float32"), **features}
        if self.class_embeddings is not None:
            columns["class_embedding"] = self.class_embeddings.numpy()
            features["class_embedding"] = Array2D(shape=tuple(self.class_embeddings.shape[1:]), dtype="float32")
        return datasets.Dataset.from_dict(columns, features=Features(features))

    def _images_dataset(self) -> datasets.Dataset:
        columns, features = self._row_columns()
        encoded = [{"bytes": encode_png(image), "path": None} for image in self.images.numpy()]
        columns = {"image": encoded, **columns}
        features = {"image": datasets.Image(), **features}
        return datasets.Dataset.from_dict(columns, features=Features(features))

    def _gaussians_dataset(self) -> datasets.Dataset:
        gaussians = self.gaussians
        columns = {
            "label": np.arange(self.num_classes, dtype=np.int64),
            "mean": gaussians["mean"].numpy(),
            "std": gaussians["std"].numpy(),
            "timestep": np.full(self.num_classes, gaussians["timestep"], dtype=np.int32),
            "latent_shape": [gaussians["latent_shape"]] * self.num_classes,
        }
        features = {
            "label": ClassLabel(names=self.class_names),
            "mean": List(Value("float32")),
            "std": List(Value("float32")),
            "timestep": Value("int32"),
            "latent_shape": List(Value("int32")),
        }
        if "group_seeds" in gaussians:
            columns["group_seed"] = np.asarray(gaussians["group_seeds"], dtype=np.int64)
            features["group_seed"] = Value("int64")
        return datasets.Dataset.from_dict(columns, features=Features(features))

    # ------------------------------------------------------------------------------------------
    # Saving and loading
    # ------------------------------------------------------------------------------------------

    def metadata(self) -> dict:
        """The content of ``distillation_config.json``: everything needed to reproduce and reload."""
        gaussians = None
        if self.gaussians is not None:
            gaussians = {
                "latent_shape": self.gaussians["latent_shape"],
                "timestep": self.gaussians["timestep"],
                "group_seeds": "group_seeds" in self.gaussians,
                "extra": _gaussian_extras(self.gaussians),
            }
        return {
            "schema_version": SCHEMA_VERSION,
            "library": "latent-distill",
            "library_version": _library_version(),
            "method": self.method,
            "class_names": self.class_names,
            "num_samples": self.num_samples,
            "ipc": self.ipc,
            "samples_per_class": self.samples_per_class,
            "budget": self.budget,
            "configs": self.config_names,
            "latent_shape": list(self.latents.shape[1:]) if self.latents is not None else None,
            "image_shape": list(self.images.shape[1:]) if self.images is not None else None,
            "soft_labels": self.soft_labels is not None,
            "class_embeddings": self.class_embeddings is not None,
            "gaussians": gaussians,
            "storage_bytes": self.storage_bytes(),
            "image_budget_bytes": self.image_budget_bytes() if self.source_image_shape else None,
            "config": self.config,
            "evaluation": self.evaluation,
        }

    def save_pretrained(self, folder: PathLike, repo_id: Optional[str] = None, overwrite: bool = True) -> Path:
        """Writes the set as a Hub dataset repository folder, atomically.

        Args:
            folder: target folder; it appears complete or not at all.
            repo_id: repository id shown in the card's usage snippet (defaults to ``folder``).
            overwrite: replace an existing ``folder``.

        Returns:
            The folder.
        """
        folder = Path(folder)
        with atomic_directory(folder, overwrite=overwrite) as staging:
            tables = self.to_dataset_dict()
            for name, dataset in tables.items():
                path = staging / DATA_FILE.format(config=name)
                path.parent.mkdir(parents=True, exist_ok=True)
                dataset.to_parquet(str(path))
            preview = self.preview_image()
            if preview is not None:
                preview.save(staging / PREVIEW_FILE, format="PNG")
            atomic_write_json(self.metadata(), staging / CONFIG_FILE)
            card = render_card(self, repo_id=repo_id or str(folder), preview=preview is not None, tables=tables)
            atomic_write_text(str(card), staging / CARD_FILE)
        return folder

    def preview_image(self) -> Optional[PILImage.Image]:
        """The preview grid (one row per class) from ``images``, or ``None`` when there are none."""
        if self.images is None:
            return None
        return preview_grid(self.images, self.labels, self.num_classes, PREVIEW_SAMPLES_PER_CLASS, PREVIEW_MAX_CLASSES)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: Union[str, Path], revision: Optional[str] = None,
                        token: Union[str, bool, None] = None) -> "DistilledDataset":
        """Loads a set written by :meth:`save_pretrained` or :meth:`push_to_hub`.

        Args:
            path_or_repo_id: a local folder, or a Hub dataset repository id.
            revision: branch, tag or commit of the Hub repository.
            token: Hub token for private repositories.

        Returns:
            The dataset, every tensor bit-identical to the saved one.

        Raises:
            DistilledDatasetError: when the folder is not a latent-distill dataset, or was written
                by a newer version of the library.
        """
        folder = _resolve_folder(path_or_repo_id, revision, token)
        meta = read_metadata(folder)
        tables = {name: _read_config_table(folder, name, meta["class_names"]) for name in meta["configs"]}
        rows = tables.get("latents", tables.get("images"))
        labels = rows["label"] if rows is not None else tables["gaussians"]["label"]
        if "latents" in tables and "images" in tables and not np.array_equal(labels, tables["images"]["label"]):
            raise DistilledDatasetError(
                f"The latents and images configs of {folder} have different labels: the folder mixes two sets; "
                "save it again."
            )
        return cls(
            method=meta["method"],
            class_names=meta["class_names"],
            labels=torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
            latents=_tensor_or_none(tables.get("latents"), "latent"),
            images=_decode_images(tables["images"]) if "images" in tables else None,
            soft_labels=_tensor_or_none(rows, "soft_label") if meta["soft_labels"] else None,
            class_embeddings=_tensor_or_none(tables.get("latents"), "class_embedding")
            if meta.get("class_embeddings") else None,
            gaussians=_gaussians_from_table(tables["gaussians"], meta["gaussians"]) if "gaussians" in tables else None,
            config=meta["config"],
            evaluation=meta["evaluation"],
        )

    def push_to_hub(self, repo_id: str, private: Optional[bool] = None, token: Union[str, bool, None] = None,
                    revision: Optional[str] = None, commit_message: Optional[str] = None, api: Optional[Any] = None,
                    local_dir: Optional[PathLike] = None):
        """Saves the set and uploads every file to a Hub dataset repository in one commit.

        The card written by :meth:`save_pretrained` carries the ``configs`` YAML itself, so nothing
        else rewrites it. Under ``accelerate`` only the main process pushes.

        Args:
            repo_id: ``"<owner>/<name>"`` of the dataset repository (created when missing).
            private: visibility of a newly created repository.
            token: Hub token.
            revision: branch to commit to (created when missing).
            commit_message: defaults to a message naming the method and IPC.
            api: an ``HfApi``-like object (``create_repo``, ``create_branch``, ``create_commit``);
                defaults to ``HfApi(token=token)``.
            local_dir: where to save before uploading; kept afterwards. Without it a temporary
                folder is used, removed after a successful upload and kept on failure.

        Returns:
            The ``CommitInfo`` on the main process, ``None`` on the others.

        Raises:
            HubUploadError: when creating the repository or committing fails; names the repository
                and the folder holding the saved files.
        """
        if not PartialState().is_main_process:
            return None
        temporary = local_dir is None
        folder = Path(tempfile.mkdtemp(prefix="latent-distill-push-")) / "repo" if temporary else Path(local_dir)
        try:
            self.save_pretrained(folder, repo_id=repo_id)
        except BaseException:
            if temporary:
                shutil.rmtree(folder.parent, ignore_errors=True)
            raise
        api = api if api is not None else HfApi(token=token)
        message = commit_message or f"Upload {self.method} distilled dataset (IPC {self.ipc}) with latent-distill"
        try:
            commit = _upload_folder(api, folder, repo_id, private, token, revision, message)
        except Exception as error:
            raise HubUploadError(
                f"Uploading {folder} to the Hub dataset repository {repo_id!r} failed: {error}. "
                f"The saved repository is kept in {folder}; retry with push_to_hub(..., local_dir={str(folder)!r}) "
                f"or `hf upload {repo_id} {folder} . --repo-type dataset`.",
                repo_id=repo_id,
                local_dir=folder,
            ) from error
        if temporary:
            shutil.rmtree(folder.parent, ignore_errors=True)
        return commit


# ----------------------------------------------------------------------------------------------
# Hub upload
# ----------------------------------------------------------------------------------------------

def _commit_operations(folder: Path) -> list[CommitOperationAdd]:
    """One ``CommitOperationAdd`` per file under ``folder``, with POSIX paths relative to it."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return [
        CommitOperationAdd(path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=str(path))
        for path in files
    ]


def _upload_folder(api: Any, folder: Path, repo_id: str, private: Optional[bool], token: Union[str, bool, None],
                   revision: Optional[str], message: str):
    """Creates the repository (and branch) if needed, then commits every file of ``folder`` at once."""
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True, token=token)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True, token=token)
    return api.create_commit(
        repo_id,
        operations=_commit_operations(folder),
        commit_message=message,
        repo_type="dataset",
        revision=revision,
        token=token,
    )


# ----------------------------------------------------------------------------------------------
# Reading a folder back
# ----------------------------------------------------------------------------------------------

def _resolve_folder(path_or_repo_id: Union[str, Path], revision: Optional[str],
                    token: Union[str, bool, None]) -> Path:
    """Returns a local folder, downloading a Hub dataset repository when given an id."""
    folder = Path(path_or_repo_id)
    if folder.is_dir():
        return folder
    text = str(path_or_repo_id)
    if isinstance(path_or_repo_id, Path) or folder.is_absolute() or text.startswith(".") or text.count("/") > 1:
        raise DistilledDatasetError(
            f"{text} is not a folder: pass an existing folder or a Hub dataset id such as '<owner>/<name>'."
        )
    return Path(snapshot_download(text, repo_type="dataset", revision=revision, token=token))


def read_metadata(folder: PathLike) -> dict:
    """Reads and checks ``distillation_config.json`` of a dataset folder.

    Raises:
        DistilledDatasetError: when the file is missing or its schema is newer than this library's.
    """
    path = Path(folder) / CONFIG_FILE
    if not path.exists():
        raise DistilledDatasetError(
            f"{path} not found: {folder} is not a latent-distill dataset "
            "(write one with DistilledDataset.save_pretrained)."
        )
    meta = json.loads(path.read_text(encoding="utf-8"))
    version = int(meta.get("schema_version", 0))
    if version > SCHEMA_VERSION:
        raise DistilledDatasetError(
            f"{folder} uses dataset schema version {version}, newer than this library's {SCHEMA_VERSION}: "
            "upgrade latent-distill (pip install -U latent-distill)."
        )
    return meta


def _read_config_table(folder: Path, name: str, class_names: list[str]) -> dict:
    """Reads every parquet shard of one config.

    Returns:
        Column name -> numpy array (image column: list of PNG bytes).
    """
    files = sorted(folder.glob(DATA_GLOB.format(config=name)))
    if not files:
        raise DistilledDatasetError(
            f"No {DATA_GLOB.format(config=name)} in {folder}, yet {CONFIG_FILE} lists config {name!r}: "
            "the folder is incomplete; save or download it again."
        )
    dataset = datasets.Dataset(pa.concat_tables([pq.read_table(path) for path in files]))
    if list(dataset.features["label"].names) != class_names:
        raise DistilledDatasetError(
            f"The {name!r} config's class names differ from {CONFIG_FILE}: "
            "the folder mixes two datasets; save it again."
        )
    images = None
    if "image" in dataset.column_names:
        images = [cell["bytes"] for cell in dataset.cast_column("image", datasets.Image(decode=False))[:]["image"]]
        dataset = dataset.remove_columns("image")
    table = dict(dataset.with_format("numpy")[:])
    if images is not None:
        table["image"] = images
    return table


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


def _library_version() -> Optional[str]:
    """Installed version of latent-distill, or ``None`` when run from a source tree."""
    try:
        return importlib_metadata.version("latent-distill")
    except importlib_metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------

def _to_pil(array: np.ndarray) -> PILImage.Image:
    """A uint8 ``(C, H, W)`` array as a PIL image: mode ``"L"`` for 1 channel, ``"RGB"`` for 3."""
    if array.shape[0] == 1:
        return PILImage.fromarray(np.ascontiguousarray(array[0]), mode="L")
    return PILImage.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0)), mode="RGB")


def encode_png(image: np.ndarray) -> bytes:
    """Encodes a uint8 ``(C, H, W)`` array (C = 1 grey, 3 RGB) as PNG bytes (lossless)."""
    buffer = io.BytesIO()
    _to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Decodes PNG bytes into a uint8 ``(C, H, W)`` array (grey -> 1 channel, else RGB)."""
    with PILImage.open(io.BytesIO(data)) as pil:
        pil = pil.convert("L") if pil.mode in ("L", "1", "I;16", "I") else pil.convert("RGB")
        array = np.asarray(pil, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def preview_grid(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int = 10,
                 max_classes: Optional[int] = None, padding: int = 2) -> PILImage.Image:
    """Tiles uint8 images into a grid, one row per class, the first ``per_class`` of each class.

    The grid is as wide as the fullest shown class (at most ``per_class`` columns).

    Args:
        images: uint8 ``(N, C, H, W)``.
        labels: class index per image.
        num_classes: number of rows (classes without images leave an empty row).
        per_class: most images shown per class.
        max_classes: show only the first classes (keeps the file small for large label sets).
        padding: pixels between tiles (black).

    Returns:
        A PIL image, mode ``"L"`` for grey input and ``"RGB"`` otherwise.
    """
    rows = num_classes if max_classes is None else min(num_classes, max_classes)
    slots = list(_grid_slots(labels, rows, per_class))
    columns = 1 + max((column for _, column, _ in slots), default=0)
    channels, height, width = images.shape[1:]
    cell_h, cell_w = height + padding, width + padding
    grid = np.zeros((channels, rows * cell_h + padding, columns * cell_w + padding), dtype=np.uint8)
    for row, column, index in slots:
        top, left = padding + row * cell_h, padding + column * cell_w
        grid[:, top:top + height, left:left + width] = images[index].numpy()
    return _to_pil(grid)


def _grid_slots(labels: torch.Tensor, rows: int, per_class: int) -> Iterator[tuple[int, int, int]]:
    """Yields ``(row, column, image index)`` for the first ``per_class`` images of each shown class."""
    for row in range(rows):
        indices = torch.nonzero(labels == row, as_tuple=False).flatten()[:per_class]
        for column, index in enumerate(indices.tolist()):
            yield row, column, index


# ----------------------------------------------------------------------------------------------
# Dataset card
# ----------------------------------------------------------------------------------------------

def _source_dataset(config: dict) -> Optional[dict]:
    """The source dataset recorded in the config, as ``{"id", ...}``, or ``None``."""
    for key in _DATASET_KEYS:
        value = config.get(key)
        if isinstance(value, str):
            return {"id": value}
        if isinstance(value, dict) and value.get("id"):
            return value
    return None


def _size_category(rows: int) -> str:
    """The Hub ``size_categories`` bucket of ``rows``."""
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < bound:
            return label
    return "n>1M"


def card_data(dataset: DistilledDataset) -> DatasetCardData:
    """The YAML header of the card: configs, license, tags, provenance."""
    names = dataset.config_names
    configs = [
        {"config_name": name, "data_files": [{"split": "train", "path": DATA_GLOB.format(config=name)}]}
        for name in names
    ]
    configs[0]["default"] = True
    source = _source_dataset(dataset.config)
    distillation = {
        "method": dataset.method,
        "ipc": dataset.ipc,
        "samples_per_class": dataset.samples_per_class,
        "budget": dataset.budget,
        "schema_version": SCHEMA_VERSION,
    }
    if source is not None:
        distillation["source_dataset"] = source
    if dataset.config.get("models"):
        distillation["models"] = dataset.config["models"]
    return DatasetCardData(
        license=dataset.config.get("license", "other"),
        pretty_name=_pretty_name(dataset, source),
        task_categories=["image-classification"],
        size_categories=_size_category(max(dataset.num_samples, dataset.num_classes)),
        source_datasets=[source["id"]] if source is not None else None,
        tags=["dataset-distillation", dataset.method, f"ipc-{dataset.ipc}"],
        configs=configs,
        distillation=distillation,
    )


def _pretty_name(dataset: DistilledDataset, source: Optional[dict]) -> str:
    """``config["pretty_name"]``, else "<source> distilled with <method> (IPC <n>)"."""
    if dataset.config.get("pretty_name"):
        return str(dataset.config["pretty_name"])
    base = source["id"] if source is not None else "Dataset"
    return f"{base} distilled with {dataset.method} (IPC {dataset.ipc})"


def _cell(value: Any) -> str:
    """A markdown table cell: JSON for non-strings, pipes and newlines escaped."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _flatten(mapping: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yields ``("a.b.c", value)`` for every leaf of a nested dict."""
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _recipe_section(dataset: DistilledDataset) -> str:
    rows = [[f"`{_cell(key)}`", _cell(value)] for key, value in _flatten(dataset.config)]
    if not rows:
        return "No hyper-parameters were recorded."
    return _table(["hyper-parameter", "value"], rows)


def _stored_description(dataset: DistilledDataset) -> str:
    kind = dataset.stored_representation
    if kind == "latents" and dataset.class_embeddings is not None:
        return (f"initial latents, float32 {tuple(dataset.latents.shape)} + class embeddings, float32 "
                f"{tuple(dataset.class_embeddings.shape)}")
    if kind == "latents":
        return f"latents, float32 {tuple(dataset.latents.shape)}"
    if kind == "gaussians":
        seeds = " + int64 group seeds" if "group_seeds" in dataset.gaussians else ""
        return f"per-class Gaussians, float32 mean and std {tuple(dataset.gaussians['mean'].shape)}{seeds}"
    return f"images, uint8 {tuple(dataset.images.shape)}"


def _storage_section(dataset: DistilledDataset) -> str:
    stored = dataset.storage_bytes()
    rows = [[f"stored ({_stored_description(dataset)})", f"{stored:,}"]]
    shape = dataset.source_image_shape
    if shape is not None:
        budget = dataset.image_budget_bytes()
        size = "x".join(str(s) for s in shape)
        label = f"IPC-image budget ({dataset.ipc} x {dataset.num_classes} classes x {size} x 4 bytes, float32)"
        rows.append([label, f"{budget:,}"])
        rows.append(["stored / budget", f"{stored / budget:.4g}"])
    else:
        rows.append(["IPC-image budget", "unknown (the config records no image shape)"])
    if dataset.stored_representation == "gaussians":
        stands_for = f"one Gaussian per class stands for IPC {dataset.ipc} images per class"
    else:
        stands_for = f"{dataset.samples_per_class} stored samples per class for IPC {dataset.ipc}"
    lines = [f"Budget mode: **{dataset.budget}** ({stands_for}).", "", _table(["", "bytes"], rows)]
    if dataset.images is not None and dataset.class_embeddings is not None:
        lines += ["", "The `images` config holds the images rendered from the stored initial latents and class "
                      "embeddings (`LatentDistillationPipeline.rerender`) for convenience; they are not counted above."]
    elif dataset.images is not None and dataset.stored_representation != "images":
        lines += ["", f"The `images` config holds images decoded from the stored {dataset.stored_representation} "
                      "for convenience; they are not counted above."]
    if dataset.soft_labels is not None:
        lines += ["", f"Soft labels add {dataset.soft_labels.numel() * 4:,} bytes (float32), not counted above."]
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "—"


def _evaluation_section(dataset: DistilledDataset) -> str:
    if not dataset.evaluation:
        return "No evaluation was recorded."
    rows = []
    for row in dataset.evaluation:
        name = f"{row['reference']} (reference)" if "reference" in row else str(row.get("method", dataset.method))
        accuracy = f"{_number(row.get('acc_mean'))} ± {_number(row.get('acc_std'))}"
        rows.append([_cell(str(row.get("arch", "—"))), _cell(str(row.get("protocol", "—"))), _cell(name),
                     _cell(str(row.get("samples_per_class", "—"))), accuracy, _cell(str(row.get("runs", "—")))])
    table = _table(["architecture", "protocol", "method / reference", "samples per class", "accuracy", "runs"], rows)
    note = ("Accuracy: mean ± std over runs of a student trained on the set and tested on the full real test set. "
            "Hard-label and soft-label protocols are not comparable with each other.")
    return f"{table}\n\n{note}"


def _configs_section(tables: dict[str, datasets.Dataset]) -> str:
    rows = [[f"`{name}`", f"{table.num_rows:,}", ", ".join(f"`{column}`" for column in table.column_names)]
            for name, table in tables.items()]
    return _table(["config", "rows", "columns"], rows)


def _training_snippet(dataset: DistilledDataset, repo_id: str) -> str:
    """A runnable ``DataLoader`` example: the ``images`` config when published, else the library's
    decoded latents or regenerated Gaussians."""
    soft = '  # soft labels: batch["soft_label"]' if dataset.soft_labels is not None else ""
    if dataset.images is not None:
        lines = [
            "from datasets import load_dataset",
            "from torch.utils.data import DataLoader",
            "",
            f'images = load_dataset("{repo_id}", "images", split="train").with_format("torch")',
            "loader = DataLoader(images, batch_size=256, shuffle=True)",
            "for batch in loader:",
            '    x = batch["image"].float() / 127.5 - 1  # uint8 (B, C, H, W) -> [-1, 1]',
            f'    y = batch["label"]{soft}',
            "    ...  # one optimisation step of your classifier",
        ]
    else:
        if dataset.class_embeddings is not None:
            pipeline, models = "LatentDistillationPipeline", "the recorded LD3M models"
            restore = ["images, labels = pipe.rerender(distilled), distilled.labels"]
        elif dataset.latents is not None:
            pipeline, models = "LatentDistillationPipeline", "the recorded autoencoder"
            restore = ["images, labels = pipe.decode(distilled), distilled.labels"]
        else:
            pipeline, models = "D3HRPipeline", "the recorded D3HR models"
            restore = ["regenerated = pipe.regenerate(distilled)",
                       "images, labels = regenerated.images, regenerated.labels"]
        lines = [
            "from torch.utils.data import DataLoader, TensorDataset",
            "",
            f"from latent_distill import {', '.join(sorted(['DistilledDataset', pipeline]))}",
            "",
            f'distilled = DistilledDataset.from_pretrained("{repo_id}")',
            f"pipe = {pipeline}.from_distilled(distilled)  # {models}",
            *restore,
            "loader = DataLoader(TensorDataset(images.float() / 127.5 - 1, labels), batch_size=256, shuffle=True)",
            f"for x, y in loader:{'  # soft labels: distilled.soft_labels' if soft else ''}",
            "    ...  # one optimisation step of your classifier",
        ]
    return "\n".join(["```python", *lines, "```"])


def _preview_section(dataset: DistilledDataset, preview: bool) -> str:
    if preview:
        return f"![Preview: one row per class, up to {PREVIEW_SAMPLES_PER_CLASS} samples each]({PREVIEW_FILE})"
    if dataset.class_embeddings is not None:
        return "No preview: the set stores no images (render them with `LatentDistillationPipeline.rerender`)."
    if dataset.latents is not None:
        return "No preview: the set stores no images (decode its latents with `LatentDistillationPipeline.decode`)."
    if dataset.gaussians is not None and dataset.images is None:
        return ("No preview: the set stores no images (regenerate them from the Gaussians with "
                "`D3HRPipeline.regenerate`).")
    return "No preview was saved."


def _stored_per_class(dataset: DistilledDataset) -> str:
    kind = dataset.stored_representation
    if kind == "gaussians":
        return "stored as one Gaussian per class from which the images are regenerated"
    if dataset.class_embeddings is not None:
        return f"{dataset.samples_per_class} initial latents and class embeddings stored per class"
    return f"{dataset.samples_per_class} {kind} stored per class"


def card_template() -> str:
    """The card template shipped in the package (``latent_distill/templates/distilled_dataset_card.md``).

    Returns:
        Its text: markdown with ``str.format`` placeholders (``{method}``, ``{ipc}``, ...), filled by
        :func:`render_card`.
    """
    return importlib_resources.files(__package__).joinpath(CARD_TEMPLATE).read_text(encoding="utf-8")


def render_card(dataset: DistilledDataset, repo_id: str, preview: bool,
                tables: Optional[dict[str, datasets.Dataset]] = None) -> DatasetCard:
    """Renders the dataset card (YAML header and text) from :func:`card_template`.

    Args:
        dataset: the distilled set.
        repo_id: repository id (or folder) used in the usage snippets.
        preview: whether ``preview.png`` exists and is embedded.
        tables: the output of ``dataset.to_dataset_dict()`` when already built.

    Returns:
        A ``huggingface_hub.DatasetCard``.
    """
    data = card_data(dataset)
    source = _source_dataset(dataset.config)
    fields = {
        "card_data": data.to_yaml(),
        "pretty_name": data.pretty_name,
        "source": f"`{source['id']}`" if source is not None else "an image-classification dataset",
        "method": dataset.method,
        "num_classes": dataset.num_classes,
        "ipc": dataset.ipc,
        "stored_per_class": _stored_per_class(dataset),
        "preview": _preview_section(dataset, preview),
        "default_config": dataset.config_names[0],
        "configs_table": _configs_section(tables if tables is not None else dataset.to_dataset_dict()),
        "repo_id": repo_id,
        "training_snippet": _training_snippet(dataset, repo_id),
        "config_file": CONFIG_FILE,
        "schema_version": SCHEMA_VERSION,
        "recipe_table": _recipe_section(dataset),
        "storage_section": _storage_section(dataset),
        "evaluation_section": _evaluation_section(dataset),
    }
    return DatasetCard(card_template().format(**fields))
