"""Where D3HR loses sample quality: the inversion, or the Gaussian fitted in the inverted space?

A seeded subset of ``--fit_per_class`` training images per class is encoded and DDIM-inverted to
``--depth`` steps of the 50-step grid (guidance ``--guidance``, as D3HR fits). Three sources of
latents at that timestep are then regenerated with the same DDIM sampler and decoded, ``--per_class``
per class, and judged like the shipped DiT's checkpoints (class fidelity, Fréchet distance and
precision / recall on the features of a classifier of the real data, against the 10,000 test images):

- ``inverted real``: the inverted latents of real images themselves (the inversion's ceiling: what a
  perfect model of the inverted distribution could give);
- ``diagonal Gaussian``: draws from D3HR's per-class Gaussian (mean and per-dimension std);
- ``full-covariance Gaussian``: draws from a Gaussian with the classes' full covariance (a
  diagnostic: it stores D(D+1)/2 numbers per class, far more than the images it replaces).

Writes ``benchmarks/results/d3hr_gaussian_fit.json`` / ``.md``; the inversion is cached under
``runs/d3hr-gaussian-fit`` so reruns regenerate only.

    python -m benchmarks.d3hr_gaussian_fit [--fit_per_class 300] [--guidance 2] [--depth 30]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from latent_distill import DEFAULT_PIPELINE_PATH, D3HRConfig, D3HRPipeline
from latent_distill.checkpointing import atomic_torch_save
from latent_distill.codec import LatentCache
from latent_distill.d3hr import fit_subset
from latent_distill.data import fashion_mnist_tensors
from latent_distill.diffusion import (
    GuidedDenoiser,
    ddim_invert,
    ddim_regenerate,
    ddim_schedulers,
    inversion_timestep,
)
from latent_distill.encoding import encode_training_latents
from latent_distill.evaluation import (
    classifier_features,
    configure_threads,
    train_teacher,
)

from .latent_diffusion import generator_quality
from .results_io import (
    ROOT,
    denoiser_label,
    load_records,
    markdown_table,
    upsert_record,
    write_markdown,
)

BENCHMARK = "d3hr_gaussian_fit"
CACHE = ROOT / "runs" / "d3hr-gaussian-fit"


def inverted_latents(pipe: D3HRPipeline, config: D3HRConfig, train, denoiser: GuidedDenoiser, inverter):
    """The fit subset's labels and its latents inverted to ``config.inversion_steps`` (cached)."""
    subset = fit_subset(train, config.max_samples_per_class, config.seed)
    path = CACHE / (f"inverted-{config.max_samples_per_class}-g{config.guidance_scale:g}-d{config.inversion_steps}-"
                    f"{denoiser_label(DEFAULT_PIPELINE_PATH)}.pt")
    if path.exists():
        return subset.labels, torch.load(path, weights_only=True)
    latents = encode_training_latents(subset, pipe.latent_codec(config), LatentCache(ROOT / "runs" / "latent-cache"))
    with torch.no_grad():
        inverted = torch.cat([ddim_invert(denoiser, inverter, latents[rows], subset.labels[rows], config.inversion_steps)
                              for rows in torch.arange(len(latents)).split(config.batch_size)])
    atomic_torch_save(inverted, path)
    return subset.labels, inverted


def draw_sources(count: int, seed: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Per source, a function from one class's flattened inverted latents ``(n, D)`` to ``count`` latents."""
    def diagonal(flat: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return flat.mean(0) + flat.std(0) * torch.randn(count, flat.shape[1], generator=generator, dtype=flat.dtype)

    def full(flat: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        covariance = torch.cov(flat.T) + 1e-6 * torch.eye(flat.shape[1], dtype=flat.dtype)
        factor = torch.linalg.cholesky(covariance)
        return flat.mean(0) + torch.randn(count, flat.shape[1], generator=generator, dtype=flat.dtype) @ factor.T

    return {"inverted real": lambda flat: flat[:count], "diagonal Gaussian": diagonal,
            "full-covariance Gaussian": full}


def write_table() -> None:
    records = sorted(load_records(BENCHMARK), key=lambda r: (r["denoiser"], r["guidance"], r["depth"], r["order"]))
    write_markdown(BENCHMARK, "# D3HR: the inversion against the Gaussian fitted in the inverted space\n\n"
                   + markdown_table(records, [
                       ("latents regenerated", "source"), ("denoiser", "denoiser"), ("guidance", "guidance"),
                       ("inversion steps", "depth"), ("timestep", "timestep"), ("fit images/class", "fit_per_class"),
                       ("samples", "samples"), ("class fidelity (%)", "class_fidelity"),
                       ("FID (classifier features)", "fid"), ("precision (%)", "precision"), ("recall (%)", "recall"),
                       ("seconds", "seconds")])
                   + "\n\n`inverted real` regenerates the real images' own inverted latents (the inversion's "
                   "ceiling); `diagonal Gaussian` draws from D3HR's per-class fit; `full-covariance Gaussian` is a "
                   "diagnostic with the full per-class covariance. Metrics as in `latent_diffusion.md` (classifier "
                   "of the real data; real reference = the 10,000 test images). Generated by "
                   "`python -m benchmarks.d3hr_gaussian_fit`.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit_per_class", type=int, default=300)
    parser.add_argument("--per_class", type=int, default=100, help="regenerated samples per class and source")
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--depth", type=int, default=D3HRConfig().inversion_steps, help="inversion steps")
    parser.add_argument("--teacher_epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    configure_threads(args.threads)
    pipe = D3HRPipeline.from_pretrained(DEFAULT_PIPELINE_PATH)
    config = D3HRConfig(max_samples_per_class=args.fit_per_class, guidance_scale=args.guidance,
                        inversion_steps=args.depth)
    train, test = fashion_mnist_tensors("train"), fashion_mnist_tensors("test")
    classifier = train_teacher(train, epochs=args.teacher_epochs, seed=0, cache_dir=ROOT / "runs" / "teachers",
                               torch_compile=True).eval()
    real_features = classifier_features(classifier, test.images)
    denoiser = GuidedDenoiser(pipe.transformer, args.guidance)
    sampler, inverter = ddim_schedulers(pipe.scheduler, config.num_inference_steps)
    timestep = inversion_timestep(inverter, args.depth)
    labels, inverted = inverted_latents(pipe, config, train, denoiser, inverter)
    flat = inverted.reshape(len(inverted), -1).double()
    codec = pipe.latent_codec(config)
    for order, (source, draw) in enumerate(draw_sources(args.per_class, args.seed).items()):
        started, samples = time.time(), []
        for class_index in range(int(labels.max()) + 1):
            latents = draw(flat[labels == class_index]).float().reshape(-1, *inverted.shape[1:])
            with torch.no_grad():
                clean = ddim_regenerate(denoiser, sampler, latents, torch.full((len(latents),), class_index), timestep)
                samples.append(codec.decode(clean))
        quality = generator_quality(samples, classifier, real_features)
        quality.pop("per_class_fidelity")
        record = {"benchmark": BENCHMARK, "dataset": "fashion-mnist", "source": source, "order": order,
                  "denoiser": denoiser_label(DEFAULT_PIPELINE_PATH), "guidance": args.guidance, "depth": args.depth,
                  "timestep": timestep, "fit_per_class": args.fit_per_class, "samples": sum(len(s) for s in samples),
                  **quality, "seconds": round(time.time() - started, 1)}
        upsert_record(BENCHMARK, record, ("source", "denoiser", "guidance", "depth", "fit_per_class", "samples"))
        print(record, flush=True)
    write_table()


if __name__ == "__main__":
    main()
