"""The distilled set every method of the library ends in: its fields, checks and storage accounting.

Storage convention: :meth:`DistilledDataset.storage_bytes` counts what the method distilled into
(latents as float32, Gaussian parameters as float32, or, for sets that are only images, the uint8
pixels that are published), and :meth:`DistilledDataset.image_budget_bytes` counts IPC images per
class at the source resolution as float32, as dataset-distillation papers do (synthetic images are
optimised and stored as float tensors; LatentDD's budget of ``IPC * 3 f^2 / C`` latents per class
equates latents and images at the same element size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Optional, Union

import datasets
import torch
from PIL import Image as PILImage

from ..checkpointing import PathLike
from . import upload
from .errors import DistilledDatasetError
from .layout import CONFIG_ORDER, GROUP_REFERENCE_KEYS, SCHEMA_VERSION
from .preview import PREVIEW_MAX_CLASSES, PREVIEW_SAMPLES_PER_CLASS, preview_grid
from .storage import read_folder, write_folder
from .tables import build_tables
from .validation import (
    as_float32,
    as_uint8_images,
    check_rows,
    cpu_tensor,
    gaussian_extras,
    normalise_gaussians,
    require_json,
)

IMAGE_BUDGET_BYTES_PER_VALUE = 4  # float32, see the module docstring


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
        record: the run record: every hyper-parameter and provenance (JSON values; stored as the
            ``config`` entry of ``distillation_config.json``). Read by this class: ``ipc``,
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
    record: dict = field(default_factory=dict)
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
            self.gaussians = normalise_gaussians(self.gaussians, self.num_classes)
            if not self.has_rows:
                self._check_gaussian_labels()
        require_json(self.record, "record")
        require_json(self.evaluation, "evaluation")
        self._check_ipc_known()

    def _normalise_rows(self) -> None:
        """Checks and converts labels, latents, images and soft labels."""
        labels = cpu_tensor(self.labels, "labels")
        if labels.is_floating_point() or labels.ndim != 1:
            raise DistilledDatasetError(
                f"labels must be an integer tensor (N,), got {labels.dtype} {tuple(labels.shape)}."
            )
        self.labels = labels.to(torch.int64)
        if self.labels.numel() and (self.labels.min() < 0 or self.labels.max() >= self.num_classes):
            raise DistilledDatasetError(f"labels must lie in [0, {self.num_classes}) (one per class name).")
        if self.latents is not None:
            self.latents = as_float32(self.latents, "latents", 4)
        if self.images is not None:
            self.images = as_uint8_images(self.images)
        if self.soft_labels is not None:
            self.soft_labels = as_float32(self.soft_labels, "soft_labels", 2)
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
            self.class_embeddings = as_float32(self.class_embeddings, "class_embeddings", 3)
        for name in ("latents", "images", "soft_labels", "class_embeddings"):
            check_rows(name, getattr(self, name), self.num_samples)

    def _check_gaussian_labels(self) -> None:
        """A Gaussians-only set has one row per class, in class order."""
        if not torch.equal(self.labels, torch.arange(self.num_classes)):
            raise DistilledDatasetError(
                "labels of a Gaussians-only set name the class of each Gaussian row: "
                f"pass labels=torch.arange({self.num_classes})."
            )

    def _check_ipc_known(self) -> None:
        """Fails early when neither the record nor the rows tell the images per class."""
        if "ipc" in self.record:
            return
        if self.budget == "storage":
            raise DistilledDatasetError(
                "With budget='storage' the stored samples per class differ from the images per class: "
                "set record['ipc']."
            )
        if not self.has_rows:
            raise DistilledDatasetError(
                "A Gaussians-only set cannot infer its images per class: set record['ipc'] (the group size)."
            )
        if self._uniform_count() is None:
            raise DistilledDatasetError(
                "Classes hold different numbers of rows, so the images per class is ambiguous: set record['ipc']."
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
        """Images per class the set stands for: ``record["ipc"]``, else rows per class."""
        if "ipc" in self.record:
            return int(self.record["ipc"])
        return int(self._uniform_count())

    @property
    def samples_per_class(self) -> int:
        """Stored samples per class: ``record["latents_per_class"]``, else rows per class, else IPC.

        With a storage budget (``budget == "storage"``) latent methods store more latents per class
        than IPC images; with a count budget the two are equal.
        """
        if "latents_per_class" in self.record:
            return int(self.record["latents_per_class"])
        count = self._uniform_count() if self.has_rows else None
        return count if count is not None else self.ipc

    @property
    def budget(self) -> str:
        """``"storage"`` (same bytes as IPC images) or ``"count"`` (same number of samples)."""
        return str(self.record.get("budget", "count"))

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
        as float32 ``mean`` and ``std`` plus 8 bytes per integer that names a kept group (its chunk
        seed, index and chunk count: :data:`GROUP_REFERENCE_KEYS`); a set that is only images
        counts its uint8 pixels. Images decoded from latents or Gaussians are a convenience copy and
        are not counted.

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
            total += 8 * sum(len(self.gaussians.get(key) or []) for key in GROUP_REFERENCE_KEYS)
        else:
            total = self.images.numel()
        if include_soft_labels and self.soft_labels is not None:
            total += self.soft_labels.numel() * 4
        return int(total)

    @property
    def source_image_shape(self) -> Optional[tuple[int, int, int]]:
        """``(C, H, W)`` of the source images: ``record["image_shape"]``, else the stored images,
        else ``record["channels"]`` and ``record["resolution"]``; ``None`` when none is known (a
        recorded ``None`` counts as unknown)."""
        if self.record.get("image_shape") is not None:
            return tuple(int(size) for size in self.record["image_shape"])
        if self.images is not None:
            return tuple(int(size) for size in self.images.shape[1:])
        if self.record.get("resolution") is not None and self.record.get("channels") is not None:
            side = int(self.record["resolution"])
            return int(self.record["channels"]), side, side
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
                "The source image shape is unknown: set record['image_shape'] = [C, H, W] "
                "(or record['channels'] and record['resolution'])."
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
        return build_tables(self)

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
                "extra": gaussian_extras(self.gaussians),
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
            "config": self.record,
            "evaluation": self.evaluation,
        }

    def save_pretrained(self, folder: PathLike, repo_id: Optional[str] = None, overwrite: bool = False) -> Path:
        """Writes the set as a Hub dataset repository folder, atomically.

        An existing distilled set in ``folder`` is replaced; any other non-empty folder is refused
        unless ``overwrite=True``, so a mistyped path never deletes unrelated files.

        Args:
            folder: target folder; it appears complete or not at all.
            repo_id: repository id shown in the card's usage snippet (defaults to ``folder``).
            overwrite: also replace a non-empty folder that is not a distilled set.

        Returns:
            The folder.

        Raises:
            DistilledDatasetError: when ``folder`` is a non-empty folder that is not a distilled set
                (or a file) and ``overwrite`` is not set.
        """
        return write_folder(self, folder, repo_id=repo_id, overwrite=overwrite)

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
        return cls(**read_folder(path_or_repo_id, revision, token))

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
        return upload.push_to_hub(self, repo_id, private=private, token=token, revision=revision,
                                  commit_message=commit_message, api=api, local_dir=local_dir)


def _library_version() -> Optional[str]:
    """Installed version of latent-distill, or ``None`` when run from a source tree."""
    try:
        return importlib_metadata.version("latent-distill")
    except importlib_metadata.PackageNotFoundError:
        return None
