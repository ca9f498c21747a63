"""LD3M cost: seconds per iteration and peak memory against K (DDIM steps) and IPC.

Each cell runs in its own process (so its peak resident memory is its own): the shipped pipeline's
DiT and autoencoder render an LD3M set of ``IPC`` samples per class (initial latents = encodings of
real Fashion-MNIST images, class embeddings = the DiT's label rows) by K skip-connected DDIM steps,
a fixed random ConvNet-3 embeds the decoded images, and the loss (squared distance of each class's
mean embedding to a target) is back-propagated to the latents and embeddings. This is the part of an
LD3M iteration that the diffusion prior adds; the objective's own work on real images (e.g. DM's
256 real images per class) comes on top and does not depend on K.

Cells: IPC 1 / 10 / 50 at K = 10 with the chunked two-pass backward on and off, and K = 5 / 20 / 40
at IPC 10 (chunked). Reported: seconds per iteration (mean of ``--iterations`` after one warm-up),
peak RSS of the process, RSS before the first iteration, and their difference (what the
iterations add).

Writes ``benchmarks/results/ld3m_cost.json`` / ``.md``.

    python benchmarks/ld3m_cost.py [--pipeline DIR] [--iterations 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from results_io import load_records, markdown_table, upsert_record, write_markdown

BENCHMARK = "ld3m_cost"
CELLS = [(ipc, 10, chunked) for ipc in (1, 10, 50) for chunked in (True, False)] + \
        [(10, steps, True) for steps in (5, 20, 40)]


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_cell(pipeline: str, ipc: int, num_steps: int, chunked: bool, iterations: int) -> dict:
    """Runs one cell in this process and returns its measurements."""
    import torch
    from results_io import peak_rss_mb

    from latent_distill import LatentDistillationPipeline, random_subset
    from latent_distill.codec import LatentCodec
    from latent_distill.data import fashion_mnist_tensors
    from latent_distill.networks import get_network
    from latent_distill.representations import get_representation

    torch.set_num_threads(1)
    torch.manual_seed(0)
    pipe = LatentDistillationPipeline.from_pretrained(pipeline)
    pipe.vae.requires_grad_(False).eval()
    num_classes = min(int(pipe.transformer.config.num_embeds_ada_norm), 10)
    images, _ = random_subset(fashion_mnist_tensors("train"), ipc, seed=0)
    images = images[: ipc * num_classes]
    codec = LatentCodec(pipe.vae, int(pipe.vae.config.sample_size))
    options = {"num_steps": num_steps, "skip": "paper", "chunked_backward": chunked}
    synthetic = get_representation("diffusion").create(images, num_classes, codec=codec, transformer=pipe.transformer,
                                                       scheduler=pipe.scheduler, options=options, seed=0)
    network = get_network("convnet", images.shape[1], num_classes, images.shape[-1]).requires_grad_(False)
    targets = torch.randn(num_classes, network.embed(images[:1]).shape[1])

    def iteration(step: int) -> None:
        synthetic.zero_grad(set_to_none=True)
        synthetic.begin_iteration(step)
        features = network.embed(synthetic.render_all()).view(num_classes, ipc, -1).mean(1)
        ((features - targets) ** 2).sum().backward()

    baseline = current_rss_mb()
    iteration(0)  # warm-up
    started = time.perf_counter()
    for step in range(1, iterations + 1):
        iteration(step)
    seconds = (time.perf_counter() - started) / iterations
    peak = peak_rss_mb()
    return {"seconds_per_iteration": round(seconds, 3), "peak_rss_mb": peak, "baseline_rss_mb": round(baseline, 1),
            "iteration_rss_increase_mb": round(peak - baseline, 1)}


def report() -> str:
    rows = sorted(load_records(BENCHMARK), key=lambda r: (r["num_steps"] != 10, r["num_steps"], r["ipc"],
                                                          not r["chunked_backward"]))
    for row in rows:
        row["backward"] = "chunked two-pass" if row["chunked_backward"] else "one pass (checkpointed)"
    table = markdown_table(rows, [("K", "num_steps"), ("IPC", "ipc"), ("samples", "num_samples"),
                                  ("backward", "backward"), ("s / iteration", "seconds_per_iteration"),
                                  ("peak RSS MB", "peak_rss_mb"), ("added by the iterations, MB",
                                                                   "iteration_rss_increase_mb")])
    write_markdown(BENCHMARK, "# LD3M cost: seconds per iteration and peak memory against K and IPC\n\n" + table +
                   "\nRender (K skip-connected DDIM steps of the shipped DiT + decoder) and backward of an LD3M set "
                   "of IPC samples per class, 10 classes, 1 CPU thread, one process per cell; the objective's work "
                   "on real images is not included. Generated by `benchmarks/ld3m_cost.py`.\n")
    return table


def main() -> None:
    from latent_distill import DEFAULT_PIPELINE_PATH
    from latent_distill.default_models import model_reference

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(DEFAULT_PIPELINE_PATH))
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--cell", nargs=3, type=int, metavar=("IPC", "K", "CHUNKED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        ipc, num_steps, chunked = args.cell
        print(json.dumps(run_cell(args.pipeline, ipc, num_steps, bool(chunked), args.iterations)))
        return
    for ipc, num_steps, chunked in CELLS:
        result = subprocess.run([sys.executable, __file__, "--pipeline", args.pipeline, "--iterations",
                                 str(args.iterations), "--cell", str(ipc), str(num_steps), str(int(chunked))],
                                capture_output=True, text=True, check=True)
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        record = {"benchmark": BENCHMARK, "dataset": "fashion-mnist", "method": "ld3m", "representation": "diffusion",
                  "pipeline": model_reference(args.pipeline), "ipc": ipc, "num_samples": ipc * 10,
                  "num_steps": num_steps, "chunked_backward": chunked, "threads": 1,
                  "iterations": args.iterations, **measured}
        upsert_record(BENCHMARK, record, ("pipeline", "ipc", "num_steps", "chunked_backward"))
        print(f"IPC {ipc} K {num_steps} chunked {chunked}: {measured}", flush=True)
    print(report())


if __name__ == "__main__":
    main()
