"""LD3M (Moser et al.): the synthetic set as inputs of a frozen class-conditional latent diffusion model.

Each synthetic sample is a learnable initial latent ``z`` and a learnable class embedding ``c``.
A sample is rendered by forward-noising ``z`` to the first timestep of a ``K``-step DDIM grid,
running ``K`` deterministic DDIM steps (eta 0) of a frozen class-conditional DiT conditioned on
``c`` with LD3M's linearly decaying skip connection, and decoding the result with the frozen VAE.
The matching objectives (DC, DM, MTT) then run on the decoded images, exactly as on pixels.

The skip connection (a registry, :data:`SKIP_CONNECTIONS`; step indices ``i = K-1`` (first,
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

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch
from diffusers.models.embeddings import LabelEmbedding
from torch import nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from .codec import LatentCodec
from .d3hr.ddim import ddim_schedulers
from .d3hr.denoiser import GuidedDenoiser
from .data import float_to_uint8
from .registry import Registry
from .representations import (
    Pixels,
    Representation,
    RepresentationConfigError,
    register_representation,
)
from .seeding import generator_for

#: Noise key of the exported (stored) images: re-rendering the stored latents and class embeddings
#: with it reproduces them.
EXPORT_NOISE_KEY = "export"

NoiseKey = Union[int, str]


class DiffusionPriorError(ValueError):
    """Raised when the diffusion prior cannot be built from the pipeline's models."""


# ------------------------------------------------------------------------------------------------
# the skip-connected DDIM step
# ------------------------------------------------------------------------------------------------


def ddim_step(sample: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float,
              x0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One deterministic DDIM step (eta 0).

    Args:
        sample: ``x_t``.
        eps: the predicted noise.
        alpha_bar_t: cumulative alpha of the current timestep.
        alpha_bar_prev: cumulative alpha of the previous (less noisy) timestep.
        x0: the clean-latent estimate to step with; ``None`` uses the model's
            ``(x - sqrt(1 - abar_t) e) / sqrt(abar_t)``.

    Returns:
        ``(x_prev, x0_hat)``: ``sqrt(abar_prev) x0 + sqrt(1 - abar_prev) e`` and the model's
        clean-latent estimate.
    """
    x0_hat = (sample - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)
    x0 = x0_hat if x0 is None else x0
    return math.sqrt(alpha_bar_prev) * x0 + math.sqrt(1 - alpha_bar_prev) * eps, x0_hat


def _paper_step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, skip_source):
    plain, _ = ddim_step(sample, eps, alpha_bar_t, alpha_bar_prev)
    return (1 - weight) * plain + weight * skip_source


def _reference_step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, skip_source):
    x0_hat = (sample - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)
    return ddim_step(sample, eps, alpha_bar_t, alpha_bar_prev, x0=(1 - weight) * x0_hat + weight * skip_source)[0]


def _plain_step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, skip_source):
    return ddim_step(sample, eps, alpha_bar_t, alpha_bar_prev)[0]


@dataclass(frozen=True)
class SkipConnection:
    """One form of LD3M's skip connection.

    Args:
        weight: ``weight(step_index, num_steps)``, the skip weight of step ``i`` (``K-1`` first).
        step: ``step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, skip_source)`` -> ``x_prev``.
        source: ``source(clean, noised)`` -> the tensor mixed in (the clean learnable latent or the
            forward-noised start of the pass).
        replaces_sample_at_full_weight: whether a weight of 1 makes the output the skip source alone
            (the denoiser's prediction is then not needed).
        description: one line for documentation and error messages.
    """

    weight: Callable[[int, int], float]
    step: Callable[..., torch.Tensor]
    source: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    replaces_sample_at_full_weight: bool
    description: str


SKIP_CONNECTIONS: Registry[SkipConnection] = Registry("skip connection")
SKIP_CONNECTIONS.add("paper", SkipConnection(
    weight=lambda i, k: (i + 1) / k, step=_paper_step, source=lambda clean, noised: noised,
    replaces_sample_at_full_weight=True,
    description="Eq. 7: x_prev = (1 - t/T) ddim(x) + (t/T) z_T, z_T the noised initial latent"))
SKIP_CONNECTIONS.add("reference", SkipConnection(
    weight=lambda i, k: i / (k - 1) if k > 1 else 0.0, step=_reference_step, source=lambda clean, noised: clean,
    replaces_sample_at_full_weight=False,
    description="authors' code: x0 = (1 - i/(K-1)) x0_hat + i/(K-1) z, z the clean latent"))
SKIP_CONNECTIONS.add("none", SkipConnection(
    weight=lambda i, k: 0.0, step=_plain_step, source=lambda clean, noised: noised,
    replaces_sample_at_full_weight=False, description="plain DDIM"))


def skip_weight(step_index: int, num_steps: int, form: str) -> float:
    """The skip weight of DDIM step ``step_index`` of ``num_steps`` (``K-1`` is the first, noisiest).

    Args:
        step_index: ``i`` in ``K-1 ... 0``.
        num_steps: ``K``.
        form: a name of :data:`SKIP_CONNECTIONS` (``"paper"``: ``(i+1)/K``; ``"reference"``:
            ``i/(K-1)``, 0 when ``K == 1``; ``"none"``: 0).

    Returns:
        The weight in ``[0, 1]``.
    """
    if not 0 <= step_index < num_steps:
        raise ValueError(f"step_index {step_index} is outside 0..{num_steps - 1}.")
    return float(SKIP_CONNECTIONS.get(form).weight(step_index, num_steps))


def skip_ddim_step(sample: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float,
                   weight: float, skip_source: torch.Tensor, form: str) -> torch.Tensor:
    """One skip-connected DDIM step (eta 0), a pure function.

    Args:
        sample: ``x_t``.
        eps: the predicted (guided) noise.
        alpha_bar_t: cumulative alpha of the step's timestep.
        alpha_bar_prev: cumulative alpha of the next timestep (``final_alpha_cumprod`` at the end).
        weight: the skip weight (:func:`skip_weight`).
        skip_source: what is mixed in: the forward-noised initial latent ``z_T`` (``"paper"``) or
            the clean learnable latent ``z`` (``"reference"``); unused by ``"none"``.
        form: a name of :data:`SKIP_CONNECTIONS`.

    Returns:
        ``x_prev``.
    """
    return SKIP_CONNECTIONS.get(form).step(sample, eps, float(alpha_bar_t), float(alpha_bar_prev), float(weight),
                                           skip_source)


# ------------------------------------------------------------------------------------------------
# learnable class embeddings of a DiT
# ------------------------------------------------------------------------------------------------


def class_embedders(transformer: nn.Module) -> list[LabelEmbedding]:
    """The label-embedding modules of a class-conditional DiT, in block order.

    diffusers' ``DiTTransformer2DModel`` holds one ``LabelEmbedding`` per transformer block (in
    ``transformer_blocks[b].norm1.emb.class_embedder``); block 0's also conditions the output layer.

    Raises:
        DiffusionPriorError: when the model has none (it is not class-conditional).
    """
    embedders = [module for module in transformer.modules() if isinstance(module, LabelEmbedding)]
    if not embedders:
        raise DiffusionPriorError(
            f"{type(transformer).__name__} has no class-label embedding (diffusers LabelEmbedding): the 'diffusion' "
            "representation needs a class-conditional DiT (DiTTransformer2DModel with num_embeds_ada_norm, as "
            "trained by examples/train_latent_diffusion.py)."
        )
    return embedders


def _replace_rows(rows: torch.Tensor, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the first ``len(rows)`` embeddings become ``rows``; the rest (e.g. the null
    labels of a classifier-free-guidance batch) stay the table's."""
    if len(output) < len(rows):
        raise DiffusionPriorError(f"The denoiser embedded {len(output)} labels but {len(rows)} class embeddings "
                                  "were given: call it on the batch the embeddings belong to.")
    rows = rows.to(device=output.device, dtype=output.dtype)
    return rows if len(output) == len(rows) else torch.cat([rows, output[len(rows):]])


@contextlib.contextmanager
def override_class_embeddings(embedders: Sequence[nn.Module], embeddings: torch.Tensor) -> Iterator[None]:
    """Within the block, the label embeddings of the first rows of every denoiser batch are ``embeddings``.

    Args:
        embedders: the model's label-embedding modules (:func:`class_embedders`).
        embeddings: ``(B, num_blocks, hidden)``, one embedding per sample and block (differentiable).
    """
    if embeddings.dim() != 3 or embeddings.shape[1] != len(embedders):
        raise DiffusionPriorError(f"Class embeddings of shape {tuple(embeddings.shape)} do not fit a denoiser with "
                                  f"{len(embedders)} label embeddings: expected (N, {len(embedders)}, hidden).")
    handles = [embedder.register_forward_hook(functools.partial(_replace_rows, embeddings[:, block]))
               for block, embedder in enumerate(embedders)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# ------------------------------------------------------------------------------------------------
# options and rendering
# ------------------------------------------------------------------------------------------------


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
        """Raises a :class:`~latent_distill.d3hr.denoiser.DenoiserError` naming the fix when the
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


# ------------------------------------------------------------------------------------------------
# the representation
# ------------------------------------------------------------------------------------------------


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
        return Pixels.real_pool(data, codec, cache, progress)

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
        return {"images": float_to_uint8(images.cpu()), "latents": self.samples.detach().clone(),
                "class_embeddings": self.class_embeddings.detach().clone()}
