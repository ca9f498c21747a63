"""Benchmark cells of several independent sets: set k is made with seed k and met by seeded networks."""

import pytest
import torch

from benchmarks.cells import evaluate_sets
from latent_distill.data import ImageClassificationTensors
from latent_distill.evaluation import HardLabelProtocol


def _stripes(per_class: int, seed: int) -> ImageClassificationTensors:
    """Two classes of 8x8 grey images: a bright top half or a bright bottom half, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(2).repeat_interleave(per_class)
    images = torch.full((len(labels), 1, 8, 8), -1.0)
    images[labels == 0, :, :4] = 1.0
    images[labels == 1, :, 4:] = 1.0
    images = images + 0.3 * torch.randn(images.shape, generator=generator)
    uint8 = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return ImageClassificationTensors(uint8, labels, ["top", "bottom"])


def test_every_set_is_made_with_its_seed_and_the_summary_covers_every_network():
    pool, test = _stripes(20, seed=0), _stripes(10, seed=1)
    seeds = []

    def make_set(seed: int):
        seeds.append(seed)
        rows = torch.randperm(len(pool.labels), generator=torch.Generator().manual_seed(seed))[:6]
        return pool.float_images()[rows], pool.labels[rows]

    protocol = HardLabelProtocol(epochs=2, bf16=False, arch_kwargs={"width": 8})
    cell = evaluate_sets(make_set, test, protocol, None, sets=3, runs=2, torch_compile=False)
    assert seeds == [0, 1, 2]
    assert cell["sets"] == 3 and cell["runs"] == 2 and len(cell["accuracies"]) == 6 and len(cell["set_means"]) == 3
    assert cell["acc_mean"] == pytest.approx(sum(cell["accuracies"]) / 6, abs=0.01)
    again = evaluate_sets(make_set, test, protocol, None, sets=3, runs=2, torch_compile=False)
    assert again["accuracies"] == cell["accuracies"]  # seeded sets, seeded networks
