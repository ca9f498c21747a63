"""LD3M's vanishing-gradient claim (paper Table 1): ||dL/dz|| against the number of DDIM steps K,
with and without the skip connection.

For every K in ``--steps`` and every skip form in ``--skips`` (default: the paper's Eq. 7 form and
plain DDIM), an LD3M synthetic set is built as in a ``ld3m-dm`` run (:class:`DiffusionPrior`:
``z`` = the encodings of ``--samples_per_class`` random Fashion-MNIST training images per class,
``c`` = the DiT's label embeddings), its images are rendered by K skip-connected DDIM steps of the
pipeline's DiT and decoded, and ``L`` is the DM loss of the ``ld3m-dm`` preset (a fresh random
ConvNet, ``sum_c ||mean phi(real_c) - mean phi(syn_c)||^2`` with DSA, ``--batch_real`` real images
per class). The figure is the norm of ``dL/dz`` over the whole set, as mean and std over
``--seeds`` seeds (a seed changes the chosen images, the initial noise, the ConvNet, the real
batches and the augmentation; the seeds are the same for every K and skip form).

Writes ``benchmarks/results/ld3m_gradient_flow.json`` / ``.md`` / ``.png`` (the plot, log-log, is drawn
with PIL; matplotlib is not a dependency). The markdown and the plot are generated from the JSON.

    python -m benchmarks.ld3m_gradient_flow [--pipeline DIR] [--steps 5 10 20 40] [--seeds 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Sequence

from .results_io import (
    RESULTS,
    load_records,
    markdown_table,
    peak_rss_mb,
    upsert_record,
    write_markdown,
)

BENCHMARK = "ld3m_gradient_flow"
SKIP_LABELS = {"paper": "with skip (paper, Eq. 7)", "reference": "with skip (reference code)", "none": "without skip"}


def real_subset(num_classes: int):
    """Fashion-MNIST training images of the first ``num_classes`` classes (those the DiT knows)."""
    from latent_distill.data import ImageClassificationTensors, fashion_mnist_tensors

    data = fashion_mnist_tensors("train")
    keep = data.labels < num_classes
    return ImageClassificationTensors(data.images[keep], data.labels[keep], data.class_names[:num_classes])


def gradient_norm(pipe, data, num_steps: int, skip: str, seed: int, samples_per_class: int, batch_real: int) -> float:
    """``||dL/dz||`` of one LD3M set under the DM loss (one seed)."""
    from latent_distill import config_for_method
    from latent_distill.codec import LatentCache, LatentCodec
    from latent_distill.objectives import build_augmentation, get_objective
    from latent_distill.pipelines.initial_samples import initial_samples
    from latent_distill.representations import get_representation
    from latent_distill.seeding import derive_seed, generator_for

    config = config_for_method("ld3m-dm", seed=seed, batch_real=batch_real,
                               representation_kwargs={"num_steps": num_steps, "skip": skip})
    representation_cls = get_representation(config.representation)
    codec = LatentCodec(pipe.vae, int(pipe.vae.config.sample_size))
    real = representation_cls.real_pool(data, codec, LatentCache(None))
    shape = representation_cls.sample_shape(tuple(data.images.shape[1:]), codec)
    initial = initial_samples(real, samples_per_class, "real", seed, shape)
    synthetic = representation_cls.create(initial, data.num_classes, codec=codec, transformer=pipe.transformer,
                                          scheduler=pipe.scheduler, options=config.representation_kwargs, seed=seed)
    objective = get_objective(config.objective)(config, shape, data.num_classes, build_augmentation(config.augmentation))
    network = objective.embedding_network(0)
    synthetic.begin_iteration(0)
    for class_index in range(data.num_classes):
        batch = real.draw(class_index, batch_real, generator_for(seed, "dm-real", 0, class_index))
        loss = objective.class_loss(network, batch, synthetic.render(class_index),
                                    derive_seed(seed, "dm-augment", 0, class_index))
        loss.backward()
    return float(synthetic.latents.grad.norm())


def line_chart(series: dict[str, Sequence[tuple[float, float]]], path: Path, title: str, x_label: str,
               y_label: str, size: tuple[int, int] = (760, 480)) -> None:
    """A simple line chart (log2 x axis, log10 y axis) with ticks, a legend and axis labels, drawn with PIL.

    Args:
        series: name -> ``(x, y)`` points, all positive.
        path: the PNG to write.
        title: the chart title.
        x_label: label of the x axis.
        y_label: label of the y axis.
        size: ``(width, height)`` in pixels.
    """
    from PIL import Image, ImageDraw

    width, height = size
    left, right, top, bottom = 100, 30, 40, 60
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    xs = sorted({x for points in series.values() for x, _ in points})
    ys = [y for points in series.values() for _, y in points if y > 0]
    x_min, x_max = math.log2(xs[0]), math.log2(xs[-1])
    y_min, y_max = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    y_max = max(y_max, y_min + 1)

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        fraction = (math.log2(x) - x_min) / (x_max - x_min) if x_max > x_min else 0.5
        height_fraction = (math.log10(max(y, 10.0 ** y_min)) - y_min) / (y_max - y_min)
        return (left + fraction * (width - left - right), height - bottom - height_fraction * (height - top - bottom))

    draw.line([(left, top), (left, height - bottom), (width - right, height - bottom)], fill="black", width=2)
    for exponent in range(y_min, y_max + 1):
        _, y = to_pixel(xs[0], 10.0 ** exponent)
        text = f"1e{exponent}"
        draw.line([(left - 5, y), (left, y)], fill="black")
        draw.line([(left, y), (width - right, y)], fill="#e6e6e6")
        draw.text((left - 10 - draw.textlength(text), y - 6), text, fill="black")
    for x in xs:
        px, _ = to_pixel(x, 10.0 ** y_min)
        draw.line([(px, height - bottom), (px, height - bottom + 5)], fill="black")
        draw.text((px - draw.textlength(str(int(x))) / 2, height - bottom + 8), str(int(x)), fill="black")
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for number, (name, points) in enumerate(series.items()):
        colour = colours[number % len(colours)]
        pixels = [to_pixel(x, y) for x, y in sorted(points)]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=3)
        for px, py in pixels:
            draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour)
        legend_y = 10 + 16 * number
        draw.line([(width - right - 250, legend_y + 6), (width - right - 220, legend_y + 6)], fill=colour, width=3)
        draw.text((width - right - 212, legend_y), name, fill="black")
    draw.text((left, 12), title, fill="black")
    draw.text(((left + width - right - draw.textlength(x_label)) / 2, height - 24), x_label, fill="black")
    label = Image.new("RGB", (int(draw.textlength(y_label)) + 4, 14), "white")
    ImageDraw.Draw(label).text((0, 0), y_label, fill="black")
    rotated = label.rotate(90, expand=True)
    image.paste(rotated, (12, top + (height - top - bottom - rotated.height) // 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def report(pipeline: str) -> str:
    """Writes the markdown table and the plot of ``pipeline``'s records; returns the table."""
    records = [r for r in load_records(BENCHMARK) if r.get("pipeline") == pipeline]
    by_steps: dict[int, dict] = {}
    for record in records:
        by_steps.setdefault(record["num_steps"], {"num_steps": record["num_steps"]})[record["skip"]] = \
            record["grad_norm_mean"]
        by_steps[record["num_steps"]][record["skip"] + "_std"] = record["grad_norm_std"]
    rows = [by_steps[k] for k in sorted(by_steps)]
    for row in rows:
        if row.get("none"):
            for skip in ("paper", "reference"):
                if skip in row:
                    row[skip + "_ratio"] = row[skip] / row["none"]
    skips = [s for s in SKIP_LABELS if any(s in row for row in rows)]
    columns = [("K (DDIM steps)", "num_steps")]
    for skip in skips:
        columns += [(f"‖dL/dz‖ {SKIP_LABELS[skip]}", skip), ("std", skip + "_std")]
    columns += [(f"ratio {skip} / none", skip + "_ratio") for skip in skips if skip != "none" and "none" in skips]
    table = markdown_table(rows, columns)
    seeds = records[0]["seeds"] if records else 0
    write_markdown(BENCHMARK, f"# LD3M gradient flow: ‖dL/dz‖ against the number of DDIM steps\n\n{table}\n"
                              f"Pipeline `{pipeline}`; DM loss of the `ld3m-dm` preset on decoded images of "
                              f"Fashion-MNIST samples; mean and std over {seeds} seeds. Generated by "
                              "`benchmarks/ld3m_gradient_flow.py`. The paper's Table 1 (plain diffusion, ImageNet "
                              "LDM, ‖dL/dZ‖ x 1e4 for T = 10..90) falls from 58.1 to 6.5.\n")
    series = {SKIP_LABELS[skip]: [(row["num_steps"], row[skip]) for row in rows if skip in row] for skip in skips}
    if series:
        line_chart(series, RESULTS / f"{BENCHMARK}.png", "LD3M: gradient norm of the initial latents",
                   "K (DDIM steps, log scale)", "||dL/dz|| (log scale)")
    return table


def main() -> None:
    import torch

    from latent_distill import DEFAULT_PIPELINE_PATH, LatentDistillationPipeline
    from latent_distill.default_models import model_reference

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(DEFAULT_PIPELINE_PATH),
                        help="pipeline folder with vae/, transformer/ and scheduler/")
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--skips", nargs="+", choices=list(SKIP_LABELS), default=["paper", "none"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--samples_per_class", type=int, default=1)
    parser.add_argument("--batch_real", type=int, default=64)
    args = parser.parse_args()

    torch.set_num_threads(1)
    pipe = LatentDistillationPipeline.from_pretrained(args.pipeline)
    if pipe.transformer is None or pipe.scheduler is None:
        raise SystemExit(f"{args.pipeline} holds no class-conditional denoiser (transformer/ and scheduler/): train "
                         "one with examples/train_latent_diffusion.py --pipeline_dir ...")
    pipe.vae.requires_grad_(False).eval()
    pipeline = model_reference(args.pipeline)
    data = real_subset(min(int(pipe.transformer.config.num_embeds_ada_norm), 10))
    for num_steps in args.steps:
        for skip in args.skips:
            started = time.time()
            norms = [gradient_norm(pipe, data, num_steps, skip, seed, args.samples_per_class, args.batch_real)
                     for seed in range(args.seeds)]
            record = {"benchmark": BENCHMARK, "dataset": "fashion-mnist", "method": "ld3m-dm",
                      "representation": "diffusion", "pipeline": pipeline, "num_steps": num_steps, "skip": skip,
                      "samples_per_class": args.samples_per_class, "num_classes": data.num_classes,
                      "batch_real": args.batch_real, "seeds": args.seeds, "grad_norms": norms,
                      "grad_norm_mean": statistics.fmean(norms),
                      "grad_norm_std": statistics.stdev(norms) if len(norms) > 1 else 0.0,
                      "seconds": round(time.time() - started, 2), "peak_rss_mb": peak_rss_mb()}
            upsert_record(BENCHMARK, record, ("pipeline", "num_steps", "skip"))
            print(f"K={num_steps} skip={skip}: ||dL/dz|| = {record['grad_norm_mean']:.4g} "
                  f"± {record['grad_norm_std']:.2g}", flush=True)
    print(report(pipeline))


if __name__ == "__main__":
    main()
