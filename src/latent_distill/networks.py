"""Evaluation and matching networks, built by name.

The architectures are the small-resolution variants used throughout the dataset-distillation
literature (DC, DSA, DM, MTT, GLaD, LatentDD):

* ``"convnet"``: ConvNet-D. ``depth`` blocks of [3x3 conv -> norm -> activation -> 2x2 pooling],
  then one linear layer. Width 128 and instance norm by default; the depth follows the input size
  (:func:`default_convnet_depth`), so the same name serves 28x28 images and 4x7x7 VAE latents.
* ``"alexnet"``: five convolutions (5x5, 5x5, 3x3, 3x3, 3x3) with three max-pools.
* ``"vgg11"``: VGG-11 with a norm layer after each convolution (instance norm by default).
* ``"resnet18"``: ResNet-18 with a 3x3 stride-1 stem and no max-pool (the CIFAR variant).

Every network accepts any number of input channels and any square input of at least 7 pixels:
pooling layers that would shrink the feature map below one pixel are left out, and the last three
architectures pool adaptively before the classifier. Every network exposes ``embed(x)`` (the
features the classifier sees, flattened), which distribution matching uses.

All modules are plain ``nn.Module`` trees without in-place activations, so they can be run with
``torch.func.functional_call`` on an external parameter dictionary (trajectory matching does this).

New architectures join the registry with :func:`register_network`::

    @register_network("mlp")
    class MLP(nn.Module):
        def __init__(self, in_channels, num_classes, resolution, hidden=256): ...
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from .registry import Registry, RegistryError

NetworkBuilder = Callable[..., nn.Module]


class NetworkConfigError(ValueError):
    """Raised when a network cannot be built as asked; the message names the problem and the fix."""


class NetworkNameError(NetworkConfigError, RegistryError):
    """Raised for an unknown or already registered network name (also a ``KeyError``)."""


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------

NETWORKS: Registry[NetworkBuilder] = Registry("network", "@register_network(name)", error=NetworkNameError,
                                              case_sensitive=False)
list_networks = NETWORKS.names


def register_network(name: str) -> Callable[[NetworkBuilder], NetworkBuilder]:
    """Class or function decorator adding a network builder to the registry.

    The builder is called as ``builder(in_channels, num_classes, resolution, **kwargs)``.

    Args:
        name: registry key (case-insensitive).

    Returns:
        The decorator, which returns the builder unchanged.

    Raises:
        NetworkNameError: when ``name`` is already registered.
    """
    return NETWORKS.register(name)


def get_network(name: str, in_channels: int, num_classes: int, resolution: int, **kwargs) -> nn.Module:
    """Builds a freshly initialised network by name.

    Args:
        name: a name from :func:`list_networks` (case-insensitive).
        in_channels: channels of the input (1 grey, 3 RGB, 4 for SD-VAE latents, ...).
        num_classes: outputs of the classifier.
        resolution: side of the square input.
        **kwargs: architecture options (e.g. ``depth``, ``width``, ``norm`` for ``"convnet"``).

    Returns:
        The network, in training mode, initialised from the global torch RNG.

    Raises:
        NetworkNameError: for an unknown name, listing the registered ones.
        NetworkConfigError: for invalid sizes.
    """
    builder = NETWORKS.get(name)
    if in_channels < 1 or num_classes < 1 or resolution < 1:
        raise NetworkConfigError(
            f"in_channels, num_classes and resolution must be positive, got {in_channels}, "
            f"{num_classes}, {resolution}."
        )
    return builder(in_channels, num_classes, resolution, **kwargs)


# ----------------------------------------------------------------------------------------------
# Layer registries
# ----------------------------------------------------------------------------------------------

NORM_LAYERS: dict[str, Callable[[int], nn.Module]] = {
    # Instance norm with a learnable affine, written as GroupNorm with one channel per group: it has
    # weights (unlike nn.InstanceNorm2d's default) and no running statistics.
    "instancenorm": lambda channels: nn.GroupNorm(channels, channels, affine=True),
    "batchnorm": lambda channels: nn.BatchNorm2d(channels),
    "groupnorm": lambda channels: nn.GroupNorm(min(4, channels), channels, affine=True),
    "none": lambda channels: nn.Identity(),
}

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leakyrelu": lambda: nn.LeakyReLU(0.01),
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}

POOLINGS: dict[str, Optional[Callable[[], nn.Module]]] = {
    "avgpool": lambda: nn.AvgPool2d(kernel_size=2, stride=2),
    "maxpool": lambda: nn.MaxPool2d(kernel_size=2, stride=2),
    "none": None,
}


def _lookup(table: dict, kind: str, name: str):
    if name not in table:
        raise NetworkConfigError(f"Unknown {kind} {name!r}; choose one of {', '.join(sorted(table))}.")
    return table[name]


def make_norm(name: str, channels: int) -> nn.Module:
    """Builds a norm layer from :data:`NORM_LAYERS` for ``channels`` feature maps."""
    return _lookup(NORM_LAYERS, "norm", name)(channels)


def make_activation(name: str) -> nn.Module:
    """Builds an activation from :data:`ACTIVATIONS`."""
    return _lookup(ACTIVATIONS, "activation", name)()


def _check_input(x: torch.Tensor, in_channels: int, resolution: int, network: str) -> None:
    if x.dim() != 4 or x.shape[1] != in_channels or x.shape[-2:] != (resolution, resolution):
        raise NetworkConfigError(
            f"{network} was built for inputs (N, {in_channels}, {resolution}, {resolution}), got "
            f"{tuple(x.shape)}: build it with get_network(..., in_channels={x.shape[1] if x.dim() == 4 else '?'}, "
            f"resolution={x.shape[-1]})."
        )


# ----------------------------------------------------------------------------------------------
# ConvNet-D
# ----------------------------------------------------------------------------------------------

def default_convnet_depth(resolution: int) -> int:
    """Depth of ConvNet-D for an input side: the number of halvings that keep at least 3 pixels.

    28 -> 3, 32 -> 3, 64 -> 4, 128 -> 5, 256 -> 6, 14 -> 2, 7 -> 1 (the usual ConvNet-3 for CIFAR and
    MNIST-like data, ConvNet-4 for Tiny-ImageNet, ConvNet-5/6 for 128/256-pixel ImageNet subsets).

    Args:
        resolution: side of the square input.

    Returns:
        The depth, at least 1.

    Raises:
        NetworkConfigError: when ``resolution`` is below 2 (no pooling possible).
    """
    if resolution < 2:
        raise NetworkConfigError(f"ConvNet needs inputs of at least 2x2 pixels, got {resolution}.")
    depth, size = 0, resolution
    while size // 2 >= 3:
        size //= 2
        depth += 1
    return max(depth, 1)


@register_network("convnet")
class ConvNet(nn.Module):
    """ConvNet-D: ``depth`` blocks of [3x3 conv -> norm -> activation -> pooling], then a linear layer.

    Args:
        in_channels: input channels.
        num_classes: classifier outputs.
        resolution: side of the square input.
        depth: number of blocks; ``None`` uses :func:`default_convnet_depth`.
        width: channels of every convolution.
        norm: a key of :data:`NORM_LAYERS` (``"instancenorm"``, ``"batchnorm"``, ``"groupnorm"``,
            ``"none"``).
        activation: a key of :data:`ACTIVATIONS`.
        pooling: a key of :data:`POOLINGS` (``"avgpool"``, ``"maxpool"``, ``"none"``).
        first_padding: padding of the first convolution. 1 keeps the size; the DC reference code
            uses 3 for one-channel inputs, which turns 28x28 into the 32x32 geometry of CIFAR.

    Raises:
        NetworkConfigError: for an invalid depth, or a depth the resolution cannot support.
    """

    def __init__(self, in_channels: int, num_classes: int, resolution: int, depth: Optional[int] = None,
                 width: int = 128, norm: str = "instancenorm", activation: str = "relu",
                 pooling: str = "avgpool", first_padding: int = 1) -> None:
        super().__init__()
        depth = default_convnet_depth(resolution) if depth is None else int(depth)
        if depth < 1:
            raise NetworkConfigError(f"ConvNet depth must be >= 1, got {depth}.")
        pool = _lookup(POOLINGS, "pooling", pooling)
        self.in_channels, self.resolution, self.depth, self.width = in_channels, resolution, depth, width
        layers: list[nn.Module] = []
        channels, size = in_channels, resolution
        for block in range(depth):
            padding = first_padding if block == 0 else 1
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=padding),
                       make_norm(norm, width), make_activation(activation)]
            size = size + 2 * padding - 2
            if pool is not None:
                layers.append(pool())
                size //= 2
            if size < 1:
                raise NetworkConfigError(
                    f"ConvNet of depth {depth} shrinks a {resolution}x{resolution} input to nothing at block "
                    f"{block + 1}: use depth <= {default_convnet_depth(resolution)} (or depth=None)."
                )
            channels = width
        self.features = nn.Sequential(*layers)
        self.feature_shape = (width, size, size)
        self.classifier = nn.Linear(width * size * size, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the flattened features before the classifier, shape ``(N, width * s * s)``."""
        _check_input(x, self.in_channels, self.resolution, "ConvNet")
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits ``(N, num_classes)``."""
        return self.classifier(self.embed(x))


# ----------------------------------------------------------------------------------------------
# AlexNet and VGG-11 (small-resolution variants)
# ----------------------------------------------------------------------------------------------

def _maybe_pool(size: int, pooling: Callable[[], nn.Module]) -> tuple[list[nn.Module], int]:
    """A 2x2 pool when the map has at least 2 pixels; nothing otherwise (tiny inputs)."""
    if size >= 2:
        return [pooling()], size // 2
    return [], size


@register_network("alexnet")
class AlexNet(nn.Module):
    """AlexNet for small images: conv5(128) -> pool -> conv5(192) -> pool -> conv3(256, 192, 192) -> pool.

    ReLU after every convolution, 2x2 max-pools (left out when the map is already 1 pixel), then an
    adaptive average pool to at most 4x4 (a no-op at 28/32 pixels, where the map is 3x3/4x4) and one
    linear layer.

    Args:
        in_channels: input channels.
        num_classes: classifier outputs.
        resolution: side of the square input.
        width_multiplier: scales every convolution's width.
    """

    def __init__(self, in_channels: int, num_classes: int, resolution: int, width_multiplier: float = 1.0) -> None:
        super().__init__()
        widths = [max(1, int(round(w * width_multiplier))) for w in (128, 192, 256, 192, 192)]
        kernels = (5, 5, 3, 3, 3)
        pool_after = (True, True, False, False, True)
        self.in_channels, self.resolution = in_channels, resolution
        layers: list[nn.Module] = []
        channels, size = in_channels, resolution
        for width, kernel, pool in zip(widths, kernels, pool_after):
            layers += [nn.Conv2d(channels, width, kernel_size=kernel, padding=kernel // 2), nn.ReLU()]
            if pool:
                extra, size = _maybe_pool(size, lambda: nn.MaxPool2d(kernel_size=2, stride=2))
                layers += extra
            channels = width
        pooled = min(4, size)
        layers.append(nn.AdaptiveAvgPool2d(pooled))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * pooled * pooled, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the flattened features before the classifier."""
        _check_input(x, self.in_channels, self.resolution, "AlexNet")
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits ``(N, num_classes)``."""
        return self.classifier(self.embed(x))


VGG_CONFIGS: dict[str, Sequence[Union[int, str]]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
}


class VGG(nn.Module):
    """VGG with [3x3 conv -> norm -> ReLU] layers and 2x2 max-pools, adaptive pool, one linear layer.

    Args:
        config: layer list, channel counts and ``"M"`` for max-pools (see :data:`VGG_CONFIGS`).
        in_channels: input channels.
        num_classes: classifier outputs.
        resolution: side of the square input.
        norm: a key of :data:`NORM_LAYERS`; ``"instancenorm"`` as in the DC reference.
    """

    def __init__(self, config: Sequence[Union[int, str]], in_channels: int, num_classes: int, resolution: int,
                 norm: str = "instancenorm") -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        layers: list[nn.Module] = []
        channels, size = in_channels, resolution
        for item in config:
            if item == "M":
                extra, size = _maybe_pool(size, lambda: nn.MaxPool2d(kernel_size=2, stride=2))
                layers += extra
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), make_norm(norm, int(item)),
                           nn.ReLU()]
                channels = int(item)
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the pooled features before the classifier, shape ``(N, 512)``."""
        _check_input(x, self.in_channels, self.resolution, "VGG")
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits ``(N, num_classes)``."""
        return self.classifier(self.embed(x))


@register_network("vgg11")
def vgg11(in_channels: int, num_classes: int, resolution: int, norm: str = "instancenorm") -> VGG:
    """VGG-11 (8 convolutions, 5 max-pools) with instance norm by default."""
    return VGG(VGG_CONFIGS["vgg11"], in_channels, num_classes, resolution, norm=norm)


# ----------------------------------------------------------------------------------------------
# ResNet-18 (CIFAR variant)
# ----------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """Two 3x3 convolutions with norm and a (projected when needed) identity shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.norm1 = make_norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.norm2 = make_norm(norm, planes)
        self.relu = nn.ReLU()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                                          make_norm(norm, planes))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with a 3x3 stride-1 stem, no max-pool, four stages of basic blocks, adaptive pooling.

    Args:
        blocks: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        in_channels: input channels.
        num_classes: classifier outputs.
        resolution: side of the square input.
        norm: a key of :data:`NORM_LAYERS`; ``"instancenorm"`` (DC's ``ResNet18``) or ``"batchnorm"``
            (DC's ``ResNet18BN``, RDED's ``resnet18_modified``).
    """

    def __init__(self, blocks: Sequence[int], in_channels: int, num_classes: int, resolution: int,
                 norm: str = "instancenorm") -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.norm1 = make_norm(norm, 64)
        self.relu = nn.ReLU()
        stages: list[nn.Module] = []
        planes_in = 64
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            stride = 1 if stage == 0 else 2
            layers = []
            for index in range(count):
                layers.append(BasicBlock(planes_in, planes, stride if index == 0 else 1, norm))
                planes_in = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(512, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the pooled features before the classifier, shape ``(N, 512)``."""
        _check_input(x, self.in_channels, self.resolution, "ResNet")
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.pool(out).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits ``(N, num_classes)``."""
        return self.classifier(self.embed(x))


@register_network("resnet18")
def resnet18(in_channels: int, num_classes: int, resolution: int, norm: str = "instancenorm") -> ResNet:
    """ResNet-18 (basic blocks 2-2-2-2), instance norm by default."""
    return ResNet((2, 2, 2, 2), in_channels, num_classes, resolution, norm=norm)
