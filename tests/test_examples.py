"""The example scripts run end to end on tiny models and data (offline)."""

import importlib.util
import json
from pathlib import Path

import datasets
import pytest
import torch

from latent_distill import DistilledDataset, LatentDistillationPipeline
from latent_distill.data import load_image_classification, table_fingerprint
from latent_distill.testing import (
    make_image_dataset,
    make_tiny_dit,
    make_tiny_pipeline,
    make_tiny_vae,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_dataset(folder: Path, **splits: datasets.Dataset) -> Path:
    """Writes each split as ``folder/<split>.parquet``, a local dataset the examples' ``--dataset`` reads."""
    folder.mkdir()
    for split, dataset in splits.items():
        dataset.to_parquet(str(folder / f"{split}.parquet"))
    return folder


def test_distill_example_writes_an_evaluated_hub_folder(tiny_vae, tmp_path):
    LatentDistillationPipeline(vae=tiny_vae).save_pretrained(tmp_path / "pipeline")
    data_dir = write_dataset(tmp_path / "data", train=make_image_dataset(num_per_class=10, seed=0),
                             test=make_image_dataset(num_per_class=5, seed=1))

    summary = load_example("distill").main([
        "--pretrained", str(tmp_path / "pipeline"), "--dataset", str(data_dir), "--ipc", "1",
        "--iterations", "3", "--eval_epochs", "2", "--eval_runs", "1", "--no-eval_compile",
        "--output_dir", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache"),
        "--checkpoint_dir", str(tmp_path / "ckpt"),
    ])
    assert summary["samples_per_class"] == 4
    assert "random_subset" in summary and "accuracy" in summary
    rows = datasets.load_dataset(str(tmp_path / "out"), "images", split="train")
    assert len(rows) == 8
    restored = DistilledDataset.from_pretrained(tmp_path / "out")
    assert [row.get("method") for row in restored.evaluation][0] == "latent-dm"
    config = json.loads((tmp_path / "out" / "distillation_config.json").read_text())
    assert config["config"]["source_dataset"]["id"] == str(data_dir)
    train = load_image_classification(str(data_dir))["train"]
    assert config["config"]["source_dataset"]["fingerprint"] == table_fingerprint(train)
    assert config["config"]["source_dataset"]["num_samples"] == 20

    rows = load_example("evaluate").main([
        str(tmp_path / "out"), "--dataset", str(data_dir), "--archs", "convnet", "alexnet",
        "--epochs", "1", "--runs", "1", "--no-compile",
    ])
    # Per architecture: the distilled set, the same-storage and the same-count random subsets.
    assert [row.get("method") or row.get("reference") for row in rows] == [
        "latent-dm", "random subset, same storage", "random subset, same count"] * 2
    assert [row["samples_per_class"] for row in rows[:3]] == [4, 1, 4]
    assert all(0.0 <= row["acc_mean"] <= 100.0 for row in rows)


def save_dit_pipeline_and_data(tmp_path: Path) -> Path:
    """Saves a tiny VAE + DiT pipeline to ``tmp_path/pipeline`` and a 2-class parquet dataset
    (6 train / 3 test images per class); returns the data folder."""
    make_tiny_pipeline(num_classes=2).save_pretrained(tmp_path / "pipeline")
    return write_dataset(tmp_path / "data", train=make_image_dataset(num_per_class=6, seed=0),
                         test=make_image_dataset(num_per_class=3, seed=1))


def test_distill_example_runs_d3hr_with_the_soft_label_protocol(tmp_path):
    data_dir = save_dit_pipeline_and_data(tmp_path)
    summary = load_example("distill").main([
        "--method", "d3hr", "--pretrained", str(tmp_path / "pipeline"), "--dataset", str(data_dir), "--ipc", "2",
        "--num_candidates", "16", "--inversion_steps", "3", "--num_inference_steps", "5",
        "--eval_epochs", "2", "--eval_runs", "1", "--teacher_epochs", "1", "--no-eval_compile", "--teacher_cache_dir", str(tmp_path / "teachers"),
        "--output_dir", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache"),
    ])
    assert summary["protocol"] == "soft" and summary["samples_per_class"] == 2 and summary["budget"] == "count"
    restored = DistilledDataset.from_pretrained(tmp_path / "out")
    assert restored.method == "d3hr" and restored.stored_representation == "gaussians"
    assert len(datasets.load_dataset(str(tmp_path / "out"), "images", split="train")) == 4


def test_distill_example_runs_ld3m_and_the_saved_set_rerenders_with_the_recorded_models(tmp_path):
    data_dir = save_dit_pipeline_and_data(tmp_path)
    load_example("distill").main([
        "--method", "ld3m-dm", "--pretrained", str(tmp_path / "pipeline"), "--dataset", str(data_dir), "--ipc", "1",
        "--budget", "count", "--iterations", "2", "--no_eval", "--output_dir", str(tmp_path / "out"),
        "--cache_dir", str(tmp_path / "cache"), "--checkpoint_dir", str(tmp_path / "ckpt"),
        "--skip_connection", "reference",
    ])
    restored = DistilledDataset.from_pretrained(tmp_path / "out")
    assert restored.method == "ld3m-dm" and restored.class_embeddings.shape == (2, 1, 16)
    assert restored.record["distillation"]["representation_kwargs"]["skip"] == "reference"
    recorded = LatentDistillationPipeline.from_distilled(restored)  # models loaded from the recorded folder
    assert torch.equal(recorded.rerender(restored), restored.images)


def test_distill_example_refuses_a_skip_connection_for_methods_without_a_denoiser(tmp_path):
    data_dir = save_dit_pipeline_and_data(tmp_path)
    with pytest.raises(SystemExit, match="--skip_connection is an LD3M option; latent-dm"):
        load_example("distill").main([
            "--method", "latent-dm", "--pretrained", str(tmp_path / "pipeline"), "--dataset", str(data_dir),
            "--skip_connection", "reference", "--no_eval", "--output_dir", str(tmp_path / "out"),
        ])


def test_distill_example_explains_a_missing_denoiser(tiny_vae, tmp_path):
    LatentDistillationPipeline(vae=tiny_vae).save_pretrained(tmp_path / "pipeline")
    data_dir = write_dataset(tmp_path / "data", train=make_image_dataset(num_per_class=3),
                             test=make_image_dataset(num_per_class=3))
    with pytest.raises(SystemExit, match="no class-conditional denoiser"):
        load_example("distill").main(["--method", "d3hr", "--pretrained", str(tmp_path / "pipeline"),
                                      "--dataset", str(data_dir), "--no_eval", "--output_dir", str(tmp_path / "o")])


def test_train_latent_diffusion_resumes_exactly_and_ships_a_pipeline(tmp_path):
    from diffusers import DDIMScheduler, DiTTransformer2DModel
    from safetensors.torch import load_file

    data_dir = write_dataset(tmp_path / "data", train=make_image_dataset(num_per_class=4))
    make_tiny_dit(num_classes=2).save_pretrained(tmp_path / "dit")
    script = load_example("train_latent_diffusion")

    def train(name: str) -> Path:
        pipeline = tmp_path / name
        if not pipeline.exists():
            LatentDistillationPipeline(vae=make_tiny_vae()).save_pretrained(pipeline)
        script.main(["--dataset", str(data_dir), "--pipeline_dir", str(pipeline), "--transformer", str(tmp_path / "dit"),
                     "--checkpoint_dir", str(tmp_path / f"{name}-ckpt"), "--latent_cache", str(tmp_path / "cache"),
                     "--max_steps", "4", "--batch_size", "4", "--checkpoint_every", "1", "--warmup_steps", "1"])
        return pipeline

    uninterrupted = train("straight")
    draw = script.training_batch

    def crash_at_step_two(latents, labels, step, *args):
        if step == 2:
            raise KeyboardInterrupt("simulated crash")
        return draw(latents, labels, step, *args)

    script.training_batch = crash_at_step_two
    try:
        train("resumed")
    except KeyboardInterrupt:
        pass
    script.training_batch = draw
    assert not (tmp_path / "resumed" / "transformer").exists()  # nothing shipped by the crashed run
    resumed = train("resumed")  # continues from the step-2 checkpoint
    weights = [load_file(str(p / "transformer" / "diffusion_pytorch_model.safetensors")) for p in (uninterrupted, resumed)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    pipe = LatentDistillationPipeline.from_pretrained(resumed)
    assert isinstance(pipe.transformer, DiTTransformer2DModel) and isinstance(pipe.scheduler, DDIMScheduler)
    record = json.loads((resumed / "latent_diffusion_training.json").read_text())
    assert record["steps"] == 4 and "_name_or_path" not in json.loads((resumed / "model_index.json").read_text())


def test_train_latent_diffusion_rejects_a_dit_with_too_few_classes(tmp_path):
    data_dir = write_dataset(tmp_path / "data", train=make_image_dataset(num_per_class=2, num_classes=3))
    make_tiny_dit(num_classes=2).save_pretrained(tmp_path / "dit")
    LatentDistillationPipeline(vae=make_tiny_vae()).save_pretrained(tmp_path / "pipe")
    with pytest.raises(ValueError, match="num_embeds_ada_norm >= 3"):
        load_example("train_latent_diffusion").main([
            "--dataset", str(data_dir), "--pipeline_dir", str(tmp_path / "pipe"), "--transformer", str(tmp_path / "dit"),
            "--latent_cache", str(tmp_path / "cache"), "--checkpoint_dir", str(tmp_path / "ckpt"), "--max_steps", "1"])


def test_train_latent_diffusion_refuses_a_folder_without_an_autoencoder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"not a pipeline folder.*vae/config.json.*cp -r"):
        load_example("train_latent_diffusion").main([
            "--pipeline_dir", str(tmp_path / "empty"), "--checkpoint_dir", str(tmp_path / "ckpt"), "--max_steps", "1"])
    assert not (tmp_path / "ckpt").exists()  # refused before any work


def test_distill_example_reads_class_names_and_a_validation_split(tiny_vae, tmp_path):
    """A user's dataset: string labels and a 'validation' split instead of 'test'."""
    LatentDistillationPipeline(vae=tiny_vae).save_pretrained(tmp_path / "pipeline")

    def named(dataset: datasets.Dataset) -> datasets.Dataset:
        names = dataset.features["label"].names
        return dataset.cast_column("label", datasets.Value("string")).map(
            lambda row: {"label": names[int(row["label"])]})

    data_dir = write_dataset(tmp_path / "data", train=named(make_image_dataset(num_per_class=10, seed=0)),
                             validation=named(make_image_dataset(num_per_class=5, seed=1).select(range(5, 10))))
    summary = load_example("distill").main([
        "--pretrained", str(tmp_path / "pipeline"), "--dataset", str(data_dir), "--ipc", "1", "--budget", "count",
        "--iterations", "2", "--eval_epochs", "1", "--eval_runs", "1", "--no-eval_compile",
        "--output_dir", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache"),
        "--checkpoint_dir", str(tmp_path / "ckpt"),
    ])
    assert "accuracy" in summary
    restored = DistilledDataset.from_pretrained(tmp_path / "out")
    assert restored.class_names == ["class_0", "class_1"]  # names recorded, in sorted order


def test_train_latent_diffusion_weights_by_min_snr_and_shapes_a_new_denoiser(tmp_path):
    data_dir = write_dataset(tmp_path / "data", train=make_image_dataset(num_per_class=4))
    LatentDistillationPipeline(vae=make_tiny_vae()).save_pretrained(tmp_path / "pipe")
    script = load_example("train_latent_diffusion")
    common = ["--dataset", str(data_dir), "--pipeline_dir", str(tmp_path / "pipe"), "--resolution", "8",
              "--latent_cache", str(tmp_path / "cache"), "--max_steps", "2", "--batch_size", "4"]
    record = script.main([*common, "--checkpoint_dir", str(tmp_path / "new"), "--snr_gamma", "5",
                          "--num_layers", "1", "--num_attention_heads", "2", "--attention_head_dim", "8",
                          "--patch_size", "2"])
    assert record["args"]["snr_gamma"] == 5.0 and record["steps"] == 2
    config = json.loads((tmp_path / "pipe" / "transformer" / "config.json").read_text())
    assert (config["num_layers"], config["num_attention_heads"], config["attention_head_dim"],
            config["patch_size"]) == (1, 2, 8, 2)
    latent = LatentDistillationPipeline.from_pretrained(tmp_path / "pipe").vae.config.latent_channels
    assert config["in_channels"] == latent and config["sample_size"] != 7  # sized to the tiny latents
    with pytest.raises(ValueError, match="--num_layers shape a new denoiser.*drop --transformer"):
        script.main([*common, "--checkpoint_dir", str(tmp_path / "tuned"), "--transformer",
                     str(tmp_path / "pipe" / "transformer"), "--num_layers", "2"])


def test_denoising_loss_is_the_plain_mean_without_gamma_and_down_weights_clean_timesteps_with_it():
    from diffusers import DDPMScheduler

    script = load_example("train_latent_diffusion")
    scheduler = DDPMScheduler(**script.TRAINING_SCHEDULE)
    predicted, noise = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    timesteps = torch.tensor([0, 999])  # SNR ~1e4 (clamped to 5) and ~4e-5 (kept)
    assert script.denoising_loss(predicted, noise, timesteps, scheduler, None).item() == pytest.approx(1.0)
    weighted = script.denoising_loss(predicted, noise, timesteps, scheduler, 5.0).item()
    snr_clean = scheduler.alphas_cumprod[0] / (1 - scheduler.alphas_cumprod[0])
    assert weighted == pytest.approx(((5.0 / snr_clean) + 1.0).item() / 2, rel=1e-5)


def test_train_autoencoder_fine_tunes_only_the_decoder_and_keeps_the_latent_space(tmp_path):
    data_dir = write_dataset(tmp_path / "data", train=make_image_dataset(num_per_class=4))
    start = make_tiny_vae()
    start.register_to_config(scaling_factor=0.5)
    start.save_pretrained(tmp_path / "vae")
    load_example("train_autoencoder").main([
        "--dataset", str(data_dir), "--init_vae", str(tmp_path / "vae"), "--train_part", "decoder",
        "--pipeline_dir", str(tmp_path / "pipe"), "--checkpoint_dir", str(tmp_path / "ckpt"), "--max_steps", "2",
        "--batch_size", "4", "--warmup_steps", "1", "--learning_rate", "0.01", "--mixed_precision", "no"])
    from diffusers import AutoencoderKL

    tuned = AutoencoderKL.from_pretrained(tmp_path / "pipe" / "vae")
    assert tuned.config.scaling_factor == 0.5  # the latent space, and its scaling, are kept
    before, after = start.state_dict(), tuned.state_dict()
    for name in before:
        same = torch.equal(before[name], after[name])
        if name.startswith(("encoder.", "quant_conv.")):
            assert same, f"{name} changed though the encoder is frozen"
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("decoder."))
    record = json.loads((tmp_path / "pipe" / "autoencoder_training.json").read_text())
    assert record["init_vae"] == "vae" and record["args"]["train_part"] == "decoder"
    assert record["init_record"] is None  # the starting model carried no training record


def test_chained_decoder_fine_tunes_record_every_stage_and_label_their_total(tmp_path):
    from benchmarks.results_io import autoencoder_label, training_stages

    data_dir = write_dataset(tmp_path / "data", train=make_image_dataset(num_per_class=4))
    (tmp_path / "base").mkdir()
    make_tiny_vae().save_pretrained(tmp_path / "base" / "vae")
    base_record = {"dataset": "toy", "args": {"max_steps": 7}, "steps": 7}
    (tmp_path / "base" / "autoencoder_training.json").write_text(json.dumps(base_record))
    assert autoencoder_label(tmp_path / "base") is None  # trained from scratch: no fine-tune
    common = ["--dataset", str(data_dir), "--train_part", "decoder", "--batch_size", "4", "--warmup_steps", "1",
              "--mixed_precision", "no"]
    script = load_example("train_autoencoder")
    script.main([*common, "--init_vae", str(tmp_path / "base" / "vae"), "--pipeline_dir", str(tmp_path / "ft1"),
                 "--checkpoint_dir", str(tmp_path / "ckpt1"), "--max_steps", "2", "--checkpoint_every", "1"])
    with pytest.raises(SystemExit, match="--checkpoint_dir"):  # ckpt1 holds the run from base, not from ft1
        script.main([*common, "--init_vae", str(tmp_path / "ft1" / "vae"), "--pipeline_dir", str(tmp_path / "ft2"),
                     "--checkpoint_dir", str(tmp_path / "ckpt1"), "--max_steps", "3"])
    script.main([*common, "--init_vae", str(tmp_path / "ft1" / "vae"), "--pipeline_dir", str(tmp_path / "ft2"),
                 "--checkpoint_dir", str(tmp_path / "ckpt2"), "--max_steps", "3"])
    stages = training_stages(json.loads((tmp_path / "ft2" / "autoencoder_training.json").read_text()))
    assert [stage["steps"] for stage in stages] == [7, 2, 3]
    assert autoencoder_label(tmp_path / "ft1") == "decoder fine-tuned 2 steps"
    assert autoencoder_label(tmp_path / "ft2") == "decoder fine-tuned 5 steps"


@pytest.mark.parametrize("shape_flags, latent_shape", [(["--latent_channels", "8"], (8, 7, 7)),
                                                      (["--downsampling", "1"], (4, 14, 14))])
def test_train_autoencoder_builds_a_fresh_autoencoder_of_the_latent_shape_asked_for(tmp_path, shape_flags,
                                                                                      latent_shape):
    data_dir = write_dataset(tmp_path / "data", train=make_image_dataset(num_per_class=2))
    load_example("train_autoencoder").main([
        "--dataset", str(data_dir), *shape_flags, "--pipeline_dir", str(tmp_path / "pipe"),
        "--checkpoint_dir", str(tmp_path / "ckpt"), "--max_steps", "1", "--batch_size", "2", "--warmup_steps", "1",
        "--mixed_precision", "no"])
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tmp_path / "pipe" / "vae")
    with torch.no_grad():
        assert tuple(vae.encode(torch.zeros(1, 1, 28, 28)).latent_dist.mean.shape[1:]) == latent_shape


def test_train_autoencoder_refuses_latent_channels_for_an_existing_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_example("train_autoencoder").main(["--init_vae", str(tmp_path / "vae"), "--latent_channels", "8",
                                                "--checkpoint_dir", str(tmp_path / "ckpt")])
    assert "--latent_channels" in capsys.readouterr().err


def test_train_autoencoder_refuses_a_decoder_fine_tune_without_a_starting_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_example("train_autoencoder").main(["--train_part", "decoder", "--checkpoint_dir", str(tmp_path / "ckpt")])
    assert "--init_vae" in capsys.readouterr().err
    assert not (tmp_path / "ckpt").exists()


def test_distill_example_takes_a_shipped_pipeline_by_name():
    from latent_distill import FASHION_MNIST_14X14_PIPELINE_PATH

    args = load_example("distill").parse_args(["--method", "d3hr", "--pretrained", "fashion-mnist-14x14"])
    assert args.pretrained == str(FASHION_MNIST_14X14_PIPELINE_PATH)
    assert load_example("distill").parse_args(["--pretrained", "org/vae"]).pretrained == "org/vae"
