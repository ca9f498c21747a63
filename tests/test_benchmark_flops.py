"""The benchmarks' lean FLOP counter counts what ``torch.utils.flop_counter.FlopCounterMode`` counts."""

import torch
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.flops import TotalFlopCounter


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GroupNorm(2, 8), torch.nn.SiLU(),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 10))


def _step(network: torch.nn.Module, backward: bool) -> None:
    inputs = torch.randn(4, 3, 8, 8, requires_grad=True)
    out = checkpoint(network, inputs, use_reentrant=False)
    if backward:
        out.pow(2).sum().backward()


def test_total_matches_flop_counter_mode_forward_and_backward():
    network = _network()
    with FlopCounterMode(display=False) as reference:
        _step(network, backward=True)
    with TotalFlopCounter() as lean:
        _step(network, backward=True)
    with TotalFlopCounter() as forward_only:
        _step(network, backward=False)
    assert lean.get_total_flops() == reference.get_total_flops()
    assert 0 < forward_only.total < lean.total


def test_counter_starts_at_zero_and_accumulates():
    network = _network()
    counter = TotalFlopCounter()
    with counter:
        _step(network, backward=False)
    once = counter.total
    with counter:
        _step(network, backward=False)
    assert counter.total == 2 * once
