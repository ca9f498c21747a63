"""Trains the default ``AutoencoderKL`` on an image-classification dataset (Fashion-MNIST by default).

Resumable: the full state is checkpointed every ``--checkpoint_every`` steps into
``--checkpoint_dir`` and a new run with the same arguments continues from it. At the end the latent
scaling factor (1 / std of the latents, as for Stable Diffusion) is measured and written into the
model config, and the model is saved in diffusers format as the ``vae`` of the pipeline folder
``--pipeline_dir`` (with ``model_index.json`` and ``autoencoder_training.json``, the training record
that the model card quotes).

    accelerate launch examples/train_autoencoder.py --max_steps 6000

``--init_vae FOLDER --train_part decoder`` fine-tunes only the decoder of an existing autoencoder:
its encoder, and so its latent space and scaling factor, stay as they are, so a diffusion model
trained on those latents (and every latent set made with them) stays valid while decoded images
improve (as ``stabilityai/sd-vae-ft-mse`` was made from the SD autoencoder). The new
``autoencoder_training.json`` keeps the record of the starting model under ``init_record``, so a
model fine-tuned in several stages carries every stage's command; give each stage its own
``--checkpoint_dir`` (a checkpoint of another run is refused).

    accelerate launch examples/train_autoencoder.py --init_vae src/latent_distill/pretrained/fashion-mnist/vae \
        --train_part decoder --learning_rate 3e-4 --pipeline_dir runs/decoder-ft/pipeline \
        --checkpoint_dir runs/decoder-ft
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Optional

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from latent_distill.checkpointing import (
    atomic_directory,
    atomic_write_json,
    load_state,
    save_state,
)
from latent_distill.data import (
    dataset_to_tensors,
    fashion_mnist_tensors,
    uint8_to_float,
)
from latent_distill.default_models import (
    DEFAULT_PIPELINE_PATH,
    build_fashion_mnist_autoencoder,
)
from latent_distill.pipelines import LatentDistillationPipeline


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="'fashion-mnist' (offline default) or a datasets id / local folder")
    parser.add_argument("--pipeline_dir", default=str(DEFAULT_PIPELINE_PATH))
    parser.add_argument("--checkpoint_dir", default="runs/autoencoder")
    parser.add_argument("--max_steps", type=int, default=6000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--warmup_steps", type=int, default=200)
    parser.add_argument("--kl_weight", type=float, default=1e-6)
    parser.add_argument("--checkpoint_every", type=int, default=250)
    parser.add_argument("--mixed_precision", default="bf16", choices=["no", "fp16", "bf16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init_vae", default=None,
                        help="start from this AutoencoderKL folder instead of a freshly initialised one")
    parser.add_argument("--latent_channels", type=int, default=4,
                        help="latent channels of a freshly initialised autoencoder (the default design has 4)")
    parser.add_argument("--downsampling", type=int, default=2, choices=[1, 2],
                        help="times a freshly initialised autoencoder halves the image side: 2 gives the "
                             "default 7x7 latents, 1 gives 14x14")
    parser.add_argument("--train_part", default="all", choices=sorted(TRAINABLE_PARTS),
                        help="'all', or 'decoder' (encoder frozen: latent space and scaling factor kept)")
    args = parser.parse_args(argv)
    if args.init_vae is not None and (args.latent_channels, args.downsampling) != (4, 2):
        parser.error("--latent_channels and --downsampling shape a fresh autoencoder; --init_vae keeps the shape of "
                     "the model it names: drop one of the two.")
    if args.train_part != "all" and args.init_vae is None:
        parser.error(f"--train_part {args.train_part} fine-tunes an existing autoencoder: name it with --init_vae "
                     "(e.g. src/latent_distill/pretrained/fashion-mnist/vae).")
    return args


def decoder_parameters(vae: AutoencoderKL) -> list[torch.nn.Parameter]:
    """The parameters that map latents to images (post-quantisation conv and decoder)."""
    post_quant = vae.post_quant_conv.parameters() if vae.post_quant_conv is not None else []
    return [*post_quant, *vae.decoder.parameters()]


# What ``--train_part`` trains; everything else is frozen.
TRAINABLE_PARTS = {"all": lambda vae: list(vae.parameters()), "decoder": decoder_parameters}


def load_training_images(name: str) -> torch.Tensor:
    """Returns the training split as ``uint8`` ``(N, 1, 28, 28)`` images."""
    if name == "fashion-mnist":
        return fashion_mnist_tensors("train").images
    import datasets

    return dataset_to_tensors(datasets.load_dataset(name, split="train")).images


def learning_rate_at(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up then cosine decay to zero."""
    if step < args.warmup_steps:
        return args.learning_rate * (step + 1) / args.warmup_steps
    progress = (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps)
    return args.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def measure_scaling_factor(vae, images: torch.Tensor, count: int = 5000) -> float:
    """Returns 1 / std of the posterior means of the first ``count`` images (all of them when fewer)."""
    count = min(count, len(images))
    latents = [vae.encode(uint8_to_float(images[i: i + 500])).latent_dist.mean for i in range(0, count, 500)]
    return float(1.0 / torch.cat(latents).std())


def run_identity(args: argparse.Namespace) -> dict:
    """What a checkpoint must match to be resumed: what is trained, and from which starting model."""
    return {"train_part": args.train_part, "init_vae": str(Path(args.init_vae).resolve()) if args.init_vae else None}


def refuse_other_run(state: dict, args: argparse.Namespace, checkpoint: Path) -> None:
    """Raises when ``checkpoint`` belongs to a run of another kind (resuming it would discard the
    starting model, or train the wrong part); the step budget may change at resumption."""
    saved = state.get("run")
    if saved is not None and saved != run_identity(args):
        raise SystemExit(f"{checkpoint} holds a run of {saved}, not of {run_identity(args)}: pass another "
                         "--checkpoint_dir for this run (or delete that folder to start over).")


def init_training_record(init_vae: Optional[str]) -> Optional[dict]:
    """The training record of the autoencoder a fine-tune starts from, so records chain stage by stage.

    Args:
        init_vae: the ``--init_vae`` folder, or ``None`` for a fresh autoencoder.

    Returns:
        The ``autoencoder_training.json`` beside that folder (in its pipeline folder), or ``None`` when
        training from scratch or when the starting model carries no record.
    """
    if init_vae is None:
        return None
    path = Path(init_vae).parent / "autoencoder_training.json"
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: Optional[list[str]] = None) -> None:
    """Trains (or fine-tunes) the autoencoder; ``argv`` as on the command line (default ``sys.argv``)."""
    args = parse_args(argv)
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(args.seed)
    images = load_training_images(args.dataset)
    vae = (AutoencoderKL.from_pretrained(args.init_vae) if args.init_vae
           else build_fashion_mnist_autoencoder(args.latent_channels, args.downsampling))
    trainable = TRAINABLE_PARTS[args.train_part](vae)
    vae.requires_grad_(False)
    for parameter in trainable:
        parameter.requires_grad_(True)
    encoder_frozen = not any(parameter.requires_grad for parameter in vae.encoder.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=0.0)
    checkpoint = Path(args.checkpoint_dir) / "state.pt"
    state = load_state(checkpoint)
    step, seconds = 0, 0.0
    if state is not None:
        refuse_other_run(state, args, checkpoint)
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, seconds = state["step"], state["seconds"]
        accelerator.print(f"resumed from {checkpoint} at step {step}")
    vae, optimizer = accelerator.prepare(vae, optimizer)
    generator = torch.Generator().manual_seed(args.seed * 1000 + step)
    progress = tqdm(total=args.max_steps, initial=step, disable=not accelerator.is_main_process, desc="autoencoder")
    started = time.time() - seconds
    running = state.get("psnr_ema") if state is not None else None
    while step < args.max_steps:
        index = torch.randint(0, len(images), (args.batch_size,), generator=generator)
        batch = uint8_to_float(images[index]).to(accelerator.device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, args)
        with accelerator.autocast():
            with torch.set_grad_enabled(not encoder_frozen):
                posterior = accelerator.unwrap_model(vae).encode(batch).latent_dist
            reconstruction = accelerator.unwrap_model(vae).decode(posterior.sample(generator=None)).sample
        mse = torch.nn.functional.mse_loss(reconstruction.float(), batch)
        loss = mse if encoder_frozen else mse + args.kl_weight * posterior.kl().mean()
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        # PSNR on the [0, 1] scale: the MSE on [-1, 1] is four times larger.
        psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-12))
        running = psnr if running is None else 0.98 * running + 0.02 * psnr
        progress.update(1)
        progress.set_postfix(psnr=f"{running:.2f}", lr=f"{learning_rate_at(step, args):.2e}")
        if step % args.checkpoint_every == 0 and accelerator.is_main_process:
            save_state(checkpoint, run=run_identity(args), model=accelerator.unwrap_model(vae).state_dict(),
                       optimizer=optimizer.state_dict(), step=step, seconds=time.time() - started,
                       psnr_ema=running)
    progress.close()
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(vae).eval()
        if not encoder_frozen:  # a frozen encoder keeps its latents, so the diffusion model's scaling holds
            model.register_to_config(scaling_factor=measure_scaling_factor(model, images))
        pipeline_dir = Path(args.pipeline_dir)
        with atomic_directory(pipeline_dir / "vae") as staging:
            model.save_pretrained(staging)
        if not (pipeline_dir / "model_index.json").exists():
            LatentDistillationPipeline(vae=model).save_config(pipeline_dir)
        summary = {"dataset": args.dataset,
                   "args": {k: v for k, v in vars(args).items() if "dir" not in k and k != "init_vae"},
                   "init_vae": Path(args.init_vae).name if args.init_vae else None,
                   "init_record": init_training_record(args.init_vae),
                   "steps": step, "train_seconds": round(time.time() - started, 1),
                   "final_train_psnr_ema": running, "parameters": sum(p.numel() for p in model.parameters())}
        atomic_write_json(summary, pipeline_dir / "autoencoder_training.json")
        print(json.dumps({"saved": str(pipeline_dir), **summary}))


if __name__ == "__main__":
    main()
