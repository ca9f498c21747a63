import pytest

from latent_distill.config import (
    BudgetError,
    DistillationConfig,
    samples_per_class_for_budget,
)
from latent_distill.presets import config_for_method, list_presets


def test_storage_budget_turns_image_bytes_into_latents():
    # A 28x28 grey image holds four 4x7x7 latents.
    assert samples_per_class_for_budget(10, "storage", (1, 28, 28), (4, 7, 7), class_size=6000) == 40
    assert samples_per_class_for_budget(1, "storage", (1, 28, 28), (4, 7, 7), class_size=6000) == 4
    # An RGB 32x32 image and a 4x8x8 latent: floor(3072 / 256) = 12 (LatentDD's 12 x IPC at f = 4).
    assert samples_per_class_for_budget(1, "storage", (3, 32, 32), (4, 8, 8), class_size=5000) == 12


def test_count_budget_and_explicit_override():
    assert samples_per_class_for_budget(10, "count", (1, 28, 28), (4, 7, 7), class_size=6000) == 10
    assert samples_per_class_for_budget(10, "storage", (1, 28, 28), (4, 7, 7), 6000, explicit=7) == 7


def test_budget_below_one_latent_is_a_clear_error():
    with pytest.raises(BudgetError, match="holds no sample"):
        samples_per_class_for_budget(1, "storage", (1, 8, 8), (4, 8, 8), class_size=100)


def test_budget_above_class_size_is_a_clear_error():
    with pytest.raises(BudgetError, match="smallest class has only 10"):
        samples_per_class_for_budget(10, "storage", (1, 28, 28), (4, 7, 7), class_size=10)


def test_config_saves_and_loads_itself(tmp_path):
    config = DistillationConfig(objective="dm", ipc=3, network_kwargs={"width": 32})
    config.save(tmp_path / "config.json")
    assert DistillationConfig.load(tmp_path / "config.json") == config
    with pytest.raises(ValueError, match="Unknown config keys"):
        DistillationConfig.from_dict({"ipcs": 3})


def test_presets_are_named_by_representation_and_objective():
    assert "latent-dm" in list_presets() and "pixel-dm" in list_presets()
    config = config_for_method("latent-dm", ipc=1, iterations=None)
    assert (config.representation, config.objective, config.ipc) == ("latent", "dm", 1)
    assert config.method_name == "latent-dm"
    with pytest.raises(KeyError, match="available"):
        config_for_method("latent-xyz")


def test_preset_name_is_the_recorded_method_name():
    assert config_for_method("pixel-dsa").method_name == "pixel-dsa"
    assert DistillationConfig(objective="dm", representation="pixel").method_name == "pixel-dm"


def test_configs_saved_before_the_objective_rename_still_load():
    legacy = {"method": "mtt", "representation": "pixel", "ipc": 2}
    config = DistillationConfig.from_dict(legacy)
    assert (config.objective, config.representation, config.ipc) == ("mtt", "pixel", 2)
    assert legacy == {"method": "mtt", "representation": "pixel", "ipc": 2}
    assert config.to_dict()["objective"] == "mtt" and "method" not in config.to_dict()
    with pytest.raises(ValueError, match="holds both 'method'"):
        DistillationConfig.from_dict({"method": "dm", "objective": "dc"})


def test_encode_batches_are_sized_by_pixels_unless_given():
    from latent_distill.config import encode_batch_size_for

    assert encode_batch_size_for(28) == 500
    assert encode_batch_size_for(256) == 5 and encode_batch_size_for(128, resample=2) == 5
    assert encode_batch_size_for(1024) == 1
    assert encode_batch_size_for(256, requested=64) == 64
