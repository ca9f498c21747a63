"""Everything learnable and every drawn batch lives on the run's device (checked with torch's meta device)."""

import torch

from latent_distill.objectives import get_objective
from latent_distill.presets import config_for_method
from latent_distill.representations import LearnableLatents, RealPool

META = torch.device("meta")


def test_real_pool_draws_batches_onto_its_device_and_keeps_samples_in_place():
    samples, labels = torch.randn(12, 4, 7, 7), torch.arange(3).repeat_interleave(4)
    pool = RealPool(samples, labels, 3).to(META)
    generator = torch.Generator().manual_seed(0)
    assert pool.draw(1, 2, generator).device == META
    batch, batch_labels = pool.draw_mixed(5, generator)
    assert batch.device == META and batch_labels.device == META
    assert all(x.device == META and y.device == META for x, y in pool.batches(5, generator))
    assert pool.samples.device.type == "cpu" and pool.by_class[2].tolist() == [8, 9, 10, 11]


def test_objective_networks_and_state_live_on_its_device():
    config = config_for_method("latent-mtt", ipc=1, network_kwargs={"width": 4, "depth": 1})
    objective = get_objective("mtt")(config, (4, 7, 7), 3, device=META)
    assert all(p.device == META for p in objective.build_network("probe").parameters())
    assert objective.lr_parameter.device == META
    assert objective.student.network.classifier.weight.device == META


def test_synthetic_labels_follow_the_samples():
    synthetic = LearnableLatents(torch.zeros(6, 4, 7, 7), 3).to(META)
    assert synthetic.labels.device == META and synthetic.samples.device == META
