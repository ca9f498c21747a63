"""``LatentDistillationPipeline``: gradient-based dataset distillation in latent or pixel space.

One pipeline serves LatentDD (``representation="latent"``), the classic pixel baselines
(``representation="pixel"``) and LD3M (``representation="diffusion"``, which needs the denoiser and
scheduler) for every registered matching objective. Unlike most diffusers
pipelines, ``__call__`` *optimises* (a synthetic set); the frozen models (the autoencoder, and the
optional denoiser and scheduler) are ordinary diffusers components saved with ``save_pretrained``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Optional, Union

import torch
from accelerate import PartialState
from diffusers import AutoencoderKL, DiffusionPipeline, ModelMixin, SchedulerMixin

from ..checkpointing import CheckpointMismatchError, load_resumable_state, save_state
from ..codec import LatentCache, LatentCodec, check_decodable
from ..config import (
    DistillationConfig,
    encode_batch_size_for,
    samples_per_class_for_budget,
)
from ..data import (
    DatasetLike,
    TrainingSplit,
    float_to_uint8,
    streamed_training_split,
)
from ..distilled import DistilledDataset, DistilledDatasetError
from ..distributed import GradientAllReduce, shard, sum_across_processes
from ..objectives import build_augmentation, get_objective
from ..precision import freeze
from ..representations import get_representation
from .initial_samples import initial_samples
from .outputs import LatentDistillationOutput
from .recorded_models import (
    check_recorded_weights,
    load_recorded_autoencoder,
    load_recorded_pipeline,
)
from .run_record import model_references, run_record, source_dataset_record


class NonFiniteLossError(FloatingPointError):
    """Raised when a distillation loss becomes NaN or infinite."""


class PipelineLoadError(OSError):
    """Raised when a folder or repository holds no usable autoencoder."""


class LatentDistillationPipeline(DiffusionPipeline):
    """Distils an image-classification dataset into a few synthetic samples per class.

    Args:
        vae: a diffusers ``AutoencoderKL``; the latent space of LatentDD, and the decoder of the
            synthetic latents.
        transformer: optional class-conditional denoiser (used by diffusion-prior representations:
            ``representation="diffusion"``, LD3M).
        scheduler: optional scheduler of the denoiser.
    """

    model_cpu_offload_seq = "transformer->vae"
    _optional_components = ["transformer", "scheduler"]

    def __init__(self, vae: AutoencoderKL, transformer: Optional[ModelMixin] = None,
                 scheduler: Optional[SchedulerMixin] = None) -> None:
        super().__init__()
        self.register_modules(vae=vae, transformer=transformer, scheduler=scheduler)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Loads a pipeline folder / Hub repo, or an autoencoder-only one.

        Accepts a ``LatentDistillationPipeline`` folder, any diffusers pipeline repo whose
        components include a ``vae`` (Stable Diffusion, DiT: extra components are ignored), or an
        ``AutoencoderKL`` repo with its ``config.json`` at the root (``stabilityai/sd-vae-ft-mse``
        style). Keyword arguments are those of ``DiffusionPipeline.from_pretrained``.

        Raises:
            PipelineLoadError: when no autoencoder can be found, naming the layouts accepted.
        """
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except (OSError, ValueError, TypeError) as error:
            if "vae" in kwargs:
                raise
            pipeline_error = error
        loader_kwargs = {key: kwargs[key] for key in ("revision", "token", "cache_dir", "local_files_only",
                                                      "variant") if key in kwargs}
        try:
            vae = AutoencoderKL.from_pretrained(pretrained_model_name_or_path, **loader_kwargs)
        except (OSError, ValueError) as vae_error:
            raise PipelineLoadError(
                f"{pretrained_model_name_or_path} holds no autoencoder: expected a pipeline with a 'vae' "
                "component (model_index.json + vae/) or an AutoencoderKL folder (config.json + weights); "
                f"or pass vae=AutoencoderKL.from_pretrained(...). Pipeline loading said: {pipeline_error}; "
                f"autoencoder loading said: {vae_error}"
            ) from pipeline_error
        if "dtype" in kwargs or "torch_dtype" in kwargs:
            vae = vae.to(kwargs.get("dtype", kwargs.get("torch_dtype")))
        return cls(vae=vae)

    # ------------------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------------------

    def _run_record(self, config: DistillationConfig, data: TrainingSplit, dataset: DatasetLike,
                    source_dataset: Optional[dict[str, Any]], per_class: int,
                    sample_shape: tuple[int, ...]) -> dict[str, Any]:
        """The run record of this run (see :mod:`latent_distill.pipelines.run_record`)."""
        uses_denoiser = get_representation(config.representation).uses_denoiser
        return run_record(
            config, budget=config.budget, samples_per_class=per_class, image_shape=data.image_shape,
            sample_shape=sample_shape, source_dataset=source_dataset_record(dataset, data, source_dataset),
            models=model_references(self, ("vae", "transformer", "scheduler") if uses_denoiser else ("vae",)),
            latents_per_class=per_class if config.representation == "latent" else None,
        )

    def _frozen_codec(self, config: DistillationConfig, device: torch.device) -> LatentCodec:
        """Freezes the autoencoder (and denoiser) on ``device`` in accelerate's mixed precision (learned
        tensors stay fp32) and returns the codec at the run's resolution."""
        freeze(self.vae, device)
        if self.transformer is not None:
            freeze(self.transformer, device)
        resolution = config.resolution or int(self.vae.config.sample_size)
        return LatentCodec(self.vae, resolution, config.resample,
                           encode_batch_size_for(resolution, config.resample, config.encode_batch_size))

    def render_stored(self, latents: torch.Tensor, class_embeddings: torch.Tensor, config: DistillationConfig,
                      num_classes: int) -> torch.Tensor:
        """Re-renders the images of a diffusion-prior (LD3M) set from what it stores.

        The images are rendered as the run exported them (same options, seed and export noise), so
        with the run's models they equal the run's images.

        Args:
            latents: ``(N, C, h, w)`` learned initial latents, ordered by class.
            class_embeddings: ``(N, num_blocks, hidden)`` learned class embeddings.
            config: the run's config (its ``representation``, ``representation_kwargs``, ``seed``,
                ``resolution`` and ``resample`` are used).
            num_classes: number of classes (``N`` must be a multiple of it).

        Returns:
            ``uint8`` images ``(N, C', H, W)``.

        Raises:
            ValueError: when ``config`` does not use a diffusion-prior representation.
        """
        representation_cls = get_representation(config.representation)
        if not representation_cls.uses_denoiser:
            raise ValueError(f"The {config.representation!r} representation stores no class embeddings to render: "
                             "decode its latents with the autoencoder instead.")
        codec = self._frozen_codec(config, PartialState().device)
        prior = representation_cls.restore(latents, class_embeddings, num_classes, codec=codec,
                                           transformer=self.transformer, scheduler=self.scheduler,
                                           options=config.representation_kwargs, seed=config.seed)
        return prior.export(codec)["images"]

    # ------------------------------------------------------------------------------------------
    # distilled sets
    # ------------------------------------------------------------------------------------------

    @classmethod
    def from_distilled(cls, distilled: DistilledDataset) -> "LatentDistillationPipeline":
        """Loads the models a distilled set recorded in ``record["models"]``.

        An LD3M set (one with class embeddings) loads the autoencoder, denoiser and scheduler it
        was distilled with, so :meth:`rerender` can render it; any other set loads its autoencoder
        alone, enough for :meth:`decode`.

        Args:
            distilled: the distilled set.

        Returns:
            The pipeline holding the recorded models.

        Raises:
            DistilledDatasetError: when the set records no models to load (models built in memory
                record no folder), or the recorded diffusion model cannot be loaded.
        """
        if distilled.class_embeddings is not None:
            return load_recorded_pipeline(distilled, cls)
        return cls(vae=load_recorded_autoencoder(distilled, cls))

    def decode(self, distilled: DistilledDataset, batch_size: int = 256) -> torch.Tensor:
        """Decodes the latents of a distilled set into images with this pipeline's autoencoder.

        Args:
            distilled: a set storing latents (LatentDD methods); use the autoencoder it was
                distilled with (:meth:`from_distilled` loads it).
            batch_size: latents per decoder pass.

        Returns:
            ``uint8`` images ``(N, C, H, W)`` at the source resolution.

        Raises:
            DistilledDatasetError: when the set stores no latents, stores the initial latents of a
                diffusion sampler (LD3M: use :meth:`rerender`).
            CodecError: when the latents do not fit this autoencoder or are not finite.
            ModelMismatchError: when the autoencoder's weights are not those the set recorded.
        """
        if distilled.latents is None:
            raise DistilledDatasetError(f"This {distilled.method} set stores no latents to decode; use its images.")
        if distilled.class_embeddings is not None:
            raise DistilledDatasetError(
                f"This {distilled.method} set stores the initial latents of a diffusion sampler, which the autoencoder "
                "alone does not decode into its images: use rerender(distilled) or its images."
            )
        check_recorded_weights(distilled, self, ("vae",))
        shape = distilled.source_image_shape
        resolution = int(shape[-1]) if shape else int(self.vae.config.sample_size)
        resample = int((distilled.record.get("distillation") or {}).get("resample", 1))
        codec = LatentCodec(self.vae.eval(), resolution, resample, batch_size)
        check_decodable(distilled.latents, codec.latent_shape)
        return float_to_uint8(codec.decode(distilled.latents))

    def rerender(self, distilled: DistilledDataset) -> torch.Tensor:
        """Renders an LD3M set's images again from its initial latents and class embeddings.

        With the models the set was distilled with (:meth:`from_distilled` loads them) the images
        equal the stored ones (same device and precision).

        Args:
            distilled: a set storing initial latents and class embeddings (LD3M methods).

        Returns:
            ``uint8`` images ``(N, C, H, W)``.

        Raises:
            DistilledDatasetError: when the set stores no class embeddings or records no run config
                (``record["distillation"]``).
            ModelMismatchError: when a model's weights are not those the set recorded.
        """
        if distilled.class_embeddings is None:
            raise DistilledDatasetError(
                f"This {distilled.method} set stores no class embeddings to render (only LD3M sets do): "
                + ("decode its latents with decode(distilled)." if distilled.latents is not None
                   else "use its images.")
            )
        recorded = dict(distilled.record.get("distillation") or {})
        if not recorded:
            raise DistilledDatasetError("The set records no record['distillation'] (its sampler options and seed), "
                                        "so its images cannot be rendered again: use its images.")
        for key in ("method_name", "objective_summary"):
            recorded.pop(key, None)
        check_recorded_weights(distilled, self, ("vae", "transformer"))
        return self.render_stored(distilled.latents, distilled.class_embeddings,
                                  DistillationConfig.from_dict(recorded), distilled.num_classes)

    # ------------------------------------------------------------------------------------------
    # main entry point
    # ------------------------------------------------------------------------------------------

    def __call__(self, dataset: DatasetLike, config: Optional[DistillationConfig] = None, *,
                 image_column: Optional[str] = None, label_column: Optional[str] = None,
                 cache_dir: Optional[Union[str, Path]] = None, checkpoint_dir: Optional[Union[str, Path]] = None,
                 resume: bool = False, source_dataset: Optional[dict[str, Any]] = None, return_dict: bool = True,
                 **config_overrides: Any):
        """Distils ``dataset``.

        Args:
            dataset: the training data: a ``datasets.Dataset``, a ``DatasetDict`` (its ``train``
                split is used) or preprocessed :class:`~latent_distill.data.ImageClassificationTensors`.
            config: the run configuration; keyword arguments override its fields.
            image_column: name of the image column (detected when ``None``).
            label_column: name of the label column (detected when ``None``).
            cache_dir: folder of the latent cache (encodings are reused across runs).
            checkpoint_dir: folder of the resumable state (saved every ``config.checkpoint_every``
                iterations and after the last one).
            resume: continue from the state in ``checkpoint_dir`` when present. The state may come
                from a run with fewer ``iterations`` (a finished run continued to a larger budget,
                equal to one run of that budget) or another ``checkpoint_every``; every other
                setting must match.
            source_dataset: entries recorded in the run record's ``source_dataset`` over the ones
                detected from ``dataset``, e.g. ``{"id": ..., "fingerprint": table_fingerprint(split)}``
                when ``dataset`` is tensors made from a ``datasets`` split.
            return_dict: return a :class:`LatentDistillationOutput` (else a tuple).

        Returns:
            :class:`LatentDistillationOutput` with the synthetic latents, decoded images, labels and
            the full run record.

        Examples:
            ```py
            >>> from latent_distill import LatentDistillationPipeline, load_fashion_mnist
            >>> pipe = LatentDistillationPipeline.from_pretrained(DEFAULT_PIPELINE_PATH)
            >>> out = pipe(load_fashion_mnist()["train"], objective="dm", ipc=10, iterations=1000)
            >>> out.images.shape
            torch.Size([400, 1, 28, 28])
            ```
        """
        started = time.time()
        config = (config or DistillationConfig()).replace(**config_overrides)
        state = PartialState()
        representation_cls = get_representation(config.representation)
        objective_cls = get_objective(config.objective)
        codec = self._frozen_codec(config, state.device)
        resolution = codec.resolution

        # Latent methods encode a datasets split batch by batch; pixel matching loads its images.
        data = streamed_training_split(dataset, resolution, self.vae.config.in_channels, image_column, label_column)
        sample_shape = representation_cls.sample_shape(data.image_shape, codec)
        smallest = int(torch.bincount(data.labels, minlength=data.num_classes).min())
        per_class = samples_per_class_for_budget(config.ipc, config.budget, data.image_shape,
                                                 sample_shape, smallest, config.samples_per_class)
        real = representation_cls.real_pool(
            data, codec, LatentCache(cache_dir),
            progress=lambda it: self.progress_bar(it) if len(it) > 1 else it,
        ).to(state.device)  # samples stay in CPU memory; drawn batches go to the process device
        synthetic = representation_cls.create(
            initial_samples(real, per_class, config.init, config.seed, sample_shape), data.num_classes,
            codec=codec, transformer=self.transformer, scheduler=self.scheduler,
            options=config.representation_kwargs, seed=config.seed,
        ).to(state.device)
        learning_rate = config.learning_rate * (per_class if config.scale_learning_rate else 1)
        objective = objective_cls(config, sample_shape, data.num_classes, build_augmentation(config.augmentation),
                                  device=state.device)
        objective.setup(real, Path(cache_dir) if cache_dir is not None else None)
        optimizer = torch.optim.SGD(synthetic.parameters(), lr=learning_rate, momentum=config.momentum)
        classes = list(range(data.num_classes))
        if objective.class_separable:
            # Each process handles its classes; summed gradients keep every process's copy identical.
            classes = shard(classes, state)
            optimizer = GradientAllReduce(optimizer, state)
        record = self._run_record(config, data, dataset, source_dataset, per_class, sample_shape)

        step, losses, earlier_seconds = 0, [], 0.0
        checkpoint = Path(checkpoint_dir) / "state.pt" if checkpoint_dir is not None else None
        saved = load_resumable_state(checkpoint, resume, "config", DistillationConfig.resume_settings(config.to_dict()),
                                     DistillationConfig.resume_settings)
        if saved is not None:
            if saved["step"] > config.iterations:
                raise CheckpointMismatchError(
                    f"The state in {checkpoint_dir} is at iteration {saved['step']}, past this run's iterations "
                    f"({config.iterations}): ask for at least {saved['step']} iterations, or start in a new "
                    "checkpoint folder."
                )
            synthetic.load_state_dict(saved["synthetic"])
            optimizer.load_state_dict(saved["optimizer"])
            objective.load_state_dict(saved["objective"])
            step, losses = saved["step"], saved["losses"]
            earlier_seconds = saved.get("seconds", 0.0)  # wall time of the calls that wrote the state

        progress = self.progress_bar(total=config.iterations)
        progress.update(step)
        loop_started, first_step = time.time(), step
        while step < config.iterations:
            synthetic.begin_iteration(step)
            loss = objective.iteration(synthetic, real, optimizer, step, classes)
            if objective.class_separable:
                loss = sum_across_processes(loss, state)
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"The {config.method_name} loss became {loss} at iteration {step}: lower learning_rate "
                    f"(now {config.learning_rate}) and resume from the last checkpoint in {checkpoint_dir}."
                )
            losses.append(loss)
            step += 1
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.4g}")
            # The last iteration always saves: a finished run can be continued to a larger budget.
            if checkpoint is not None and state.is_main_process and (
                    step == config.iterations or (config.checkpoint_every and step % config.checkpoint_every == 0)):
                save_state(checkpoint, config=config.to_dict(), synthetic=synthetic.state_dict(),
                           optimizer=optimizer.state_dict(), objective=objective.state_dict(), step=step,
                           losses=losses, seconds=earlier_seconds + time.time() - started)
        progress.close()
        loop_seconds = time.time() - loop_started

        record["distillation"]["objective_summary"] = objective.summary()
        with torch.no_grad():
            stored = synthetic.export(codec)
        output = LatentDistillationOutput(
            images=stored["images"], labels=synthetic.labels.cpu(), latents=stored.get("latents"),
            class_names=list(data.class_names), record=record, losses=losses,
            distill_seconds=earlier_seconds + time.time() - started,
            seconds_per_iteration=loop_seconds / (step - first_step) if step > first_step else None,
            class_embeddings=stored.get("class_embeddings"),
        )
        if not return_dict:
            return (output.images, output.labels, output.latents)
        return output
