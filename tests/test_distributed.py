"""A 2-process CPU run (gloo) gives the same distilled set as a 1-process run with the same seed."""

import os
import socket
from pathlib import Path
from typing import Any, Callable

import torch
import torch.multiprocessing as mp

from latent_distill import D3HRConfig, D3HRPipeline
from latent_distill.distributed import (
    all_gather_rows,
    batch_aligned_bounds,
    shard_bounds,
    sum_across_processes,
    sum_gradients_across_processes,
)
from latent_distill.presets import config_for_method
from latent_distill.testing import FAST_D3HR, make_image_dataset, make_tiny_pipeline

CONFIG = dict(ipc=1, iterations=6, batch_real=10, learning_rate=0.05, network_kwargs={"width": 16})
# 3 classes over 2 processes (shares of 2 and 1 classes); batches of 4 split classes and the encoding.
D3HR = dict(FAST_D3HR, ipc=2, batch_size=4)


def distil(cache_dir=None):
    pipe = make_tiny_pipeline()
    dataset = make_image_dataset(num_per_class=10, num_classes=3)
    return pipe(dataset, config_for_method("latent-dm", **CONFIG), cache_dir=cache_dir)


def latent_dm_result() -> dict[str, Any]:
    output = distil()
    return {"latents": output.latents, "losses": output.losses}


def d3hr_result() -> dict[str, Any]:
    pipe = make_tiny_pipeline(D3HRPipeline, num_classes=3)
    output = pipe(make_image_dataset(num_per_class=6, num_classes=3), D3HRConfig(**D3HR))
    return {"images": output.images, "latents": output.latents, "labels": output.labels, **output.gaussians}


def collectives_result() -> dict[str, Any]:
    """Each collective once, with rank-dependent inputs (a gradient missing on one rank)."""
    from accelerate import PartialState

    state = PartialState()
    rank = state.process_index
    weight, bias = torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(4))
    weight.grad = torch.full((3, 2), float(rank + 1))
    if rank == 1:
        bias.grad = torch.arange(4.0)
    sum_gradients_across_processes([weight, bias], state)
    bounds = [(0, 3), (3, 5)]
    rows = all_gather_rows(torch.arange(10.0).view(5, 2)[slice(*bounds[rank])], bounds, state)
    return {"weight_grad": weight.grad, "bias_grad": bias.grad, "rows": rows,
            "total": sum_across_processes(rank + 0.5, state)}


def expert_buffer_result() -> dict[str, Any]:
    """3 tiny experts (shared out 2 + 1 over two processes, or all on one)."""
    from latent_distill.objectives.mtt import train_expert_trajectories
    from latent_distill.representations import RealPool

    generator = torch.Generator().manual_seed(0)
    real = RealPool(torch.randn(24, 4, 7, 7, generator=generator), torch.arange(3).repeat_interleave(8), 3)
    buffer = train_expert_trajectories(real, "convnet", {"width": 4, "depth": 1}, num_experts=3, epochs=2,
                                       batch_size=8, progress=False)
    return {"trajectories": buffer.trajectories}


def _worker(rank: int, world_size: int, port: int, out_dir: str, job: Callable[[], dict[str, Any]]) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from accelerate import PartialState

    state = PartialState(cpu=True)
    assert state.num_processes == world_size
    torch.save(job(), Path(out_dir) / f"rank{rank}.pt")
    # Leave together and close the process group, so no rank exits while gloo still talks to it.
    state.wait_for_everyone()
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_on_processes(job: Callable[[], dict[str, Any]], out_dir: Path, world_size: int = 2) -> list[dict[str, Any]]:
    """Runs ``job`` in ``world_size`` CPU processes joined by gloo, as ``accelerate launch`` would.

    Args:
        job: a module-level function (spawned processes import it by name) returning what to compare.
        out_dir: where each process saves its result.
        world_size: number of processes.

    Returns:
        Every process's result, in rank order.
    """
    mp.spawn(_worker, args=(world_size, free_port(), str(out_dir), job), nprocs=world_size, join=True)
    return [torch.load(out_dir / f"rank{rank}.pt", weights_only=False) for rank in range(world_size)]


def test_two_process_latent_dm_equals_one_process(tmp_path):
    single = latent_dm_result()
    for result in run_on_processes(latent_dm_result, tmp_path):
        # Class-separable: every class is computed by exactly one process, gradients summed exactly.
        assert torch.equal(result["latents"], single["latents"])
        torch.testing.assert_close(torch.tensor(result["losses"]), torch.tensor(single["losses"]))


def test_two_process_d3hr_equals_one_process(tmp_path):
    single = d3hr_result()
    for result in run_on_processes(d3hr_result, tmp_path):
        # Encoding split at batch boundaries, each class inverted and regenerated by one process,
        # float64 moments summed with zeros from the other: the same bits as one process.
        for key in ("mean", "std", "latents", "images", "labels"):
            assert torch.equal(result[key], single[key]), key
        for key in ("timestep", "group_seeds", "group_indices", "chunk_counts", "group_scores",
                    "fit_samples_per_class"):
            assert result[key] == single[key], key


def test_collectives_sum_and_gather_over_processes(tmp_path):
    for result in run_on_processes(collectives_result, tmp_path):
        assert torch.equal(result["weight_grad"], torch.full((3, 2), 3.0))
        assert torch.equal(result["bias_grad"], torch.arange(4.0))  # zeros from the rank without a gradient
        assert torch.equal(result["rows"], torch.arange(10.0).view(5, 2))
        assert result["total"] == 2.0


def test_two_process_expert_buffer_equals_one_process(tmp_path):
    single = expert_buffer_result()
    for result in run_on_processes(expert_buffer_result, tmp_path):
        assert torch.equal(result["trajectories"], single["trajectories"])  # experts are keyed by index


class FakeState:
    def __init__(self, index, count):
        self.process_index, self.num_processes = index, count


def test_shard_bounds_cover_everything_once():
    for count in (0, 1, 7, 10):
        bounds = [shard_bounds(count, FakeState(i, 3)) for i in range(3)]
        assert bounds[0][0] == 0 and bounds[-1][1] == count
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


def test_batch_aligned_bounds_split_at_batch_boundaries():
    bounds = batch_aligned_bounds(23, 5, FakeState(0, 2))
    assert bounds == [(0, 15), (15, 23)]
    assert batch_aligned_bounds(3, 5, FakeState(0, 2)) == [(0, 3), (3, 3)]
