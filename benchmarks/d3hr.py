"""D3HR on Fashion-MNIST with the shipped models: quality, the paper's ablations, and speed.

1. **Fit** (resumable class by class): a seeded subset of ``--fit_per_class`` training images per
   class is encoded and DDIM-inverted once, in stages, and folded into per-class Gaussians at every
   depth of ``--depths`` (inversion steps on the 50-step grid); DDPM forward noising is fitted at
   the same depths. The inversion throughput (images per second) is recorded.
2. **Cells** (resumable one by one), each evaluated under the soft-label protocol (D3HR's own) and
   the hard-label protocol where listed, with random real subsets of the same size under the same
   protocol object beside them. A cell is ``--sets`` independent sets (set ``k`` is made with seed
   ``k``: D3HR's group-search seed, the random subset's draw), each trained ``--runs`` times (set
   ``k``'s networks seeded alike for every method); its accuracy is the mean and standard
   deviation over all of them. At IPC 10 the accuracy of one random real subset varies by several
   points from draw to draw, more than between networks trained on one set, so one set per cell
   would rank methods by the luck of a draw:
   - D3HR at IPC 1 and 10 (``--default_depth``, ``--candidates`` groups per class);
   - ablations at IPC 1 and 10 under both protocols: DDPM noising instead of DDIM inversion; a plain
     random draw from the Gaussian instead of group sampling (one candidate); the inversion-depth
     sweep at IPC 10 (soft labels);
   - the random real subset of the same bytes as a D3HR set (storage-accounted reference).
3. **Speed**: group-sampling throughput (candidate groups scored per second for one class at
   IPC 10, 10^6 candidates) with 1 and 2 threads.

Writes ``benchmarks/results/d3hr.json`` / ``.md`` and ``d3hr_speed.json`` / ``.md``.

    python -m benchmarks.d3hr [--fit_per_class 200] [--sets 8] [--runs 1] [--cells d3hr ddpm draw depths references]
        [--references ...] [--ipcs 1 10] [--protocols soft hard]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable, Optional

import torch

from latent_distill import DEFAULT_PIPELINE_PATH, D3HRConfig, D3HRPipeline
from latent_distill.checkpointing import load_state, save_state
from latent_distill.codec import LatentCache
from latent_distill.d3hr import (
    FittedGaussians,
    GaussianAccumulator,
    fit_subset,
    select_group,
)
from latent_distill.data import fashion_mnist_tensors, uint8_to_float
from latent_distill.diffusion import (
    GuidedDenoiser,
    ddim_invert,
    ddim_schedulers,
    inversion_timestep,
)
from latent_distill.encoding import encode_training_latents
from latent_distill.evaluation import (
    HardLabelProtocol,
    SoftLabelProtocol,
    configure_threads,
    random_subset,
    train_teacher,
)

from . import cells
from .results_io import (
    ROOT,
    autoencoder_label,
    denoiser_label,
    latents_of,
    load_records,
    markdown_table,
    upsert_record,
    write_markdown,
)

STATES = ROOT / "runs" / "d3hr-benchmark"
# References beside D3HR: a random real subset, and the same subset passed through the shipped
# autoencoder (encoded, decoded): every image D3HR generates is decoded by that autoencoder, so the
# gap between the two is what the autoencoder alone costs a set of that size.
RANDOM_SUBSET, AUTOENCODED_SUBSET = "random real subset", "random real subset, autoencoded"
# The same subset taken on through the denoiser as D3HR takes its samples: DDIM-inverted to the
# main cells' depth and regenerated from there. D3HR regenerates draws from a Gaussian fitted there,
# so the gap to this round trip is what sampling the Gaussian costs or gains over the real images.
ROUND_TRIP_SUBSET = "random real subset, inverted and regenerated"
# A D3HR set stores per-class Gaussians and its kept groups' seeds, not images: the random real
# subset of the same bytes (uint8 pixels) is its storage-accounted reference.
SAME_STORAGE_SUBSET = "random real subset, D3HR's storage"
REFERENCES = {"random": RANDOM_SUBSET, "autoencoded": AUTOENCODED_SUBSET, "round-trip": ROUND_TRIP_SUBSET,
              "same-storage": SAME_STORAGE_SUBSET}
"""The reference cells by their ``--references`` name."""
CELL_FAMILIES = ("d3hr", "ddpm", "draw", "depths", "references")
CELL_KEY = ("method", "variant", "ipc", "protocol", "guidance", "denoiser", "fit_per_class", "sets",
            "autoencoder", "inversion_steps", "num_candidates")


def fit_all(pipe: D3HRPipeline, train, args: argparse.Namespace) -> dict[str, Any]:
    """Fits Gaussians at every depth (DDIM) and at the default depth (DDPM), class by class."""
    base = D3HRConfig(max_samples_per_class=args.fit_per_class, guidance_scale=args.guidance,
                      inversion_steps=args.default_depth)
    subset = fit_subset(train, base.max_samples_per_class, base.seed)
    codec = pipe.latent_codec(base)
    latents = encode_training_latents(subset, codec, LatentCache(ROOT / "runs" / "latent-cache"))
    dim = latents[0].numel()
    depths = sorted(args.depths)
    key = {"fit_per_class": args.fit_per_class, "depths": depths, "ddpm_depths": depths, "guidance": args.guidance,
           "pipeline": args.pipeline, "denoiser": denoiser_label(args.pipeline)}
    decoder = autoencoder_label(args.pipeline)
    suffix = "" if decoder is None else "-" + decoder.replace(" ", "-")
    # one file per fit key: switching denoiser or depths and back reuses the earlier fit
    state_file = STATES / (f"fit-{args.fit_per_class}-g{args.guidance:g}{suffix}-{key['denoiser'] or 'untracked'}"
                           f"-depths-{'-'.join(map(str, depths))}.pt")
    saved = load_state(state_file)
    if saved is not None and saved["key"] == key:
        state = saved
    else:
        state = {"key": key, "done": [], "invert_seconds": 0.0, "inverted": 0,
                 "ddim": {d: GaussianAccumulator(10, dim).state_dict() for d in depths},
                 "ddpm": {d: GaussianAccumulator(10, dim).state_dict() for d in depths}}
    accumulators = {noising: {d: GaussianAccumulator(10, dim) for d in depths} for noising in ("ddim", "ddpm")}
    for noising, by_depth in accumulators.items():
        for depth, accumulator in by_depth.items():
            accumulator.load_state_dict(state[noising][depth])
    denoiser = GuidedDenoiser(pipe.transformer, args.guidance)
    _, inverter = ddim_schedulers(pipe.scheduler, base.num_inference_steps)
    for class_index in range(10):
        if class_index in state["done"]:
            continue
        for batch, rows in enumerate(torch.nonzero(subset.labels == class_index).flatten().split(base.batch_size)):
            batch_latents, labels = latents[rows], subset.labels[rows]
            started, current, reached = time.time(), batch_latents, 0
            for depth in depths:
                current = ddim_invert(denoiser, inverter, current, labels, depth, start_step=reached)
                accumulators["ddim"][depth].update(current, labels)
                reached = depth
            state["invert_seconds"] += time.time() - started
            state["inverted"] += len(rows)
            for depth in depths:  # forward noising costs no network evaluation: fitted at every depth
                noised = pipe.invert(batch_latents, labels, base.replace(noising="ddpm", inversion_steps=depth), batch)
                accumulators["ddpm"][depth].update(noised, labels)
        state["done"].append(class_index)
        for noising, by_depth in accumulators.items():
            state[noising] = {d: a.state_dict() for d, a in by_depth.items()}
        save_state(state_file, **state)
        print(f"fitted class {class_index} ({state['inverted']} images inverted, "
              f"{state['inverted'] / state['invert_seconds']:.1f} img/s to depth {depths[-1]})", flush=True)
    fits = {(noising, d): a.finalize() for noising, by_depth in accumulators.items() for d, a in by_depth.items()}
    return {"fits": fits, "inverter": inverter, "latent_shape": list(latents.shape[1:]), "state": state}


def gaussians_at(fitted: dict[str, Any], noising: str, depth: int) -> FittedGaussians:
    """One fitted set of Gaussians, with what ``D3HRPipeline.sample`` needs, as ``fit()`` returns them."""
    return FittedGaussians.from_class_gaussians(
        fitted["fits"][(noising, depth)], timestep=inversion_timestep(fitted["inverter"], depth),
        latent_shape=fitted["latent_shape"], class_names=[str(c) for c in range(10)], image_shape=[1, 28, 28])


def run_cell(fields: dict[str, Any], compute: Callable[[], dict[str, Any]], redo: bool) -> None:
    """Runs one cell (IPC images per class) with :func:`~benchmarks.cells.run_cell`, untimed."""
    cells.run_cell("d3hr", {"budget": "count", **fields}, compute, CELL_KEY, redo=redo, timed=False,
                   summary="{variant} ipc {ipc} {protocol}: {acc_mean} ± {acc_std}")


def quality_cells(pipe, fitted, train, test, teacher, args) -> None:
    protocols = {"soft": SoftLabelProtocol(epochs=args.eval_epochs), "hard": HardLabelProtocol(epochs=args.eval_epochs)}
    default_depth = args.default_depth
    families = {"d3hr": [("d3hr", "ddim", args.candidates)], "ddpm": [("ddpm-noising", "ddpm", args.candidates)],
                "draw": [("random-draw (m=1)", "ddim", 1)]}
    variants = [(name, noising, default_depth, candidates, ipc, kind)
                for family, members in families.items() if family in args.cells
                for name, noising, candidates in members for ipc in args.ipcs for kind in args.protocols]
    if "depths" in args.cells:
        variants += [(f"depth {d}", "ddim", d, args.candidates, 10, "soft") for d in args.depths if d != default_depth]
    for variant, noising, depth, candidates, ipc, kind in variants:
        def compute(noising=noising, depth=depth, candidates=candidates, ipc=ipc, kind=kind) -> dict[str, Any]:
            gaussians = gaussians_at(fitted, noising, depth)

            def make_set(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
                output = pipe.sample(gaussians, config=D3HRConfig(ipc=ipc, num_candidates=candidates, seed=seed,
                                                                  guidance_scale=args.guidance, inversion_steps=depth))
                return uint8_to_float(output.images), output.labels

            return cells.evaluate_sets(make_set, test, protocols[kind], teacher if kind == "soft" else None,
                                       args.sets, args.runs)

        timestep = inversion_timestep(fitted["inverter"], depth)
        run_cell({"method": "d3hr", "variant": variant, "noising": noising, "inversion_steps": depth,
                  "timestep": timestep, "num_candidates": candidates, "guidance": args.guidance, "ipc": ipc,
                  "samples_per_class": ipc, "protocol": kind, "fit_per_class": args.fit_per_class,
                  "denoiser": denoiser_label(args.pipeline), "sets": args.sets,
                  "autoencoder": autoencoder_label(args.pipeline)}, compute, args.redo)
    if "references" not in args.cells:
        return
    chosen = {REFERENCES[name] for name in args.references}
    if SAME_STORAGE_SUBSET in chosen:
        storage_cells(pipe, fitted, train, test, teacher, protocols, args)
    codec = pipe.latent_codec()
    round_trip = D3HRConfig(guidance_scale=args.guidance, inversion_steps=args.default_depth)
    timestep = inversion_timestep(fitted["inverter"], args.default_depth)

    def invert_and_regenerate(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        inverted = pipe.invert(codec.encode(images), labels, round_trip)
        return codec.decode(pipe.regenerate_latents(inverted, labels, timestep, round_trip))

    references = {RANDOM_SUBSET: (lambda images, labels: images, {}),
                  AUTOENCODED_SUBSET: (lambda images, labels: codec.decode(codec.encode(images)),
                                       {"autoencoder": autoencoder_label(args.pipeline)}),
                  ROUND_TRIP_SUBSET: (invert_and_regenerate,
                                      {"autoencoder": autoencoder_label(args.pipeline),
                                       "denoiser": denoiser_label(args.pipeline), "guidance": args.guidance,
                                       "inversion_steps": args.default_depth, "timestep": timestep})}
    for ipc in args.ipcs:
        for kind, protocol in ((k, protocols[k]) for k in args.protocols):
            for variant, (transform, models) in references.items():
                if variant not in chosen:
                    continue

                def compute(ipc=ipc, kind=kind, protocol=protocol, transform=transform) -> dict[str, Any]:
                    def make_set(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
                        images, labels = random_subset(train, ipc, seed=seed)
                        return transform(images, labels), labels

                    return cells.evaluate_sets(make_set, test, protocol, teacher if kind == "soft" else None,
                                               args.sets, args.runs)

                run_cell({"method": "random-subset", "variant": variant, "ipc": ipc, "samples_per_class": ipc,
                          "protocol": kind, "sets": args.sets, "autoencoder": None, **models}, compute, args.redo)


def storage_bytes_per_class(pipe: D3HRPipeline, fitted: dict[str, Any], args: argparse.Namespace) -> int:
    """Bytes a D3HR set of the main cells stores per class, counted on a set it makes (IPC 1, one
    candidate: the Gaussians and group references do not grow with IPC)."""
    output = pipe.sample(gaussians_at(fitted, "ddim", args.default_depth),
                         config=D3HRConfig(ipc=1, num_candidates=1, guidance_scale=args.guidance,
                                           inversion_steps=args.default_depth))
    distilled = output.to_distilled_dataset()
    return distilled.storage_bytes() // distilled.num_classes


def storage_cells(pipe, fitted, train, test, teacher, protocols, args) -> None:
    """The random real subset with as many uint8 images per class as fit in a D3HR set's bytes."""
    per_class = storage_bytes_per_class(pipe, fitted, args)
    count = per_class // train.images[0].numel()
    for kind, protocol in ((k, protocols[k]) for k in args.protocols):
        def compute(kind=kind, protocol=protocol) -> dict[str, Any]:
            return cells.evaluate_sets(lambda seed: random_subset(train, count, seed=seed), test, protocol,
                                       teacher if kind == "soft" else None, args.sets, args.runs)

        run_cell({"method": "random-subset", "variant": SAME_STORAGE_SUBSET, "ipc": count, "samples_per_class": count,
                  "protocol": kind, "d3hr_bytes_per_class": per_class, "sets": args.sets,
                  "autoencoder": latents_of(autoencoder_label(args.pipeline))}, compute, args.redo)


def speed_cells(pipe: D3HRPipeline, fitted: dict[str, Any], args: argparse.Namespace) -> None:
    sigma = fitted["fits"][("ddim", args.default_depth)].std[0]
    state = fitted["state"]
    inversion = {"benchmark": "d3hr_speed", "dataset": "fashion-mnist", "measure": "ddim inversion",
                 "detail": f"{max(args.depths)} steps, guidance {args.guidance} (2 passes per step), batch 500",
                 "threads": 1, "value": round(state["inverted"] / state["invert_seconds"], 2), "unit": "images/s"}
    upsert_record("d3hr_speed", inversion, ("measure", "threads"))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        select_group(sigma, 10, 10_000, seed=0, class_index=0)  # warm-up
        started = time.time()
        select_group(sigma, 10, args.speed_candidates, seed=0, class_index=0)
        seconds = time.time() - started
        upsert_record("d3hr_speed", {
            "benchmark": "d3hr_speed", "dataset": "fashion-mnist", "measure": "group sampling",
            "detail": f"IPC 10, {args.speed_candidates:,} candidates, one class, D = {sigma.numel()}",
            "threads": threads, "seconds": round(seconds, 2), "value": round(args.speed_candidates / seconds),
            "unit": "candidates/s"}, ("measure", "threads"))
        print(f"group sampling, {threads} thread(s): {args.speed_candidates / seconds:,.0f} candidates/s", flush=True)
    torch.set_num_threads(1)


def set_count(record: dict[str, Any]) -> int:
    """Independent sets behind a record (records made before cells had sets evaluated one set)."""
    return record.get("sets") or 1


def matching(records: list[dict[str, Any]], variant: str, like: dict[str, Any], fields: tuple[str, ...]):
    """The record of ``variant`` that agrees with ``like`` on ``fields`` and on the number of sets."""
    return next((r for r in records if r.get("variant") == variant and set_count(r) == set_count(like)
                 and all(r.get(k) == like.get(k) for k in fields)), None)


def same_storage_reference(records: list[dict[str, Any]], like: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The random real subset of the bytes a D3HR record's sets store: same protocol and sets, and the
    same latent shape (a decoder fine-tune keeps the shape, so it keeps the bytes)."""
    return next((r for r in records if r.get("variant") == SAME_STORAGE_SUBSET and set_count(r) == set_count(like)
                 and r["protocol"] == like["protocol"]
                 and latents_of(r.get("autoencoder")) == latents_of(like.get("autoencoder"))), None)


def accuracy(record: Optional[dict[str, Any]]) -> str:
    return f"{record['acc_mean']:.2f} ± {record['acc_std']:.2f}" if record else "not run"


def margin(main: dict[str, Any], other: Optional[dict[str, Any]]) -> Optional[str]:
    """``main``'s mean accuracy minus ``other``'s, in points."""
    return f"{main['acc_mean'] - other['acc_mean']:+.2f}" if other else None


def ablation_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """D3HR beside its two paper ablations (DDPM noising, one random draw), where both were run."""
    like = ("denoiser", "autoencoder", "guidance", "ipc", "protocol", "fit_per_class", "inversion_steps")
    rows = []
    for main in (r for r in records if r.get("variant") == "d3hr"):
        # DDPM noising changes only the noising: it is run with D3HR's candidate count
        ddpm = matching(records, "ddpm-noising", main, (*like, "num_candidates"))
        draw = matching(records, "random-draw (m=1)", main, like)
        if ddpm is None and draw is None:
            continue
        rows.append({**{k: main.get(k) for k in ("denoiser", "autoencoder", "guidance", "timestep", "ipc", "protocol")},
                     "candidates": main.get("num_candidates"), "fit_per_class": main.get("fit_per_class"),
                     "sets": set_count(main),
                     "d3hr": accuracy(main), "ddpm": accuracy(ddpm), "inversion_ahead": margin(main, ddpm),
                     "draw": accuracy(draw), "groups_ahead": margin(main, draw)})
    return sorted(rows, key=lambda r: (-r["sets"], r["denoiser"], r["autoencoder"] or "", -(r["timestep"] or 0),
                                       r["ipc"], r["protocol"], r["fit_per_class"] or 0, r["candidates"]))


SETTING = ("denoiser", "autoencoder", "guidance", "timestep", "fit_per_class", "num_candidates", "sets")


def setting_rows(records: list[dict[str, Any]], ipc: int = 10) -> list[dict[str, Any]]:
    """Each D3HR setting (DDIM inversion, group sampling, several sets) at ``ipc``, soft and hard side by
    side with their margins over the random real subset and over the round trip of that subset through
    the setting's models (where measured, with as many sets), best soft accuracy first. The same setting
    measured with another number of sets is another row."""
    settings: dict[tuple, dict[str, Any]] = {}
    for record in records:
        variant = record["variant"]
        is_setting = record["method"] == "d3hr" and (variant == "d3hr" or variant.startswith("depth "))
        if not is_setting or record["ipc"] != ipc or set_count(record) == 1:
            continue
        row = settings.setdefault(tuple(record.get(k) for k in SETTING), {k: record.get(k) for k in SETTING})
        reference = matching(records, RANDOM_SUBSET, record, ("ipc", "protocol"))
        row[record["protocol"]], row[f"{record['protocol']}_mean"] = accuracy(record), record["acc_mean"]
        row[f"{record['protocol']}_ahead"] = margin(record, reference)
        round_trip = matching(records, ROUND_TRIP_SUBSET, record,
                              ("ipc", "protocol", "denoiser", "autoencoder", "guidance", "timestep"))
        if round_trip is not None:
            row[f"{record['protocol']}_round_trip"] = f"{round_trip['acc_mean']:.2f}"
            row[f"{record['protocol']}_over_round_trip"] = margin(record, round_trip)
    return sorted(settings.values(), key=lambda r: -r.get("soft_mean", 0.0))


def quality_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record as a table row, D3HR's beside the random real subsets with as many sets."""
    rows = []
    for record in sorted(records, key=lambda r: (r["method"] != "d3hr", r["ipc"], r["protocol"], r["variant"],
                                                 r.get("autoencoder") or "", -(r.get("timestep") or 0))):
        is_d3hr = record["method"] == "d3hr"
        reference = matching(records, RANDOM_SUBSET, record, ("ipc", "protocol")) if is_d3hr else None
        storage = same_storage_reference(records, record) if is_d3hr else None
        rows.append({**record, "sets": set_count(record), "accuracy": accuracy(record),
                     "set_means": ", ".join(f"{a:.1f}" for a in record.get("set_means", [])) or None,
                     "reference": f"{reference['acc_mean']:.2f}" if reference else None,
                     "ahead": margin(record, reference),
                     "storage_reference": (f"{storage['acc_mean']:.2f} ({storage['samples_per_class']}/class)"
                                           if storage else None)})
    return rows


def stored_bytes_summary(records: list[dict[str, Any]]) -> str:
    """The bytes per class a D3HR set stores, once per latent shape the same-storage cells measured.

    Args:
        records: the benchmark's records.

    Returns:
        E.g. ``"1592 bytes, 6296 bytes with 4x14x14 latents"`` (``"?"`` before any same-storage cell).
    """
    entries = (f"{r['d3hr_bytes_per_class']} bytes"
               + (f" with {latents_of(r['autoencoder'])}" if r.get("autoencoder") else "")
               for r in records if r.get("variant") == SAME_STORAGE_SUBSET and r["protocol"] == "soft")
    return ", ".join(dict.fromkeys(entries)) or "?"  # one entry per size, however many cells measured it


def write_tables() -> None:
    records = load_records("d3hr")
    columns = [("method", "method"), ("variant", "variant"), ("denoiser", "denoiser"), ("autoencoder", "autoencoder"),
               ("guidance", "guidance"),
               ("IPC", "ipc"), ("protocol", "protocol"), ("timestep", "timestep"), ("candidates", "num_candidates"),
               ("sets", "sets"), ("runs per set", "runs"), ("accuracy", "accuracy"), ("set means", "set_means"),
               ("fit images/class", "fit_per_class"), ("random subset, same count", "reference"),
               ("ahead of it", "ahead"), ("random subset, same storage", "storage_reference"),
               ("distill s per set", "distill_seconds"), ("eval s per set", "eval_seconds")]
    current = quality_rows([r for r in records if set_count(r) > 1])
    earlier = quality_rows([r for r in records if set_count(r) == 1])
    storage_bytes = stored_bytes_summary(records)
    ablations = markdown_table(ablation_rows(records), [
        ("denoiser", "denoiser"), ("autoencoder", "autoencoder"), ("guidance", "guidance"), ("timestep", "timestep"),
        ("IPC", "ipc"),
        ("protocol", "protocol"), ("sets", "sets"), ("fit images/class", "fit_per_class"), ("candidates", "candidates"),
        ("D3HR", "d3hr"), ("DDPM noising instead of inversion", "ddpm"), ("inversion ahead", "inversion_ahead"),
        ("one random draw instead of group sampling", "draw"), ("group sampling ahead", "groups_ahead")])
    notes = ("Fashion-MNIST, ConvNet-3, on the 10,000 test images. Each cell is `sets` independent sets (set k made "
             "with seed k: D3HR's group-search seed, the random subset's draw), each trained `runs per set` times; "
             "accuracy = mean ± std over every trained network, `set means` = each set's mean. soft = D3HR's "
             "protocol (batch-norm ConvNet-3 teacher trained on the full training set, CutMix, KL at T = 20, AdamW); "
             "hard = the DC/DSA protocol. Gaussians fitted on a seeded subset of training images per class. "
             "`random real subset, autoencoded` = the same real subsets encoded and decoded by the "
             "autoencoder of its `autoencoder` column, what the autoencoder alone costs a set of that size. "
             "`random real subset, inverted and regenerated` = the same subsets encoded, DDIM-inverted by the "
             "`denoiser` to the `timestep` and regenerated from there, as D3HR regenerates its samples: D3HR's "
             "gap to it is what drawing from the fitted Gaussians costs or gains over the real images themselves. "
             "`same storage` = the random real subsets with as many uint8 images per class as the bytes a D3HR "
             "set stores per class (float32 "
             f"Gaussian mean and std, and its kept group's seed, index and chunk count; {storage_bytes}), "
             "whatever its IPC. `autoencoder`: blank = the shipped autoencoder; `decoder fine-tuned N steps` = its "
             "decoder fine-tuned with its encoder frozen (same latents, same DiT; `examples/train_autoencoder.py "
             "--train_part decoder`); `CxHxW latents` = an autoencoder with latents of that shape "
             "(`examples/train_autoencoder.py --latent_channels C --downsampling D`) and a denoiser trained on "
             "them, named in `denoiser`. Generated by `benchmarks/d3hr.py` from `benchmarks/results/d3hr.json`.\n")
    write_markdown("d3hr", "# D3HR quality and ablations\n\n" + markdown_table(current, columns) + "\n" + notes
                   + "\n**D3HR at IPC 10, setting by setting** (every setting measured with several sets, best soft "
                   "accuracy first; `ahead` = its mean minus the random real subset's of the same count and protocol; "
                   "`round trip` = that subset inverted and regenerated by the setting's denoiser, guidance and "
                   "timestep, `ahead of it` = D3HR's mean minus the round trip's):\n\n"
                   + markdown_table(setting_rows(records), [
                       ("denoiser", "denoiser"), ("autoencoder", "autoencoder"), ("guidance", "guidance"),
                       ("timestep", "timestep"), ("fit images/class", "fit_per_class"), ("candidates", "num_candidates"),
                       ("sets", "sets"), ("soft", "soft"), ("ahead (soft)", "soft_ahead"), ("round trip (soft)", "soft_round_trip"),
                       ("ahead of it (soft)", "soft_over_round_trip"), ("hard", "hard"), ("ahead (hard)", "hard_ahead"),
                       ("round trip (hard)", "hard_round_trip"), ("ahead of it (hard)", "hard_over_round_trip")])
                   + "\n**The paper's ablations** (each against D3HR with the same denoiser, guidance, IPC, protocol, fit "
                   "images, sets and, for DDPM noising, candidate count; `ahead` = D3HR's mean minus the "
                   "ablation's, in points, a positive margin being the paper's direction):\n\n" + ablations
                   + "\n**Earlier cells, one set each** (one D3HR set and one random subset, the seed-0 draw, "
                   "each trained `runs per set` times; kept for the denoiser's learning curve):\n\n"
                   + markdown_table(earlier, columns))
    speed = load_records("d3hr_speed")
    write_markdown("d3hr_speed", "# D3HR speed (2-core CPU)\n\n" + markdown_table(speed, [
        ("measure", "measure"), ("detail", "detail"), ("threads", "threads"), ("value", "value"), ("unit", "unit"),
        ("seconds", "seconds")]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default=str(DEFAULT_PIPELINE_PATH))
    parser.add_argument("--fit_per_class", type=int, default=200)
    parser.add_argument("--depths", type=int, nargs="+", default=[11, 21, 31, 41])
    parser.add_argument("--default_depth", type=int, default=D3HRConfig().inversion_steps,
                        help="inversion steps of the main cells (always among the fitted depths)")
    parser.add_argument("--guidance", type=float, default=D3HRConfig().guidance_scale)
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--speed_candidates", type=int, default=1_000_000)
    parser.add_argument("--eval_epochs", type=int, default=300)
    parser.add_argument("--sets", type=int, default=8, help="independent sets per cell (set k made with seed k)")
    parser.add_argument("--runs", type=int, default=1, help="trained networks per set")
    parser.add_argument("--references", nargs="+", choices=list(REFERENCES), default=list(REFERENCES),
                        help="which reference cells the references family runs (random real subsets as they are, "
                             "autoencoded, inverted and regenerated, of a D3HR set's bytes)")
    parser.add_argument("--ipcs", type=int, nargs="+", default=[1, 10], choices=[1, 10],
                        help="IPCs of the main, ablation and reference cells")
    parser.add_argument("--protocols", nargs="+", default=["soft", "hard"], choices=["soft", "hard"],
                        help="protocols of the main, ablation and reference cells")
    parser.add_argument("--teacher_epochs", type=int, default=10)
    parser.add_argument("--skip_speed", action="store_true")
    parser.add_argument("--cells", nargs="+", choices=CELL_FAMILIES, default=list(CELL_FAMILIES),
                        help="which cells to run (d3hr: the main cells; ddpm, draw: the paper's ablations; depths: "
                             "the inversion-depth sweep; references: the random real subsets)")
    parser.add_argument("--speed_only", action="store_true", help="only the speed figures (reuses a saved fit)")
    parser.add_argument("--redo", action="store_true")
    args = parser.parse_args()
    configure_threads(1)
    # One process trains networks on sets of several sizes, with and without a teacher: each is a
    # compiled variant of the same forward, more than dynamo's default of 8 (past it: eager, slower).
    torch._dynamo.config.recompile_limit = 64
    args.depths = sorted(set(args.depths) | {args.default_depth})
    pipe = D3HRPipeline.from_pretrained(args.pipeline)
    pipe.set_progress_bar_config(disable=True)
    train, test = fashion_mnist_tensors("train"), fashion_mnist_tensors("test")
    teacher = train_teacher(train, epochs=args.teacher_epochs, seed=0, cache_dir=ROOT / "runs" / "teachers",
                            torch_compile=True)
    fitted = fit_all(pipe, train, args)
    if not args.skip_speed:
        speed_cells(pipe, fitted, args)
    if not args.speed_only:
        quality_cells(pipe, fitted, train, test, teacher, args)
    write_tables()
    print(json.dumps([r for r in load_records("d3hr") if r["method"] == "d3hr"], indent=1)[:2000])


if __name__ == "__main__":
    main()
