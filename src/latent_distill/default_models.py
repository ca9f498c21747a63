"""The shipped models and how to build them.

Two pipeline folders ship inside the package, each an ordinary diffusers folder (an
``AutoencoderKL`` trained by ``examples/train_autoencoder.py`` and a class-conditional
``DiTTransformer2DModel`` trained by ``examples/train_latent_diffusion.py`` on Fashion-MNIST, with
a DDIM scheduler) that loads with ``LatentDistillationPipeline.from_pretrained`` or
``D3HRPipeline.from_pretrained``:

- ``latent_distill/pretrained/fashion-mnist`` (:data:`DEFAULT_PIPELINE_PATH`): ``4x7x7`` latents,
  the offline default of every method;
- ``latent_distill/pretrained/fashion-mnist-14x14`` (:data:`FASHION_MNIST_14X14_PIPELINE_PATH`):
  ``4x14x14`` latents, finer detail at four times the latent size (D3HR's best setting at IPC 10).

:func:`shipped_pipeline_path` turns a shipped folder's name into its path.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_PIPELINE_PATH = PRETRAINED_DIR / "fashion-mnist"
FASHION_MNIST_14X14_PIPELINE_PATH = PRETRAINED_DIR / "fashion-mnist-14x14"
SHIPPED_PIPELINES = {path.name: path for path in (DEFAULT_PIPELINE_PATH, FASHION_MNIST_14X14_PIPELINE_PATH)}
"""Shipped pipeline folders by name."""


def shipped_pipeline_path(name_or_path: str | Path) -> str | Path:
    """The folder of a shipped pipeline named ``name_or_path``; anything else unchanged.

    Args:
        name_or_path: a shipped pipeline's name (a key of :data:`SHIPPED_PIPELINES`, e.g.
            ``"fashion-mnist-14x14"``), a folder or a Hub id.

    Returns:
        The shipped folder's path for a shipped name that is not also an existing local folder;
        ``name_or_path`` itself otherwise.
    """
    name = str(name_or_path)
    if name in SHIPPED_PIPELINES and not Path(name).exists():
        return SHIPPED_PIPELINES[name]
    return name_or_path


def is_shipped_pipeline(path: str | Path) -> bool:
    """Whether ``path`` is one of the shipped pipeline folders."""
    return any(Path(path).resolve() == shipped.resolve() for shipped in SHIPPED_PIPELINES.values())


#: Block widths of the default autoencoder, one per resolution level (28, 14, 7).
AUTOENCODER_BLOCK_CHANNELS = (32, 64, 128)


def fashion_mnist_autoencoder_config(latent_channels: int = 4, downsampling: int = 2) -> dict:
    """Returns the ``AutoencoderKL`` config of the default autoencoder.

    An SD-VAE-like design scaled to 28x28 grey images: three resolution levels (28, 14, 7), two
    ResNet blocks each, an attention mid-block, 4 latent channels. Latents are ``4x7x7`` (196 values)
    for a 784-value image, so one image's storage holds four latents.

    Args:
        latent_channels: channels of the latent (4 for the default; more keep more detail and store
            fewer latents per image's bytes).
        downsampling: how many times the encoder halves the side: 2 for the default ``7x7`` latents,
            1 for ``14x14`` latents (two resolution levels, 28 and 14, of the default's first widths).

    Returns:
        The ``AutoencoderKL`` keyword arguments.

    Raises:
        ValueError: for a ``downsampling`` the design has no levels for.
    """
    if not 1 <= downsampling < len(AUTOENCODER_BLOCK_CHANNELS):
        raise ValueError(f"downsampling={downsampling}: the default autoencoder halves a 28x28 image 1 or "
                         f"{len(AUTOENCODER_BLOCK_CHANNELS) - 1} times (14x14 or 7x7 latents).")
    levels = downsampling + 1
    return dict(
        in_channels=1,
        out_channels=1,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=AUTOENCODER_BLOCK_CHANNELS[:levels],
        layers_per_block=2,
        latent_channels=latent_channels,
        norm_num_groups=32,
        sample_size=28,
    )


def build_fashion_mnist_autoencoder(latent_channels: int = 4, downsampling: int = 2) -> AutoencoderKL:
    """Builds a freshly initialised default autoencoder (arguments as in
    :func:`fashion_mnist_autoencoder_config`)."""
    return AutoencoderKL(**fashion_mnist_autoencoder_config(latent_channels, downsampling))


BUILTIN_PREFIX = "latent_distill://"


def model_reference(path_or_repo_id: str | None) -> str | None:
    """How a model is recorded in a distilled dataset: Hub ids and outside paths as given, models
    shipped inside this package as ``latent_distill://<path inside the package>`` (machine-free)."""
    if path_or_repo_id is None:
        return None
    path = Path(str(path_or_repo_id))
    package = Path(__file__).parent.resolve()
    if path.exists() and path.resolve().is_relative_to(package):
        return BUILTIN_PREFIX + path.resolve().relative_to(package).as_posix()
    return str(path_or_repo_id)


def resolve_model_reference(reference: str) -> str:
    """Inverse of :func:`model_reference`: a loadable path or Hub id."""
    if reference.startswith(BUILTIN_PREFIX):
        return str(Path(__file__).parent / reference[len(BUILTIN_PREFIX):])
    return reference


def fashion_mnist_transformer_config(num_classes: int = 10) -> dict:
    """Returns the ``DiTTransformer2DModel`` config of the default class-conditional denoiser.

    A DiT scaled to the default autoencoder's ``4x7x7`` latents: patch size 1 (49 tokens), six
    ``ada_norm_zero`` blocks of width 128 (4 heads of 32), ``num_classes`` labels plus the null label
    ``num_classes`` used for classifier-free guidance. It predicts the noise only (``out_channels``
    equals the latent channels; DiT-XL/2's learned-sigma channels are not trained here).
    """
    return dict(
        sample_size=7,
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=6,
        num_attention_heads=4,
        attention_head_dim=32,
        num_embeds_ada_norm=num_classes,
        norm_type="ada_norm_zero",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )


def build_fashion_mnist_transformer(num_classes: int = 10, **overrides):
    """Builds a freshly initialised default denoiser (``DiTTransformer2DModel``).

    Args:
        num_classes: class labels (the null label is ``num_classes``).
        **overrides: config keys that replace the default's (e.g. ``sample_size``, ``num_layers``).

    Returns:
        The denoiser.
    """
    from diffusers import DiTTransformer2DModel

    return DiTTransformer2DModel(**{**fashion_mnist_transformer_config(num_classes), **overrides})
