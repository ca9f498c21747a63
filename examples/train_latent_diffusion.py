"""Trains (or fine-tunes) a class-conditional ``DiTTransformer2DModel`` on autoencoder latents.

D3HR and LD3M need a class-conditional latent diffusion model of the dataset being distilled. This
script trains the default one (a small DiT on the latents of the shipped Fashion-MNIST autoencoder)
and fine-tunes any DiT on any ``datasets`` dataset (``--transformer org/dit-repo --dataset org/data``).

- The dataset is encoded once by the pipeline's autoencoder (scaled posterior means, cached on disk).
- Noise prediction with the DDPM objective on DiT's schedule (linear betas 1e-4 to 0.02, 1000 steps),
  optionally weighted per timestep by Min-SNR-gamma (``--snr_gamma 5``).
- A new denoiser has the default shape (six blocks of width 128) unless ``--num_layers``,
  ``--num_attention_heads`` or ``--attention_head_dim`` say otherwise.
- Classifier-free guidance training: each label is replaced by the null label (``num_classes``) with
  probability ``--class_dropout`` (one decision per sample for all blocks).
- An exponential moving average of the weights is what gets saved.
- Resumable: the full state is saved every ``--checkpoint_every`` steps into ``--checkpoint_dir``;
  the same command continues from it, drawing the same batches as an uninterrupted run.
- Data-parallel under ``accelerate launch --num_processes N``.

The EMA model is written as the ``transformer`` of ``--pipeline_dir`` with a ``DDIMScheduler`` of the
training schedule as its ``scheduler``, plus ``latent_diffusion_training.json`` (the record that the
model card quotes).

    accelerate launch examples/train_latent_diffusion.py --max_steps 6000
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers import DDIMScheduler, DDPMScheduler, DiTTransformer2DModel
from diffusers.models.embeddings import LabelEmbedding
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from latent_distill.checkpointing import (
    atomic_directory,
    atomic_write_json,
    load_state,
    save_state,
)
from latent_distill.codec import LatentCache, LatentCodec, tensor_fingerprint
from latent_distill.data import (
    dataset_to_tensors,
    fashion_mnist_tensors,
    uint8_to_float,
)
from latent_distill.default_models import (
    DEFAULT_PIPELINE_PATH,
    build_fashion_mnist_transformer,
    model_reference,
)
from latent_distill.diffusion import min_snr_weights
from latent_distill.pipelines import LatentDistillationPipeline
from latent_distill.seeding import generator_for

TRAINING_SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         clip_sample=False)
#: The flags that shape a new denoiser (``DiTTransformer2DModel`` config keys).
ARCHITECTURE_FLAGS = ("num_layers", "num_attention_heads", "attention_head_dim", "patch_size")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="'fashion-mnist' (offline default) or a datasets id / local folder")
    parser.add_argument("--pipeline_dir", default=str(DEFAULT_PIPELINE_PATH),
                        help="pipeline folder holding the autoencoder (vae/); the denoiser is written here")
    parser.add_argument("--transformer", default=None,
                        help="a DiTTransformer2DModel folder or repo to fine-tune (default: a new default DiT)")
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--checkpoint_dir", default="runs/latent-diffusion")
    parser.add_argument("--latent_cache", default="runs/latent-cache")
    parser.add_argument("--max_steps", type=int, default=6000)
    parser.add_argument("--batch_size", type=int, default=128, help="per process")
    parser.add_argument("--learning_rate", type=float, default=3e-4)
    parser.add_argument("--warmup_steps", type=int, default=200)
    parser.add_argument("--class_dropout", type=float, default=0.1)
    parser.add_argument("--ema_decay", type=float, default=0.999)
    parser.add_argument("--checkpoint_every", type=int, default=200)
    parser.add_argument("--snapshot_every", type=int, default=0,
                        help="also write the EMA denoiser every N steps to <checkpoint_dir>/ema-step-N "
                             "(for per-checkpoint quality measurements; 0: never)")
    parser.add_argument("--snr_gamma", type=float, default=None,
                        help="weight the loss by Min-SNR-gamma (e.g. 5); default: unweighted")
    parser.add_argument("--num_layers", type=int, default=None, help="blocks of a new denoiser")
    parser.add_argument("--num_attention_heads", type=int, default=None, help="heads of a new denoiser")
    parser.add_argument("--attention_head_dim", type=int, default=None, help="head width of a new denoiser")
    parser.add_argument("--patch_size", type=int, default=None,
                        help="latent patch per token of a new denoiser (default 1; 2 keeps 14x14 latents at 49 tokens)")
    parser.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16"])
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def check_pipeline_dir(pipeline_dir: str) -> None:
    """Refuses a ``--pipeline_dir`` that is not a pipeline folder with an autoencoder, before any work.

    Args:
        pipeline_dir: the folder the denoiser is to be written into.

    Raises:
        FileNotFoundError: naming the folder and how to make one (copy the shipped pipeline folder).
    """
    folder = Path(pipeline_dir)
    missing = [name for name in ("model_index.json", "vae/config.json") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"--pipeline_dir {folder} is not a pipeline folder with an autoencoder (missing: {', '.join(missing)}). "
            f"Copy one there first, e.g. `cp -r {DEFAULT_PIPELINE_PATH} {folder}` for the offline default, "
            "or point --pipeline_dir at the shipped folder to replace its denoiser.")


def encode_training_set(args: argparse.Namespace, accelerator: Accelerator) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Returns ``(latents, labels, num_classes)`` of the training split, encoded once and cached."""
    vae = LatentDistillationPipeline.from_pretrained(args.pipeline_dir).vae.eval().requires_grad_(False)
    if args.dataset == "fashion-mnist":
        data = fashion_mnist_tensors("train")
    else:
        import datasets

        split = datasets.load_dataset(args.dataset, split="train")
        data = dataset_to_tensors(split, resolution=args.resolution, channels=vae.config.in_channels)
    codec = LatentCodec(vae, resolution=args.resolution)
    cache = LatentCache(args.latent_cache)
    fingerprint = tensor_fingerprint(data.images, data.labels)
    cached = cache.load(codec, fingerprint)
    if cached is None:
        with accelerator.main_process_first():
            cached = cache.load(codec, fingerprint)
            if cached is None:
                latents = codec.encode(data.images, to_float=uint8_to_float,
                                       progress=lambda it: tqdm(it, desc="encoding",
                                                                disable=not accelerator.is_main_process))
                cache.store(codec, fingerprint, latents, data.labels)
                cached = (latents, data.labels)
    return cached[0], cached[1], data.num_classes


def build_transformer(args: argparse.Namespace, num_classes: int, latent_shape: torch.Size) -> DiTTransformer2DModel:
    """Loads the DiT to fine-tune, or builds a new one (the default shape, sized to the latents, with the
    shape flags applied); checks it fits the data."""
    latent_channels = latent_shape[0]
    shape = {key: getattr(args, key) for key in ARCHITECTURE_FLAGS if getattr(args, key) is not None}
    if args.transformer is None:
        sized = dict(sample_size=latent_shape[-1], in_channels=latent_channels, out_channels=latent_channels)
        model = build_fashion_mnist_transformer(num_classes, **sized, **shape)
    elif shape:
        raise ValueError(f"--{' --'.join(shape)} shape a new denoiser, but --transformer loads one with its own "
                         "shape: drop --transformer to train a new one, or drop the shape flags to fine-tune.")
    else:
        model = DiTTransformer2DModel.from_pretrained(args.transformer)
    if model.config.num_embeds_ada_norm < num_classes:
        raise ValueError(f"The DiT has {model.config.num_embeds_ada_norm} class labels but the dataset has "
                         f"{num_classes} classes: fine-tune a DiT built with num_embeds_ada_norm >= {num_classes}.")
    if model.config.in_channels != latent_channels:
        raise ValueError(f"The DiT takes {model.config.in_channels} latent channels but the autoencoder makes "
                         f"{latent_channels}: use a DiT built for this autoencoder's latents.")
    # Label dropout is done once per sample below; the per-block dropout built into the embedding
    # would drop labels independently in each block and never train the all-null path.
    for module in model.modules():
        if isinstance(module, LabelEmbedding):
            module.dropout_prob = 0.0
    return model


def previous_training(args: argparse.Namespace) -> dict | None:
    """The training record of the DiT being fine-tuned, when it comes from a pipeline folder that has one.

    Fine-tuning continues a model across sessions: the new record keeps the old one, so the card can
    state the whole lineage (total steps and seconds) of the shipped weights.
    """
    if args.transformer is None:
        return None
    record = Path(args.transformer).parent / "latent_diffusion_training.json"
    return json.loads(record.read_text()) if record.is_file() else None


def lineage_totals(record: dict) -> dict:
    """``total_steps`` and ``total_train_seconds`` of a record and every record it fine-tuned."""
    steps, seconds = record["steps"], record["train_seconds"]
    if record.get("fine_tuned_from"):
        previous = lineage_totals(record["fine_tuned_from"])
        steps, seconds = steps + previous["total_steps"], seconds + previous["total_train_seconds"]
    return {"total_steps": steps, "total_train_seconds": round(seconds, 1)}


def learning_rate_at(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up then cosine decay to a tenth of the base rate."""
    if step < args.warmup_steps:
        return args.learning_rate * (step + 1) / args.warmup_steps
    progress = min(1.0, (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps))
    return args.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def training_batch(latents: torch.Tensor, labels: torch.Tensor, step: int, args: argparse.Namespace,
                   process_index: int, null_label: int, num_train_timesteps: int):
    """Draws the batch of one step and process: keyed by (seed, step, process), so resume-exact."""
    generator = generator_for(args.seed, "latent-diffusion", step, process_index)
    index = torch.randint(0, len(latents), (args.batch_size,), generator=generator)
    noise = torch.randn((args.batch_size, *latents.shape[1:]), generator=generator)
    timesteps = torch.randint(0, num_train_timesteps, (args.batch_size,), generator=generator)
    drop = torch.rand(args.batch_size, generator=generator) < args.class_dropout
    batch_labels = torch.where(drop, torch.full_like(labels[index], null_label), labels[index])
    return latents[index], noise, timesteps, batch_labels


def denoising_loss(predicted: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
                   noise_scheduler: DDPMScheduler, snr_gamma: float | None) -> torch.Tensor:
    """Mean squared error of the predicted noise, per sample weighted by Min-SNR-gamma when given.

    Args:
        predicted: ``(B, C, H, W)`` predicted noise.
        noise: the drawn noise, same shape.
        timesteps: ``(B,)`` the batch's timesteps.
        noise_scheduler: the training schedule.
        snr_gamma: the Min-SNR clamp, or ``None`` for the plain mean.

    Returns:
        The scalar loss.
    """
    per_sample = (predicted - noise).pow(2).flatten(1).mean(1)
    if snr_gamma is None:
        return per_sample.mean()
    return (per_sample * min_snr_weights(noise_scheduler.alphas_cumprod, timesteps, snr_gamma)).mean()


def save_pipeline(model: DiTTransformer2DModel, args: argparse.Namespace, record: dict) -> None:
    """Writes the denoiser and its scheduler into the pipeline folder (atomically) with the record."""
    pipeline_dir = Path(args.pipeline_dir)
    with atomic_directory(pipeline_dir / "transformer") as staging:
        model.save_pretrained(staging)
        config = json.loads((staging / "config.json").read_text())
        config.pop("_name_or_path", None)  # the folder a fine-tuned model came from: a machine path
        atomic_write_json(config, staging / "config.json")
    scheduler = DDIMScheduler(**TRAINING_SCHEDULE)
    with atomic_directory(pipeline_dir / "scheduler") as staging:
        scheduler.save_pretrained(staging)
    pipeline = LatentDistillationPipeline.from_pretrained(args.pipeline_dir)
    pipeline.register_modules(transformer=model, scheduler=scheduler)
    pipeline.save_config(pipeline_dir)
    index = json.loads((pipeline_dir / "model_index.json").read_text())
    index.pop("_name_or_path", None)  # a machine path: not part of a shipped folder
    atomic_write_json(index, pipeline_dir / "model_index.json")
    atomic_write_json(record, pipeline_dir / "latent_diffusion_training.json")


def save_ema_snapshot(model: DiTTransformer2DModel, ema: EMAModel, folder: Path) -> None:
    """Writes the EMA weights as a loadable ``DiTTransformer2DModel`` folder, leaving ``model`` as it was."""
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    with atomic_directory(folder) as staging:
        model.save_pretrained(staging)
    ema.restore(model.parameters())


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    check_pipeline_dir(args.pipeline_dir)
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    latents, labels, num_classes = encode_training_set(args, accelerator)
    model = build_transformer(args, num_classes, latents.shape[1:])
    null_label = model.config.num_embeds_ada_norm
    noise_scheduler = DDPMScheduler(**TRAINING_SCHEDULE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.0)
    ema = EMAModel(model.parameters(), decay=args.ema_decay, use_ema_warmup=True, power=0.75)
    checkpoint = Path(args.checkpoint_dir) / "state.pt"
    state = load_state(checkpoint)
    step, seconds, running = 0, 0.0, None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        step, seconds, running = state["step"], state["seconds"], state["loss_ema"]
        accelerator.print(f"resumed from {checkpoint} at step {step}")
    model, optimizer = accelerator.prepare(model, optimizer)
    started = time.time() - seconds
    progress = tqdm(total=args.max_steps, initial=step, disable=not accelerator.is_main_process, desc="denoiser")
    while step < args.max_steps:
        clean, noise, timesteps, batch_labels = training_batch(
            latents, labels, step, args, accelerator.process_index, null_label,
            noise_scheduler.config.num_train_timesteps)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, args)
        with accelerator.autocast():
            prediction = model(noisy.to(accelerator.device), timestep=timesteps.to(accelerator.device),
                               class_labels=batch_labels.to(accelerator.device)).sample
        # DiT-style learned-sigma models predict (noise, variance): only the noise half is trained.
        loss = denoising_loss(prediction[:, : clean.shape[1]].float(), noise.to(accelerator.device),
                              timesteps.to(accelerator.device), noise_scheduler, args.snr_gamma)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(accelerator.unwrap_model(model).parameters())
        step += 1
        running = loss.item() if running is None else 0.99 * running + 0.01 * loss.item()
        progress.update(1)
        progress.set_postfix(loss=f"{running:.4f}", lr=f"{learning_rate_at(step, args):.2e}")
        if (step % args.checkpoint_every == 0 or step == args.max_steps) and accelerator.is_main_process:
            save_state(checkpoint, model=accelerator.unwrap_model(model).state_dict(),
                       optimizer=optimizer.state_dict(), ema=ema.state_dict(), step=step,
                       seconds=time.time() - started, loss_ema=running)
        if args.snapshot_every and step % args.snapshot_every == 0 and accelerator.is_main_process:
            save_ema_snapshot(accelerator.unwrap_model(model), ema, Path(args.checkpoint_dir) / f"ema-step-{step}")
    progress.close()
    recorded_args = {k: v for k, v in vars(args).items() if "dir" not in k and k != "latent_cache"}
    if args.transformer is not None:  # a machine path is no part of the record: the model's reference is
        recorded_args["transformer"] = model_reference(args.transformer)
    record = {"dataset": args.dataset,
              "args": recorded_args,
              "steps": step, "processes": accelerator.num_processes,
              "train_seconds": round(time.time() - started, 1), "final_loss_ema": running,
              "parameters": sum(p.numel() for p in accelerator.unwrap_model(model).parameters()),
              "training_schedule": TRAINING_SCHEDULE}
    previous = previous_training(args)
    if previous is not None:
        record["fine_tuned_from"] = previous
    record.update(lineage_totals(record))
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        ema.copy_to(final.parameters())
        save_pipeline(final.eval(), args, record)
        print(json.dumps({"saved": args.pipeline_dir, **record}))
    accelerator.wait_for_everyone()
    return record


if __name__ == "__main__":
    main()
