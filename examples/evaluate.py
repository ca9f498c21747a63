"""Evaluates a distilled dataset (a saved folder or a Hub id): train on it, test on the real test set.

Prints accuracy (mean ± std over runs) per architecture next to the random real subsets with the
same storage and the same number of samples, trained with exactly the same protocol.

    python examples/evaluate.py outputs/fashion-mnist-latent-dm-ipc10
    python examples/evaluate.py org/fmnist-latentdm-ipc10 --archs convnet alexnet vgg11 resnet18 --runs 5
    python examples/evaluate.py outputs/... --protocol soft --teacher_epochs 10
"""

from __future__ import annotations

import argparse
import json

import torch

from latent_distill import (
    DistilledDataset,
    EvaluationResult,
    HardLabelProtocol,
    SoftLabelProtocol,
    dataset_to_tensors,
    evaluate_synthetic,
    list_networks,
    random_subset_reference,
    uint8_to_float,
)
from latent_distill.data import (
    evaluation_split,
    load_image_classification,
    streamed_training_split,
)
from latent_distill.evaluation import train_teacher


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("distilled", help="folder written by DistilledDataset.save_pretrained, or a Hub dataset id")
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="source dataset with train/test splits: 'fashion-mnist' or a datasets id / folder")
    parser.add_argument("--eval_split", default=None,
                        help="held-out split to evaluate on (default: 'test', else 'validation')")
    parser.add_argument("--protocol", default="hard", choices=["hard", "soft"])
    parser.add_argument("--archs", nargs="+", default=["convnet"], choices=list_networks())
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--augmentation", default=None, help="hard: dsa | dsa_cutmix | none")
    parser.add_argument("--teacher_epochs", type=int, default=10)
    parser.add_argument("--cache_dir", default="runs/teachers")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def build_protocol(args: argparse.Namespace, arch: str):
    if args.protocol == "hard":
        return HardLabelProtocol(arch=arch, epochs=args.epochs, augmentation=args.augmentation or "dsa")
    return SoftLabelProtocol(arch=arch, epochs=args.epochs)


def report(arch: str, name: str, result: EvaluationResult, samples_per_class: int, **label: str) -> dict:
    """Prints one result and returns its table row (``label``: ``method=`` or ``reference=``)."""
    print(f"{arch:10s} {name:30s} {result}", flush=True)
    return result.to_row(**label, samples_per_class=samples_per_class)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    distilled = DistilledDataset.from_pretrained(args.distilled)
    if distilled.images is None:
        raise SystemExit(f"{args.distilled} holds no images: decode or regenerate it first "
                         "(LatentDistillationPipeline.decode / D3HRPipeline.regenerate).")
    splits = load_image_classification(args.dataset)
    channels, resolution = int(distilled.images.shape[1]), int(distilled.images.shape[-1])
    train = streamed_training_split(splits["train"], resolution, channels)  # subsets decode only their rows
    test = dataset_to_tensors(evaluation_split(splits, args.eval_split), resolution, channels,
                              class_names=distilled.class_names)
    teacher = None
    if args.protocol == "soft":
        teacher = train_teacher(train.load(), epochs=args.teacher_epochs, seed=args.seed, cache_dir=args.cache_dir)

    images, labels = uint8_to_float(distilled.images), distilled.labels
    per_class = int(torch.bincount(labels).max())
    # Random real subsets of the same storage (IPC images per class) and of the same sample count.
    references = {"random subset, same storage": distilled.ipc}
    if per_class != distilled.ipc:
        references["random subset, same count"] = per_class

    rows = []
    for arch in args.archs:
        protocol = build_protocol(args, arch)
        options = dict(runs=args.runs, seed=args.seed, teacher=teacher, torch_compile=args.compile)
        result = evaluate_synthetic(images, labels, test, protocol, **options)
        rows.append(report(arch, "distilled", result, per_class, method=distilled.method))
        for name, count in references.items():
            result = random_subset_reference(train, test, count, protocol, **options)
            rows.append(report(arch, name, result, count, reference=name))
    print(json.dumps(rows, indent=2, ensure_ascii=False))
    return rows


if __name__ == "__main__":
    main()
