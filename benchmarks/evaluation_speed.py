"""Evaluation speed: one hard-label evaluation of an IPC-10 set (100 real Fashion-MNIST images,
ConvNet-3, 300 epochs, DSA), measured side by side in one run.

- ``loop-baseline``: the structure of the public reference loop (``evaluate_synset`` of the
  DatasetCondensation code): a ``DataLoader`` over a ``TensorDataset``, fp32 eager, DSA per batch,
  the learning rate dropped by rebuilding the optimiser, testing through a ``DataLoader`` of 256.
- ``latent-distill`` eager bf16 (the default), and with ``torch.compile``.

Writes ``benchmarks/results/evaluation_speed.json`` / ``.md`` with the seconds, accuracy and the
speed-up ratio against the baseline.

    python -m benchmarks.evaluation_speed [--threads 2]
"""

from __future__ import annotations

import argparse

import torch

from latent_distill import (
    HardLabelProtocol,
    evaluate_synthetic,
    fashion_mnist_tensors,
    random_subset,
)
from latent_distill.data import uint8_to_float
from latent_distill.evaluation import configure_threads

from .reference_loop import reference_loop
from .results_io import markdown_table, peak_rss_mb, upsert_record, write_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="seeds per variant (accuracy as mean, time per run)")
    args = parser.parse_args()
    threads = configure_threads(args.threads)
    train, test = fashion_mnist_tensors("train"), fashion_mnist_tensors("test")
    images, labels = random_subset(train, 10, seed=args.seed)

    test_images = uint8_to_float(test.images)
    baseline = [reference_loop(images, labels, test_images, test.labels, args.epochs, args.seed + run)
                for run in range(args.runs)]
    base_accs = torch.tensor([acc for acc, _ in baseline])
    base_seconds = sum(seconds for _, seconds in baseline) / args.runs
    rows = [{"variant": "loop-baseline (fp32, DataLoader)", "acc": round(float(base_accs.mean()), 2),
             "acc_std": round(float(base_accs.std()) if args.runs > 1 else 0.0, 2),
             "seconds": round(base_seconds, 1), "ratio": 1.0}]
    for name, bf16, compile_ in (("latent-distill bf16", True, False), ("latent-distill fp32", False, False),
                                 ("latent-distill bf16 + compile", True, True)):
        protocol = HardLabelProtocol(epochs=args.epochs, bf16=bf16)
        if compile_:  # the first call compiles; time a second, warm one
            evaluate_synthetic(images, labels, test, protocol, runs=1, seed=args.seed, torch_compile=True,
                               progress=False)
        result = evaluate_synthetic(images, labels, test, protocol, runs=args.runs, seed=args.seed,
                                    torch_compile=compile_, progress=False)
        seconds = result.seconds / args.runs
        rows.append({"variant": name, "acc": round(result.acc_mean, 2), "acc_std": round(result.acc_std, 2),
                     "seconds": round(seconds, 1), "train_seconds": round(result.train_seconds / args.runs, 1),
                     "test_seconds": round(result.test_seconds / args.runs, 1),
                     "ratio": round(base_seconds / seconds, 2)})
    for row in rows:
        upsert_record("evaluation_speed", {"benchmark": "evaluation_speed", "dataset": "fashion-mnist", "ipc": 10,
                                           "arch": "convnet-3", "eval_epochs": args.epochs, "threads": threads,
                                           "peak_rss_mb": peak_rss_mb(), **row}, key=("variant", "threads"))
        print(row, flush=True)
    table = markdown_table(rows, [("variant", "variant"), ("accuracy", "acc"), ("std", "acc_std"),
                                  ("seconds per run", "seconds"),
                                  ("speed-up vs baseline", "ratio")])
    write_markdown("evaluation_speed", "# Hard-label evaluation speed (IPC 10, 300 epochs, DSA, ConvNet-3)\n\n"
                   f"{threads} thread(s), {args.runs} seeds per variant, measured side by side in one run by `benchmarks/evaluation_speed.py`.\n\n"
                   + table)


if __name__ == "__main__":
    main()
