"""Quality of an autoencoder on the Fashion-MNIST test set; for a shipped one, writes its model card.

Measures reconstruction PSNR (posterior mean, decoded, on the [0, 1] scale) and the accuracy that a
ConvNet-3 trained on the real training images gets on the original test images versus their
reconstructions; with ``--subset_sets N``, also what the autoencoder costs a distilled set: ``N``
random real IPC-10 subsets, autoencoded, under both evaluation protocols. Writes
``benchmarks/results/autoencoder.json`` / ``.md`` and, for a shipped autoencoder (``vae`` of a folder
under ``src/latent_distill/pretrained``), renders ``model_cards/<folder>-autoencoder.md`` (merged into
the folder's ``README.md``).

    python -m benchmarks.autoencoder [--vae FOLDER] [--classifier_epochs 5] [--subset_sets 8]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Optional

import torch
from diffusers import AutoencoderKL

from latent_distill.checkpointing import atomic_write_text
from latent_distill.codec import LatentCodec, config_downsampling
from latent_distill.data import fashion_mnist_tensors, uint8_to_float
from latent_distill.default_models import (
    DEFAULT_PIPELINE_PATH,
    fashion_mnist_autoencoder_config,
    is_shipped_pipeline,
)
from latent_distill.evaluation import (
    HardLabelProtocol,
    SoftLabelProtocol,
    accuracy,
    random_subset,
    train_teacher,
)

from .cells import evaluate_sets
from .results_io import (
    ROOT,
    ShippedPipelineCards,
    load_records,
    markdown_table,
    peak_rss_mb,
    replace_section,
    shipped_cards,
    training_stages,
    upsert_record,
    write_markdown,
    write_pipeline_readme,
)


def psnr_figures(original: torch.Tensor, reconstruction: torch.Tensor) -> tuple[float, float]:
    """Mean per-image PSNR and dataset-level PSNR, on the [0, 1] scale."""
    mse = ((original - reconstruction) / 2).pow(2).flatten(1).mean(dim=1)
    per_image = (10 * torch.log10(1.0 / mse.clamp_min(1e-12))).mean()
    return float(per_image), float(10 * math.log10(1.0 / float(mse.mean())))


def stage_command(stage: dict, previous: str) -> str:
    """The ``train_autoencoder`` command of one training stage.

    Args:
        stage: one stage of :func:`~benchmarks.results_io.training_stages`.
        previous: the folder holding the previous stage's ``vae`` (named in ``--init_vae``).

    Returns:
        The command line, with every recorded hyperparameter.
    """
    args = stage.get("args", {})
    flags = [f"--{name} {args[name]}" for name in ("max_steps", "batch_size", "learning_rate", "warmup_steps",
                                                   "kl_weight", "mixed_precision", "seed") if name in args]
    # the architecture, where it is not the default's (a fine-tune inherits it from --init_vae)
    if args.get("train_part", "all") == "all":
        flags += [f"--{name} {args[name]}" for name, default in (("latent_channels", 4), ("downsampling", 2))
                  if args.get(name, default) != default]
    if args.get("train_part", "all") != "all":
        flags = [f"--init_vae {previous}/vae --train_part {args['train_part']}", *flags]
    return "accelerate launch examples/train_autoencoder.py " + " ".join(flags)


def stage_description(stage: dict) -> str:
    """One paragraph on what a training stage trained, for how long, and at what cost."""
    args = stage.get("args", {})
    steps, batch = stage.get("steps", 0), args.get("batch_size", 0)
    if args.get("train_part", "all") == "decoder":
        what = ("decoder only (post-quantisation conv and decoder; the encoder, and with it the latent space, "
                "its scaling factor and every model trained on those latents, unchanged), MSE reconstruction loss")
    else:
        what = f"the whole autoencoder, MSE reconstruction loss plus a KL term of weight {args.get('kl_weight')}"
    text = (f"{steps} steps of batch {batch} (about {steps * batch / 60000:.1f} epochs), AdamW, linear warm-up "
            f"then cosine decay from {args.get('learning_rate')}, {what}, {args.get('mixed_precision')} autocast, "
            f"on CPU: {stage.get('train_seconds', 0) / 60:.0f} minutes of wall time.")
    return text + (" " + stage["schedule_history"] if stage.get("schedule_history") else "")


def training_section(summary: dict) -> str:
    """The card's training section: the command and description of each stage, in order (a model
    trained in several stages names each stage's folders, so no stage resumes another's checkpoint)."""
    stages = training_stages(summary)
    if len(stages) == 1:
        return f"```bash\n{stage_command(stages[0], '')}\n```\n\n{stage_description(stages[0])}\n"
    parts = []
    for number, stage in enumerate(stages, start=1):
        title = f"Stage {number}: " + ("decoder fine-tune" if stage.get("args", {}).get("train_part") == "decoder"
                                       else "training")
        command = (stage_command(stage, f"stage-{number - 1}")
                   + f" --pipeline_dir stage-{number} --checkpoint_dir runs/stage-{number}")
        parts.append(f"### {title}\n\n```bash\n{command}\n```\n\n{stage_description(stage)}\n")
    return "\n".join(parts)


def subset_paragraph(record: dict) -> str:
    """What the autoencoder costs a distilled set, for the card (empty when not measured)."""
    if "subset_soft" not in record:
        return ""
    return (f"\nRandom real subsets of 10 images per class passed through it ({record['subset_sets']} subsets, "
            f"ConvNet-3): {record['subset_soft']} under D3HR's soft-label protocol, {record['subset_hard']} under "
            "the hard-label protocol (the same subsets, not autoencoded: the `random real subset` rows of "
            "`benchmarks/results/d3hr.md`).\n")


def architecture_sentence(vae_config: dict, latent_shape: list[int]) -> str:
    """The card's description of an autoencoder's design, from its config and latent shape."""
    widths = tuple(vae_config.get("block_out_channels", ()))
    channels, height, width = latent_shape
    values = channels * height * width
    pixels = int(vae_config.get("in_channels", 1)) * int(vae_config.get("sample_size", 28)) ** 2
    per_image = pixels // values if values <= pixels else 0
    storage = (f", so one image's storage holds {per_image} latent{'s' if per_image > 1 else ''}" if per_image
               else "")
    return (f"an SD-VAE design scaled down, {len(widths)} resolution levels with block channels {widths}, "
            f"{vae_config.get('layers_per_block', 2)} ResNet blocks each, attention mid-block, {channels} latent "
            f"channels. It maps an image to a **{channels}x{height}x{width} latent** ({values} values for {pixels} "
            f"pixels{storage}).")


def render_card(record: dict, summary: dict, vae_config: Optional[dict] = None,
                cards: Optional[ShippedPipelineCards] = None) -> str:
    """The model card of a shipped autoencoder.

    Args:
        record: its ``benchmarks/results/autoencoder.json`` record.
        summary: its ``autoencoder_training.json`` (the training stages).
        vae_config: its ``vae/config.json`` (default: the default autoencoder's).
        cards: its pipeline's cards (default: the default pipeline's), for the role and usage snippet.

    Returns:
        The card's markdown, front matter first.
    """
    vae_config = vae_config or fashion_mnist_autoencoder_config()
    cards = cards or shipped_cards(DEFAULT_PIPELINE_PATH)
    side = int(vae_config.get("sample_size", 28)) // config_downsampling(vae_config)
    latent_shape = record.get("latent_shape") or [vae_config.get("latent_channels", 4), side, side]
    shape = "x".join(map(str, latent_shape))
    table = markdown_table([record], [
        ("test PSNR (mean per image, dB)", "psnr_mean_db"), ("test PSNR (dataset, dB)", "psnr_dataset_db"),
        ("ConvNet-3 acc. on originals (%)", "acc_original"), ("acc. on reconstructions (%)", "acc_reconstructed"),
        ("accuracy lost (points)", "acc_drop"),
    ])
    return f"""---
library_name: diffusers
license: apache-2.0
tags:
- autoencoder
- latent-distill
- fashion-mnist
datasets:
- zalando-datasets/fashion_mnist
---

# Fashion-MNIST AutoencoderKL, {shape} latents (latent-distill)

A small `diffusers.AutoencoderKL` for 28x28 grey images: {architecture_sentence(vae_config, latent_shape)}
Its latent space is {cards.role}.

- parameters: {record['parameters']:,}
- latent scaling factor (1 / std of the latents, in `config.json`): {record['scaling_factor']:.4f}
- trained on: the 60,000 Fashion-MNIST training images (Debian `dataset-fashion-mnist` idx files)

## Training

{training_section(summary)}
## Quality on the test set (10,000 images)

Measured by `python -m benchmarks.autoencoder` (reconstruction from the posterior mean; the classifier
is a ConvNet-3, width 128, instance norm, trained {record['classifier_epochs']} epochs on the real training images):

{table}{subset_paragraph(record)}
## Use

```python
from diffusers import AutoencoderKL
from latent_distill import {cards.constant}, LatentDistillationPipeline

vae = AutoencoderKL.from_pretrained({cards.constant} / "vae")
pipe = LatentDistillationPipeline.from_pretrained({cards.constant})
```
"""


SUBSET_NOTE = """
`IPC 10 subsets, autoencoded`: random real subsets of 10 training images per class (set k drawn with
seed k, as the random real subsets of `benchmarks/results/d3hr.md`), encoded and decoded by the
autoencoder, then evaluated under D3HR's soft-label protocol and the hard-label protocol (mean ± std
over the sets): what the autoencoder alone costs a distilled set of that size. The same real subsets,
not autoencoded, are the `random real subset` rows of `benchmarks/results/d3hr.md`.
"""


def autoencoded_subset_figures(codec: LatentCodec, train, test, sets: int, cache_dir: str) -> dict:
    """Random real IPC-10 subsets through the autoencoder, under both evaluation protocols.

    Args:
        codec: the autoencoder's codec.
        train: the real training split.
        test: the real test split.
        sets: independent subsets (subset ``k`` drawn with seed ``k``).
        cache_dir: where the soft-label teacher is cached.

    Returns:
        ``subset_soft`` / ``subset_hard`` as ``mean ± std`` strings, their means, and ``subset_sets``.
    """
    teacher = train_teacher(train, epochs=10, seed=0, cache_dir=cache_dir, torch_compile=True)
    figures = {"subset_sets": sets}
    for kind, protocol, cell_teacher in (("soft", SoftLabelProtocol(), teacher), ("hard", HardLabelProtocol(), None)):
        def make_set(seed: int):
            images, labels = random_subset(train, 10, seed=seed)
            return codec.decode(codec.encode(images)), labels

        cell = evaluate_sets(make_set, test, protocol, cell_teacher, sets, runs=1)
        figures[f"subset_{kind}"] = f"{cell['acc_mean']:.2f} ± {cell['acc_std']:.2f}"
        figures[f"subset_{kind}_mean"] = cell["acc_mean"]
    return figures


def training_summary(model: str) -> Optional[str]:
    """How a benchmarked autoencoder was trained, stage by stage, from the record beside it.

    Args:
        model: the record's ``model`` (a folder inside ``src/`` or the repository).

    Returns:
        e.g. ``3500 steps + 2000 decoder steps``, or ``None`` when no training record is found.
    """
    for root in (ROOT / "src", ROOT):
        path = root / model / ".." / "autoencoder_training.json"
        if path.exists():
            stages = training_stages(json.loads(path.read_text()))
            return " + ".join(f"{stage['steps']} {'decoder ' if stage.get('args', {}).get('train_part') == 'decoder' else ''}"
                              "steps" for stage in stages)
    return None


def write_tables(records: list[dict]) -> None:
    """Writes ``benchmarks/results/autoencoder.md`` and the README's section from the records."""
    rows = [{**record, "training": training_summary(record["model"])} for record in records]
    table = markdown_table(rows, [
        ("model", "model"), ("training", "training"), ("latent", "latent_shape"), ("PSNR mean (dB)", "psnr_mean_db"),
        ("PSNR dataset (dB)", "psnr_dataset_db"), ("acc. original", "acc_original"),
        ("acc. reconstructed", "acc_reconstructed"), ("drop", "acc_drop"),
        ("IPC 10 subsets, autoencoded, soft", "subset_soft"), ("hard", "subset_hard"), ("commit", "git_commit"),
    ])
    write_markdown("autoencoder", "# Autoencoder quality (Fashion-MNIST test set)\n\n" + table + SUBSET_NOTE)
    replace_section(ROOT / "README.md", "autoencoder", "\n" + table + SUBSET_NOTE + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", default=str(DEFAULT_PIPELINE_PATH / "vae"))
    parser.add_argument("--classifier_epochs", type=int, default=5)
    parser.add_argument("--cache_dir", default=str(ROOT / "runs" / "teachers"))
    parser.add_argument("--subset_sets", type=int, default=0,
                        help="also evaluate this many random real IPC-10 subsets passed through the autoencoder, "
                             "under both protocols (what the autoencoder costs a distilled set; 0: skip)")
    parser.add_argument("--card_only", action="store_true",
                        help="re-render a shipped autoencoder's card from its recorded figures (measures nothing)")
    args = parser.parse_args()

    vae = AutoencoderKL.from_pretrained(args.vae).eval()
    if args.card_only:
        recorded = [r for r in load_records("autoencoder") if r["model"] == model_name(args.vae)]
        if not recorded or not is_shipped_pipeline(Path(args.vae).parent):
            raise SystemExit(f"--card_only needs a shipped autoencoder with a recorded result; {args.vae} has none: "
                             "run the benchmark on it first.")
        write_card(Path(args.vae).parent, recorded[0], dict(vae.config))
        return
    started = time.time()
    codec = LatentCodec(vae, resolution=28)
    test = fashion_mnist_tensors("test")
    originals = uint8_to_float(test.images)
    reconstructions = codec.decode(codec.encode(test.images, to_float=uint8_to_float))
    # Round to 8 bits as a stored image would be.
    reconstructions = uint8_to_float(reconstructions.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8))
    psnr_mean, psnr_dataset = psnr_figures(originals, reconstructions)

    train = fashion_mnist_tensors("train")
    protocol = HardLabelProtocol(augmentation="none", bf16=True)
    classifier = train_teacher(train, arch="convnet", epochs=args.classifier_epochs, seed=0,
                               cache_dir=args.cache_dir, arch_kwargs={"norm": "instancenorm"}, protocol=protocol,
                               torch_compile=True)
    acc_original = accuracy(classifier, originals, test.labels)
    acc_reconstructed = accuracy(classifier, reconstructions, test.labels)

    record = {
        "benchmark": "autoencoder", "dataset": "fashion-mnist", "model": model_name(args.vae),
        "parameters": sum(p.numel() for p in vae.parameters()), "latent_shape": list(codec.latent_shape),
        "scaling_factor": codec.scaling_factor, "psnr_mean_db": round(psnr_mean, 2),
        "psnr_dataset_db": round(psnr_dataset, 2), "classifier": "convnet-3 instancenorm",
        "classifier_epochs": args.classifier_epochs, "acc_original": round(acc_original, 2),
        "acc_reconstructed": round(acc_reconstructed, 2), "acc_drop": round(acc_original - acc_reconstructed, 2),
    }
    if args.subset_sets:
        record.update(autoencoded_subset_figures(codec, train, test, args.subset_sets, args.cache_dir))
    record.update({"seconds": round(time.time() - started, 1), "peak_rss_mb": peak_rss_mb()})
    records = upsert_record("autoencoder", record, key=("model",))
    write_tables(records)
    # Shipped autoencoders get a model card; any other (a candidate) gets a results row only.
    if is_shipped_pipeline(Path(args.vae).parent):
        write_card(Path(args.vae).parent, record, dict(vae.config))
    print(json.dumps(record, indent=2))


def model_name(vae: str) -> str:
    """How a record names an autoencoder folder: relative to ``src`` inside the repository, else as given."""
    path = Path(vae).resolve()
    return str(path.relative_to(ROOT / "src")) if path.is_relative_to(ROOT / "src") else vae


def write_card(pipeline: Path, record: dict, vae_config: dict) -> None:
    """Renders a shipped autoencoder's card and merges it into its pipeline folder's ``README.md``."""
    training_record = pipeline / "autoencoder_training.json"
    summary = json.loads(training_record.read_text()) if training_record.exists() else {}
    cards = shipped_cards(pipeline)
    atomic_write_text(render_card(record, summary, vae_config, cards), cards.autoencoder)
    write_pipeline_readme(pipeline, cards)


if __name__ == "__main__":
    main()
