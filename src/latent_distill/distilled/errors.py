"""The errors of distilled sets: an invalid set or folder, a failed upload."""

from __future__ import annotations

from pathlib import Path


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
