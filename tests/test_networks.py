"""Tests of the network registry and architectures."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from latent_distill.networks import (
    NetworkConfigError,
    default_convnet_depth,
    get_network,
    list_networks,
    register_network,
)

ALL = list_networks()



def test_registry_lists_the_standard_architectures():
    assert {"convnet", "alexnet", "vgg11", "resnet18"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_registry_round_trip(name):
    model = get_network(name.upper(), 3, 7, 32)
    assert isinstance(model, nn.Module)
    assert model.training
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("resolution", [7, 28, 32])
def test_output_and_embedding_shapes(name, channels, resolution):
    torch.manual_seed(0)
    model = get_network(name, channels, 5, resolution)
    x = torch.randn(2, channels, resolution, resolution)
    logits = model(x)
    features = model.embed(x)
    assert logits.shape == (2, 5)
    assert features.dim() == 2 and features.shape[0] == 2
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("resolution,depth", [(28, 3), (32, 3), (64, 4), (128, 5), (256, 6), (7, 1), (14, 2)])
def test_default_convnet_depth(resolution, depth):
    assert default_convnet_depth(resolution) == depth
    assert get_network("convnet", 1, 10, resolution).depth == depth


def test_convnet_geometry_matches_the_reference():
    model = get_network("convnet", 3, 10, 32)
    assert model.feature_shape == (128, 4, 4)
    assert model.classifier.in_features == 2048
    grey = get_network("convnet", 1, 10, 28, first_padding=3)  # DC code: 28 px grey -> 32 px geometry
    assert grey.feature_shape == (128, 4, 4)
    norms = [type(m) for m in get_network("convnet", 1, 10, 28).modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))]
    assert norms == [nn.GroupNorm] * 3


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm", "groupnorm", "none"])
def test_convnet_norm_options(norm):
    model = get_network("convnet", 4, 3, 7, norm=norm, width=8)
    assert model(torch.randn(3, 4, 7, 7)).shape == (3, 3)


def test_convnet_latent_input():
    model = get_network("convnet", 4, 10, 7)
    assert model.depth == 1 and model.embed(torch.randn(2, 4, 7, 7)).shape == (2, 128 * 3 * 3)


def test_invalid_configurations_raise_clear_errors():
    with pytest.raises(NetworkConfigError, match="depth must be >= 1"):
        get_network("convnet", 1, 10, 28, depth=0)
    with pytest.raises(NetworkConfigError, match="depth <= 1"):
        get_network("convnet", 1, 10, 7, depth=4)
    with pytest.raises(NetworkConfigError, match="Unknown norm"):
        get_network("convnet", 1, 10, 28, norm="layernorm2")
    model = get_network("convnet", 1, 10, 28, width=8)
    with pytest.raises(NetworkConfigError, match="resolution=32"):
        model(torch.randn(1, 1, 32, 32))


def test_unknown_name_lists_known_names():
    with pytest.raises(NetworkConfigError) as info:
        get_network("transformer9000", 1, 10, 28)
    for name in ALL:
        assert name in str(info.value)


def test_register_network_rejects_duplicates_and_accepts_new_builders():
    with pytest.raises(NetworkConfigError, match="already registered"):
        register_network("convnet")(lambda *args: None)

    @register_network("test-linear-probe")
    class Probe(nn.Module):
        def __init__(self, in_channels, num_classes, resolution):
            super().__init__()
            self.fc = nn.Linear(in_channels * resolution * resolution, num_classes)

        def forward(self, x):
            return self.fc(x.flatten(1))

    assert get_network("test-linear-probe", 1, 3, 8)(torch.randn(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("name", ALL)
def test_functional_call_matches_and_differentiates(name):
    torch.manual_seed(0)
    model = get_network(name, 1, 4, 8)
    x = torch.randn(3, 1, 8, 8)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    out = functional_call(model, params, (x,))
    torch.testing.assert_close(out, model(x))
    grads = torch.autograd.grad(out.square().sum(), list(params.values()))
    assert all(torch.isfinite(g).all() for g in grads)
    shifted = {k: v + 0.1 for k, v in params.items()}
    assert not torch.allclose(functional_call(model, shifted, (x,)), out)
