"""Which images does the soft-label protocol reward at IPC 10?

D3HR's group sampling keeps the group of draws whose moments best match the class's distribution:
it bets that a *representative* set trains a better student than a random one. This benchmark puts
that bet to the test on real images, where no generator stands in the way. Per class, a seeded pool
of ``--pool`` training images (as many as D3HR fits its Gaussians on) is drawn; a selection rule
keeps ``--ipc`` of them; the set is trained under the soft-label protocol of ``benchmarks.d3hr``
(same teacher, same protocol object, set ``k`` drawn and its network seeded with ``k``). Rules
(in :data:`RULES`), every feature-space one on the teacher's L2-normalised penultimate features:

- ``random``: the pool's first ``ipc`` images (the pool is a seeded shuffle: a random subset);
- ``herding``: greedy mean matching (each pick brings the running mean of the kept features
  closest to the pool's mean), the classic representative coreset;
- ``k-means medoids``: k-means with ``ipc`` components (k-means++ start), the image nearest to
  each centre: one image per mode of the class;
- ``farthest point``: the image nearest the mean, then each next the farthest from those kept
  (k-center greedy): the widest spread;
- ``most confident`` / ``least confident``: the images the teacher gives the highest / lowest
  probability of their class (prototypes / hard cases).

If no rule lifts the student above the random subset by more than the set-to-set noise, the
images themselves are not the lever under this protocol at this IPC, and a generated set can at
best tie the random real subset.

With ``--source d3hr`` the pool of each class is ``--pool`` plain draws from D3HR's fitted
Gaussians (``benchmarks.d3hr``'s cached fit of ``--pipeline`` at ``--guidance`` and ``--depth``),
regenerated and decoded: the same rules then choose among generated images, as a D3HR variant that
spends ``pool / ipc`` times the regeneration to keep a chosen group.

Writes ``benchmarks/results/subset_selection.json`` / ``.md``.

    python -m benchmarks.subset_selection [--pool 200] [--ipc 10] [--sets 8] [--rules ...]
        [--source d3hr --pipeline DIR --guidance 4 --depth 31 --fit_per_class 200]
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

import torch

from latent_distill import DEFAULT_PIPELINE_PATH, D3HRConfig, D3HRPipeline
from latent_distill.data import fashion_mnist_tensors, uint8_to_float
from latent_distill.evaluation import (
    SoftLabelProtocol,
    classifier_features,
    configure_threads,
    train_teacher,
)
from latent_distill.evaluation.common import to_float_samples
from latent_distill.seeding import derive_seed

from . import cells, d3hr
from .d3hr_gaussian_fit import kmeans
from .results_io import (
    ROOT,
    denoiser_label,
    load_records,
    markdown_table,
    write_markdown,
)

BENCHMARK = "subset_selection"
CELL_KEY = ("source", "denoiser", "guidance", "inversion_steps", "fit_per_class", "rule", "pool", "ipc", "protocol", "sets", "teacher_epochs")
SOURCES = ("real", "d3hr")
"""Where the pools come from: real training images, or D3HR's Gaussians (plain draws, regenerated)."""

Rule = Callable[[torch.Tensor, torch.Tensor, int, torch.Generator], list[int]]
"""A pool's ``(n, F)`` unit-norm teacher features, its ``(n,)`` teacher probabilities of the class, a
count ``k`` and a generator -> the ``k`` kept pool indices."""


def first(features: torch.Tensor, confidence: torch.Tensor, count: int, generator: torch.Generator) -> list[int]:
    """The pool's first ``count`` images (a random subset: the pool is a seeded shuffle)."""
    return list(range(count))


def herding(features: torch.Tensor, confidence: torch.Tensor, count: int, generator: torch.Generator) -> list[int]:
    """Greedy mean matching: pick ``j`` brings the mean of the ``j`` kept features nearest the pool's."""
    target, total, kept = features.mean(0), torch.zeros(features.shape[1], dtype=features.dtype), []
    for picked in range(1, count + 1):
        distance = (total.unsqueeze(0) + features - picked * target).norm(dim=1)
        distance[kept] = float("inf")
        kept.append(int(distance.argmin()))
        total += features[kept[-1]]
    return kept


def kmeans_medoids(features: torch.Tensor, confidence: torch.Tensor, count: int,
                   generator: torch.Generator) -> list[int]:
    """The image nearest each centre of a ``count``-component k-means (a distinct image per centre)."""
    assignment = kmeans(features, count, generator)
    kept = []
    for component in range(count):
        members = assignment == component
        centre = features[members].mean(0) if members.any() else features.mean(0)
        distance = (features - centre).norm(dim=1)
        distance[kept] = float("inf")
        kept.append(int(distance.argmin()))
    return kept


def farthest_point(features: torch.Tensor, confidence: torch.Tensor, count: int,
                   generator: torch.Generator) -> list[int]:
    """k-center greedy from the image nearest the mean: each next pick is the farthest from the kept."""
    kept = [int((features - features.mean(0)).norm(dim=1).argmin())]
    nearest = (features - features[kept[0]]).norm(dim=1)
    while len(kept) < count:
        kept.append(int(nearest.argmax()))
        nearest = torch.minimum(nearest, (features - features[kept[-1]]).norm(dim=1))
    return kept


def by_confidence(descending: bool) -> Rule:
    """The ``count`` images of highest (``descending``) or lowest teacher probability of their class."""
    def rule(features: torch.Tensor, confidence: torch.Tensor, count: int, generator: torch.Generator) -> list[int]:
        return confidence.argsort(descending=descending)[:count].tolist()
    return rule


RULES: dict[str, Rule] = {
    "random": first,
    "herding": herding,
    "k-means medoids": kmeans_medoids,
    "farthest point": farthest_point,
    "most confident": by_confidence(True),
    "least confident": by_confidence(False),
}
"""The selection rules, in table order."""


def pool_rows(indices_by_class: list[torch.Tensor], pool: int, seed: int) -> list[torch.Tensor]:
    """Per class, the training-set rows of a seeded random pool of ``pool`` images."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "subset-selection-pool"))
    return [rows[torch.randperm(len(rows), generator=generator)[:pool]] for rows in indices_by_class]


def real_pools(train, pool: int) -> Callable[[int], list[torch.Tensor]]:
    """``seed -> per-class float images``: seeded random pools of real training images."""
    images, indices_by_class = to_float_samples(train.images), train.indices_by_class()
    return lambda seed: [images[rows] for rows in pool_rows(indices_by_class, pool, seed)]


def d3hr_pools(train, pool: int, args: argparse.Namespace) -> Callable[[int], list[torch.Tensor]]:
    """``seed -> per-class float images``: ``pool`` plain draws per class from D3HR's Gaussians
    (``benchmarks.d3hr``'s cached fit), regenerated and decoded through uint8 as a stored set."""
    pipe = D3HRPipeline.from_pretrained(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    fit_args = argparse.Namespace(fit_per_class=args.fit_per_class, guidance=args.guidance, pipeline=args.pipeline,
                                  default_depth=args.depth, depths=sorted({21, 31, args.depth}))
    gaussians = d3hr.gaussians_at(d3hr.fit_all(pipe, train, fit_args), "ddim", args.depth)

    def pools(seed: int) -> list[torch.Tensor]:
        output = pipe.sample(gaussians, config=D3HRConfig(ipc=pool, num_candidates=1, seed=seed,
                                                          guidance_scale=args.guidance, inversion_steps=args.depth))
        images = uint8_to_float(output.images)
        return [images[output.labels == class_index] for class_index in range(int(output.labels.max()) + 1)]
    return pools


def write_table() -> None:
    order = list(RULES)
    records = sorted(load_records(BENCHMARK), key=lambda r: (r["ipc"], r["pool"], r["sets"],
                                                            order.index(r["rule"]) if r["rule"] in order else 99))

    def setting(record: dict) -> tuple:
        source = record.get("source", "real")
        return (SOURCES.index(source) if source in SOURCES else len(SOURCES), record.get("denoiser") or "",
                record.get("guidance") or 0.0, record.get("inversion_steps") or 0, record.get("fit_per_class") or 0,
                record["ipc"], record["pool"], record["sets"])

    records.sort(key=setting)
    random = {setting(r): r for r in records if r["rule"] == "random"}
    rows = []
    for record in records:
        reference = random.get(setting(record))
        ahead = None
        if reference is not None and record is not reference:
            differences = [a - b for a, b in zip(record["set_means"], reference["set_means"])]
            mean = sum(differences) / len(differences)
            spread = (sum((d - mean) ** 2 for d in differences) / max(1, len(differences) - 1)) ** 0.5
            ahead = f"{mean:+.2f} ± {spread / len(differences) ** 0.5:.2f} ({sum(d > 0 for d in differences)}/"\
                    f"{len(differences)})"
        rows.append({"source": "real", **record, "ahead": ahead,
                     "accuracy": f"{record['acc_mean']:.2f} ± {record['acc_std']:.2f}",
                     "set_means": ", ".join(f"{m:.1f}" for m in record["set_means"])})
    write_markdown(BENCHMARK, "# Which images the soft-label protocol rewards at IPC 10\n\n"
                   + markdown_table(rows, [
                       ("pool of", "source"), ("denoiser", "denoiser"), ("guidance", "guidance"),
                       ("inversion steps", "inversion_steps"), ("fit images/class", "fit_per_class"),
                       ("rule", "rule"), ("IPC", "ipc"), ("pool/class", "pool"), ("protocol", "protocol"),
                       ("sets", "sets"), ("accuracy", "accuracy"), ("ahead of random (paired)", "ahead"),
                       ("set means", "set_means")])
                   + "\n\nFashion-MNIST, ConvNet-3 under the soft-label protocol of `d3hr.md` (same teacher), on "
                   "the 10,000 test images. Per class, set k keeps IPC images of a pool of `pool/class` images "
                   "drawn with seed k, by the rule named; `random` keeps the pool's first ones. `pool of`: `real` "
                   "= training images; `d3hr` = plain draws from D3HR's per-class Gaussians (fitted on `fit "
                   "images/class` per class, inverted by the `denoiser` with `guidance` to `inversion steps` of the "
                   "50-step grid), regenerated and decoded. Feature "
                   "rules work on the teacher's unit-norm penultimate features; `herding` = greedy mean matching, "
                   "`k-means medoids` = the image nearest each k-means centre, `farthest point` = k-center greedy, "
                   "`most / least confident` = the teacher's probability of the class. `ahead of random` = the "
                   "mean over sets of the rule's set mean minus `random`'s on the same pool, ± its standard "
                   "error, (sets where the rule is ahead). Generated by `benchmarks/subset_selection.py`.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=200, help="training images per class the rules choose from")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--sets", type=int, default=8, help="independent sets per rule (set k: pool seed k)")
    parser.add_argument("--rules", nargs="+", choices=list(RULES), default=list(RULES))
    parser.add_argument("--eval_epochs", type=int, default=300)
    parser.add_argument("--teacher_epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--source", choices=SOURCES, default="real", help="pools of real images or of D3HR draws")
    parser.add_argument("--pipeline", default=str(DEFAULT_PIPELINE_PATH), help="D3HR's models (--source d3hr)")
    parser.add_argument("--guidance", type=float, default=D3HRConfig().guidance_scale, help="D3HR's guidance")
    parser.add_argument("--depth", type=int, default=D3HRConfig().inversion_steps, help="D3HR's inversion steps")
    parser.add_argument("--fit_per_class", type=int, default=200, help="images per class D3HR's Gaussians fit")
    parser.add_argument("--redo", action="store_true")
    args = parser.parse_args()
    if args.pool < args.ipc:
        parser.error(f"--pool ({args.pool}) must be at least --ipc ({args.ipc}): a rule keeps ipc images of the pool.")
    configure_threads(args.threads)
    torch._dynamo.config.recompile_limit = 64
    train, test = fashion_mnist_tensors("train"), fashion_mnist_tensors("test")
    teacher = train_teacher(train, epochs=args.teacher_epochs, seed=0, cache_dir=ROOT / "runs" / "teachers",
                            torch_compile=True).eval()
    pools = real_pools(train, args.pool) if args.source == "real" else d3hr_pools(train, args.pool, args)
    models: dict[str, Any] = {"source": args.source, "denoiser": None, "guidance": None}
    if args.source == "d3hr":
        models.update(denoiser=denoiser_label(args.pipeline), guidance=args.guidance, inversion_steps=args.depth,
                      fit_per_class=args.fit_per_class)

    for name in args.rules:
        rule = RULES[name]

        def make_set(seed: int, rule: Rule = rule) -> tuple[torch.Tensor, torch.Tensor]:
            kept, labels = [], []
            for class_index, pool in enumerate(pools(seed)):
                features = torch.nn.functional.normalize(classifier_features(teacher, pool), dim=1)
                with torch.no_grad():
                    confidence = torch.cat([teacher(chunk).softmax(1)[:, class_index] for chunk in pool.split(500)])
                generator = torch.Generator().manual_seed(derive_seed(seed, "subset-selection-rule", class_index))
                chosen = rule(features, confidence.double(), args.ipc, generator)
                kept.append(pool[chosen])
                labels.append(torch.full((args.ipc,), class_index, dtype=torch.int64))
            return torch.cat(kept), torch.cat(labels)

        def compute(make_set=make_set) -> dict:
            return cells.evaluate_sets(make_set, test, SoftLabelProtocol(epochs=args.eval_epochs), teacher,
                                       args.sets, 1)

        cells.run_cell(BENCHMARK, {**models, "rule": name, "pool": args.pool, "ipc": args.ipc,
                                   "samples_per_class": args.ipc, "protocol": "soft",
                                   "teacher_epochs": args.teacher_epochs, "sets": args.sets},
                       compute, CELL_KEY, redo=args.redo, summary="{rule}: {acc_mean} ± {acc_std}")
    write_table()


if __name__ == "__main__":
    main()
