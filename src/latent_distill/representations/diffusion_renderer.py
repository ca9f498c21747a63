"""Rendering LD3M samples: initial latents and class embeddings through a frozen DiT, DDIM and the VAE.

Memory (GLaD's "generator prior" loop): every denoiser call runs under gradient checkpointing, and
by default :class:`DiffusionRenderer` renders a request in two passes (a ``torch.autograd.Function``):
the forward renders all samples without a graph in chunks of ``chunk_size``; the backward
re-renders one chunk at a time with a graph and back-propagates the incoming image gradient into
``(z, c)``, so peak memory does not grow with the number of samples. Both passes draw the same
initial noise, keyed by ``(seed, noise key, sample index)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from ..codec import LatentCodec
from ..diffusion.class_embeddings import class_embedders, override_class_embeddings
from ..diffusion.ddim import ddim_schedulers
from ..diffusion.guidance import GuidedDenoiser
from ..seeding import generator_for
from .base import RepresentationConfigError
from .skip_connection import SKIP_CONNECTIONS

NoiseKey = Union[int, str]


class DiffusionPriorError(ValueError):
    """Raised when the diffusion prior cannot be built from the pipeline's models."""


@dataclass
class DiffusionPriorOptions:
    """Options of the ``"diffusion"`` representation (``config.representation_kwargs``).

    Args:
        num_steps: K, DDIM steps per render (LD3M: 10 at 128^2, 20 at 256^2).
        skip: the skip connection, a name of :data:`SKIP_CONNECTIONS` (``"paper"``, ``"reference"``,
            ``"none"``).
        guidance_scale: classifier-free guidance scale; 1 disables guidance (LD3M: 3).
        chunk_size: samples rendered together.
        checkpointing: gradient checkpointing around every denoiser call.
        chunked_backward: the two-pass render (no-graph forward, chunk-by-chunk re-render in the
            backward); ``False`` keeps the graph of every sample of a request (same gradients).
    """

    num_steps: int = 10
    skip: str = "paper"
    guidance_scale: float = 1.0
    chunk_size: int = 10
    checkpointing: bool = True
    chunked_backward: bool = True

    def __post_init__(self) -> None:
        if self.skip not in SKIP_CONNECTIONS:
            raise RepresentationConfigError(
                f"skip must be one of {SKIP_CONNECTIONS.names()}, got {self.skip!r}.")
        if self.num_steps < 1 or self.chunk_size < 1:
            raise RepresentationConfigError(
                f"num_steps and chunk_size must be at least 1, got {self.num_steps} and {self.chunk_size}.")


class _TwoPassRender(torch.autograd.Function):
    """Images of ``(z, c)`` rendered without a graph; the backward re-renders chunk by chunk."""

    @staticmethod
    def forward(ctx, renderer: "DiffusionRenderer", latents: torch.Tensor, embeddings: torch.Tensor,
                labels: torch.Tensor, indices: Sequence[int], noise_key: NoiseKey) -> torch.Tensor:
        ctx.renderer, ctx.labels, ctx.indices, ctx.noise_key = renderer, labels, indices, noise_key
        ctx.save_for_backward(latents, embeddings)
        return torch.cat([renderer.render_chunk(latents[rows], embeddings[rows], labels[rows], indices[rows], noise_key)
                          for rows in renderer.chunks(len(latents))])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_images: torch.Tensor):
        latents, embeddings = ctx.saved_tensors
        wants = ctx.needs_input_grad[1:3]
        grad_latents = torch.zeros_like(latents) if wants[0] else None
        grad_embeddings = torch.zeros_like(embeddings) if wants[1] else None
        renderer = ctx.renderer
        for rows in renderer.chunks(len(latents)):
            inputs = [latents[rows].detach().requires_grad_(wants[0]),
                      embeddings[rows].detach().requires_grad_(wants[1])]
            with torch.enable_grad():
                images = renderer.render_chunk(*inputs, ctx.labels[rows], ctx.indices[rows], ctx.noise_key)
                wanted = [tensor for tensor, want in zip(inputs, wants) if want]
                # allow_unused: e.g. with K = 1 and the paper's skip the images do not depend on c.
                gradients = iter(torch.autograd.grad(images, wanted, grad_images[rows], allow_unused=True))
            for want, total in zip(wants, (grad_latents, grad_embeddings)):
                gradient = next(gradients) if want else None
                if gradient is not None:
                    total[rows] = gradient
        return None, grad_latents, grad_embeddings, None, None, None


class DiffusionRenderer:
    """Renders initial latents and class embeddings to images with a frozen DiT, DDIM and VAE.

    Not an ``nn.Module``: the frozen models stay out of the representation's parameters and
    ``state_dict``.

    Args:
        transformer: a class-conditional ``DiTTransformer2DModel`` predicting noise (its
            learned-sigma channels, if any, are ignored); frozen and put in eval mode.
        scheduler: the denoiser's noise scheduler (any diffusers scheduler with a DDIM-compatible
            config and ``prediction_type="epsilon"``); its schedule is used on the grid of
            ``DDIMScheduler.from_config(config).set_timesteps(num_steps)``.
        codec: the autoencoder codec that decodes latents to images.
        options: :class:`DiffusionPriorOptions`.
        seed: keys the initial noise (with the noise key and the sample index).

    Raises:
        DiffusionPriorError: for a scheduler that does not predict noise, or guidance with a model
            that has no null label.
    """

    def __init__(self, transformer: nn.Module, scheduler: Any, codec: LatentCodec,
                 options: Optional[DiffusionPriorOptions] = None, seed: int = 0) -> None:
        self.options = options or DiffusionPriorOptions()
        self.codec, self.seed = codec, seed
        prediction = scheduler.config.get("prediction_type", "epsilon")
        if prediction != "epsilon":
            raise DiffusionPriorError(
                f"The scheduler's prediction_type is {prediction!r}; the 'diffusion' representation steps with noise "
                "predictions: use a denoiser trained to predict noise (prediction_type='epsilon').")
        transformer.requires_grad_(False)
        self.denoiser = GuidedDenoiser(transformer, self.options.guidance_scale)
        self.embedders = class_embedders(transformer)
        if self.options.guidance_scale != 1.0 and any(
                e.embedding_table.num_embeddings <= self.denoiser.null_label for e in self.embedders):
            raise DiffusionPriorError(
                "Classifier-free guidance needs the denoiser's null label, but its label embedding has no row for it "
                "(class_dropout_prob was 0): set guidance_scale to 1.0 in representation_kwargs.")
        self.connection = SKIP_CONNECTIONS.get(self.options.skip)
        sampler, _ = ddim_schedulers(scheduler, self.options.num_steps)
        stride = sampler.config.num_train_timesteps // sampler.num_inference_steps
        self.timesteps = [int(t) for t in sampler.timesteps]
        self.alpha_bars = [
            (float(sampler.alphas_cumprod[t]),
             float(sampler.alphas_cumprod[t - stride] if t - stride >= 0 else sampler.final_alpha_cumprod))
            for t in self.timesteps
        ]

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def check(self, latents: torch.Tensor, labels: torch.Tensor) -> None:
        """Raises a :class:`~latent_distill.diffusion.DenoiserError` naming the fix when the
        latents or labels do not fit the denoiser."""
        self.denoiser.check_latents(latents)
        self.denoiser.check_labels(labels)

    def initial_class_embeddings(self, labels: torch.Tensor) -> torch.Tensor:
        """Each block's table row of each label: ``(N, num_blocks, hidden)`` float32 on the CPU."""
        with torch.no_grad():
            return torch.stack([e.embedding_table.weight[labels.to(e.embedding_table.weight.device)].float().cpu()
                                for e in self.embedders], dim=1)

    def chunks(self, count: int) -> list[slice]:
        return [slice(start, min(start + self.options.chunk_size, count))
                for start in range(0, count, self.options.chunk_size)]

    def noise(self, indices: Sequence[int], noise_key: NoiseKey, shape: Sequence[int]) -> torch.Tensor:
        """The initial noise of samples ``indices``: one generator per ``(seed, noise_key, index)``."""
        return torch.stack([torch.randn(tuple(shape), generator=generator_for(self.seed, "ld3m-noise", noise_key, int(i)))
                            for i in indices])

    def predict_noise(self, sample: torch.Tensor, timestep: int, labels: torch.Tensor,
                      embeddings: torch.Tensor) -> torch.Tensor:
        """The (guided) noise prediction with the class embeddings injected; checkpointed when
        building a graph and ``options.checkpointing`` is on."""

        def call(sample: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
            # The hooks live inside the checkpointed function, so the recomputation sees them too.
            with override_class_embeddings(self.embedders, embeddings):
                return self.denoiser(sample, timestep, labels)

        if self.options.checkpointing and torch.is_grad_enabled():
            return checkpoint(call, sample, embeddings, use_reentrant=False)
        return call(sample, embeddings)

    def latents(self, latents: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor,
                indices: Sequence[int], noise_key: NoiseKey) -> torch.Tensor:
        """Runs the skip-connected sampler: clean latents of one chunk (with a graph when grad is on).

        Args:
            latents: ``(B, C, h, w)`` learnable initial latents ``z``.
            embeddings: ``(B, num_blocks, hidden)`` learnable class embeddings ``c``.
            labels: int64 ``(B,)`` labels (used by the guidance's null branch only).
            indices: the samples' indices in the synthetic set (key their noise).
            noise_key: the noise key of the pass (the iteration, or :data:`EXPORT_NOISE_KEY`).

        Returns:
            ``(B, C, h, w)`` float32 latents on the denoiser's device.
        """
        device = self.denoiser.device
        clean, embeddings = latents.to(device, torch.float32), embeddings.to(device)
        alpha_bar_first = self.alpha_bars[0][0]
        noise = self.noise(indices, noise_key, clean.shape[1:]).to(device)
        start = math.sqrt(alpha_bar_first) * clean + math.sqrt(1 - alpha_bar_first) * noise
        source = self.connection.source(clean, start)
        sample = start
        for position, (timestep, (alpha_bar_t, alpha_bar_prev)) in enumerate(zip(self.timesteps, self.alpha_bars)):
            weight = self.connection.weight(self.num_steps - 1 - position, self.num_steps)
            if weight == 1.0 and self.connection.replaces_sample_at_full_weight:
                sample = source
                continue
            eps = self.predict_noise(sample, timestep, labels, embeddings)
            sample = self.connection.step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, source)
        return sample

    def render_chunk(self, latents: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor,
                     indices: Sequence[int], noise_key: NoiseKey) -> torch.Tensor:
        """Images in [-1, 1] of one chunk (:meth:`latents`, then the VAE decoder)."""
        return self.codec.decode_batch(self.latents(latents, embeddings, labels, indices, noise_key))

    def render(self, latents: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor,
               indices: Sequence[int], noise_key: NoiseKey) -> torch.Tensor:
        """Images in [-1, 1] of any number of samples, differentiable w.r.t. ``latents`` and ``embeddings``.

        Args:
            latents: ``(B, C, h, w)`` initial latents.
            embeddings: ``(B, num_blocks, hidden)`` class embeddings.
            labels: int64 ``(B,)`` labels.
            indices: the samples' indices in the synthetic set.
            noise_key: the noise key of the pass.

        Returns:
            ``(B, C', H, W)`` float32 images on ``latents``' device.
        """
        indices = list(indices)
        if self.options.chunked_backward:
            images = _TwoPassRender.apply(self, latents, embeddings, labels, indices, noise_key)
        else:
            images = torch.cat([self.render_chunk(latents[rows], embeddings[rows], labels[rows], indices[rows],
                                                  noise_key) for rows in self.chunks(len(latents))])
        return images.to(latents.device)
