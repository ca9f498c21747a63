"""Class fidelity of a pipeline's class-conditional DiT; for a shipped one, its model card and a sample grid.

Generates ``--per_class`` samples of every class from pure noise (deterministic DDIM on a
``--steps`` grid, classifier-free guidance at each ``--guidance`` scale), decodes them with the
pipeline's autoencoder, and has a classifier trained on the real training images label them: the
class fidelity is the share labelled as the class they were generated for. The classifier is the
cached soft-label teacher (batch-norm ConvNet-3), so its accuracy on the real test set is reported
beside it. ``--pipeline`` measures another pipeline folder's denoiser (its rows are named after the
folder; a card and grid are written only for a shipped folder under ``src/latent_distill/pretrained``).

Writes ``benchmarks/results/latent_diffusion.json`` / ``.md`` and, for a shipped pipeline, the grid
``model_cards/<folder>-dit-samples.png`` and the card ``model_cards/<folder>-dit.md`` (merged into
the folder's ``README.md``).

    python -m benchmarks.latent_diffusion [--per_class 50] [--guidance 1 2 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from diffusers import DiTTransformer2DModel
from PIL import Image

from latent_distill import DEFAULT_PIPELINE_PATH, D3HRPipeline
from latent_distill.checkpointing import atomic_file, atomic_write_text
from latent_distill.codec import LatentCodec
from latent_distill.data import (
    FASHION_MNIST_CLASSES,
    fashion_mnist_tensors,
    float_to_uint8,
    uint8_to_float,
)
from latent_distill.default_models import (
    SHIPPED_PIPELINES,
    fashion_mnist_transformer_config,
    is_shipped_pipeline,
)
from latent_distill.diffusion import GuidedDenoiser, ddim_regenerate, ddim_schedulers
from latent_distill.evaluation import (
    accuracy,
    class_fidelity,
    classifier_features,
    configure_threads,
    frechet_distance,
    precision_recall,
    train_teacher,
)
from latent_distill.seeding import generator_for

from .results_io import (
    ROOT,
    ShippedPipelineCards,
    load_records,
    markdown_table,
    peak_rss_mb,
    shipped_cards,
    upsert_record,
    write_markdown,
    write_pipeline_readme,
)


@torch.no_grad()
def generate(pipe: D3HRPipeline, class_index: int, count: int, guidance: float, steps: int, seed: int) -> torch.Tensor:
    """``count`` decoded samples of one class, float in [-1, 1]."""
    sampler, _ = ddim_schedulers(pipe.scheduler, steps)
    shape = (count, pipe.transformer.config.in_channels, pipe.transformer.config.sample_size,
             pipe.transformer.config.sample_size)
    noise = torch.randn(shape, generator=generator_for(seed, "dit-card", class_index))
    labels = torch.full((count,), class_index, dtype=torch.long)
    latents = ddim_regenerate(GuidedDenoiser(pipe.transformer, guidance), sampler, noise, labels,
                              int(sampler.timesteps[0]))
    return LatentCodec(pipe.vae.eval(), int(pipe.vae.config.sample_size)).decode(latents)


def save_grid(samples: list[torch.Tensor], path: Path, columns: int = 10) -> None:
    """One row per class, ``columns`` samples each, as a PNG (written atomically)."""
    rows = [float_to_uint8(s[:columns]).squeeze(1).numpy() for s in samples]
    grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    with atomic_file(path) as tmp:
        Image.fromarray(grid, mode="L").resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(tmp,
                                                                                                           format="PNG")


def training_rounds(training: dict) -> list[dict]:
    """The training records of a denoiser, oldest first (training from scratch, then each fine-tuning)."""
    rounds = []
    while training:
        rounds.append(training)
        training = training.get("fine_tuned_from") or {}
    return rounds[::-1]


def describe_round(training: dict, index: int) -> str:
    """The command and the recipe of training round ``index`` (0: from scratch), for the card."""
    args = dict(training.get("args", {}))
    if args.get("transformer"):  # fine-tuned in a copy of the pipeline folder: name the weights, not the copy
        args["transformer"] = "<pipeline folder>/transformer"
    command = ("accelerate launch examples/train_latent_diffusion.py " +
               " ".join(f"--{k} {v}" for k, v in args.items() if v is not None and k not in ("dataset",)))
    start = "from scratch" if index == 0 else f"fine-tuning the EMA weights of round {index}"
    gamma = args.get("snr_gamma")
    loss = f"min-SNR-{gamma:g} weighted noise MSE" if gamma else "noise MSE"
    return f"""Round {index + 1}, {start}:

```bash
{command}
```

{training.get('steps')} steps of batch {args.get('batch_size')} per process (about
{training.get('steps', 0) * args.get('batch_size', 0) / 60000:.1f} epochs), AdamW at {args.get('learning_rate')} with
{args.get('warmup_steps')} warm-up steps and cosine decay to a tenth, gradient clipping at 1, labels replaced by the
null label with probability {args.get('class_dropout')} (one draw per sample), EMA of the weights (decay up to
{args.get('ema_decay')}). Final training loss (EMA of the {loss}): {training.get('final_loss_ema', float('nan')):.4f};
{training.get('train_seconds', 0) / 60:.0f} min on {training.get('processes', 1)} CPU process(es)."""


def architecture_sentence(transformer_config: dict) -> str:
    """The card's description of a DiT's design, from its config."""
    config = transformer_config
    side, patch = int(config["sample_size"]), int(config["patch_size"])
    heads, head_dim = int(config["num_attention_heads"]), int(config["attention_head_dim"])
    classes = int(config["num_embeds_ada_norm"])
    return (f"patch size {patch} ({(side // patch) ** 2} tokens), {config['num_layers']} `{config['norm_type']}` "
            f"blocks of width {heads * head_dim} ({heads} heads of {head_dim}), {classes} class labels plus the null "
            f"label {classes} for classifier-free guidance")


def render_card(records: list[dict], training: dict, transformer_config: Optional[dict] = None,
                cards: Optional[ShippedPipelineCards] = None) -> str:
    """The model card of a shipped denoiser.

    Args:
        records: its ``latent_diffusion`` records (one per guidance scale).
        training: its ``latent_diffusion_training.json`` (the training rounds).
        transformer_config: its ``transformer/config.json`` (default: the default denoiser's).
        cards: its pipeline's cards (default: the default pipeline's), for the grid, role and snippet.

    Returns:
        The card's markdown, front matter first.
    """
    config = transformer_config or fashion_mnist_transformer_config()
    cards = cards or shipped_cards(DEFAULT_PIPELINE_PATH)
    shape = f"{config['in_channels']}x{config['sample_size']}x{config['sample_size']}"
    table = markdown_table(records, [column for column in CHECKPOINT_COLUMNS
                                     if column[1] not in ("model", "training_steps")]
                           + [("classifier test acc. (%)", "classifier_test_acc")])
    rounds = "\n\n".join(describe_round(r, i) for i, r in enumerate(training_rounds(training)))
    total_minutes = training.get("total_train_seconds", training.get("train_seconds", 0)) / 60
    return f"""---
library_name: diffusers
license: apache-2.0
tags:
- dit
- class-conditional
- latent-diffusion
- latent-distill
- fashion-mnist
datasets:
- zalando-datasets/fashion_mnist
---

# Fashion-MNIST class-conditional DiT, {shape} latents (latent-distill)

A small `diffusers.DiTTransformer2DModel` denoiser over the **{shape} latents** of the autoencoder
shipped beside it: {architecture_sentence(config)}; it predicts the noise
(no learned-sigma channels). Scheduler: DDIM over DiT's schedule (linear betas 1e-4 to 0.02, 1000
steps). It is the diffusion model of D3HR and LD3M in this pipeline, {cards.role}.

- parameters: {training.get('parameters', 0):,}
- trained on: the latents (scaled posterior means) of the 60,000 Fashion-MNIST training images
- training: {total_training_steps(training)} steps in {len(training_rounds(training))} round(s), {total_minutes:.0f} min
  of CPU time in all; the EMA weights of the last round are shipped

## Training

Each round runs in a copy of this pipeline folder (`--pipeline_dir`: its autoencoder's latents are
the training data).

{rounds}

## Quality

Samples generated from pure noise with deterministic DDIM, decoded by the autoencoder, judged by a
batch-norm ConvNet-3 trained on the real training images (the soft-label teacher of the evaluation
suite). Class fidelity = share of samples labelled as the class they were generated for; FID = the
Fréchet distance between Gaussians of the classifier's penultimate features of the samples and of the
10,000 real test images (comparable between checkpoints of this model at the same sample count, not
with Inception FIDs); precision / recall = improved precision and recall (k = 3) on the same
features. Every checkpoint: `benchmarks/results/latent_diffusion.md`.

{table}
![samples]({cards.grid.name})

One row per class (top to bottom: {', '.join(FASHION_MNIST_CLASSES)}), guidance
{records[-1]['guidance'] if records else ''}.

Generated by `python -m benchmarks.latent_diffusion` from `benchmarks/results/latent_diffusion.json`.

## Use

```python
from latent_distill import D3HRPipeline, {cards.constant}

pipe = D3HRPipeline.from_pretrained({cards.constant})   # vae + transformer + scheduler
```
"""


def training_lineage(pipeline: Path) -> dict:
    """The training record of a pipeline folder's denoiser (``{}`` when it has none)."""
    path = Path(pipeline) / "latent_diffusion_training.json"
    return json.loads(path.read_text()) if path.exists() else {}


def total_training_steps(training: dict) -> int:
    """Optimisation steps behind a denoiser, fine-tuning rounds included."""
    return int(training.get("total_steps", training.get("steps", 0)))


def generator_quality(samples: list[torch.Tensor], classifier: torch.nn.Module, real_features: torch.Tensor) -> dict:
    """Class fidelity, Fréchet distance and precision / recall of per-class samples (float in [-1, 1])."""
    images = torch.cat(samples)
    intended = torch.cat([torch.full((len(s),), c) for c, s in enumerate(samples)])
    with torch.inference_mode():
        predicted = torch.cat([classifier(images[i: i + 500]).argmax(1) for i in range(0, len(images), 500)])
    fidelity = class_fidelity(predicted, intended, len(samples))
    features = classifier_features(classifier, images)
    return {"class_fidelity": round(fidelity["overall"], 2),
            "per_class_fidelity": [round(a, 2) for a in fidelity["per_class"]],
            "fid": round(frechet_distance(real_features, features), 3),
            **{key: round(value, 2) for key, value in precision_recall(real_features, features).items()}}


CHECKPOINT_COLUMNS = [("model", "model"), ("training steps", "training_steps"), ("guidance", "guidance"),
                      ("samples", "samples"), ("class fidelity (%)", "class_fidelity"), ("worst class", "worst_class"),
                      ("FID (classifier features)", "fid"), ("precision (%)", "precision"),
                      ("recall (%)", "recall")]


def write_table() -> list[dict]:
    """Writes ``latent_diffusion.md`` from the records; returns the records with all metrics."""
    shipped = [f"{name}-dit" for name in SHIPPED_PIPELINES]
    records = sorted(load_records("latent_diffusion"),
                     key=lambda r: (r["model"].rsplit("@", 1)[0] not in shipped, r["model"].rsplit("@", 1)[0],
                                    r.get("training_steps", 0), r["samples"], r["steps"], r["guidance"]))
    measured = [r for r in records if "fid" in r]
    write_markdown("latent_diffusion", "# Quality of the DiT denoisers, checkpoint by checkpoint\n\n"
                   "Class fidelity, Fréchet distance and precision / recall on the features of a classifier of the "
                   "real data (the real reference is the test split), per training checkpoint and guidance scale. "
                   f"`model` = `<pipeline folder>-dit@<training steps>`: {' and '.join(f'`{m}`' for m in shipped)} "
                   "are the shipped denoisers (their last checkpoints are the shipped weights); other folders hold "
                   "denoisers trained on the latents of other autoencoders (measured in "
                   "`benchmarks/results/autoencoder.md`).\n\n"
                   + markdown_table(measured, CHECKPOINT_COLUMNS)
                   + "\n\n**Earlier class-fidelity measurements** (500 samples, no distribution metrics):\n\n"
                   + markdown_table([r for r in records if "fid" not in r], [
                       ("model", "model"), ("guidance", "guidance"), ("DDIM steps", "steps"), ("samples", "samples"),
                       ("class fidelity (%)", "class_fidelity"), ("worst class", "worst_class"),
                       ("classifier test acc. (%)", "classifier_test_acc"), ("seconds", "seconds")]))
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(DEFAULT_PIPELINE_PATH))
    parser.add_argument("--transformer", default=None,
                        help="a DiTTransformer2DModel folder to measure instead of the pipeline's (e.g. an EMA "
                             "snapshot of examples/train_latent_diffusion.py --snapshot_every); no card is written")
    parser.add_argument("--training_steps", type=int, default=None,
                        help="optimisation steps behind --transformer (default: the pipeline's training record)")
    parser.add_argument("--per_class", type=int, default=100)
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--teacher_epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--card_only", action="store_true",
                        help="re-render a shipped pipeline's card from its recorded figures and grid (measures nothing)")
    args = parser.parse_args()
    configure_threads(args.threads)
    pipe = D3HRPipeline.from_pretrained(args.pipeline)
    training = training_lineage(Path(args.pipeline))
    if args.card_only:
        if not is_shipped_pipeline(args.pipeline) or not shipped_cards(args.pipeline).grid.exists():
            raise SystemExit(f"--card_only needs a shipped pipeline already measured (its grid written); "
                             f"{args.pipeline} is not: run the benchmark on it first.")
        write_card(pipe, Path(args.pipeline), training, write_table())
        return
    if args.transformer is not None:
        pipe.register_modules(transformer=DiTTransformer2DModel.from_pretrained(args.transformer).eval())
    steps_trained = args.training_steps if args.training_steps is not None else total_training_steps(training)
    # Named as benchmarks.results_io.denoiser_label names a pipeline folder's denoiser.
    model = f"{Path(args.pipeline).name}-dit@{steps_trained}"
    shipped_pipeline = is_shipped_pipeline(args.pipeline)
    train, test = fashion_mnist_tensors("train"), fashion_mnist_tensors("test")
    classifier = train_teacher(train, epochs=args.teacher_epochs, seed=0, cache_dir=ROOT / "runs" / "teachers",
                               torch_compile=True).eval()
    test_acc = accuracy(classifier, uint8_to_float(test.images), test.labels)
    real_features = classifier_features(classifier, test.images)
    for guidance in args.guidance:
        started = time.time()
        samples = [generate(pipe, c, args.per_class, guidance, args.steps, args.seed) for c in range(10)]
        quality = generator_quality(samples, classifier, real_features)
        worst = int(np.argmin(quality["per_class_fidelity"]))
        record = {"benchmark": "latent_diffusion", "dataset": "fashion-mnist", "model": model,
                  "training_steps": steps_trained, "guidance": guidance, "steps": args.steps,
                  "samples": args.per_class * 10, **quality,
                  "worst_class": f"{FASHION_MNIST_CLASSES[worst]} ({quality['per_class_fidelity'][worst]:.1f})",
                  "real_reference": f"{len(test.labels)} test images",
                  "classifier": f"convnet-3 batchnorm, {args.teacher_epochs} epochs",
                  "classifier_test_acc": round(test_acc, 2), "seconds": round(time.time() - started, 1),
                  "peak_rss_mb": peak_rss_mb()}
        upsert_record("latent_diffusion", record, key=("model", "guidance", "steps", "samples"))
        print(json.dumps(record), flush=True)
        if args.transformer is None and shipped_pipeline and guidance == args.guidance[-1]:
            cards = shipped_cards(args.pipeline)
            save_grid(samples, cards.grid)
            save_grid(samples, Path(args.pipeline) / cards.grid.name)  # the folder's README shows it too
    measured = write_table()
    if args.transformer is None and shipped_pipeline:  # the card and grid are the shipped model's
        write_card(pipe, Path(args.pipeline), training, measured)


def write_card(pipe: D3HRPipeline, pipeline: Path, training: dict, measured: list[dict]) -> None:
    """Renders a shipped denoiser's card from its records and merges it into the folder's ``README.md``."""
    model = f"{pipeline.name}-dit@{total_training_steps(training)}"
    cards = shipped_cards(pipeline)
    card = render_card([r for r in measured if r["model"] == model], training, dict(pipe.transformer.config), cards)
    atomic_write_text(card, cards.denoiser)
    write_pipeline_readme(pipeline, cards)


if __name__ == "__main__":
    main()
