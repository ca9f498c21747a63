"""``D3HRPipeline``: distillation by DDIM inversion, per-class Gaussians and group sampling (Taming
Diffusion for Dataset Distillation with High Representativeness).

1. ``fit(dataset)``: encode the real images, DDIM-invert their latents (class-conditional, guided)
   to a chosen depth, and fold them into per-class diagonal Gaussians in one streamed pass; classes
   are shared out over processes and the moments summed. Returns them as
   :class:`~latent_distill.d3hr.fitted.FittedGaussians`.
2. ``sample(gaussians)``: per class, score ``m`` candidate groups of ``ipc`` Gaussian draws and keep
   the most representative (``latent_distill.d3hr.kept_groups``), then regenerate the kept draws
   with deterministic DDIM and decode them.

The pipeline keeps no state between calls: ``__call__`` is ``fit`` then ``sample``, and
``regenerate(distilled)`` samples the Gaussians a distilled set stores. What is stored is the
Gaussians (mean and std per class, the timestep) plus the seed and index of each kept group:
``sample(gaussians, ipc=k, seed=s)`` regenerates the same set for the same ``(k, s)``, and a set of
any other size from the same parameters.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional, Union

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    DiTTransformer2DModel,
    SchedulerMixin,
)

from ..checkpointing import load_resumable_state, save_state
from ..codec import LatentCache, LatentCodec
from ..d3hr.config import D3HRConfig
from ..d3hr.fit_subset import fit_subset
from ..d3hr.fitted import FittedGaussians
from ..d3hr.gaussians import GaussianAccumulator
from ..d3hr.kept_groups import kept_groups
from ..data import (
    DatasetLike,
    float_to_uint8,
    streamed_training_split,
)
from ..diffusion.ddim import (
    ddim_invert,
    ddim_regenerate,
    ddim_schedulers,
    ddpm_noise,
    inversion_timestep,
)
from ..diffusion.guidance import GuidedDenoiser
from ..distilled import DistilledDataset, DistilledDatasetError
from ..distributed import shard, sum_tensors_across_processes
from ..encoding import encode_training_latents
from ..precision import freeze
from ..seeding import generator_for
from .outputs import D3HROutput
from .recorded_models import check_recorded_weights, load_recorded_pipeline
from .run_record import model_references, run_record, source_dataset_record


class D3HRPipeline(DiffusionPipeline):
    """D3HR with a class-conditional latent diffusion model.

    Args:
        vae: the ``AutoencoderKL`` whose latent space the denoiser works in.
        transformer: a class-conditional ``DiTTransformer2DModel`` (learned-sigma output channels
            are split off; the null label is ``num_embeds_ada_norm``).
        scheduler: its scheduler; DDIM sampling and inversion schedulers are derived from its config.
    """

    model_cpu_offload_seq = "transformer->vae"

    def __init__(self, vae: AutoencoderKL, transformer: DiTTransformer2DModel, scheduler: SchedulerMixin) -> None:
        super().__init__()
        self.register_modules(vae=vae, transformer=transformer, scheduler=scheduler)

    # ------------------------------------------------------------------------------------------
    # pieces
    # ------------------------------------------------------------------------------------------

    def latent_codec(self, config: Optional[D3HRConfig] = None) -> LatentCodec:
        """The autoencoder as the codec of a run: frozen on this process's device (in accelerate's
        mixed precision), at ``config.resolution`` (else the autoencoder's ``sample_size``).

        Args:
            config: run configuration (its ``resolution`` and ``batch_size`` are used).

        Returns:
            The :class:`~latent_distill.codec.LatentCodec` that encodes the real images and decodes
            the regenerated latents.
        """
        config = config or D3HRConfig()
        resolution = config.resolution or int(self.vae.config.sample_size)
        return LatentCodec(freeze(self.vae, PartialState().device), resolution, batch_size=config.batch_size)

    def _denoiser(self, config: D3HRConfig) -> GuidedDenoiser:
        return GuidedDenoiser(freeze(self.transformer, PartialState().device), config.guidance_scale)

    def invert(self, latents: torch.Tensor, labels: torch.Tensor, config: Optional[D3HRConfig] = None,
               batch_index: int = 0) -> torch.Tensor:
        """Brings clean latents to the fitting depth: DDIM inversion, or DDPM forward noising.

        Args:
            latents: ``(B, C, h, w)`` scaled clean latents.
            labels: int64 ``(B,)`` labels.
            config: run configuration (its ``noising``, ``inversion_steps``, grid, guidance).
            batch_index: index of the batch within its class; keys the noise of DDPM noising with
                the class (unused by DDIM inversion).

        Returns:
            Latents at the inversion timestep, float32 on the CPU.
        """
        config = config or D3HRConfig()
        denoiser = self._denoiser(config)
        denoiser.check_latents(latents)
        denoiser.check_labels(labels)
        sampler, inverter = ddim_schedulers(self.scheduler, config.num_inference_steps)
        if config.noising == "ddpm":
            timestep = inversion_timestep(inverter, config.inversion_steps)
            generator = generator_for(config.seed, "ddpm-noise", int(labels[0]) if len(labels) else 0, batch_index)
            return ddpm_noise(sampler, latents, timestep, generator)
        return ddim_invert(denoiser, inverter, latents, labels, config.inversion_steps).cpu()

    def fit(self, dataset: DatasetLike, config: Optional[D3HRConfig] = None, *, image_column: Optional[str] = None,
            label_column: Optional[str] = None, cache_dir: Optional[Union[str, Path]] = None,
            checkpoint_dir: Optional[Union[str, Path]] = None, resume: bool = False,
            source_dataset: Optional[dict[str, Any]] = None) -> FittedGaussians:
        """Fits the per-class Gaussians of the inverted training latents.

        Args:
            dataset: a ``datasets.Dataset``, a ``DatasetDict`` (its ``train`` split) or tensors.
            config: run configuration.
            image_column: name of the image column (detected when ``None``).
            label_column: name of the label column (detected when ``None``).
            cache_dir: latent cache folder (encodings are reused across runs).
            checkpoint_dir: where each process saves its fitting state after every class.
            resume: continue from that state, skipping finished classes.
            source_dataset: entries recorded in the run record's ``source_dataset`` over the ones
                detected from ``dataset``, e.g. ``{"id": ..., "fingerprint": table_fingerprint(split)}``
                when ``dataset`` is tensors made from a ``datasets`` split.

        Returns:
            The :class:`~latent_distill.d3hr.fitted.FittedGaussians` (with the timestep, latent shape,
            class names, this config and the source dataset), ready for :meth:`sample`.
        """
        config = config or D3HRConfig()
        state = PartialState()
        codec = self.latent_codec(config)
        data = streamed_training_split(dataset, codec.resolution, codec.image_channels, image_column, label_column)
        denoiser = self._denoiser(config)
        if data.num_classes > denoiser.num_classes:
            denoiser.check_labels(torch.tensor([data.num_classes - 1]))
        subset = fit_subset(data, config.max_samples_per_class, config.seed)
        latents = encode_training_latents(subset, codec, LatentCache(cache_dir),
                                          progress=lambda it: self.progress_bar(it))
        denoiser.check_latents(latents[:1])
        accumulator = GaussianAccumulator(data.num_classes, latents[0].numel())
        checkpoint = Path(checkpoint_dir) / f"d3hr-fit-{state.process_index}.pt" if checkpoint_dir else None
        done: list[int] = []
        saved = load_resumable_state(checkpoint, resume, "fit_key", config.fit_key())
        if saved is not None:
            accumulator.load_state_dict(saved["accumulator"])
            done = saved["done"]
        classes = [c for c in shard(list(range(data.num_classes)), state) if c not in done]
        rows_by_class = [torch.nonzero(subset.labels == c).flatten() for c in range(data.num_classes)]
        batches = [(c, k, rows) for c in classes for k, rows in enumerate(rows_by_class[c].split(config.batch_size))]
        progress = self.progress_bar(total=len(batches))
        for batch_index, (class_index, class_batch, rows) in enumerate(batches):
            inverted = self.invert(latents[rows], subset.labels[rows], config, class_batch)
            accumulator.update(inverted, subset.labels[rows])
            progress.update(1)
            last_of_class = batch_index + 1 == len(batches) or batches[batch_index + 1][0] != class_index
            if last_of_class:
                done.append(class_index)
                if checkpoint is not None and config.checkpoint_every_class:
                    save_state(checkpoint, fit_key=config.fit_key(), accumulator=accumulator.state_dict(), done=done)
        progress.close()
        sum_tensors_across_processes(accumulator.state_dict().values(), state)
        _, inverter = ddim_schedulers(self.scheduler, config.num_inference_steps)
        return FittedGaussians.from_class_gaussians(
            accumulator.finalize(), timestep=inversion_timestep(inverter, config.inversion_steps),
            latent_shape=list(latents.shape[1:]), class_names=list(data.class_names), fit_config=config.to_dict(),
            image_shape=list(data.image_shape),
            source_dataset=source_dataset_record(dataset, data, source_dataset),
        )

    # ------------------------------------------------------------------------------------------
    # sampling
    # ------------------------------------------------------------------------------------------

    def regenerate_latents(self, noisy: torch.Tensor, labels: torch.Tensor, timestep: int,
                           config: Optional[D3HRConfig] = None) -> torch.Tensor:
        """Denoises latents at the fitting depth back to clean latents by DDIM, batch by batch.

        Args:
            noisy: ``(B, C, h, w)`` latents at ``timestep`` (drawn from the Gaussians, or :meth:`invert`'s).
            labels: int64 ``(B,)`` labels.
            timestep: the timestep the latents are at.
            config: run configuration (grid, guidance, batch size).

        Returns:
            Clean scaled latents, float32 on the CPU.
        """
        config = config or D3HRConfig()
        denoiser = self._denoiser(config)
        sampler, _ = ddim_schedulers(self.scheduler, config.num_inference_steps)
        return torch.cat([ddim_regenerate(denoiser, sampler, chunk, chunk_labels, timestep).cpu()
                          for chunk, chunk_labels in zip(noisy.split(config.batch_size), labels.split(config.batch_size))])

    def sample(self, gaussians: FittedGaussians, ipc: Optional[int] = None, seed: Optional[int] = None,
               config: Optional[D3HRConfig] = None, stored_groups: Optional[dict] = None, return_dict: bool = True):
        """Selects a representative group per class of ``gaussians`` and regenerates it into images.

        Args:
            gaussians: the Gaussians to sample (:meth:`fit`'s, or
                ``FittedGaussians.from_stored(...)`` of a stored entry).
            ipc: images per class (overrides ``config.ipc``).
            seed: seed of the group search (overrides ``config.seed``).
            config: run configuration (guidance, grid and search settings).
            stored_groups: a stored ``gaussians`` entry; when its search settings (``ipc``, ``seed``,
                candidates, weights, skewness, chunking) match ``config``'s, the kept groups are
                redrawn from their seeds instead of searched again (same result, no search).
            return_dict: return a :class:`D3HROutput` (else a tuple).

        Returns:
            :class:`D3HROutput` with images, clean latents, labels and the storable Gaussians.
        """
        started = time.time()
        config = (config or D3HRConfig()).replace(**{k: v for k, v in (("ipc", ipc), ("seed", seed)) if v is not None})
        state = PartialState()
        codec = self.latent_codec(config)
        timestep = int(gaussians.timestep)
        latent_shape = tuple(gaussians.latent_shape)
        local = []
        classes = shard(list(range(gaussians.num_classes)), state)
        kept = kept_groups(gaussians.std, config, classes, stored_groups)
        for class_index in self.progress_bar(classes):
            noisy = gaussians.mean[class_index] + gaussians.std[class_index] * kept[class_index]["draws"]
            labels = torch.full((config.ipc,), class_index, dtype=torch.long)
            clean = self.regenerate_latents(noisy.reshape(-1, *latent_shape), labels, timestep, config)
            local.append((class_index, clean, {k: v for k, v in kept[class_index].items() if k != "draws"}))
        everything = sorted(gather_object(local) if state.num_processes > 1 else local, key=lambda item: item[0])
        latents = torch.cat([clean for _, clean, _ in everything])
        labels = torch.arange(gaussians.num_classes).repeat_interleave(config.ipc)
        images = float_to_uint8(codec.decode(latents))
        stored = gaussians.to_stored(config, [info for _, _, info in everything])
        output = D3HROutput(images=images, labels=labels, latents=latents, gaussians=stored,
                            class_names=list(gaussians.class_names),
                            record=self._run_record(gaussians, config), distill_seconds=time.time() - started)
        return output if return_dict else (output.images, output.labels, output.gaussians)

    # ------------------------------------------------------------------------------------------
    # distilled sets
    # ------------------------------------------------------------------------------------------

    @classmethod
    def from_distilled(cls, distilled: DistilledDataset) -> "D3HRPipeline":
        """Loads the autoencoder and diffusion model a distilled set recorded in ``record["models"]``.

        Args:
            distilled: the distilled set.

        Returns:
            The pipeline holding the recorded models.

        Raises:
            DistilledDatasetError: when the set records no models to load (models built in memory
                record no folder), or the recorded models cannot be loaded.
        """
        return load_recorded_pipeline(distilled, cls)

    def regenerate(self, distilled: DistilledDataset, ipc: Optional[int] = None, seed: Optional[int] = None,
                   **config_overrides: Any) -> D3HROutput:
        """Regenerates the images of a D3HR set from its stored per-class Gaussians.

        The set's Gaussians are sampled (:meth:`sample`). With the recorded ``ipc``, ``seed`` and
        search settings the stored groups are redrawn from their seeds, so the images are
        bit-identical to the run's (same models and device); any other ``ipc``, ``seed`` or search
        setting (``num_candidates``, the score weights, ...) searches new groups from the same
        Gaussians.

        Args:
            distilled: a set storing Gaussians (D3HR); use the models it was distilled with
                (:meth:`from_distilled` loads them).
            ipc: images per class to regenerate; ``None`` keeps the recorded one.
            seed: seed of the group search; ``None`` keeps the recorded one.
            **config_overrides: further :class:`~latent_distill.d3hr.config.D3HRConfig` fields that
                override the recorded ``record["distillation"]`` (e.g. ``batch_size``).

        Returns:
            The :class:`D3HROutput` of :meth:`sample`; its run record keeps the set's
            ``image_shape`` and ``source_dataset``.

        Raises:
            DistilledDatasetError: when the set stores no Gaussians.
            ModelMismatchError: when a model's weights are not those the set recorded.
            ValueError: when ``config_overrides`` names no ``D3HRConfig`` field.
        """
        if distilled.gaussians is None:
            fix = ("decode its latents with LatentDistillationPipeline.decode(distilled)"
                   if distilled.latents is not None else "use its images")
            raise DistilledDatasetError(
                f"This {distilled.method} set stores no Gaussians to regenerate from (only D3HR sets do): {fix}."
            )
        recorded = dict(distilled.record.get("distillation") or distilled.gaussians.get("fit_config") or {})
        recorded.pop("method_name", None)
        changes = {key: value for key, value in (("ipc", ipc), ("seed", seed)) if value is not None}
        config = D3HRConfig.from_dict({**recorded, **config_overrides, **changes})
        check_recorded_weights(distilled, self, ("vae", "transformer"))
        gaussians = FittedGaussians.from_stored(distilled.gaussians, distilled.class_names,
                                                image_shape=distilled.record.get("image_shape") or None,
                                                source_dataset=distilled.record.get("source_dataset"))
        return self.sample(gaussians, config=config, stored_groups=distilled.gaussians)

    def _run_record(self, gaussians: FittedGaussians, config: D3HRConfig) -> dict[str, Any]:
        """The run record of a sampling run (see :mod:`latent_distill.pipelines.run_record`)."""
        return run_record(config, budget="count", samples_per_class=config.ipc, image_shape=gaussians.image_shape,
                          sample_shape=gaussians.latent_shape, source_dataset=gaussians.source_dataset,
                          models=model_references(self, ("vae", "transformer", "scheduler")))

    def __call__(self, dataset: DatasetLike, config: Optional[D3HRConfig] = None, *,
                 image_column: Optional[str] = None, label_column: Optional[str] = None,
                 cache_dir: Optional[Union[str, Path]] = None, checkpoint_dir: Optional[Union[str, Path]] = None,
                 resume: bool = False, source_dataset: Optional[dict[str, Any]] = None, return_dict: bool = True,
                 **config_overrides: Any):
        """Fits the Gaussians of ``dataset`` and regenerates ``config.ipc`` images per class.

        Args:
            dataset: the training data (see :meth:`fit`).
            config: run configuration; keyword arguments override its fields.
            image_column: name of the image column (detected when ``None``).
            label_column: name of the label column (detected when ``None``).
            cache_dir: latent cache folder.
            checkpoint_dir: fitting checkpoints (one per process, after every class).
            resume: continue a fit from ``checkpoint_dir``.
            source_dataset: source dataset entries recorded over the detected ones (see :meth:`fit`).
            return_dict: return a :class:`D3HROutput` (else a tuple).

        Returns:
            :class:`D3HROutput`.

        Examples:
            ```py
            >>> from latent_distill import D3HRPipeline, DEFAULT_PIPELINE_PATH, load_fashion_mnist
            >>> pipe = D3HRPipeline.from_pretrained(DEFAULT_PIPELINE_PATH)
            >>> out = pipe(load_fashion_mnist()["train"], ipc=10, max_samples_per_class=500)
            >>> out.images.shape
            torch.Size([100, 1, 28, 28])
            ```
        """
        started = time.time()
        config = (config or D3HRConfig()).replace(**config_overrides)
        gaussians = self.fit(dataset, config, image_column=image_column, label_column=label_column,
                             cache_dir=cache_dir, checkpoint_dir=checkpoint_dir, resume=resume,
                             source_dataset=source_dataset)
        output = self.sample(gaussians, config=config)
        output.distill_seconds = time.time() - started
        return output if return_dict else (output.images, output.labels, output.gaussians)
