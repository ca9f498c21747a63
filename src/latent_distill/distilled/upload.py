"""Uploading a distilled set to a Hub dataset repository in one commit."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from accelerate import PartialState
from huggingface_hub import CommitOperationAdd, HfApi

from ..checkpointing import PathLike
from ..model_provenance import public_record
from .errors import HubUploadError

if TYPE_CHECKING:
    from .dataset import DistilledDataset


def push_to_hub(dataset: DistilledDataset, repo_id: str, private: Optional[bool] = None,
                token: Union[str, bool, None] = None, revision: Optional[str] = None,
                commit_message: Optional[str] = None, api: Optional[Any] = None,
                local_dir: Optional[PathLike] = None):
    """Saves ``dataset`` and uploads every file to a Hub dataset repository in one commit.

    Args:
        dataset: the distilled set.
        repo_id, private, token, revision, commit_message, api, local_dir: as
            :meth:`~latent_distill.distilled.DistilledDataset.push_to_hub`.

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
        # The published recipe names local model folders by name only (no machine paths).
        replace(dataset, record=public_record(dataset.record)).save_pretrained(folder, repo_id=repo_id,
                                                                             overwrite=True)
    except BaseException:
        if temporary:
            shutil.rmtree(folder.parent, ignore_errors=True)
        raise
    api = api if api is not None else HfApi(token=token)
    message = commit_message or f"Upload {dataset.method} distilled dataset (IPC {dataset.ipc}) with latent-distill"
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
