"""Distils an image-classification dataset, saves it as a Hub-layout dataset folder, evaluates it.

With no arguments: LatentDM on Fashion-MNIST (offline), IPC-10 storage budget, the shipped
autoencoder; the distilled set is written to ``outputs/fashion-mnist-latent-dm-ipc10`` and a
ConvNet-3 trained on its decoded images is compared with a random real subset of the same storage.

    accelerate launch examples/distill.py
    accelerate launch examples/distill.py --method pixel-dm --ipc 1 --iterations 500
    accelerate launch examples/distill.py --method d3hr --ipc 10 --max_samples_per_class 1000
    accelerate launch examples/distill.py --method d3hr --pretrained fashion-mnist-14x14   # 4x14x14 latents
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
    SHIPPED_PIPELINES,
    D3HRConfig,
    D3HRPipeline,
    HardLabelProtocol,
    LatentDistillationPipeline,
    SoftLabelProtocol,
    config_for_method,
    dataset_to_tensors,
    evaluate_synthetic,
    list_presets,
    random_subset_reference,
    shipped_pipeline_path,
    uint8_to_float,
)
from latent_distill.data import (
    dataset_id,
    evaluation_split,
    load_image_classification,
    streamed_training_split,
    table_fingerprint,
)
from latent_distill.evaluation import train_teacher
from latent_distill.representations import list_skip_connections


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="latent-dm", choices=[*list_presets(), "d3hr"])
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="'fashion-mnist' (offline default), a Hub dataset id or a local dataset folder")
    parser.add_argument("--image_column", default=None)
    parser.add_argument("--label_column", default=None)
    parser.add_argument("--pretrained", default=str(DEFAULT_PIPELINE_PATH),
                        help="pipeline folder or Hub id holding the autoencoder (and, for d3hr and ld3m, the "
                             f"denoiser), or a shipped pipeline's name: {', '.join(SHIPPED_PIPELINES)}")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--budget", default="storage", choices=["storage", "count"])
    parser.add_argument("--samples_per_class", type=int, default=None)
    parser.add_argument("--resample", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--learning_rate", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    ld3m = parser.add_argument_group("ld3m")
    ld3m.add_argument("--skip_connection", default=None, choices=list_skip_connections(),
                      help="LD3M's skip connection from the initial latent into each denoising step: 'paper' (Eq. 7, "
                           "the presets' default) or 'reference' (the authors' code: mixed into the x0-prediction "
                           "with the clean latent; a far better starting set with small denoisers)")
    d3hr = parser.add_argument_group("d3hr")
    d3hr.add_argument("--num_candidates", type=int, default=100_000, help="candidate groups scored per class")
    d3hr.add_argument("--inversion_steps", type=int, default=31)
    d3hr.add_argument("--num_inference_steps", type=int, default=50)
    d3hr.add_argument("--guidance_scale", type=float, default=None, help="default: D3HRConfig's")
    d3hr.add_argument("--max_samples_per_class", type=int, default=None,
                      help="fit each class's Gaussian on at most this many images (inversion is the costly part)")
    parser.add_argument("--output_dir", default=None, help="default: outputs/<dataset>-<method>-ipc<N>")
    parser.add_argument("--cache_dir", default="runs/latent-cache")
    parser.add_argument("--checkpoint_dir", default=None, help="default: runs/<output name>")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--eval_split", default=None,
                        help="held-out split to evaluate on (default: 'test', else 'validation')")
    parser.add_argument("--eval_runs", type=int, default=3)
    parser.add_argument("--eval_epochs", type=int, default=300)
    parser.add_argument("--eval_protocol", default=None, choices=["hard", "soft"],
                        help="default: the method's own (soft labels for d3hr, hard labels otherwise)")
    parser.add_argument("--eval_augmentation", default="dsa", choices=["dsa", "dsa_cutmix", "none"],
                        help="augmentation of the hard-label protocol")
    parser.add_argument("--teacher_epochs", type=int, default=10, help="soft-label protocol: teacher training epochs")
    parser.add_argument("--teacher_cache_dir", default="runs/teachers", help="soft-label protocol: cached teachers")
    parser.add_argument("--eval_compile", action=argparse.BooleanOptionalAction, default=True,
                        help="torch.compile the evaluation networks (about 2x faster on CPU; needs a C++ compiler)")
    parser.add_argument("--no_eval", action="store_true")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_repo_id", default=None)
    parser.add_argument("--hub_private", action="store_true")
    args = parser.parse_args(argv)
    args.pretrained = str(shipped_pipeline_path(args.pretrained))
    return args


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def distil_gradient(args: argparse.Namespace, pipe: LatentDistillationPipeline, train, source: dict,
                    checkpoint_dir: Path):
    """LatentDD and the pixel baselines: a :class:`LatentDistillationPipeline` run of a preset."""
    config = config_for_method(args.method, ipc=args.ipc, budget=args.budget, samples_per_class=args.samples_per_class,
                               resample=args.resample, iterations=args.iterations,
                               learning_rate=args.learning_rate, seed=args.seed,
                               representation_kwargs={"skip": args.skip_connection} if args.skip_connection else None)
    if args.skip_connection and config.representation != "diffusion":
        raise SystemExit(f"--skip_connection is an LD3M option; {args.method} does not render through a denoiser.")
    return pipe(train, config, cache_dir=args.cache_dir, checkpoint_dir=checkpoint_dir, resume=args.resume,
                source_dataset=source)


def distil_d3hr(args: argparse.Namespace, pipe: LatentDistillationPipeline, train, source: dict,
                checkpoint_dir: Path):
    """D3HR: a :class:`D3HRPipeline` run (IPC images per class; the set is stored as Gaussians)."""
    if pipe.transformer is None or pipe.scheduler is None:
        raise SystemExit(f"{args.pretrained} holds no class-conditional denoiser (transformer/ and scheduler/): "
                         "D3HR needs one; train it with examples/train_latent_diffusion.py --pipeline_dir ...")
    pipe = D3HRPipeline.from_pipe(pipe)
    overrides = {"guidance_scale": args.guidance_scale} if args.guidance_scale is not None else {}
    config = D3HRConfig(ipc=args.ipc, num_candidates=args.num_candidates, inversion_steps=args.inversion_steps,
                        num_inference_steps=args.num_inference_steps, max_samples_per_class=args.max_samples_per_class,
                        seed=args.seed, **overrides)
    return pipe(train, config, cache_dir=args.cache_dir, checkpoint_dir=checkpoint_dir, resume=args.resume,
                source_dataset=source)


DISTILLERS = {"d3hr": distil_d3hr}
"""Methods with their own pipeline; every other method is a gradient-based preset."""

SOFT_LABEL_METHODS = {"d3hr"}


def evaluation_protocol(args: argparse.Namespace, train):
    """The protocol (and teacher) of the evaluation: the method's own unless ``--eval_protocol`` says."""
    kind = args.eval_protocol or ("soft" if args.method in SOFT_LABEL_METHODS else "hard")
    if kind == "hard":
        return HardLabelProtocol(epochs=args.eval_epochs, augmentation=args.eval_augmentation), None
    teacher = train_teacher(train.load(), epochs=args.teacher_epochs, seed=args.seed, cache_dir=args.teacher_cache_dir,
                            torch_compile=args.eval_compile)
    return SoftLabelProtocol(epochs=args.eval_epochs), teacher


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    state = PartialState()
    name = f"{Path(args.dataset).name}-{args.method}-ipc{args.ipc}"
    output_dir = Path(args.output_dir or f"outputs/{name}")
    checkpoint_dir = Path(args.checkpoint_dir or f"runs/{name}")

    splits = load_image_classification(args.dataset)
    pipe = LatentDistillationPipeline.from_pretrained(args.pretrained)
    resolution, channels = int(pipe.vae.config.sample_size), int(pipe.vae.config.in_channels)
    # Images are decoded batch by batch when read (class names become labels), so memory stays flat in
    # the split's size; the pipeline gets this split, so the table it reads is named here.
    train = streamed_training_split(splits["train"], resolution, channels, args.image_column, args.label_column)
    source = {"id": dataset_id(args.dataset), "fingerprint": table_fingerprint(splits["train"])}
    output = DISTILLERS.get(args.method, distil_gradient)(args, pipe, train, source, checkpoint_dir)
    summary = {"method": args.method, "ipc": args.ipc, "budget": output.record["budget"],
               "samples_per_class": output.record["samples_per_class"],
               "distill_seconds": round(output.distill_seconds, 1)}

    evaluation = []
    if not args.no_eval and state.is_main_process:
        test = dataset_to_tensors(evaluation_split(splits, args.eval_split), resolution, channels, args.image_column,
                                  args.label_column, class_names=train.class_names)
        protocol, teacher = evaluation_protocol(args, train)
        started = time.time()
        distilled = evaluate_synthetic(uint8_to_float(output.images), output.labels, test, protocol, teacher=teacher,
                                       runs=args.eval_runs, seed=args.seed, torch_compile=args.eval_compile)
        reference = random_subset_reference(train, test, args.ipc, protocol, teacher=teacher, runs=args.eval_runs,
                                            seed=args.seed, torch_compile=args.eval_compile)
        same_storage = "same storage" if output.record["budget"] == "storage" else "same count"
        evaluation = [
            distilled.to_row(method=args.method, samples_per_class=summary["samples_per_class"]),
            reference.to_row(reference=f"random subset, {same_storage}", samples_per_class=args.ipc),
        ]
        summary.update(protocol=protocol.kind, accuracy=f"{distilled.acc_mean:.2f} ± {distilled.acc_std:.2f}",
                       random_subset=f"{reference.acc_mean:.2f} ± {reference.acc_std:.2f}",
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
