"""Atomic writes and resumable training state.

Every long loop in the library saves its state through :func:`save_state` and reads it back with
:func:`load_state`; outputs are written to a temporary sibling and renamed into place, so a crash
never leaves a half-written file or folder that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
import torch
from safetensors.torch import save_file

PathLike = Union[str, os.PathLike]


def _default_mode(directory: bool) -> int:
    """Permissions an ordinary ``open``/``mkdir`` would give under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_directory(target: PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yields a temporary folder that replaces ``target`` only when the block exits cleanly.

    Args:
        target: the final folder.
        overwrite: replace an existing ``target``; when ``False`` an existing folder raises.

    Yields:
        The temporary folder to write into (a sibling of ``target``).
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists: remove it or pass overwrite=True.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    os.chmod(staging, _default_mode(directory=True))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, backup)
    os.replace(staging, target)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renamed over ``path`` only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _default_mode(directory=False))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: PathLike) -> None:
    """Saves ``tensors`` as a safetensors file at ``path`` atomically."""
    with atomic_file(path) as tmp:
        save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(tmp))


def atomic_write_text(text: str, path: PathLike) -> None:
    """Writes ``text`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(obj: Any, path: PathLike) -> None:
    """Writes ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", path)


def rng_state() -> dict:
    """Captures the Python, numpy and torch random states as plain values and tensors.

    The numpy state's key array is stored as a tensor, so a state file loads with
    ``torch.load(weights_only=True)`` (no pickled code objects).
    """
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss),
                      float(cached_gaussian)),
            "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    """Restores states captured by :func:`rng_state`."""
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])


def save_state(path: PathLike, **state: Any) -> None:
    """Saves a training state (tensors, state dicts, counters) plus the RNG states, atomically.

    Values must be tensors, numbers, strings, ``None`` and lists / tuples / dicts of them, so that
    :func:`load_state` reads the file without unpickling arbitrary objects.
    """
    atomic_torch_save({**state, "rng": rng_state()}, path)


class CheckpointFormatError(ValueError):
    """Raised when a state file cannot be read safely; the message names the file and the fix."""


def load_state(path: PathLike) -> dict | None:
    """Loads a state written by :func:`save_state` and restores the RNG states.

    The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only, never
    pickled code.

    Returns:
        The saved dictionary, or ``None`` when ``path`` does not exist.

    Raises:
        CheckpointFormatError: when the file is damaged or holds objects other than tensors and
            plain values (e.g. written by another program).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError by cause
        raise CheckpointFormatError(
            f"The state file {path} cannot be read as a latent-distill checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'}): it is damaged or was written by another "
            "program. Delete it (or its checkpoint folder) to start the run afresh."
        ) from error
    if not isinstance(state, dict) or "rng" not in state:
        raise CheckpointFormatError(f"{path} is not a latent-distill state file (no RNG states): delete it to start "
                                    "the run afresh.")
    set_rng_state(state.pop("rng"))
    return state


class CheckpointMismatchError(ValueError):
    """Raised when a run is resumed from a state written with other settings."""


def load_resumable_state(path: PathLike | None, resume: bool, settings_key: str, settings: Any,
                         upgrade: Optional[Callable[[Any], Any]] = None) -> dict | None:
    """The state to resume from, checked against the settings of the run that resumes.

    Args:
        path: the state file (``None``: the run keeps no state).
        resume: whether the caller asked to resume.
        settings_key: the entry of the saved state holding the settings it was written with.
        settings: this run's settings; they must equal the saved ones.
        upgrade: brings saved settings written by an earlier version to the current form before the
            comparison (e.g. :meth:`~latent_distill.config.SavedConfig.upgrade_dict`).

    Returns:
        The saved state (RNG states restored), or ``None`` when there is nothing to resume.

    Raises:
        CheckpointMismatchError: when the state was written with other settings.
    """
    if not resume or path is None or not Path(path).exists():
        return None
    saved = load_state(path)
    saved_settings = upgrade(saved[settings_key]) if upgrade is not None else saved[settings_key]
    if saved_settings != settings:
        raise CheckpointMismatchError(
            f"The state in {path} was written with other settings: resume with the same arguments, "
            "or start in a new checkpoint folder."
        )
    return saved
