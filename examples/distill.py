"""Distils an image-classification dataset, saves it as a Hub-layout dataset folder, evaluates it.

With no arguments: LatentDM on Fashion-MNIST (offline), IPC-10 storage budget, the shipped
autoencoder; the distilled set is written to ``outputs/fashion-mnist-latent-dm-ipc10`` and a
ConvNet-3 trained on its decoded images is compared with a random real subset of the same storage.

    accelerate launch examples/distill.py
    accelerate launch examples/distill.py --method pixel-dm --ipc 1 --iterations 500
    accelerate launch examples/distill.py --dataset org/my-images --pretrained org/my-vae-pipeline
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from accelerate import PartialState

from latent_distill import (
    DEFAULT_PIPELINE_PATH,
    HardLabelProtocol,
    LatentDistillationPipeline,
    config_for_method,
    dataset_to_tensors,
    evaluate_synthetic,
    list_presets,
    random_subset,
    uint8_to_float,
)
from latent_distill.data import dataset_id, load_image_classification


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="latent-dm", choices=list_presets())
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="'fashion-mnist' (offline default), a Hub dataset id or a local dataset folder")
    parser.add_argument("--image_column", default=None)
    parser.add_argument("--label_column", default=None)
    parser.add_argument("--pretrained", default=str(DEFAULT_PIPELINE_PATH),
                        help="pipeline folder or Hub id holding the autoencoder")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--budget", default="storage", choices=["storage", "count"])
    parser.add_argument("--samples_per_class", type=int, default=None)
    parser.add_argument("--resample", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--learning_rate", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default=None, help="default: outputs/<dataset>-<method>-ipc<N>")
    parser.add_argument("--cache_dir", default="runs/latent-cache")
    parser.add_argument("--checkpoint_dir", default=None, help="default: runs/<output name>")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--eval_runs", type=int, default=3)
    parser.add_argument("--eval_epochs", type=int, default=300)
    parser.add_argument("--eval_augmentation", default="dsa", choices=["dsa", "dsa_cutmix", "none"])
    parser.add_argument("--eval_compile", action=argparse.BooleanOptionalAction, default=True,
                        help="torch.compile the evaluation networks (about 2x faster on CPU; needs a C++ compiler)")
    parser.add_argument("--no_eval", action="store_true")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_repo_id", default=None)
    parser.add_argument("--hub_private", action="store_true")
    return parser.parse_args(argv)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    state = PartialState()
    name = f"{Path(args.dataset).name}-{args.method}-ipc{args.ipc}"
    output_dir = Path(args.output_dir or f"outputs/{name}")
    checkpoint_dir = Path(args.checkpoint_dir or f"runs/{name}")

    pipe = LatentDistillationPipeline.from_pretrained(args.pretrained)
    splits = load_image_classification(args.dataset)
    config = config_for_method(args.method, ipc=args.ipc, budget=args.budget, samples_per_class=args.samples_per_class,
                               resample=args.resample, iterations=args.iterations,
                               learning_rate=args.learning_rate, seed=args.seed)
    resolution = config.resolution or int(pipe.vae.config.sample_size)
    train = dataset_to_tensors(splits["train"], resolution, pipe.vae.config.in_channels,
                               args.image_column, args.label_column)
    output = pipe(train, config, cache_dir=args.cache_dir, checkpoint_dir=checkpoint_dir, resume=args.resume)
    output.config["source_dataset"].update(id=dataset_id(args.dataset), fingerprint=splits["train"]._fingerprint)
    summary = {"method": args.method, "ipc": args.ipc, "budget": args.budget,
               "samples_per_class": output.config["samples_per_class"],
               "distill_seconds": round(output.distill_seconds, 1)}

    evaluation = []
    if not args.no_eval and state.is_main_process:
        test = dataset_to_tensors(splits["test"], resolution, pipe.vae.config.in_channels,
                                  args.image_column, args.label_column)
        protocol = HardLabelProtocol(epochs=args.eval_epochs, augmentation=args.eval_augmentation)
        started = time.time()
        distilled = evaluate_synthetic(uint8_to_float(output.images), output.labels, test, protocol,
                                       runs=args.eval_runs, seed=args.seed, torch_compile=args.eval_compile)
        subset_images, subset_labels = random_subset(train, args.ipc, seed=args.seed)
        reference = evaluate_synthetic(subset_images, subset_labels, test, protocol,
                                       runs=args.eval_runs, seed=args.seed, torch_compile=args.eval_compile)
        evaluation = [
            distilled.to_row(method=args.method, samples_per_class=summary["samples_per_class"]),
            reference.to_row(reference="random subset, same storage", samples_per_class=args.ipc),
        ]
        summary.update(accuracy=f"{distilled.acc_mean:.2f} ± {distilled.acc_std:.2f}",
                       random_subset_same_storage=f"{reference.acc_mean:.2f} ± {reference.acc_std:.2f}",
                       eval_seconds=round(time.time() - started, 1))

    if state.is_main_process:
        distilled_set = output.to_distilled_dataset(evaluation=evaluation)
        distilled_set.save_pretrained(output_dir)
        summary.update(output_dir=str(output_dir), peak_rss_mb=round(peak_rss_mb(), 1))
        if args.push_to_hub:
            if not args.hub_repo_id:
                raise SystemExit("--push_to_hub needs --hub_repo_id org/name")
            distilled_set.push_to_hub(args.hub_repo_id, private=args.hub_private, local_dir=output_dir)
            summary["hub_repo_id"] = args.hub_repo_id
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


if __name__ == "__main__":
    main()
