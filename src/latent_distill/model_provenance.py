"""Where a model came from and which weights it holds, as a distilled set records them.

A distilled set can be turned back into images only with the models it was distilled with. Each model
is therefore recorded with its reference (a Hub id, a folder, or a model shipped in this package),
the commit a Hub revision resolved to, and a fingerprint of its weights, which the pipelines check
before decoding, re-rendering or regenerating a set.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .default_models import BUILTIN_PREFIX

COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")
SNAPSHOT_COMMIT = re.compile(r"/snapshots/([0-9a-f]{40})(/|$)")
#: Where :func:`~latent_distill.precision.freeze` keeps the fingerprint of weights it rounds to a lower precision.
FINGERPRINT_ATTRIBUTE = "latent_distill_weights_fingerprint"


class ModelMismatchError(ValueError):
    """Raised when a model's weights are not those a distilled set was distilled with."""


def weights_fingerprint(module: nn.Module) -> str:
    """A hash of a model's public config and its float32 weights.

    A model that :func:`~latent_distill.precision.freeze` cast to bfloat16 / float16 answers with the
    fingerprint of its weights as loaded (kept before the cast), so a set distilled in mixed
    precision still matches the full-precision model it was loaded from.

    Args:
        module: the model (a diffusers ``ModelMixin`` or any ``nn.Module``).

    Returns:
        16 hexadecimal characters.
    """
    remembered = getattr(module, FINGERPRINT_ATTRIBUTE, None)
    if remembered is not None and next(module.parameters()).dtype != torch.float32:
        return remembered
    digest = hashlib.sha256()
    config = getattr(module, "config", None)
    if config is not None:
        public = {key: value for key, value in dict(config).items() if not str(key).startswith("_")}
        digest.update(json.dumps(public, sort_keys=True, default=str).encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        if tensor.is_floating_point():
            tensor = tensor.detach().float()
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def is_local_reference(reference: Optional[str]) -> bool:
    """Whether a recorded model reference is a folder on this machine (not a Hub id, not a shipped model)."""
    reference = str(reference) if reference is not None else None
    if not reference or reference.startswith(BUILTIN_PREFIX):
        return False
    return os.path.isabs(reference) or reference.startswith((".", "~")) or Path(reference).exists()


def public_reference(reference: Optional[str]) -> Optional[str]:
    """The reference as it may be published: a local folder becomes its name alone (no machine path)."""
    if is_local_reference(reference):
        return Path(os.path.expanduser(str(reference))).resolve().name
    return reference


def public_record(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of a run record fit to publish: every local model folder is named by its folder name alone.

    Args:
        record: a run record (``DistilledDataset.record``).

    Returns:
        The copy (Hub ids, shipped models, revisions and fingerprints unchanged).
    """
    public = json.loads(json.dumps(record, default=str))
    for reference in (public.get("models") or {}).values():
        if isinstance(reference, dict) and is_local_reference(reference.get("path")):
            reference["path"] = public_reference(reference["path"])
            reference["local"] = True
    return public


def resolved_revision(reference: Optional[str], revision: Optional[str] = None,
                      loaded_from: Optional[str] = None) -> Optional[str]:
    """The commit a Hub model's revision resolved to, found without the network.

    Args:
        reference: the model's Hub id (local folders and shipped models have no revision).
        revision: the requested revision (``None``: ``main``); a commit hash is returned as it is.
        loaded_from: the folder the weights were read from (a component's ``_name_or_path``); a Hub
            cache snapshot folder names its commit.

    Returns:
        The 40-character commit hash, or ``None`` when it is not known here (a local folder, or a
        repository not in the cache).
    """
    reference = str(reference) if reference is not None else None
    if revision and COMMIT_HASH.match(revision):
        return revision
    snapshot = SNAPSHOT_COMMIT.search(Path(str(loaded_from)).as_posix()) if loaded_from else None
    if snapshot:
        return snapshot.group(1)
    if not reference or reference.startswith(BUILTIN_PREFIX) or is_local_reference(reference):
        return None
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    ref = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=reference, repo_type="model") / "refs" / (
        revision or "main")
    if ref.is_file():
        commit = ref.read_text().strip()
        return commit if COMMIT_HASH.match(commit) else None
    return None


def check_weights(record: Optional[dict[str, Any]], module: nn.Module, name: str) -> None:
    """Refuses a model whose weights differ from those a set recorded for ``name``.

    Args:
        record: the set's ``record["models"][name]`` (a set without a fingerprint is not checked).
        module: the model about to decode, re-render or regenerate.
        name: the component (``"vae"``, ``"transformer"``), named in the error.

    Raises:
        ModelMismatchError: when the recorded fingerprint differs from the model's.
    """
    expected = (record or {}).get("fingerprint")
    if expected is None:
        return
    actual = weights_fingerprint(module)
    if actual != expected:
        source = public_reference((record or {}).get("path")) or "a model built in memory"
        raise ModelMismatchError(
            f"The {name} given has weights {actual}, but the set was distilled with {expected} ({source}): its "
            f"stored latents only mean something to that {name}. Load the recorded models with from_distilled(set), "
            "or pass the pipeline holding the exact models the set was distilled with."
        )
