"""The example scripts run end to end on tiny models and data (offline)."""

import importlib.util
import json
from pathlib import Path

import datasets
from conftest import make_image_dataset

from latent_distill import DistilledDataset, LatentDistillationPipeline

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_distill_example_writes_an_evaluated_hub_folder(tiny_vae, tmp_path):
    LatentDistillationPipeline(vae=tiny_vae).save_pretrained(tmp_path / "pipeline")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make_image_dataset(num_per_class=10, seed=0).to_parquet(str(data_dir / "train.parquet"))
    make_image_dataset(num_per_class=5, seed=1).to_parquet(str(data_dir / "test.parquet"))

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

    rows = load_example("evaluate").main([
        str(tmp_path / "out"), "--dataset", str(data_dir), "--archs", "convnet", "alexnet",
        "--epochs", "1", "--runs", "1", "--no-compile",
    ])
    # Per architecture: the distilled set, the same-storage and the same-count random subsets.
    assert [row.get("method") or row.get("reference") for row in rows] == [
        "latent-dm", "random subset, same storage", "random subset, same count"] * 2
    assert [row["samples_per_class"] for row in rows[:3]] == [4, 1, 4]
    assert all(0.0 <= row["acc_mean"] <= 100.0 for row in rows)


def test_distill_example_runs_d3hr_with_the_soft_label_protocol(tmp_path):
    from conftest import make_dit_scheduler, make_tiny_dit, make_tiny_vae

    LatentDistillationPipeline(vae=make_tiny_vae(), transformer=make_tiny_dit(num_classes=2),
                               scheduler=make_dit_scheduler()).save_pretrained(tmp_path / "pipeline")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make_image_dataset(num_per_class=6, seed=0).to_parquet(str(data_dir / "train.parquet"))
    make_image_dataset(num_per_class=3, seed=1).to_parquet(str(data_dir / "test.parquet"))
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


def test_distill_example_explains_a_missing_denoiser(tiny_vae, tmp_path):
    import pytest

    LatentDistillationPipeline(vae=tiny_vae).save_pretrained(tmp_path / "pipeline")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make_image_dataset(num_per_class=3).to_parquet(str(data_dir / "train.parquet"))
    make_image_dataset(num_per_class=3).to_parquet(str(data_dir / "test.parquet"))
    with pytest.raises(SystemExit, match="no class-conditional denoiser"):
        load_example("distill").main(["--method", "d3hr", "--pretrained", str(tmp_path / "pipeline"),
                                      "--dataset", str(data_dir), "--no_eval", "--output_dir", str(tmp_path / "o")])
