"""Tests of train-on-distilled, test-on-real evaluation."""

import json
from dataclasses import replace

import pytest
import torch

import latent_distill
from latent_distill.data import ImageClassificationTensors
from latent_distill.evaluation import (
    EVAL_AUGMENTATIONS,
    PROTOCOLS,
    EvaluationError,
    EvaluationResult,
    HardLabelProtocol,
    SoftLabelProtocol,
    evaluate_synthetic,
    full_data_reference,
    list_eval_augmentations,
    list_protocols,
    load_teacher,
    protocol_from_dict,
    random_subset,
    random_subset_reference,
    register_eval_augmentation,
    soft_label_batch_size,
    train_teacher,
)

SMALL = {"width": 16}



def _quadrants(per_class: int, seed: int) -> ImageClassificationTensors:
    """Four classes of 12x12 grey images, each lighting one quadrant, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(per_class)
    images = torch.full((len(labels), 1, 12, 12), -1.0)
    for label in range(4):
        row, col = divmod(label, 2)
        images[labels == label, :, row * 6:(row + 1) * 6, col * 6:(col + 1) * 6] = 1.0
    images = images + 0.4 * torch.randn(images.shape, generator=generator)
    uint8 = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return ImageClassificationTensors(uint8, labels, ["top-left", "top-right", "bottom-left", "bottom-right"])


@pytest.fixture(scope="module")
def toy():
    return _quadrants(6, seed=0), _quadrants(25, seed=1)


@pytest.mark.parametrize("augmentation,bf16", [("none", False), ("dsa", True), ("dsa_cutmix", False)])
def test_toy_set_is_learned_well_above_chance(toy, augmentation, bf16):
    train, test = toy
    protocol = HardLabelProtocol(epochs=40, augmentation=augmentation, bf16=bf16, arch_kwargs=SMALL)
    result = evaluate_synthetic(train.float_images(), train.labels, test, protocol, runs=2, progress=False)
    assert len(result.accuracies) == 2
    assert result.acc_mean > 80.0  # chance is 25 %
    assert result.protocol == protocol.to_dict()
    assert result.num_train == 24 and result.seconds >= result.train_seconds > 0


def test_runs_are_reproducible_and_leave_the_global_rng_alone(toy):
    train, test = toy
    protocol = HardLabelProtocol(epochs=3, bf16=False, arch_kwargs=SMALL)
    state = torch.get_rng_state()
    a = evaluate_synthetic(train.float_images(), train.labels, test, protocol, runs=2, seed=5, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    b = evaluate_synthetic(train.float_images(), train.labels, test, protocol, runs=2, seed=5, progress=False)
    assert a.accuracies == b.accuracies


@pytest.mark.parametrize("protocol", [
    HardLabelProtocol(),
    HardLabelProtocol(arch="resnet18", arch_kwargs={"norm": "batchnorm"}, epochs=10, augmentation="dsa_cutmix",
                      bf16=False, test_batch_size=500),
    SoftLabelProtocol(),
    SoftLabelProtocol(temperature=4.0, batch_size=32, betas=(0.5, 0.9)),
])
def test_protocol_round_trip(protocol):
    values = json.loads(json.dumps(protocol.to_dict()))
    assert type(protocol).from_dict(values) == protocol
    assert protocol_from_dict(values) == protocol


def test_protocol_validation_errors():
    with pytest.raises(EvaluationError, match="Unknown augmentation"):
        HardLabelProtocol(augmentation="autoaugment")
    with pytest.raises(EvaluationError, match="Unknown HardLabelProtocol fields"):
        HardLabelProtocol.from_dict({"epochs": 3, "learning_rate": 0.1})
    with pytest.raises(EvaluationError, match="protocol_from_dict"):
        HardLabelProtocol.from_dict(SoftLabelProtocol().to_dict())


def test_protocols_and_augmentations_are_listed_from_their_registries():
    assert list_protocols() == ["hard", "soft"] == latent_distill.list_protocols()
    assert PROTOCOLS.get("hard") is HardLabelProtocol and PROTOCOLS.get("soft") is SoftLabelProtocol
    names = list_eval_augmentations()
    assert names == sorted(names) == latent_distill.list_eval_augmentations()
    assert {"none", "dsa", "dsa_cutmix", "rrc_flip_cutmix"} <= set(names)
    assert HardLabelProtocol().augmentation in names and SoftLabelProtocol().augmentation in names
    assert EVAL_AUGMENTATIONS.get("rrc_flip_cutmix").mode == "all"


def test_unknown_protocol_or_augmentation_names_the_registered_ones():
    with pytest.raises(KeyError, match=r"Unknown protocol 'kd'; available: \['hard', 'soft'\]"):
        PROTOCOLS.get("kd")
    with pytest.raises(KeyError, match=r"Unknown protocol augmentation 'autoaugment'; available: \[.*'dsa_cutmix'"):
        EVAL_AUGMENTATIONS.get("autoaugment")
    with pytest.raises(EvaluationError, match=r"known: \['hard', 'soft'\]"):
        protocol_from_dict({"protocol": "kd"})
    with pytest.raises(EvaluationError, match=r"choose one of \[.*'rrc_flip_cutmix'"):
        HardLabelProtocol(augmentation="autoaugment")
    with pytest.raises(KeyError, match="'dsa' is already registered"):
        register_eval_augmentation("dsa", "flip")


def test_protocol_defaults_follow_the_papers():
    hard = HardLabelProtocol()
    assert (hard.arch, hard.epochs, hard.lr, hard.momentum, hard.weight_decay) == ("convnet", 300, 0.01, 0.9, 5e-4)
    assert (hard.lr_decay_at, hard.lr_decay_factor, hard.batch_size, hard.augmentation) == (0.5, 0.1, 256, "dsa")
    soft = SoftLabelProtocol()
    assert (soft.lr, soft.weight_decay, soft.temperature, soft.epochs) == (1e-3, 0.01, 20.0, 300)
    assert soft_label_batch_size(1, 10, 10) == 10
    assert soft_label_batch_size(10, 10, 100) == 50
    assert soft_label_batch_size(50, 100, 5000) == 200


def test_random_subset_gives_per_class_samples(toy):
    train, _ = toy
    images, labels = random_subset(train, per_class=3, seed=1)
    assert images.dtype == torch.float32 and images.shape == (12, 1, 12, 12)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.bincount(labels, minlength=4).tolist() == [3, 3, 3, 3]
    again, _ = random_subset(train, per_class=3, seed=1)
    assert torch.equal(images, again)
    with pytest.raises(EvaluationError, match="fewer than per_class=7"):
        random_subset(train, per_class=7, seed=0)


def test_references_use_the_same_protocol(toy, tmp_path):
    train, test = toy
    protocol = HardLabelProtocol(epochs=2, bf16=False, arch_kwargs=SMALL)
    subset = random_subset_reference(train, test, 2, protocol, runs=1, progress=False)
    full = full_data_reference(train, test, protocol, runs=1, cache_dir=tmp_path, progress=False)
    assert subset.protocol == full.protocol == protocol.to_dict()
    assert subset.num_train == 8 and full.num_train == 24
    cached = list(tmp_path.glob("full-data-*.json"))
    assert len(cached) == 1
    again = full_data_reference(train, test, protocol, runs=1, cache_dir=tmp_path, progress=False)
    assert again == full
    other = full_data_reference(train, test, replace(protocol, epochs=1), runs=1, cache_dir=tmp_path, progress=False)
    assert other.protocol["epochs"] == 1 and len(list(tmp_path.glob("full-data-*.json"))) == 2


def test_soft_label_protocol_with_cached_teacher(toy, tmp_path):
    train, test = toy
    teacher = train_teacher(test, epochs=4, seed=0, cache_dir=tmp_path, arch_kwargs=SMALL, progress=False)
    folders = list(tmp_path.glob("teacher-convnet-e4-s0-*"))
    assert len(folders) == 1
    assert (folders[0] / "model.safetensors").exists() and (folders[0] / "recipe.json").exists()
    loaded = train_teacher(test, epochs=4, seed=0, cache_dir=tmp_path, arch_kwargs=SMALL, progress=False)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert load_teacher(folders[0]).latent_distill_recipe["epochs"] == 4
    protocol = SoftLabelProtocol(epochs=5, arch_kwargs={"width": 16, "norm": "batchnorm"}, bf16=False)
    result = evaluate_synthetic(train.float_images(), train.labels, test, protocol, runs=1, teacher=loaded,
                                progress=False)
    assert 0.0 <= result.acc_mean <= 100.0
    assert result.teacher["dataset_fingerprint"] == loaded.latent_distill_recipe["dataset_fingerprint"]
    with pytest.raises(EvaluationError, match="needs a teacher"):
        evaluate_synthetic(train.float_images(), train.labels, test, protocol, runs=1, progress=False)


def test_input_errors_name_the_fix(toy):
    train, test = toy
    protocol = HardLabelProtocol(epochs=1, arch_kwargs=SMALL)
    with pytest.raises(EvaluationError, match="uint8_to_float"):
        evaluate_synthetic(train.images, train.labels, test, protocol, progress=False)
    with pytest.raises(EvaluationError, match="same space"):
        evaluate_synthetic(torch.zeros(4, 4, 3, 3), torch.arange(4), test, protocol, progress=False)
    with pytest.raises(EvaluationError, match="int64"):
        evaluate_synthetic(train.float_images(), train.labels.float(), test, protocol, progress=False)


def test_result_round_trip():
    result = EvaluationResult([70.0, 72.0], 71.0, 1.0, 3.5, HardLabelProtocol().to_dict(), num_train=100)
    assert EvaluationResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert "71.00 ± 1.00" in str(result)


def test_compile_without_a_cpu_compiler_falls_back_to_eager(monkeypatch):
    import warnings

    from latent_distill.evaluation import training

    model = torch.nn.Linear(3, 2)
    monkeypatch.setattr(training.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.warns(RuntimeWarning, match="apt-get install g\\+\\+"):
        assert training.maybe_compile(model, True) is model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert training.maybe_compile(model, False) is model
