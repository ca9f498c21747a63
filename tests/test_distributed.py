"""A 2-process CPU run (gloo) gives the same distilled set as a 1-process run with the same seed."""

import os
import socket
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

from latent_distill import LatentDistillationPipeline
from latent_distill.distributed import batch_aligned_bounds, shard_bounds
from latent_distill.presets import config_for_method

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_image_dataset, make_tiny_vae  # noqa: E402

CONFIG = dict(ipc=1, iterations=6, batch_real=10, learning_rate=0.05, network_kwargs={"width": 16})


def distil(cache_dir=None):
    pipe = LatentDistillationPipeline(vae=make_tiny_vae())
    pipe.set_progress_bar_config(disable=True)
    dataset = make_image_dataset(num_per_class=10, num_classes=3)
    return pipe(dataset, config_for_method("latent-dm", **CONFIG), cache_dir=cache_dir)


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from accelerate import PartialState

    state = PartialState(cpu=True)
    assert state.num_processes == world_size
    output = distil()
    torch.save({"latents": output.latents, "losses": output.losses}, Path(out_dir) / f"rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_latent_dm_equals_one_process(tmp_path):
    single = distil()
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        # Class-separable: every class is computed by exactly one process, gradients summed exactly.
        assert torch.equal(result["latents"], single.latents)
        torch.testing.assert_close(torch.tensor(result["losses"]), torch.tensor(single.losses))


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
