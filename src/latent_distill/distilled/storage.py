"""A distilled set as a folder: written atomically in the Hub dataset layout, read back from a folder
or a downloaded Hub dataset repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import snapshot_download

from ..checkpointing import (
    PathLike,
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
)
from .card import render_card
from .errors import DistilledDatasetError
from .layout import (
    CARD_FILE,
    CONFIG_FILE,
    DATA_FILE,
    DATA_GLOB,
    PREVIEW_FILE,
    SCHEMA_VERSION,
)
from .tables import tensor_fields

#: Entries every distillation_config.json has.
REQUIRED_METADATA = ("method", "class_names", "configs", "config", "evaluation", "soft_labels", "gaussians", "latent_shape")

if TYPE_CHECKING:
    from .dataset import DistilledDataset


def check_target_folder(folder: Path, overwrite: bool) -> None:
    """Refuses to replace anything but an empty folder or a distilled set, unless ``overwrite``.

    Raises:
        DistilledDatasetError: for a file, or a non-empty folder without ``distillation_config.json``.
    """
    if overwrite or not folder.exists():
        return
    if not folder.is_dir():
        raise DistilledDatasetError(f"{folder} is a file: save the set to a folder path, or remove the file first.")
    if any(folder.iterdir()) and not (folder / CONFIG_FILE).is_file():
        raise DistilledDatasetError(
            f"{folder} is a non-empty folder that is not a distilled set (no {CONFIG_FILE}): saving would replace "
            "its files. Choose another folder, or pass overwrite=True to replace it."
        )


def write_folder(dataset: DistilledDataset, folder: PathLike, repo_id: Optional[str] = None,
                 overwrite: bool = False) -> Path:
    """Writes ``dataset`` as a Hub dataset repository folder, atomically: the parquet configs, the
    preview, ``distillation_config.json`` and the card.

    Args:
        dataset: the distilled set.
        folder: target folder; it appears complete or not at all. An existing distilled set there is
            replaced.
        repo_id: repository id shown in the card's usage snippet (defaults to the folder's name).
        overwrite: also replace a non-empty folder that is not a distilled set.

    Returns:
        The folder.

    Raises:
        DistilledDatasetError: when ``folder`` holds other files and ``overwrite`` is not set.
    """
    folder = Path(folder)
    check_target_folder(folder, overwrite)
    with atomic_directory(folder, overwrite=True) as staging:
        tables = dataset.to_dataset_dict()
        for name, table in tables.items():
            path = staging / DATA_FILE.format(config=name)
            path.parent.mkdir(parents=True, exist_ok=True)
            table.to_parquet(str(path))
        preview = dataset.preview_image()
        if preview is not None:
            preview.save(staging / PREVIEW_FILE, format="PNG")
        atomic_write_json(dataset.metadata(), staging / CONFIG_FILE)
        card = render_card(dataset, repo_id=repo_id or folder.resolve().name, preview=preview is not None,
                           tables=tables)
        atomic_write_text(str(card), staging / CARD_FILE)
    return folder


def read_folder(path_or_repo_id: Union[str, Path], revision: Optional[str] = None,
                token: Union[str, bool, None] = None) -> dict:
    """Reads the fields of a distilled set from a folder written by :func:`write_folder`.

    Args:
        path_or_repo_id: a local folder, or a Hub dataset repository id (downloaded).
        revision: branch, tag or commit of the Hub repository.
        token: Hub token for private repositories.

    Returns:
        The keyword arguments of :class:`~latent_distill.distilled.DistilledDataset`, every tensor
        bit-identical to the saved one.

    Raises:
        DistilledDatasetError: when the folder is not a latent-distill dataset, is incomplete or
            mixes two sets, or was written by a newer version of the library.
    """
    folder = _resolve_folder(path_or_repo_id, revision, token)
    meta = read_metadata(folder)
    tables = {name: _read_config_table(folder, name, meta["class_names"]) for name in meta["configs"]}
    if "latents" in tables and "images" in tables and \
            not np.array_equal(tables["latents"]["label"], tables["images"]["label"]):
        raise DistilledDatasetError(
            f"The latents and images configs of {folder} have different labels: the folder mixes two sets; "
            "save it again."
        )
    return {
        "method": meta["method"],
        "class_names": meta["class_names"],
        **tensor_fields(tables, meta),
        "record": meta["config"],
        "evaluation": meta["evaluation"],
    }


def read_metadata(folder: PathLike) -> dict:
    """Reads and checks ``distillation_config.json`` of a dataset folder.

    Args:
        folder: the dataset folder.

    Returns:
        The parsed file.

    Raises:
        DistilledDatasetError: when the file is missing or its schema is newer than this library's.
    """
    path = Path(folder) / CONFIG_FILE
    if not path.exists():
        raise DistilledDatasetError(
            f"{path} not found: {folder} is not a latent-distill dataset "
            "(write one with DistilledDataset.save_pretrained)."
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DistilledDatasetError(
            f"{path} is not valid JSON ({error}): the folder is damaged; save or download the set again."
        ) from error
    missing = [key for key in REQUIRED_METADATA if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise DistilledDatasetError(
            f"{path} lacks {missing}: it was not written by DistilledDataset.save_pretrained or was cut short; "
            "save or download the set again."
        )
    version = int(meta.get("schema_version", 0))
    if version > SCHEMA_VERSION:
        raise DistilledDatasetError(
            f"{folder} uses dataset schema version {version}, newer than this library's {SCHEMA_VERSION}: "
            "upgrade latent-distill (pip install -U latent-distill)."
        )
    return meta


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


def _read_parquet(path: Path) -> pa.Table:
    """One parquet shard, or an error naming the damaged file."""
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise DistilledDatasetError(
            f"{path} cannot be read as parquet ({type(error).__name__}: {error}): the file is truncated or damaged; "
            "save or download the set again."
        ) from error


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
    dataset = datasets.Dataset(pa.concat_tables([_read_parquet(path) for path in files]))
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
