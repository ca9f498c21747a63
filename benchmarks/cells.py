"""Benchmark cells: run one unless it is already recorded, time it, record its peak memory.

A cell is one measured configuration of a benchmark (a method at an IPC, a reference, an ablation).
Its record is upserted into ``benchmarks/results/<benchmark>.json`` as soon as it is computed, so an
interrupted benchmark resumes at the first cell without a record.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import torch

from latent_distill.evaluation import evaluate_synthetic

from .results_io import has_record, peak_rss_mb, upsert_record


def run_cell(benchmark: str, fields: Mapping[str, Any], compute: Callable[[], dict[str, Any]], key: Sequence[str],
             redo: bool = False, lookup: Optional[Mapping[str, Any]] = None, timed: bool = True,
             summary: str = "{method} ipc {ipc}: {acc_mean} ± {acc_std}",
             dataset: str = "fashion-mnist") -> Optional[dict[str, Any]]:
    """Computes one cell and upserts its record, unless a record of the cell exists.

    The record is ``{"benchmark", "dataset", **fields, **compute()}``, then ``cell_seconds`` (the
    wall time of ``compute``, when ``timed``) and ``peak_rss_mb`` (the process's peak so far).

    Args:
        benchmark: the benchmark's name (its results file).
        fields: what identifies and describes the cell, known before it runs.
        compute: measures the cell; returns the measured fields.
        key: record fields that identify a cell: a record with the same values is replaced.
        redo: compute the cell even if it is recorded.
        lookup: field values that find the cell's existing record (default: ``fields``' values of
            ``key``, ``None`` for those it lacks).
        timed: add ``cell_seconds``.
        summary: printed once the cell is recorded, formatted with the record's fields.
        dataset: the record's ``dataset``.

    Returns:
        The record written, or ``None`` when the cell was already recorded.
    """
    lookup = {k: fields.get(k) for k in key} if lookup is None else dict(lookup)
    if not redo and has_record(benchmark, **lookup):
        print(f"skip (done): {lookup}")
        return None
    started = time.time()
    record = {"benchmark": benchmark, "dataset": dataset, **fields, **compute()}
    if timed:
        record["cell_seconds"] = round(time.time() - started, 1)
    record["peak_rss_mb"] = peak_rss_mb()
    upsert_record(benchmark, record, key)
    print(summary.format(**record), flush=True)
    return record


def evaluate_sets(make_set: Callable[[int], tuple[torch.Tensor, torch.Tensor]], test, protocol,
                  teacher: Optional[torch.nn.Module], sets: int, runs: int, torch_compile: bool = True) -> dict[str, Any]:
    """Evaluates ``sets`` independent sets, set ``k`` made by ``make_set(k)``, each trained ``runs``
    times (networks seeded ``k * runs``, ..., so set ``k`` of every method meets the same networks).

    Args:
        make_set: ``seed -> (float images in [-1, 1], int64 labels)``.
        test: the real test split.
        protocol: the evaluation protocol.
        teacher: the soft-label protocol's teacher (``None`` for hard labels).
        sets: independent sets.
        runs: trained networks per set.
        torch_compile: compile the networks trained.

    Returns:
        The cell's measured fields: accuracy mean and std over every (set, run), each set's mean,
        and the seconds per set spent making and evaluating sets.
    """
    accuracies, set_means, make_seconds, eval_seconds = [], [], 0.0, 0.0
    for set_seed in range(sets):
        started = time.time()
        images, labels = make_set(set_seed)
        make_seconds += time.time() - started
        result = evaluate_synthetic(images, labels, test, protocol, runs=runs, seed=set_seed * runs,
                                    teacher=teacher, torch_compile=torch_compile, progress=False)
        accuracies += result.accuracies
        set_means.append(round(result.acc_mean, 2))
        eval_seconds += result.seconds
    return {"arch": "convnet-3", "eval_epochs": protocol.epochs, "sets": sets, "runs": runs,
            "acc_mean": round(statistics.fmean(accuracies), 2), "acc_std": round(statistics.pstdev(accuracies), 2),
            "accuracies": [round(a, 2) for a in accuracies], "set_means": set_means,
            "distill_seconds": round(make_seconds / sets, 1), "eval_seconds": round(eval_seconds / sets, 1)}
