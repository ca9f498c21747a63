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
    assert "random_subset_same_storage" in summary and "accuracy" in summary
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
