"""Randomness derived from (seed, step, class, ...), so results do not depend on run history.

A resumed run, or a run split over several processes, draws exactly the numbers an uninterrupted
single-process run draws, because every random choice is keyed by what it is for.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator

import torch


def derive_seed(*keys: int | str) -> int:
    """Mixes keys into a 63-bit seed (stable across processes and Python versions)."""
    digest = hashlib.blake2b("/".join(str(key) for key in keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator_for(*keys: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded by :func:`derive_seed` of ``keys``."""
    return torch.Generator().manual_seed(derive_seed(*keys))


@contextlib.contextmanager
def seeded(*keys: int | str) -> Iterator[None]:
    """Runs a block (e.g. a network's initialisation) under the global RNG seeded by ``keys``,
    restoring the previous global state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(*keys))
        yield
