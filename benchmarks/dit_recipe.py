"""Which training recipe improves the shipped DiT most per CPU-hour.

Every recipe continues the shipped denoiser (its EMA weights) with ``examples/train_latent_diffusion.py``
for the same number of training examples (``--examples``; a recipe with a larger batch takes fewer
steps), each in its own folder under ``runs/dit-recipe/``; then its EMA weights are measured as
``benchmarks/latent_diffusion.py`` measures the shipped model: ``--per_class`` samples of every class
from the same seeded noise (deterministic DDIM, guidance 1), labelled by the cached soft-label
teacher, giving the class fidelity and the Fréchet distance and precision / recall on the teacher's
features against the test split. The ``start`` row is the shipped model itself, measured the same way
in the same run. Recipes run one at a time (one cell each, resumable: an interrupted training resumes
from its checkpoint, a measured recipe is skipped), so their training seconds compare side by side.

EMA decay is not among the recipes: over a few hundred steps the EMA's warm-up, not its decay,
sets how far it averages.

Writes ``benchmarks/results/dit_recipe.json`` / ``.md``.

    python -m benchmarks.dit_recipe [--recipes baseline min-snr-5 lr-1e-3 batch-256] [--examples 76800]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from latent_distill import DEFAULT_PIPELINE_PATH, D3HRPipeline
from latent_distill.data import FASHION_MNIST_CLASSES, fashion_mnist_tensors
from latent_distill.evaluation import (
    classifier_features,
    configure_threads,
    train_teacher,
)

from . import cells
from .latent_diffusion import (
    generate,
    generator_quality,
    total_training_steps,
    training_lineage,
)
from .results_io import ROOT, load_records, markdown_table, write_markdown

BENCHMARK = "dit_recipe"
RUNS = ROOT / "runs" / "dit-recipe"
TRAIN_SCRIPT = ROOT / "examples" / "train_latent_diffusion.py"
#: The shipped recipe (learning rate 3e-4, batch 128, unweighted loss), then one change each.
BASE_ARGS = {"learning_rate": 3e-4, "batch_size": 128, "warmup_steps": 50}
RECIPES: dict[str, dict[str, Any]] = {
    "baseline": {},
    "min-snr-5": {"snr_gamma": 5.0},
    "lr-1e-3": {"learning_rate": 1e-3},
    "batch-256": {"batch_size": 256},
    "min-snr-5-lr-1e-3": {"snr_gamma": 5.0, "learning_rate": 1e-3},
}
COLUMNS = [("recipe", "recipe"), ("changed", "changed"), ("from", "start_model"), ("steps", "steps"),
           ("batch", "batch_size"), ("train s", "train_seconds"), ("samples", "samples"),
           ("class fidelity (%)", "class_fidelity"), ("worst class", "worst_class"),
           ("FID (classifier features)", "fid"), ("precision (%)", "precision"), ("recall (%)", "recall")]


def recipe_args(name: str) -> dict[str, Any]:
    """The training flags of a recipe: the shipped recipe with the recipe's changes."""
    if name not in RECIPES:
        raise SystemExit(f"Unknown recipe {name!r}; known: {', '.join(RECIPES)}.")
    return {**BASE_ARGS, **RECIPES[name]}


def recipe_steps(name: str, examples: int) -> int:
    """Optimisation steps that give the recipe ``examples`` training examples."""
    return max(1, examples // recipe_args(name)["batch_size"])


def train(name: str, examples: int, threads: int) -> tuple[Path, dict[str, Any]]:
    """Continues the shipped DiT with the recipe (resuming an interrupted run); returns its pipeline and record."""
    folder = RUNS / name
    pipeline = folder / "pipeline"
    if not (pipeline / "vae").is_dir():
        shutil.rmtree(pipeline, ignore_errors=True)
        shutil.copytree(DEFAULT_PIPELINE_PATH, pipeline)
    settings = recipe_args(name)
    command = [sys.executable, str(TRAIN_SCRIPT), "--pipeline_dir", str(pipeline),
               "--transformer", str(Path(DEFAULT_PIPELINE_PATH) / "transformer"),
               "--checkpoint_dir", str(folder / "checkpoint"), "--latent_cache", str(ROOT / "runs" / "latent-cache"),
               "--max_steps", str(recipe_steps(name, examples)), "--checkpoint_every", "100",
               *[f"--{key}={value}" for key, value in settings.items()]]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, cwd=ROOT)
    return pipeline, training_lineage(pipeline)


def measure(pipe: D3HRPipeline, classifier, real_features, per_class: int, seed: int) -> dict[str, Any]:
    """Class fidelity and distribution metrics of guidance-1 samples of every class."""
    samples = [generate(pipe, c, per_class, 1.0, 50, seed) for c in range(len(FASHION_MNIST_CLASSES))]
    quality = generator_quality(samples, classifier, real_features)
    worst = int(np.argmin(quality["per_class_fidelity"]))
    return {**quality, "samples": per_class * len(samples),
            "worst_class": f"{FASHION_MNIST_CLASSES[worst]} ({quality['per_class_fidelity'][worst]:.1f})"}


def write_table() -> None:
    records = load_records(BENCHMARK)
    order = ["start", *RECIPES]
    records.sort(key=lambda r: (r["examples"], order.index(r["recipe"]) if r["recipe"] in order else len(order)))
    write_markdown(BENCHMARK, "# Denoiser training recipes, side by side\n\n"
                   "Each recipe continues the shipped DiT for the same number of training examples (steps x batch); "
                   "`start` is the shipped DiT itself. Guidance-1 samples from the same seeded noise (50 DDIM "
                   "steps), labelled by the soft-label teacher (batch-norm ConvNet-3); FID and precision / recall "
                   "on its features against the 10,000 test images. `train s` is the recipe's training wall time "
                   "on one CPU thread, recipes run one after another in one run. Generated by "
                   "`python -m benchmarks.dit_recipe`.\n\n" + markdown_table(records, COLUMNS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--examples", type=int, default=600 * 128, help="training examples per recipe")
    parser.add_argument("--per_class", type=int, default=100)
    parser.add_argument("--teacher_epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--redo", action="store_true")
    args = parser.parse_args()
    configure_threads(args.threads)
    start_steps = total_training_steps(training_lineage(Path(DEFAULT_PIPELINE_PATH)))
    start_model = f"fashion-mnist-dit@{start_steps}"
    train_split, test = fashion_mnist_tensors("train"), fashion_mnist_tensors("test")
    classifier = train_teacher(train_split, epochs=args.teacher_epochs, seed=0, cache_dir=ROOT / "runs" / "teachers",
                               torch_compile=True).eval()
    real_features = classifier_features(classifier, test.images)
    base = D3HRPipeline.from_pretrained(DEFAULT_PIPELINE_PATH)
    key = ("recipe", "start_model", "examples", "samples", "classifier")
    measured_by = {"samples": args.per_class * 10, "seed": args.seed,
                   "classifier": f"convnet-3 batchnorm, {args.teacher_epochs} epochs"}
    fields = {"recipe": "start", "changed": "", "start_model": start_model, "examples": 0, "steps": 0, **measured_by}
    cells.run_cell(BENCHMARK, fields, lambda: measure(base, classifier, real_features, args.per_class, args.seed),
                   key, redo=args.redo, summary="{recipe}: fidelity {class_fidelity}, FID {fid}")
    write_table()
    for name in args.recipes:
        settings = recipe_args(name)
        fields = {"recipe": name, "changed": ", ".join(f"{k} {v}" for k, v in RECIPES[name].items()),
                  "start_model": start_model, "examples": args.examples,
                  "steps": recipe_steps(name, args.examples), "batch_size": settings["batch_size"],
                  **measured_by, "threads": args.threads, "train_args": settings}

        def compute(name=name) -> dict[str, Any]:
            pipeline, record = train(name, args.examples, args.threads)
            pipe = D3HRPipeline.from_pretrained(pipeline)  # the shipped autoencoder, the recipe's denoiser
            return {"train_seconds": record["train_seconds"], "final_loss_ema": record["final_loss_ema"],
                    **measure(pipe, classifier, real_features, args.per_class, args.seed)}

        cells.run_cell(BENCHMARK, fields, compute, key, redo=args.redo,
                       summary="{recipe}: fidelity {class_fidelity}, FID {fid}, {train_seconds} s")
        write_table()


if __name__ == "__main__":
    main()
