"""Gradient matching (DC / LatentDC) and trajectory matching (MTT / LatentMTT) on tiny toy problems."""

import json

import pytest
import torch
from safetensors.torch import save_file

from latent_distill.config import DistillationConfig
from latent_distill.data import uint8_to_float
from latent_distill.objectives import (
    GradientMatching,
    ObjectiveConfigError,
    TrajectoryMatching,
    build_augmentation,
    get_objective,
)
from latent_distill.objectives.dc import dc_gradient_distance, mse_gradient_distance
from latent_distill.objectives.mtt.student import (
    FlatStudent,
    StudentPlan,
    constant_memory_gradients,
    normalized_parameter_distance,
    run_student,
    unrolled_matching_loss,
)
from latent_distill.objectives.mtt.trajectories import (
    ExpertBuffer,
    ExpertBufferError,
    train_expert_trajectories,
)
from latent_distill.presets import config_for_method
from latent_distill.representations import LearnableLatents, LearnablePixels, RealPool
from latent_distill.testing import make_image_dataset, make_tiny_pipeline

TINY_NETWORK = {"width": 8}
# Tiny MTT: 2 experts of 3 epochs (start epochs 0-1, targets 2 epochs later), 5 student steps.
TINY_MTT = {"num_experts": 2, "expert_epochs": 2, "syn_steps": 5, "max_start_epoch": 2, "lr_teacher": 0.01,
            "lr_lr": 1e-5, "expert_batch_size": 8}
TINY_DC = {"outer_loops": 2, "inner_steps": 2, "batch_train": 16}


def latent_pool(per_class: int = 20) -> RealPool:
    """Two classes of 4x7x7 'latents' told apart by a shifted channel."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat_interleave(per_class)
    samples = 0.5 * torch.randn(2 * per_class, 4, 7, 7, generator=generator)
    samples[labels == 0, 0] += 1.0
    samples[labels == 1, 1] += 1.0
    return RealPool(samples, labels, 2)


def pixel_pool(per_class: int = 20) -> RealPool:
    """Two classes of 1x8x8 uint8 images: bright top half or bright bottom half."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat_interleave(per_class)
    images = torch.randint(0, 80, (2 * per_class, 1, 8, 8), generator=generator, dtype=torch.uint8)
    images[labels == 0, :, :4] += 150
    images[labels == 1, :, 4:] += 150
    return RealPool(images, labels, 2, to_float=uint8_to_float)


def toy_problem(space: str, objective_name: str, objective_kwargs: dict, augmentation=None, learning_rate: float = 1.0,
                per_class: int = 2):
    """Builds what the pipeline builds: real pool, noise-initialised synthetic set, SGD, objective."""
    real = latent_pool() if space == "latent" else pixel_pool()
    shape = tuple(real.samples.shape[1:])
    config = DistillationConfig(objective=objective_name, representation=space, ipc=1, batch_real=10,
                                network_kwargs=TINY_NETWORK, objective_kwargs=objective_kwargs,
                                augmentation=augmentation)
    initial = torch.randn(2 * per_class, *shape, generator=torch.Generator().manual_seed(1))
    synthetic = (LearnableLatents if space == "latent" else LearnablePixels)(initial, 2)
    optimizer = torch.optim.SGD(synthetic.parameters(), lr=learning_rate, momentum=0.5)
    objective = get_objective(objective_name)(config, shape, 2, build_augmentation(augmentation))
    return objective, synthetic, real, optimizer


def run_iterations(objective, synthetic, real, optimizer, iterations: int) -> list[float]:
    return [objective.iteration(synthetic, real, optimizer, step, [0, 1]) for step in range(iterations)]


def tiny_buffer(real: RealPool, **overrides) -> ExpertBuffer:
    values = dict(network="convnet", network_kwargs=TINY_NETWORK, num_experts=2, epochs=3, batch_size=8,
                  progress=False)
    values.update(overrides)
    return train_expert_trajectories(real, **values)


# ----------------------------------------------------------------------------------------------
# DC / LatentDC
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("space,kwargs,augmentation", [
    ("latent", TINY_DC, None),  # LatentDC: MSE distance, network trained on real latents
    ("latent", {**TINY_DC, "distance": "dc", "train_network_on": "synthetic"}, None),  # DC on latents
    ("pixel", {**TINY_DC, "distance": "dc", "train_network_on": "synthetic"}, "color_crop_cutout_flip_scale_rotate"),
])
def test_dc_loss_falls_in_either_space(space, kwargs, augmentation):
    objective, synthetic, real, optimizer = toy_problem(space, "dc", kwargs, augmentation)
    assert isinstance(objective, GradientMatching)
    losses = run_iterations(objective, synthetic, real, optimizer, 30)
    assert all(isinstance(loss, float) for loss in losses)
    assert sum(losses[-5:]) < 0.75 * sum(losses[:5])


@pytest.mark.parametrize("distance", ["mse", "dc"])
def test_gradient_distance_is_zero_for_identical_batches(distance):
    objective, synthetic, real, _ = toy_problem("latent", "dc", {**TINY_DC, "distance": distance})
    network = objective.build_network("test")
    batch = real.draw(0, 10, torch.Generator().manual_seed(0))
    first = objective.class_gradients(network, batch, 0, seed=0, create_graph=False)
    second = objective.class_gradients(network, batch.clone(), 0, seed=0, create_graph=True)
    same = objective.distance(first, second).item()
    other = real.draw(1, 10, torch.Generator().manual_seed(0))
    different = objective.class_gradients(network, other, 0, seed=0, create_graph=False)
    # MSE is zero up to rounding; DC's cosine has a 1e-6 in its denominator, which leaves a tiny floor.
    assert same < (1e-10 if distance == "mse" else 1e-3)
    assert objective.distance(first, different).item() > 1000 * max(same, 1e-6)


def test_dc_distance_is_one_minus_cosine_per_output_row_and_ignores_vectors():
    real = [torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([5.0, -5.0])]
    synthetic = [torch.tensor([[0.0, 3.0], [0.0, 1.0]]), torch.tensor([-5.0, 5.0])]
    # Row 0 is orthogonal (1 - 0), row 1 parallel (1 - 1); the bias-like vector is left out.
    assert dc_gradient_distance(real, synthetic).item() == pytest.approx(1.0, abs=1e-5)
    assert mse_gradient_distance(real, synthetic).item() == pytest.approx(1 + 9 + 1 + 100 + 100)


def test_dc_loops_follow_dc_table_by_ipc_when_unset():
    config = config_for_method("pixel-dc", ipc=10)
    objective = GradientMatching(config, (1, 8, 8), 2)
    assert (objective.outer_loops, objective.inner_steps) == (10, 50)
    with pytest.raises(ObjectiveConfigError, match="set objective_kwargs"):
        GradientMatching(config.replace(ipc=3), (1, 8, 8), 2)


# ----------------------------------------------------------------------------------------------
# MTT / LatentMTT
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("space,memory,augmentation", [
    ("latent", "full", None),
    ("latent", "tesla", None),
    ("pixel", "full", "color_crop_cutout_flip_scale_rotate"),
])
def test_mtt_loss_falls_in_either_space(space, memory, augmentation):
    objective, synthetic, real, optimizer = toy_problem(space, "mtt", {**TINY_MTT, "memory": memory},
                                                        augmentation, learning_rate=10.0)
    assert isinstance(objective, TrajectoryMatching)
    objective.setup(real, None)
    losses = run_iterations(objective, synthetic, real, optimizer, 30)
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    summary = objective.summary()
    assert summary["student_learning_rate"] != pytest.approx(0.01) and summary["num_experts"] == 2
    json.dumps(summary)


def test_zero_student_steps_stay_at_the_expert_start_with_loss_one():
    real = latent_pool()
    buffer = tiny_buffer(real)
    student = FlatStudent(toy_problem("latent", "mtt", TINY_MTT)[0].build_network("test"))
    start, target = buffer.snapshot(0, 1), buffer.snapshot(0, 3)
    data, labels = real.gather(torch.arange(4)), real.labels[:4]
    thetas = run_student(student, data, labels, StudentPlan([], []), start, 0.01, create_graph=True)
    assert len(thetas) == 1 and torch.equal(thetas[-1], start)
    # Eq. 9 with N = 0: ||theta*_t - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2 = 1.
    assert normalized_parameter_distance(thetas[-1], start, target).item() == 1.0


def test_constant_memory_gradients_equal_the_full_unroll():
    torch.manual_seed(0)
    network = toy_problem("latent", "mtt", TINY_MTT)[0].build_network("test").double()
    student = FlatStudent(network)
    start = student.layout.flatten(network).double()
    target = start + 0.05 * torch.randn_like(start)
    data = torch.randn(6, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    augment = build_augmentation("crop_cutout_flip_scale")
    plan = StudentPlan([torch.tensor([0, 3, 5]), torch.tensor([1, 2, 4]), torch.tensor([5, 0, 1, 2])],
                       seeds=[11, 12, 13], augment=augment)
    lr = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    loss = unrolled_matching_loss(student, data, labels, plan, start, target, lr)
    data_grad, lr_grad = torch.autograd.grad(loss, (data, lr))
    value, tesla_data_grad, tesla_lr_grad = constant_memory_gradients(student, data, labels, plan, start, target,
                                                                      lr.item())
    assert value == pytest.approx(loss.item(), rel=1e-10)
    torch.testing.assert_close(tesla_data_grad, data_grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(tesla_lr_grad, lr_grad, rtol=1e-9, atol=1e-12)


def test_tesla_mode_updates_like_the_full_unroll_inside_the_objective():
    grads = {}
    for memory in ("full", "tesla"):
        objective, synthetic, real, optimizer = toy_problem(
            "latent", "mtt", {**TINY_MTT, "memory": memory, "batch_syn": 3, "lr_parametrization": "log"},
            "crop_flip")
        objective.setup(real, None)
        objective.iteration(synthetic, real, optimizer, 0, [0, 1])
        grads[memory] = (synthetic.samples.grad.clone(), objective.lr_parameter.grad.clone())
    torch.testing.assert_close(grads["tesla"][0], grads["full"][0], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(grads["tesla"][1], grads["full"][1], rtol=1e-4, atol=1e-7)


def test_mtt_state_round_trips_and_needs_every_class():
    objective, synthetic, real, optimizer = toy_problem("latent", "mtt", TINY_MTT, learning_rate=10.0)
    objective.setup(real, None)
    run_iterations(objective, synthetic, real, optimizer, 3)
    restored = toy_problem("latent", "mtt", TINY_MTT)[0]
    restored.load_state_dict(objective.state_dict())
    assert restored.student_lr().item() == objective.student_lr().item() != 0.01
    assert restored.lr_optimizer.state_dict()["state"][0]["momentum_buffer"] is not None
    with pytest.raises(ObjectiveConfigError, match="every class"):
        objective.iteration(synthetic, real, optimizer, 3, [0])


def test_mtt_rejects_buffers_that_do_not_fit():
    objective, _, real, _ = toy_problem("latent", "mtt", TINY_MTT)
    with pytest.raises(ExpertBufferError, match="epochs"):
        objective.use_buffer(tiny_buffer(real, epochs=2))
    with pytest.raises(ExpertBufferError, match="parameters"):
        objective.use_buffer(tiny_buffer(real, network_kwargs={"width": 4}))
    with pytest.raises(ObjectiveConfigError, match="buffer_epochs=2 is too short"):
        toy_problem("latent", "mtt", {**TINY_MTT, "buffer_epochs": 2})


# ----------------------------------------------------------------------------------------------
# Expert buffers
# ----------------------------------------------------------------------------------------------

def test_expert_trajectories_record_init_and_every_epoch():
    buffer = tiny_buffer(latent_pool())
    assert buffer.trajectories.shape[:2] == (2, 4) and buffer.epochs == 3 and buffer.num_experts == 2
    steps = (buffer.trajectories[:, 1:] - buffer.trajectories[:, :-1]).norm(dim=-1)
    assert (steps > 0).all()
    assert not torch.equal(buffer.snapshot(0, 0), buffer.snapshot(1, 0))  # experts start apart
    assert buffer.recipe["data_fingerprint"] == latent_pool().fingerprint


def test_buffer_round_trips_through_safetensors_and_the_cache_is_reused(tmp_path):
    real = pixel_pool()
    buffer = tiny_buffer(real, augment="crop_flip")
    buffer.save(tmp_path / "saved")
    loaded = ExpertBuffer.load(tmp_path / "saved")
    assert torch.equal(loaded.trajectories, buffer.trajectories) and loaded.recipe == buffer.recipe

    builds = []

    def build(folder):
        builds.append(folder)
        return buffer

    first = ExpertBuffer.cached(tmp_path / "cache", buffer.recipe, build)
    second = ExpertBuffer.cached(tmp_path / "cache", buffer.recipe, build)
    assert len(builds) == 1 and torch.equal(first.trajectories, second.trajectories)
    entries = list((tmp_path / "cache").iterdir())  # the finished entry only, no partial folder left
    assert len(entries) == 1 and entries[0].name.startswith("experts-convnet-")
    other_recipe = {**buffer.recipe, "seed": 1}
    ExpertBuffer.cached(tmp_path / "cache", other_recipe,
                        lambda folder: ExpertBuffer(buffer.trajectories, other_recipe))
    assert len(list((tmp_path / "cache").iterdir())) == 2
    with pytest.raises(ExpertBufferError, match="holds no expert buffer"):
        ExpertBuffer.load(tmp_path / "missing")


def test_expert_training_resumes_expert_by_expert(tmp_path):
    real = latent_pool()
    first = tiny_buffer(real, num_experts=1, checkpoint_dir=tmp_path)
    # Mark the saved expert: a resumed build must load it instead of training it again.
    save_file({"trajectory": torch.zeros(4, first.num_params)}, str(tmp_path / "expert_0000.safetensors"))
    resumed = tiny_buffer(real, num_experts=2, checkpoint_dir=tmp_path)
    assert torch.equal(resumed.trajectories[0], torch.zeros_like(resumed.trajectories[0]))
    torch.testing.assert_close(resumed.trajectories[1], tiny_buffer(real).trajectories[1])
    assert (tmp_path / "expert_0001.safetensors").exists()
    with pytest.raises(ExpertBufferError, match="another recipe"):
        tiny_buffer(real, num_experts=2, lr=0.1, checkpoint_dir=tmp_path)


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("objective,key", [("dc", "outer_loop"), ("mtt", "expert_epoch"), ("dm", "width")])
def test_unknown_objective_kwargs_are_a_clear_error(objective, key):
    config = DistillationConfig(objective=objective, objective_kwargs={key: 1})
    with pytest.raises(ObjectiveConfigError, match=rf"Unknown objective_kwargs \['{key}'\] for the '{objective}'"):
        get_objective(objective)(config, (4, 7, 7), 2)


def test_invalid_objective_values_are_a_clear_error():
    with pytest.raises(ObjectiveConfigError, match="distance must be one of"):
        toy_problem("latent", "dc", {"distance": "cosine"})
    with pytest.raises(ObjectiveConfigError, match="memory must be one of"):
        toy_problem("latent", "mtt", {**TINY_MTT, "memory": "low"})


def test_presets_of_dc_and_mtt():
    latent_dc = config_for_method("latent-dc", ipc=1)
    assert (latent_dc.objective, latent_dc.learning_rate, latent_dc.scale_learning_rate) == ("dc", 0.05, True)
    assert latent_dc.objective_kwargs["outer_loops"] == 10 and latent_dc.objective_kwargs["inner_steps"] == 50
    dsa = config_for_method("pixel-dsa", ipc=10)
    assert dsa.augmentation == "color_crop_cutout_flip_scale_rotate" and dsa.objective_kwargs["distance"] == "dc"
    assert config_for_method("pixel-dc").augmentation is None
    # Overrides update the preset's objective options key by key.
    latent_mtt = config_for_method("latent-mtt", objective_kwargs={"num_experts": 1})
    assert latent_mtt.objective_kwargs["num_experts"] == 1 and latent_mtt.objective_kwargs["max_start_epoch"] == 5
    assert config_for_method("pixel-mtt").objective_kwargs["buffer_epochs"] == 50


# ----------------------------------------------------------------------------------------------
# Pipeline
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,objective_kwargs", [
    ("latent-dc", {"outer_loops": 2, "inner_steps": 2, "batch_train": 8}),
    ("latent-mtt", {"num_experts": 1, "buffer_epochs": 2, "max_start_epoch": 1, "expert_epochs": 1,
                    "syn_steps": 3, "batch_syn": 4, "expert_batch_size": 8}),
])
def test_pipeline_runs_dc_and_mtt_presets(tmp_path, method, objective_kwargs):
    pipe = make_tiny_pipeline()
    dataset = make_image_dataset(num_per_class=6)
    config = config_for_method(method, ipc=1, iterations=2, batch_real=6, network_kwargs=TINY_NETWORK,
                               objective_kwargs=objective_kwargs)
    out = pipe(dataset, config, cache_dir=tmp_path)
    assert out.latents.shape == (8, 4, 7, 7) and len(out.losses) == 2
    summary = out.record["distillation"]["objective_summary"]
    if method == "latent-mtt":
        experts = list((tmp_path / "experts").iterdir())
        assert len(experts) == 1 and (experts[0] / "trajectories.safetensors").exists()
        assert set(summary) >= {"student_learning_rate", "num_experts"}
        pipe(dataset, config, cache_dir=tmp_path)
        assert list((tmp_path / "experts").iterdir()) == experts
    else:
        assert summary == {"outer_loops": 2, "inner_steps": 2}


def test_pipeline_resumes_mtt_with_its_learned_learning_rate(tmp_path):
    pipe = make_tiny_pipeline()
    dataset = make_image_dataset(num_per_class=6)
    objective_kwargs = {"num_experts": 2, "buffer_epochs": 2, "max_start_epoch": 1, "expert_epochs": 1,
                        "syn_steps": 2, "lr_lr": 1e-3, "expert_batch_size": 8}

    def config(iterations):
        return config_for_method("latent-mtt", ipc=1, iterations=iterations, checkpoint_every=2,
                                 network_kwargs=TINY_NETWORK, objective_kwargs=objective_kwargs)

    full = pipe(dataset, config(4), cache_dir=tmp_path / "cache")
    pipe(dataset, config(2), cache_dir=tmp_path / "cache", checkpoint_dir=tmp_path / "run")
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    state["config"]["iterations"] = 4  # the state of a 4-iteration run stopped after 2
    torch.save(state, tmp_path / "run" / "state.pt")
    resumed = pipe(dataset, config(4), cache_dir=tmp_path / "cache", checkpoint_dir=tmp_path / "run", resume=True)
    torch.testing.assert_close(resumed.latents, full.latents)
    learned = full.record["distillation"]["objective_summary"]["student_learning_rate"]
    assert resumed.record["distillation"]["objective_summary"]["student_learning_rate"] == pytest.approx(learned)
    assert learned != pytest.approx(0.01)


@pytest.mark.parametrize("method,objective_kwargs", [
    ("pixel-dc", {"outer_loops": 2, "inner_steps": 2, "batch_train": 8}),
    ("pixel-dsa", {"outer_loops": 2, "inner_steps": 2, "batch_train": 8}),
    ("pixel-mtt", {"num_experts": 1, "buffer_epochs": 2, "max_start_epoch": 1, "expert_epochs": 1,
                   "syn_steps": 2, "batch_syn": 2, "expert_batch_size": 8}),
])
def test_pipeline_runs_the_pixel_baselines(tmp_path, method, objective_kwargs):
    pipe = make_tiny_pipeline()
    config = config_for_method(method, ipc=1, iterations=2, batch_real=6, network_kwargs=TINY_NETWORK,
                               objective_kwargs=objective_kwargs)
    out = pipe(make_image_dataset(num_per_class=6), config, cache_dir=tmp_path)
    assert out.latents is None and out.images.shape == (2, 1, 28, 28)
    assert out.record["distillation"]["method_name"] == method and len(out.losses) == 2
