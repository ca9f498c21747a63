"""Speed and memory of each matching objective in latent space versus its pixel twin (LatentDD's claim).

At an IPC-10 storage budget on Fashion-MNIST (40 latents or 10 images per class), for DM and DC:
seconds per distillation iteration of the latent method and of the same objective on pixels; for
MTT: seconds per expert epoch when training the expert buffer on real latents versus real images.
Each measurement runs in its own subprocess (one thread), so its peak RSS is its own; all run one
after the other in one invocation, and the ratio pairs each latent figure with its pixel twin.

Writes ``benchmarks/results/objective_speed.json`` / ``.md``.

    python -m benchmarks.objective_speed [--dm_iterations 20] [--dc_iterations 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from .results_io import ROOT, markdown_table, peak_rss_mb, upsert_record, write_markdown

PAIRS = {
    "dm": ("latent-dm", "pixel-dm"),
    "dc": ("latent-dc", "pixel-dc"),
    "mtt-buffer": ("latent-mtt", "pixel-mtt"),
}


def measure_iterations(method: str, iterations: int, representation: str) -> dict:
    """Distils for ``iterations`` steps with the preset of ``method`` (whose representation it is)."""
    import torch

    from latent_distill import (
        DEFAULT_PIPELINE_PATH,
        LatentDistillationPipeline,
        config_for_method,
    )
    from latent_distill.data import fashion_mnist_tensors

    torch.set_num_threads(1)
    pipe = LatentDistillationPipeline.from_pretrained(DEFAULT_PIPELINE_PATH)
    pipe.set_progress_bar_config(disable=True)
    config = config_for_method(method, ipc=10, budget="storage", iterations=iterations, checkpoint_every=0)
    output = pipe(fashion_mnist_tensors("train"), config, cache_dir=ROOT / "runs" / "latent-cache")
    return {"seconds": output.seconds_per_iteration, "unit": "s / iteration",
            "samples_per_class": output.record["samples_per_class"], "steps": iterations}


def measure_buffer(method: str, epochs: int, representation: str) -> dict:
    """Trains one expert for ``epochs`` epochs on the real set in ``representation`` space."""
    import torch

    from latent_distill import (
        DEFAULT_PIPELINE_PATH,
        LatentDistillationPipeline,
        config_for_method,
    )
    from latent_distill.codec import LatentCache, LatentCodec
    from latent_distill.data import fashion_mnist_tensors
    from latent_distill.objectives.mtt import train_expert_trajectories
    from latent_distill.representations import get_representation

    torch.set_num_threads(1)
    config = config_for_method(method)
    vae = LatentDistillationPipeline.from_pretrained(DEFAULT_PIPELINE_PATH).vae.eval().requires_grad_(False)
    real = get_representation(representation).real_pool(fashion_mnist_tensors("train"), LatentCodec(vae, 28),
                                                        LatentCache(ROOT / "runs" / "latent-cache"))
    started = time.time()
    train_expert_trajectories(real, config.network, config.network_kwargs, num_experts=1, epochs=epochs,
                              augment=config.augmentation, progress=False)
    return {"seconds": (time.time() - started) / epochs, "unit": "s / expert epoch", "samples_per_class": 6000,
            "steps": epochs, "augmentation": config.augmentation}


MEASURES = {"dm": measure_iterations, "dc": measure_iterations, "mtt-buffer": measure_buffer}


def child(objective: str, method: str, steps: int) -> None:
    """Runs one measurement in this (fresh) process and prints it as JSON."""
    representation = method.split("-")[0]
    result = MEASURES[objective](method, steps, representation)
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dm_iterations", type=int, default=20)
    parser.add_argument("--dc_iterations", type=int, default=2)
    parser.add_argument("--buffer_epochs", type=int, default=1)
    parser.add_argument("--only", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    parser.add_argument("--child", nargs=3, metavar=("OBJECTIVE", "METHOD", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    steps = {"dm": args.dm_iterations, "dc": args.dc_iterations, "mtt-buffer": args.buffer_epochs}
    for objective in args.only:
        figures = {}
        for method in PAIRS[objective]:
            completed = subprocess.run([sys.executable, "-m", __spec__.name, "--child", objective, method,
                                        str(steps[objective])],
                                       capture_output=True, text=True, cwd=ROOT, env={"OMP_NUM_THREADS": "1",
                                                                                      **_environment()})
            if completed.returncode != 0:
                raise SystemExit(f"{objective} {method} failed:\n{completed.stderr[-3000:]}")
            figures[method] = json.loads(completed.stdout.strip().splitlines()[-1])
            print(objective, method, figures[method], flush=True)
        latent, pixel = (figures[m] for m in PAIRS[objective])
        record = {"benchmark": "objective_speed", "dataset": "fashion-mnist", "objective": objective, "ipc": 10,
                  "budget": "storage", "threads": 1, "unit": latent["unit"],
                  "latent_method": PAIRS[objective][0], "pixel_method": PAIRS[objective][1],
                  "latent_seconds": round(latent["seconds"], 3), "pixel_seconds": round(pixel["seconds"], 3),
                  "ratio": round(pixel["seconds"] / latent["seconds"], 2),
                  "latent_samples_per_class": latent["samples_per_class"],
                  "pixel_samples_per_class": pixel["samples_per_class"], "steps": steps[objective],
                  "latent_peak_rss_mb": latent["peak_rss_mb"], "pixel_peak_rss_mb": pixel["peak_rss_mb"]}
        records = upsert_record("objective_speed", record, ("objective", "threads"))
    table = markdown_table(sorted(records, key=lambda r: r["objective"]), [
        ("objective", "objective"), ("unit", "unit"), ("latent", "latent_seconds"), ("pixel", "pixel_seconds"),
        ("speed-up (pixel / latent)", "ratio"), ("latent samples/class", "latent_samples_per_class"),
        ("pixel samples/class", "pixel_samples_per_class"), ("latent peak RSS MB", "latent_peak_rss_mb"),
        ("pixel peak RSS MB", "pixel_peak_rss_mb")])
    write_markdown("objective_speed", "# Latent versus pixel: speed and memory (IPC-10 storage budget)\n\n" + table +
                   "\nOne thread per measurement, each in its own process, run one after the other by "
                   "`benchmarks/objective_speed.py`. DM/DC: seconds per distillation iteration (encoding excluded; "
                   "latents come from the cache). MTT: seconds per expert epoch on the 60,000 real training "
                   "samples.\n")
    print(table)


def _environment() -> dict:
    import os

    return {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}


if __name__ == "__main__":
    main()
