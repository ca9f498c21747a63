"""Which group of Gaussian draws each class keeps: searched anew, or redrawn from a stored entry.

A D3HR set stores, per class, the seed, index and size of the candidate chunk holding the group it
kept, with the search settings they were found under (:func:`search_key`). Sampling again with the
same settings redraws those groups from their seeds (same draws, no search); other settings search
again (:func:`~latent_distill.d3hr.group_sampling.select_group`).
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from .config import D3HRConfig
from .group_sampling import redraw_group, select_group

SEARCH_FIELDS = ("ipc", "seed", "num_candidates", "weight_mean", "weight_std", "weight_skew", "skew",
                 "max_chunk_bytes")
"""The :class:`D3HRConfig` fields that determine which group the search keeps."""


def search_key(config: D3HRConfig) -> dict[str, Any]:
    """The settings that determine which group the search keeps (stored with the groups).

    Args:
        config: the run configuration.

    Returns:
        ``{field: value}`` for every field of :data:`SEARCH_FIELDS`.
    """
    return {key: getattr(config, key) for key in SEARCH_FIELDS}


def kept_groups(std: torch.Tensor, config: D3HRConfig, classes: list[int],
                stored: Optional[dict] = None) -> dict[int, dict[str, Any]]:
    """Per class, the kept group's standard-form draws and how to find it again.

    Args:
        std: ``(K, D)`` per-class standard deviations of the Gaussians (they weigh the group score).
        config: the run configuration (``ipc``, ``seed`` and the search settings).
        classes: the classes to keep a group for.
        stored: a stored ``gaussians`` entry; when its ``search`` equals ``search_key(config)`` the
            groups are redrawn from its ``group_seeds``, ``group_indices`` and ``chunk_counts``.

    Returns:
        Class -> ``{"draws": (ipc, D), "chunk_seed", "index", "chunk_count", "score"}`` (``score``
        is ``None`` for a redrawn group).
    """
    dim = std.shape[1]
    redraw = stored is not None and stored.get("search") == search_key(config)
    kept = {}
    for class_index in classes:
        if redraw:
            seed_of_chunk = int(stored["group_seeds"][class_index])
            index = int(stored["group_indices"][class_index])
            count = int(stored["chunk_counts"][class_index])
            draws = redraw_group(seed_of_chunk, index, count, config.ipc, dim)
            kept[class_index] = {"draws": draws, "chunk_seed": seed_of_chunk, "index": index,
                                 "chunk_count": count, "score": None}
            continue
        choice = select_group(std[class_index], config.ipc, config.num_candidates, config.seed, class_index,
                              config.weights, config.skew, config.max_chunk_bytes)
        kept[class_index] = {"draws": choice.draws, "chunk_seed": choice.chunk_seed, "index": choice.index,
                             "chunk_count": choice.chunk_count, "score": choice.score}
    return kept
