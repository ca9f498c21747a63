"""Every registry: list_* returns the registered names; unknown names raise the same KeyError."""

import functools

import pytest

import latent_distill
from latent_distill.augment import (
    AugmentationError,
    get_augmentation,
    get_mixing,
    list_operations,
)
from latent_distill.evaluation import get_eval_augmentation, get_protocol
from latent_distill.networks import NetworkConfigError, get_network
from latent_distill.presets import get_preset
from latent_distill.registry import Registry, RegistryError
from latent_distill.representations import get_skip_connection

# (list function name in latent_distill, get function, names that must be registered, how to register)
REGISTRIES = [
    ("list_objectives", latent_distill.get_objective, {"dm", "dc", "mtt"}, "@register_objective(name)"),
    ("list_representations", latent_distill.get_representation, {"latent", "pixel", "diffusion"},
     "@register_representation(name)"),
    ("list_presets", get_preset, {"latent-dm", "pixel-dsa", "ld3m-mtt"}, "register_preset("),
    ("list_networks", functools.partial(get_network, in_channels=1, num_classes=2, resolution=28),
     {"convnet", "alexnet", "vgg11", "resnet18"}, "@register_network(name)"),
    ("list_augmentations", get_augmentation, {"color", "crop", "cutout", "flip", "scale", "rotate"},
     "@register_augmentation(name)"),
    ("list_mixings", get_mixing, {"cutmix"}, "@register_mixing(name)"),
    ("list_protocols", get_protocol, {"hard", "soft"}, "register_protocol("),
    ("list_eval_augmentations", get_eval_augmentation, {"none", "dsa", "dsa_cutmix"}, "register_eval_augmentation("),
    ("list_skip_connections", get_skip_connection, {"paper", "reference", "none"}, "register_skip_connection("),
]
IDS = [entry[0] for entry in REGISTRIES]


@pytest.mark.parametrize("list_name, get, known, register_with", REGISTRIES, ids=IDS)
def test_list_returns_the_registered_names(list_name, get, known, register_with):
    names = getattr(latent_distill, list_name)()
    assert list_name in latent_distill.__all__
    assert known <= set(names)
    assert names == sorted(names)
    for name in names:
        get(name)


@pytest.mark.parametrize("list_name, get, known, register_with", REGISTRIES, ids=IDS)
def test_unknown_name_raises_a_key_error_naming_the_available_ones(list_name, get, known, register_with):
    with pytest.raises(KeyError) as info:
        get("no-such-name")
    message = str(info.value)
    assert "'no-such-name'" in message
    assert f"available: {getattr(latent_distill, list_name)()}" in message
    assert register_with in message


def test_mixings_are_listed_apart_from_image_augmentations():
    assert "cutmix" not in latent_distill.list_augmentations()
    assert list_operations() == sorted(latent_distill.list_augmentations() + latent_distill.list_mixings())


def test_domain_errors_are_also_key_errors():
    with pytest.raises(NetworkConfigError, match="Unknown network 'mlp9'"):
        get_network("mlp9", 1, 2, 28)
    with pytest.raises(AugmentationError, match="Unknown augmentation 'blur'"):
        get_augmentation("blur")


def test_registry_error_message_reads_as_written():
    registry: Registry[int] = Registry("widget", "add_widget(name, value)")
    registry.add("a", 1)
    error = registry.unknown_name_error("b")
    assert isinstance(error, RegistryError) and isinstance(error, KeyError)
    assert str(error) == "Unknown widget 'b'; available: ['a']. Register a new one with add_widget(name, value)."
    with pytest.raises(KeyError, match="'a' is already registered"):
        registry.add("a", 2)


def test_case_insensitive_registry_stores_lower_case_names():
    registry: Registry[int] = Registry("widget", "add_widget(name, value)", case_sensitive=False)
    registry.add("Wide", 1)
    assert registry.names() == ["wide"] and "WIDE" in registry and registry.get("wIdE") == 1
    with pytest.raises(KeyError, match="already registered"):
        registry.add("WIDE", 2)
