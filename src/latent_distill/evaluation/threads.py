"""CPU thread count for evaluation scripts (library code never changes it)."""

from __future__ import annotations

import os
from typing import Optional

import torch


def configure_threads(num_threads: Optional[int] = None) -> int:
    """Sets the number of intra-op CPU threads torch uses (for scripts; the library never calls it).

    On a machine shared with other heavy processes, fewer threads than cores is often faster:
    element-wise kernels synchronise all threads and stall when one of them is descheduled.

    Args:
        num_threads: threads to use; ``None`` uses every core (``os.cpu_count()``).

    Returns:
        The thread count now in effect.
    """
    torch.set_num_threads(int(num_threads or os.cpu_count() or 1))
    return torch.get_num_threads()
