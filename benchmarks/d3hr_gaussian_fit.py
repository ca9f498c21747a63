"""Where D3HR loses sample quality: the inversion, or the Gaussian fitted in the inverted space?

A seeded subset of ``--fit_per_class`` training images per class is encoded and DDIM-inverted to
``--depth`` steps of the 50-step grid (guidance ``--guidance``, as D3HR fits). Several sources of
latents at that timestep are then regenerated with the same DDIM sampler and decoded, ``--per_class``
per class, and judged like the DiT's checkpoints (class fidelity, Fréchet distance and precision /
recall on the features of a classifier of the real data, against the 10,000 test images). With
``--sets`` above zero, each source also makes that many IPC 10 sets (set ``k`` drawn with seed
``k``), trained under the soft-label protocol like ``benchmarks.d3hr``'s cells:

- ``inverted real``: the inverted latents of real images themselves (the inversion's ceiling: what a
  perfect model of the inverted distribution could give);
- ``diagonal Gaussian``: draws from D3HR's per-class Gaussian (mean and per-dimension std), also with
  the std scaled by 0.85 and 1.25 (is the fitted spread the best one to draw with?);
- ``rank-32 correlations``: a Gaussian with the same per-dimension mean and std whose correlation
  matrix keeps its top 32 eigenpairs (the rest of each dimension's variance independent);
- ``full-covariance Gaussian``: the classes' full sample covariance (a diagnostic: it stores
  D(D+1)/2 numbers per class, far more than the images it replaces);
- ``10-component mixture``: a per-class k-means mixture of 10 diagonal Gaussians, draws spread over
  the components in turn (one per component at IPC 10): does covering the class's modes help?

None but the diagonal Gaussian is D3HR: the others say what a richer model of the inverted latents
would buy.

Writes ``benchmarks/results/d3hr_gaussian_fit.json`` / ``.md``; the inversion is cached under
``runs/d3hr-gaussian-fit`` so reruns regenerate only.

    python -m benchmarks.d3hr_gaussian_fit [--pipeline DIR] [--fit_per_class 300] [--guidance 2] [--depth 31]
        [--sets 8] [--sources ...]
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
from latent_distill.data import fashion_mnist_tensors, float_to_uint8, uint8_to_float
from latent_distill.diffusion import (
    ddim_schedulers,
    inversion_timestep,
)
from latent_distill.encoding import encode_training_latents
from latent_distill.evaluation import (
    SoftLabelProtocol,
    classifier_features,
    configure_threads,
    train_teacher,
)
from latent_distill.seeding import derive_seed

from . import cells
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


Draw = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
"""One class's flattened float64 inverted latents ``(n, D)``, a count and a generator -> ``(count, D)``."""


def inverted_latents(pipe: D3HRPipeline, pipeline: str, config: D3HRConfig, train):
    """The fit subset's labels and its latents inverted to ``config.inversion_steps`` (cached)."""
    subset = fit_subset(train, config.max_samples_per_class, config.seed)
    path = CACHE / (f"inverted-{config.max_samples_per_class}-g{config.guidance_scale:g}-d{config.inversion_steps}-"
                    f"{denoiser_label(pipeline)}.pt")
    if path.exists():
        return subset.labels, torch.load(path, weights_only=True)
    latents = encode_training_latents(subset, pipe.latent_codec(config), LatentCache(ROOT / "runs" / "latent-cache"))
    inverted = torch.cat([pipe.invert(latents[rows], subset.labels[rows], config)
                          for rows in torch.arange(len(latents)).split(config.batch_size)])
    atomic_torch_save(inverted, path)
    return subset.labels, inverted


def _normal(count: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(count, dim, generator=generator, dtype=torch.float64)


def inverted_real(flat: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` of the real inverted latents, chosen at random."""
    return flat[torch.randperm(len(flat), generator=generator)[:count]]


def diagonal(scale: float = 1.0) -> Draw:
    """D3HR's per-class diagonal Gaussian, its std scaled by ``scale``."""
    def draw(flat: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
        return flat.mean(0) + scale * flat.std(0) * _normal(count, flat.shape[1], generator)
    return draw


def correlated(rank: int) -> Draw:
    """Same mean and per-dimension std, correlations from the top ``rank`` eigenpairs of the
    correlation matrix; the rest of each dimension's variance drawn independently."""
    def draw(flat: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
        mean, std = flat.mean(0), flat.std(0).clamp_min(1e-12)
        correlation = torch.cov(((flat - mean) / std).T)
        values, vectors = torch.linalg.eigh(correlation)
        kept = min(rank, flat.shape[1])
        loadings = vectors[:, -kept:] * values[-kept:].clamp_min(0).sqrt()
        residual = (1 - loadings.square().sum(1)).clamp_min(0).sqrt()
        standard = _normal(count, kept, generator) @ loadings.T + residual * _normal(count, flat.shape[1], generator)
        return mean + std * standard
    return draw


def full_covariance(flat: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """The full sample covariance (rank-deficient when there are fewer samples than dimensions)."""
    values, vectors = torch.linalg.eigh(torch.cov(flat.T))
    factor = vectors * values.clamp_min(0).sqrt()
    return flat.mean(0) + _normal(count, flat.shape[1], generator) @ factor.T


def kmeans(flat: torch.Tensor, components: int, generator: torch.Generator, iterations: int = 50) -> torch.Tensor:
    """Lloyd's k-means from a k-means++ start; returns each row's component ``(n,)``."""
    centres = flat[torch.randint(len(flat), (1,), generator=generator)]
    for _ in range(1, components):
        distance = torch.cdist(flat, centres).min(1).values.square()
        centres = torch.cat([centres, flat[torch.multinomial(distance / distance.sum(), 1, generator=generator)]])
    for _ in range(iterations):
        assignment = torch.cdist(flat, centres).argmin(1)
        for k in range(components):
            if (assignment == k).any():
                centres[k] = flat[assignment == k].mean(0)
    return torch.cdist(flat, centres).argmin(1)


def mixture(components: int) -> Draw:
    """A k-means mixture of diagonal Gaussians; draw ``i`` comes from component ``i mod components``."""
    def draw(flat: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
        assignment = kmeans(flat, components, generator)
        members = [flat[assignment == k] for k in range(components)]
        centres = torch.stack([m.mean(0) if len(m) else flat.mean(0) for m in members])
        spreads = torch.stack([m.std(0) if len(m) > 1 else flat.std(0) for m in members])
        chosen = torch.arange(count) % components
        return centres[chosen] + spreads[chosen] * _normal(count, flat.shape[1], generator)
    return draw


SOURCES: dict[str, Draw] = {
    "inverted real": inverted_real,
    "diagonal Gaussian": diagonal(),
    "diagonal Gaussian, std x0.85": diagonal(0.85),
    "diagonal Gaussian, std x1.25": diagonal(1.25),
    "rank-32 correlations": correlated(32),
    "full-covariance Gaussian": full_covariance,
    "10-component mixture": mixture(10),
}
"""The sources of latents at the fitting depth, in table order."""


def write_table() -> None:
    order = list(SOURCES)
    records = sorted(load_records(BENCHMARK), key=lambda r: (r["denoiser"], r["guidance"], r["depth"],
                                                            order.index(r["source"]) if r["source"] in order else 99))
    write_markdown(BENCHMARK, "# D3HR: the inversion against the Gaussian fitted in the inverted space\n\n"
                   + markdown_table(records, [
                       ("latents regenerated", "source"), ("denoiser", "denoiser"), ("guidance", "guidance"),
                       ("inversion steps", "depth"), ("timestep", "timestep"), ("fit images/class", "fit_per_class"),
                       ("samples", "samples"), ("class fidelity (%)", "class_fidelity"),
                       ("FID (classifier features)", "fid"), ("precision (%)", "precision"), ("recall (%)", "recall"),
                       ("IPC 10 soft acc. (%)", "acc_mean"), ("± std", "acc_std"), ("sets", "sets"),
                       ("seconds", "seconds")])
                   + "\n\n`inverted real` regenerates the real images' own inverted latents (the inversion's "
                   "ceiling); `diagonal Gaussian` draws from D3HR's per-class fit (with its std scaled, in the "
                   "scaled rows); `rank-32 correlations` keeps the per-dimension moments and the top 32 eigenpairs "
                   "of each class's correlation matrix; `full-covariance Gaussian` is a diagnostic with the full "
                   "per-class covariance; `10-component mixture` is a per-class k-means mixture of diagonal "
                   "Gaussians, drawn component by component. Metrics as in `latent_diffusion.md` (classifier of "
                   "the real data; real reference = the 10,000 test images). `IPC 10 soft acc.`: `sets` IPC 10 "
                   "sets per source (set k drawn with seed k), each trained once under the soft-label protocol of "
                   "`d3hr.md`, to compare with its `random real subset` rows of as many sets. Generated by "
                   "`python -m benchmarks.d3hr_gaussian_fit`.\n")


def draw_class(draw: Draw, flat: torch.Tensor, count: int, seed: int, class_index: int) -> torch.Tensor:
    """``count`` latents of one class from a source, seeded by ``(seed, class)``."""
    return draw(flat, count, torch.Generator().manual_seed(derive_seed(seed, "d3hr-gaussian-fit", class_index)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(DEFAULT_PIPELINE_PATH))
    parser.add_argument("--fit_per_class", type=int, default=300)
    parser.add_argument("--per_class", type=int, default=100, help="regenerated samples per class and source")
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--depth", type=int, default=D3HRConfig().inversion_steps, help="inversion steps")
    parser.add_argument("--sets", type=int, default=0, help="IPC 10 sets per source trained under soft labels")
    parser.add_argument("--eval_epochs", type=int, default=300)
    parser.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(SOURCES))
    parser.add_argument("--teacher_epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    configure_threads(args.threads)
    torch._dynamo.config.recompile_limit = 64
    pipe = D3HRPipeline.from_pretrained(args.pipeline)
    config = D3HRConfig(max_samples_per_class=args.fit_per_class, guidance_scale=args.guidance,
                        inversion_steps=args.depth)
    train, test = fashion_mnist_tensors("train"), fashion_mnist_tensors("test")
    classifier = train_teacher(train, epochs=args.teacher_epochs, seed=0, cache_dir=ROOT / "runs" / "teachers",
                               torch_compile=True).eval()
    real_features = classifier_features(classifier, test.images)
    _, inverter = ddim_schedulers(pipe.scheduler, config.num_inference_steps)
    timestep = inversion_timestep(inverter, args.depth)
    labels, inverted = inverted_latents(pipe, args.pipeline, config, train)
    flat = inverted.reshape(len(inverted), -1).double()
    by_class = [flat[labels == c] for c in range(int(labels.max()) + 1)]
    codec = pipe.latent_codec(config)

    def regenerate(draw: Draw, count: int, seed: int) -> list[torch.Tensor]:
        """Per class, ``count`` decoded images (float in [-1, 1], through uint8 as a stored set)."""
        images = []
        for class_index, class_flat in enumerate(by_class):
            latents = draw_class(draw, class_flat, count, seed, class_index).float().reshape(-1, *inverted.shape[1:])
            clean = pipe.regenerate_latents(latents, torch.full((count,), class_index), timestep, config)
            images.append(uint8_to_float(float_to_uint8(codec.decode(clean))))
        return images

    for source in args.sources:
        draw, started = SOURCES[source], time.time()
        samples = regenerate(draw, args.per_class, args.seed)
        quality = generator_quality(samples, classifier, real_features)
        quality.pop("per_class_fidelity")
        record = {"benchmark": BENCHMARK, "dataset": "fashion-mnist", "source": source,
                  "denoiser": denoiser_label(args.pipeline), "guidance": args.guidance, "depth": args.depth,
                  "timestep": timestep, "fit_per_class": args.fit_per_class, "samples": sum(len(s) for s in samples),
                  **quality, "seconds": round(time.time() - started, 1)}
        if args.sets:
            def make_set(seed: int, draw: Draw = draw) -> tuple[torch.Tensor, torch.Tensor]:
                images = regenerate(draw, 10, seed)
                return torch.cat(images), torch.arange(len(images)).repeat_interleave(10)

            measured = cells.evaluate_sets(make_set, test, SoftLabelProtocol(epochs=args.eval_epochs), classifier,
                                           args.sets, 1)
            record.update(ipc=10, protocol="soft", **{key: measured[key] for key in (
                "sets", "eval_epochs", "acc_mean", "acc_std", "set_means")})
        upsert_record(BENCHMARK, record, ("source", "denoiser", "guidance", "depth", "fit_per_class", "samples"))
        print({k: v for k, v in record.items() if k != "set_means"}, flush=True)
    write_table()


if __name__ == "__main__":
    main()
