"""Scale check: the users' shapes (256 px RGB, a Stable Diffusion autoencoder, a DiT) on this CPU, projected to a GPU.

The models are randomly initialised with published shapes, so nothing is downloaded: an
``AutoencoderKL`` with the ``stabilityai/sd-vae-ft-mse`` configuration (256 px RGB -> 4x32x32
latents) and a class-conditional ``DiTTransformer2DModel`` shaped like DiT-XL/2-256 (``--dit xl``)
or DiT-S/2 (``--dit s``, the default on a CPU). The data are synthetic 256 px RGB images of 10
classes. Each method runs end to end through its pipeline at IPC 1 and 10 (count budget, a few
iterations), and its set is evaluated with ConvNet-6 (the LatentDD / LD3M network at 256 px) under
the hard-label protocol for ``--eval_epochs`` epochs.

Every cell records seconds per iteration (iterations after the first), the peak resident memory
(gradient methods: of the timed iterations, since the FLOP counter holds more memory than the
method during the counted one; D3HR: of the whole cell, counter included, an upper bound), the stored
bytes per sample against an image's, and the FLOPs of one iteration (D3HR: per fitted and per
generated image) counted with ``torch.utils.flop_counter``'s formulas by
:class:`~benchmarks.flops.TotalFlopCounter`. The papers' budgets are projected (in GPU seconds) from those FLOPs at ``--gpu_tflops`` sustained (a stated assumption, not a measurement):
the preset's iteration count for the gradient methods, fitting ``--paper_images_per_class`` images
per class for D3HR.

Writes ``benchmarks/results/scale.json`` / ``.md``.

    python -m benchmarks.scale [--dit s|xl] [--per_class 10] [--methods latent-dm latent-mtt ld3m-dm d3hr]
"""

from __future__ import annotations

import argparse
import time
from functools import cache
from typing import Any, Callable

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiTTransformer2DModel

from latent_distill import (
    D3HRConfig,
    D3HRPipeline,
    LatentDistillationPipeline,
    config_for_method,
)
from latent_distill.data import ImageClassificationTensors, uint8_to_float
from latent_distill.evaluation import (
    HardLabelProtocol,
    configure_threads,
    evaluate_synthetic,
)
from latent_distill.objectives import get_objective

from . import cells
from .flops import TotalFlopCounter
from .results_io import (
    load_records,
    markdown_table,
    reset_peak_rss,
    window_peak_rss_mb,
    write_markdown,
)

BENCHMARK = "scale"
RESOLUTION, NUM_CLASSES = 256, 10
SD_VAE_FT_MSE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                     up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                     layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=RESOLUTION,
                     scaling_factor=0.18215)
DIT_SHAPES = {"xl": dict(num_layers=28, num_attention_heads=16, attention_head_dim=72),
              "s": dict(num_layers=12, num_attention_heads=6, attention_head_dim=64)}
#: The MTT buffer of the scale check: one expert of one epoch, a short student unroll.
SMALL_MTT = {"num_experts": 1, "expert_epochs": 1, "max_start_epoch": 1, "syn_steps": 5, "expert_batch_size": 64}
#: LD3M renders one sample at a time: the 256 px decoder's activations kept for the backward grow
#: with each sample rendered at once, and with one sample per chunk the peak does not grow with IPC.
LD3M_RENDER = {"chunk_size": 1}
#: What a record's peak memory covers (records without ``peak_scope`` took the whole cell's).
TIMED_PEAK, CELL_PEAK = "timed iterations", "whole cell, FLOP counter included"


@cache
def models(dit: str) -> tuple[AutoencoderKL, DiTTransformer2DModel, DDIMScheduler]:
    """The randomly initialised autoencoder, denoiser (learned-sigma channels, as DiT-XL/2) and scheduler."""
    torch.manual_seed(0)
    vae = AutoencoderKL(**SD_VAE_FT_MSE).eval()
    transformer = DiTTransformer2DModel(sample_size=RESOLUTION // 8, patch_size=2, in_channels=4, out_channels=8,
                                        num_embeds_ada_norm=NUM_CLASSES, **DIT_SHAPES[dit]).eval()
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                              clip_sample=False)
    return vae, transformer, scheduler


def synthetic_split(per_class: int, seed: int) -> ImageClassificationTensors:
    """``per_class`` 256 px RGB images per class: a class colour and stripe frequency, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    grid = torch.linspace(0, 1, RESOLUTION)
    images, labels = [], []
    for label in range(NUM_CLASSES):
        colour = torch.tensor([(label * 37) % 256, (label * 91) % 256, (label * 53) % 256]).view(3, 1, 1) / 255
        stripes = 0.5 + 0.5 * torch.sin(grid * (label + 1) * 6.28).view(1, 1, -1)
        for _ in range(per_class):
            noise = torch.rand(3, RESOLUTION, RESOLUTION, generator=generator) * 0.3
            images.append(((colour * stripes + noise).clamp(0, 1) * 255).round().to(torch.uint8))
            labels.append(label)
    return ImageClassificationTensors(torch.stack(images), torch.tensor(labels), [f"class_{c}" for c in range(10)])


class IterationMeter:
    """Counts the FLOPs of an objective's first iteration; times the later ones and takes their peak
    resident memory (benchmark instrumentation)."""

    def __init__(self, objective_name: str) -> None:
        self.cls = get_objective(objective_name)
        self.original = self.cls.iteration
        self.flops, self.seconds, self.peak_mb = None, [], 0.0

    def __enter__(self) -> "IterationMeter":
        meter = self

        def measured(objective, *args, **kwargs):
            started = time.time()
            if meter.flops is None:
                with TotalFlopCounter() as counter:
                    value = meter.original(objective, *args, **kwargs)
                meter.flops = counter.get_total_flops()
            else:
                reset_peak_rss()
                value = meter.original(objective, *args, **kwargs)
                meter.seconds.append(time.time() - started)
                meter.peak_mb = max(meter.peak_mb, window_peak_rss_mb())
            return value

        self.cls.iteration = measured
        return self

    def __exit__(self, *exc) -> None:
        self.cls.iteration = self.original


def evaluate(images: torch.Tensor, labels: torch.Tensor, test: ImageClassificationTensors, epochs: int) -> dict:
    """ConvNet-6 (width 128, instance norm) trained on the set, tested on the synthetic test split."""
    protocol = HardLabelProtocol(epochs=epochs, arch="convnet", arch_kwargs={"depth": 6})
    result = evaluate_synthetic(images, labels, test, protocol, runs=1, progress=False)
    return {"eval_acc": round(result.acc_mean, 2), "eval_seconds_per_epoch": round(result.seconds / epochs, 2)}


def gradient_cell(method: str, ipc: int, args: argparse.Namespace, train, test) -> Callable[[], dict[str, Any]]:
    def compute() -> dict[str, Any]:
        vae, transformer, scheduler = models(args.dit)
        pipe = LatentDistillationPipeline(vae=vae, transformer=transformer, scheduler=scheduler)
        pipe.set_progress_bar_config(disable=True)
        preset = config_for_method(method, ipc=ipc)
        overrides = {"objective_kwargs": SMALL_MTT} if method.endswith("mtt") else {}
        if preset.representation == "diffusion":
            overrides["representation_kwargs"] = LD3M_RENDER
        config = config_for_method(method, ipc=ipc, budget="count", iterations=args.iterations,
                                   batch_real=args.per_class, **overrides)
        paper_iterations = preset.iterations
        with IterationMeter(config.objective) as meter:
            output = pipe(train, config)
        stored = output.latents if output.latents is not None else output.images
        per_sample = stored[0].numel() * stored.element_size()
        if output.class_embeddings is not None:
            per_sample += output.class_embeddings[0].numel() * output.class_embeddings.element_size()
        return {"seconds_per_iteration": round(sum(meter.seconds) / max(len(meter.seconds), 1), 2),
                "flops_per_iteration": meter.flops, "distill_seconds": round(output.distill_seconds, 1),
                "distill_peak_rss_mb": meter.peak_mb, "peak_scope": TIMED_PEAK, "bytes_per_sample": per_sample,
                "paper_iterations": paper_iterations,
                **evaluate(uint8_to_float(output.images), output.labels, test, args.eval_epochs)}

    return compute


def d3hr_cell(ipc: int, args: argparse.Namespace, train, test) -> Callable[[], dict[str, Any]]:
    def compute() -> dict[str, Any]:
        vae, transformer, scheduler = models(args.dit)
        pipe = D3HRPipeline(vae=vae, transformer=transformer, scheduler=scheduler)
        pipe.set_progress_bar_config(disable=True)
        config = D3HRConfig(ipc=ipc, num_candidates=args.d3hr_candidates, batch_size=args.per_class)
        reset_peak_rss()
        with TotalFlopCounter() as counter:
            started = time.time()
            gaussians = pipe.fit(train, config)
            fit_seconds = time.time() - started
        fit_flops = counter.get_total_flops()
        with TotalFlopCounter() as counter:
            started = time.time()
            output = pipe.sample(gaussians, config=config)
            sample_seconds = time.time() - started
        fitted, generated = len(train.labels), ipc * NUM_CLASSES
        return {"seconds_per_fitted_image": round(fit_seconds / fitted, 2),
                "seconds_per_generated_image": round(sample_seconds / generated, 2),
                "flops_per_fitted_image": fit_flops // fitted,
                "flops_per_generated_image": counter.get_total_flops() // generated,
                "distill_seconds": round(fit_seconds + sample_seconds, 1), "distill_peak_rss_mb": window_peak_rss_mb(),
                "peak_scope": CELL_PEAK,
                "bytes_per_sample": 2 * 4 * int(torch.Size(gaussians.latent_shape).numel()) // max(ipc, 1),
                "paper_iterations": None,
                **evaluate(uint8_to_float(output.images), output.labels, test, args.eval_epochs)}

    return compute


def projected_gpu_seconds(record: dict[str, Any]) -> float:
    """GPU seconds of the papers' budget at the record's stated throughput, from its counted FLOPs.

    Gradient methods: FLOPs of one iteration x the preset's iterations. D3HR: FLOPs per fitted image x
    ``paper_images_per_class`` x the classes, plus the generated images of the cell.
    """
    if record["method"] == "d3hr":
        flops = (record["flops_per_fitted_image"] * record.get("paper_images_per_class", 1300) * NUM_CLASSES
                 + record["flops_per_generated_image"] * record["ipc"] * NUM_CLASSES)
    else:
        flops = record["flops_per_iteration"] * record["paper_iterations"]
    return float(f"{flops / (record['gpu_tflops'] * 1e12):.3g}")


def write_table() -> None:
    records = sorted(load_records(BENCHMARK), key=lambda r: (r["dit"], r["method"], r["ipc"]))
    records = [{"peak_scope": CELL_PEAK, **r, "projected_gpu_seconds": projected_gpu_seconds(r)} for r in records]
    write_markdown(BENCHMARK, "# Scale check: 256 px RGB, sd-vae-ft-mse-shaped autoencoder, DiT-shaped denoiser\n\n"
                   + markdown_table(records, [
                       ("method", "method"), ("DiT", "dit"), ("IPC", "ipc"), ("s / iteration", "seconds_per_iteration"),
                       ("s / fitted image", "seconds_per_fitted_image"),
                       ("s / generated image", "seconds_per_generated_image"),
                       ("GFLOP / iteration", "gflops_per_iteration"), ("GFLOP / fitted image", "gflops_per_fitted_image"),
                       ("GFLOP / generated image", "gflops_per_generated_image"), ("peak MB", "distill_peak_rss_mb"),
                       ("peak of", "peak_scope"),
                       ("bytes / sample", "bytes_per_sample"), ("image bytes", "image_bytes"),
                       ("paper iterations", "paper_iterations"), ("projected GPU s", "projected_gpu_seconds"),
                       ("eval s / epoch (ConvNet-6)", "eval_seconds_per_epoch")])
                   + "\n\nRandomly initialised models of the published shapes, synthetic data, 10 classes, "
                   "count budget, one CPU thread. Projected GPU seconds = counted FLOPs x the papers' budget / the "
                   "stated sustained throughput (see each record's `gpu_tflops`). Peak MB over the whole cell includes "
                   "the FLOP counter's own memory (an upper bound). Generated by "
                   "`python -m benchmarks.scale`.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dit", default="s", choices=sorted(DIT_SHAPES))
    parser.add_argument("--methods", nargs="+", default=["latent-dm", "latent-mtt", "ld3m-dm", "d3hr"])
    parser.add_argument("--ipcs", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--per_class", type=int, default=10, help="synthetic training images per class")
    parser.add_argument("--iterations", type=int, default=3,
                        help="iterations run, at least 2 (the first is counted, the others timed)")
    parser.add_argument("--eval_epochs", type=int, default=1)
    parser.add_argument("--d3hr_candidates", type=int, default=10_000)
    parser.add_argument("--paper_images_per_class", type=int, default=1300,
                        help="D3HR projection: images fitted per class (an ImageNet class)")
    parser.add_argument("--gpu_tflops", type=float, default=100.0,
                        help="sustained GPU throughput assumed by the projection (TFLOP/s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--redo", action="store_true")
    args = parser.parse_args()
    if args.iterations < 2:
        parser.error(f"--iterations must be at least 2 (the first is counted, the others timed), got {args.iterations}.")
    configure_threads(args.threads)
    train, test = synthetic_split(args.per_class, seed=0), synthetic_split(2, seed=1)
    for method in args.methods:
        for ipc in args.ipcs:
            compute = d3hr_cell(ipc, args, train, test) if method == "d3hr" else \
                gradient_cell(method, ipc, args, train, test)

            def measured(compute=compute) -> dict[str, Any]:
                values = compute()
                for unit in ("iteration", "fitted_image", "generated_image"):
                    flops = values.get(f"flops_per_{unit}")
                    values[f"gflops_per_{unit}"] = round(flops / 1e9, 1) if flops else None
                return values

            fields = {"method": method, "ipc": ipc, "dit": args.dit, "per_class": args.per_class,
                      "iterations": args.iterations, "gpu_tflops": args.gpu_tflops, "threads": args.threads,
                      "paper_images_per_class": args.paper_images_per_class,
                      "image_bytes": 3 * RESOLUTION * RESOLUTION}
            cells.run_cell(BENCHMARK, fields, measured, ("method", "ipc", "dit", "per_class"), redo=args.redo,
                           summary="{method} ipc {ipc} ({dit}): {cell_seconds} s")
            write_table()


if __name__ == "__main__":
    main()
