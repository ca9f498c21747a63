"""LD3M (Moser et al.): the synthetic set as inputs of a frozen class-conditional latent diffusion model.

Each synthetic sample is a learnable initial latent ``z`` and a learnable class embedding ``c``.
A sample is rendered by forward-noising ``z`` to the first timestep of a ``K``-step DDIM grid,
running ``K`` deterministic DDIM steps (eta 0) of a frozen class-conditional DiT conditioned on
``c`` with LD3M's linearly decaying skip connection, and decoding the result with the frozen VAE.
The matching objectives (DC, DM, MTT) then run on the decoded images, exactly as on pixels.

The skip connection (:mod:`.skip_connection`, a registry of forms; step indices ``i = K-1`` (first,
noisiest) ... ``0``):

- ``"paper"`` (Eq. 7 / Algorithm 1): ``x_prev = (1 - w) * ddim(x, e) + w * z_T`` with ``w = (i+1)/K``
  (``t/T``) and ``z_T`` the forward-noised initial latent of the pass;
- ``"reference"`` (the authors' patched ``p_sample_ddim``): the mix is on the x0-prediction,
  ``x0 = (1 - w) * x0_hat + w * z`` with ``w = i/(K-1)`` and ``z`` the clean learnable latent;
- ``"none"``: plain DDIM (the vanishing-gradient baseline).

Memory (GLaD's "generator prior" loop): every denoiser call runs under gradient checkpointing, and
by default :class:`DiffusionRenderer` renders a request in two passes (a ``torch.autograd.Function``):
the forward renders all samples without a graph in chunks of ``chunk_size``; the backward
re-renders one chunk at a time with a graph and back-propagates the incoming image gradient into
``(z, c)``, so peak memory does not grow with the number of samples. Both passes draw the same
initial noise, keyed by ``(seed, noise key, sample index)``; the noise key is the iteration the
pipeline announces with :meth:`DiffusionPrior.begin_iteration` (the reference code draws fresh
noise for the gradient pass, so its gradient belongs to another sample than its loss), and
:data:`EXPORT_NOISE_KEY` for the stored images, so they can be re-rendered from the stored latents
and class embeddings (:meth:`DiffusionPrior.restore`).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import nn

from ..codec import LatentCodec
from ..data import float_to_uint8
from .base import Representation, register_representation
from .diffusion_renderer import (
    DiffusionPriorError,
    DiffusionPriorOptions,
    DiffusionRenderer,
    NoiseKey,
)
from .pixel import LearnablePixels

#: Noise key of the stored images, so they can be re-rendered from the stored latents and class embeddings.
EXPORT_NOISE_KEY = "export"


@register_representation("diffusion")
class DiffusionPrior(Representation):
    """LD3M: learnable initial latents and class embeddings, rendered by a frozen diffusion model.

    Objectives see decoded images in [-1, 1] at the working resolution (the pixel space), and the
    real data is the pixel pool. Build it with :meth:`create` (what the pipeline calls) or
    :meth:`restore`.

    Args:
        latents: ``(N, C, h, w)`` initial latents ``z``, ordered by class (:attr:`samples`).
        class_embeddings: ``(N, num_blocks, hidden)`` class embeddings ``c``.
        num_classes: number of classes.
        renderer: the frozen sampler and decoder.
    """

    space = "pixel"
    options_class = DiffusionPriorOptions
    uses_denoiser = True

    def __init__(self, latents: torch.Tensor, class_embeddings: torch.Tensor, num_classes: int,
                 renderer: DiffusionRenderer) -> None:
        super().__init__(latents, num_classes)
        if len(class_embeddings) != len(latents):
            raise ValueError(f"{len(class_embeddings)} class embeddings for {len(latents)} latents: give one per sample.")
        self.class_embeddings = nn.Parameter(class_embeddings.detach().clone().float())
        self.renderer = renderer
        self.iteration = 0

    @classmethod
    def create(cls, initial, num_classes, *, codec=None, transformer=None, scheduler=None, options=None, seed=0):
        """Encodes one real image per sample into ``z``; ``c`` starts at each block's table row of the label.

        Args:
            initial: ``(N, C, H, W)`` float images in [-1, 1] (real images for ``init="real"``; for
                ``init="noise"`` the noise images are encoded), ordered by class; each is encoded
                with ``codec``.
            num_classes: number of classes.
            codec: the pipeline's autoencoder codec.
            transformer: the pipeline's class-conditional DiT.
            scheduler: the pipeline's noise scheduler.
            options: ``config.representation_kwargs`` (:class:`DiffusionPriorOptions`).
            seed: ``config.seed``.

        Raises:
            DiffusionPriorError: when the pipeline has no denoiser or scheduler.
            RepresentationConfigError: for unknown or invalid options.
        """
        options = cls.parse_options(options)
        if transformer is None or scheduler is None:
            missing = " and ".join(name for name, value in (("transformer", transformer), ("scheduler", scheduler))
                                   if value is None)
            raise DiffusionPriorError(
                f"The 'diffusion' representation (LD3M) renders its samples with a class-conditional denoiser, but "
                f"the pipeline has no {missing}: load a pipeline that holds one "
                "(LatentDistillationPipeline.from_pretrained(folder) on a folder with transformer/ and scheduler/, "
                "e.g. one trained by examples/train_latent_diffusion.py), or pass transformer= and scheduler= to "
                "LatentDistillationPipeline(...)."
            )
        if codec is None:
            raise DiffusionPriorError("The 'diffusion' representation needs the autoencoder's codec to encode and "
                                      "decode: load the pipeline with a vae.")
        transformer.to(next(codec.vae.parameters()).device)
        latents = codec.encode(initial)
        return cls.restore(latents, None, num_classes, codec=codec, transformer=transformer, scheduler=scheduler,
                           options=options, seed=seed)

    @classmethod
    def restore(cls, latents: torch.Tensor, class_embeddings: Optional[torch.Tensor], num_classes: int, *,
                codec: LatentCodec, transformer: nn.Module, scheduler: Any,
                options: Union[DiffusionPriorOptions, dict, None] = None, seed: int = 0) -> "DiffusionPrior":
        """Builds the representation from latents and class embeddings (e.g. a stored set, whose
        :meth:`export` then reproduces the stored images with the run's options and seed).

        Args:
            latents: ``(N, C, h, w)`` initial latents, ordered by class.
            class_embeddings: ``(N, num_blocks, hidden)``; ``None`` takes the label's table rows.
            num_classes: number of classes.
            codec: the autoencoder codec.
            transformer: the class-conditional DiT.
            scheduler: its noise scheduler.
            options: :class:`DiffusionPriorOptions` or its dict (``config.representation_kwargs``).
            seed: the run's seed.

        Returns:
            The representation.
        """
        if not isinstance(options, DiffusionPriorOptions):
            options = cls.parse_options(options)
        renderer = DiffusionRenderer(transformer, scheduler, codec, options, seed)
        labels = torch.arange(num_classes).repeat_interleave(cls.split_per_class(len(latents), num_classes))
        renderer.check(latents, labels)
        if class_embeddings is None:
            class_embeddings = renderer.initial_class_embeddings(labels)
        return cls(latents, class_embeddings, num_classes, renderer)

    @classmethod
    def sample_shape(cls, image_shape, codec):
        return tuple(image_shape)

    @classmethod
    def real_pool(cls, data, codec, cache, progress=None):
        return LearnablePixels.real_pool(data, codec, cache, progress)

    @property
    def latents(self) -> torch.Tensor:
        """The learnable initial latents ``z`` (the :attr:`samples` parameter)."""
        return self.samples

    def begin_iteration(self, step: int) -> None:
        """Keys the initial noise of every render until the next call by ``step``."""
        self.iteration = int(step)

    def _render_rows(self, rows: slice, noise_key: NoiseKey) -> torch.Tensor:
        return self.renderer.render(self.samples[rows], self.class_embeddings[rows], self.labels[rows],
                                    range(len(self.samples))[rows], noise_key)

    def render(self, class_index: int) -> torch.Tensor:
        start = class_index * self.samples_per_class
        return self._render_rows(slice(start, start + self.samples_per_class), self.iteration)

    def render_all(self) -> torch.Tensor:
        return self._render_rows(slice(0, len(self.samples)), self.iteration)

    def export(self, codec):
        """The stored set: ``images`` (uint8, rendered with :data:`EXPORT_NOISE_KEY`), ``latents`` (the
        learned initial latents) and ``class_embeddings``.

        Args:
            codec: unused (the renderer decodes with the codec it was built with).
        """
        with torch.no_grad():
            images = self._render_rows(slice(0, len(self.samples)), EXPORT_NOISE_KEY)
        return {"images": float_to_uint8(images.cpu()), "latents": self.samples.detach().cpu().clone(),
                "class_embeddings": self.class_embeddings.detach().cpu().clone()}
