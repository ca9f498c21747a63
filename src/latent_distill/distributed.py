"""Multi-process helpers on top of ``accelerate.PartialState``.

Work is split by class or by row, randomness is keyed by what it is for (``seeding.py``), and the
gradient of the synthetic set is summed across processes before every optimiser step, so every
process holds the same synthetic set and optimiser state, and a run gives the same result whatever
the number of processes (bit for bit for class-separable objectives, whose per-class gradients
touch disjoint rows).

Collectives go through accelerate's ``gather`` / ``reduce`` on tensors moved to the process device
(``PartialState().device``): NCCL reduces only CUDA tensors, gloo only CPU ones, so a tensor is sent
from the device the backend needs and handed back on the device it came from.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence, TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import gather, reduce

T = TypeVar("T")


def shard_bounds(count: int, state: PartialState) -> tuple[int, int]:
    """``[start, stop)`` of this process's contiguous share of ``count`` items."""
    return all_shard_bounds(count, state.num_processes)[state.process_index]


def all_shard_bounds(count: int, num_processes: int) -> list[tuple[int, int]]:
    """Every process's ``[start, stop)`` share of ``count`` items, in process order (shares differ by one at most)."""
    per_process, remainder = divmod(count, num_processes)
    bounds = []
    for index in range(num_processes):
        start = index * per_process + min(index, remainder)
        bounds.append((start, start + per_process + (1 if index < remainder else 0)))
    return bounds


def shard(items: Sequence[T], state: PartialState) -> list[T]:
    """This process's contiguous share of ``items`` (all of them on one process)."""
    start, stop = shard_bounds(len(items), state)
    return list(items[start:stop])


def batch_aligned_bounds(count: int, batch_size: int, state: PartialState) -> list[tuple[int, int]]:
    """Every process's ``[start, stop)`` rows when whole batches of ``batch_size`` are shared out.

    Splitting at batch boundaries keeps each batch exactly as a single process would form it, so
    batched computations give bit-identical results whatever the number of processes.
    """
    batches = -(-count // batch_size)
    bounds = []
    for index in range(state.num_processes):
        per_process, remainder = divmod(batches, state.num_processes)
        first = index * per_process + min(index, remainder)
        last = first + per_process + (1 if index < remainder else 0)
        bounds.append((min(first * batch_size, count), min(last * batch_size, count)))
    return bounds


def all_gather_rows(local: torch.Tensor, bounds: Sequence[tuple[int, int]], state: PartialState) -> torch.Tensor:
    """Concatenates every process's rows; process ``i`` holds rows ``bounds[i]``.

    Args:
        local: this process's rows.
        bounds: ``[start, stop)`` of every process, in process order, covering all rows.
        state: the process state.

    Returns:
        All rows, in order, on every process.
    """
    if state.num_processes == 1:
        return local
    largest = max(stop - start for start, stop in bounds)
    padded = local.new_zeros((largest, *local.shape[1:]), device=state.device)
    padded[: len(local)] = local.to(state.device)
    pieces = gather(padded).split(largest)
    rows = torch.cat([piece[: stop - start] for piece, (start, stop) in zip(pieces, bounds)])
    return rows.to(local.device)


def sum_across_processes(value: float, state: PartialState) -> float:
    """Sums a Python number over processes."""
    if state.num_processes == 1:
        return value
    return float(reduce(torch.tensor([value], dtype=torch.float64, device=state.device), reduction="sum").item())


def min_across_processes(value: int, state: PartialState) -> int:
    """The smallest of an integer over processes (e.g. what every process has already finished)."""
    if state.num_processes == 1:
        return value
    return -int(reduce(torch.tensor([-value], dtype=torch.int64, device=state.device), reduction="max").item())


def sum_tensors_across_processes(tensors: Iterable[torch.Tensor], state: PartialState) -> None:
    """Replaces each tensor by its sum over processes, in place (each through the process device).

    Args:
        tensors: the tensors, in the same order and shapes on every process.
        state: the process state.
    """
    if state.num_processes == 1:
        return
    for tensor in tensors:
        tensor.copy_(reduce(tensor.to(state.device), reduction="sum").to(tensor.device))


def sum_gradients_across_processes(parameters: Iterable[torch.Tensor], state: PartialState) -> None:
    """Replaces every parameter's gradient by its sum over processes, in one collective.

    A parameter without a gradient contributes zeros (another process may have one). The gradients are
    flattened into one buffer on the process device, summed, and copied back in place.

    Args:
        parameters: the parameters, in the same order on every process.
        state: the process state.
    """
    if state.num_processes == 1:
        return
    parameters = list(parameters)
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    flat = torch.cat([parameter.grad.detach().flatten().to(state.device, torch.float32) for parameter in parameters])
    summed = reduce(flat, reduction="sum")
    for parameter, piece in zip(parameters, summed.split([p.numel() for p in parameters])):
        parameter.grad.copy_(piece.view_as(parameter.grad))


class GradientAllReduce:
    """Wraps an optimiser so that parameter gradients are summed across processes before each step.

    Args:
        optimizer: the optimiser of the synthetic set.
        state: the process state.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, state: PartialState) -> None:
        self.optimizer = optimizer
        self.state = state

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def _parameters(self) -> Iterable[torch.Tensor]:
        for group in self.optimizer.param_groups:
            yield from group["params"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        sum_gradients_across_processes(self._parameters(), self.state)
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)
