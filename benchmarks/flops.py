"""A lean FLOP counter for long runs: ``torch.utils.flop_counter``'s counting without its module tracker.

``FlopCounterMode`` tracks which module every operator runs in, through forward hooks on every
module and gradient hooks on their inputs and outputs; under LD3M's two-pass render (gradient
checkpointing, ``torch.autograd.grad`` inside a custom backward) resident memory grows with every
re-rendered chunk while it is active, past 24 GB for one LD3M-DM iteration at IPC 10 and 256 px.
:class:`TotalFlopCounter` counts the same operators with the same formulas (``flop_registry``,
decomposing the operators it has no formula for) into one total, and keeps no references.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

#: Operators that only ask about a tensor's layout (no computation), as ``FlopCounterMode`` skips them.
_LAYOUT_QUERIES = {
    torch.ops.aten.is_contiguous.default, torch.ops.aten.is_contiguous.memory_format,
    torch.ops.aten.is_strides_like_format.default, torch.ops.aten.is_non_overlapping_and_dense.default,
    torch.ops.aten.size.default, torch.ops.aten.sym_size.default, torch.ops.aten.stride.default,
    torch.ops.aten.sym_stride.default, torch.ops.aten.storage_offset.default,
    torch.ops.aten.sym_storage_offset.default, torch.ops.aten.numel.default, torch.ops.aten.sym_numel.default,
    torch.ops.aten.dim.default, torch.ops.prim.layout.default,
}


class TotalFlopCounter(TorchDispatchMode):
    """Counts the FLOPs of everything run inside it (forward and backward), as one total.

    Example::

        with TotalFlopCounter() as counter:
            loss = model(x).sum()
            loss.backward()
        counter.total
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def get_total_flops(self) -> int:
        """The FLOPs counted so far (``FlopCounterMode``'s accessor name)."""
        return self.total

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        kwargs = kwargs or {}
        if func in _LAYOUT_QUERIES:
            return NotImplemented
        packet = func._overloadpacket
        if packet not in flop_registry and func is not torch.ops.prim.device.default:
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = func(*args, **kwargs)
        if packet in flop_registry:
            self.total += int(flop_registry[packet](*args, **kwargs, out_val=out))
        return out
