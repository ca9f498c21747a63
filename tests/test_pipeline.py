"""LatentDistillationPipeline end to end on a tiny random autoencoder and a 20-image dataset."""

import re

import pytest
import torch
from datasets import DatasetDict

from latent_distill import LatentDistillationPipeline
from latent_distill.checkpointing import CheckpointMismatchError
from latent_distill.codec import CodecError
from latent_distill.config import BudgetError
from latent_distill.data import DataError, table_fingerprint
from latent_distill.presets import config_for_method
from latent_distill.testing import make_image_dataset, make_tiny_pipeline


def tiny_config(**overrides):
    values = dict(ipc=1, iterations=30, batch_real=10, learning_rate=0.1, checkpoint_every=10,
                  network_kwargs={"width": 16})
    values.update(overrides)
    return config_for_method("latent-dm", **values)


@pytest.fixture
def pipe():
    return make_tiny_pipeline()


def test_latent_dm_runs_end_to_end_and_its_loss_falls(pipe, toy_dataset):
    out = pipe(toy_dataset, tiny_config())
    # IPC-1 storage budget: a 28x28 grey image holds four 4x7x7 latents.
    assert out.latents.shape == (8, 4, 7, 7)
    assert out.images.shape == (8, 1, 28, 28) and out.images.dtype == torch.uint8
    assert out.labels.tolist() == [0] * 4 + [1] * 4
    assert out.class_names == ["class_0", "class_1"]
    assert out.record["samples_per_class"] == 4 and out.record["latents_per_class"] == 4
    assert out.record["source_dataset"]["fingerprint"] == table_fingerprint(toy_dataset)
    first, last = sum(out.losses[:5]) / 5, sum(out.losses[-5:]) / 5
    assert last < 0.5 * first


def test_pixel_dm_shares_the_pipeline(pipe, toy_dataset):
    config = config_for_method("pixel-dm", ipc=2, iterations=3, batch_real=10, network_kwargs={"width": 16})
    out = pipe(DatasetDict({"train": toy_dataset}), config)
    assert out.latents is None and out.images.shape == (4, 1, 28, 28)


def test_same_seed_same_result(pipe, toy_dataset):
    first = pipe(toy_dataset, tiny_config(iterations=3))
    second = pipe(toy_dataset, tiny_config(iterations=3))
    assert torch.equal(first.latents, second.latents)


def test_resume_equals_uninterrupted_run(pipe, toy_dataset, tmp_path):
    full = pipe(toy_dataset, tiny_config(iterations=20))
    pipe(toy_dataset, tiny_config(iterations=20), checkpoint_dir=tmp_path)
    # Roll the state back to the checkpoint of iteration 10, as a run killed at iteration 15 leaves it.
    pipe(toy_dataset, tiny_config(iterations=10), checkpoint_dir=tmp_path)
    resumed = pipe(toy_dataset, tiny_config(iterations=20), checkpoint_dir=tmp_path, resume=True)
    torch.testing.assert_close(resumed.latents, full.latents)
    assert len(resumed.losses) == 20 and resumed.losses == full.losses


def test_finished_run_continues_to_a_larger_budget(pipe, toy_dataset, tmp_path):
    full = pipe(toy_dataset, tiny_config(iterations=13))
    # 7 iterations are not a multiple of checkpoint_every (10): the last iteration saves anyway.
    short = pipe(toy_dataset, tiny_config(iterations=7), checkpoint_dir=tmp_path)
    continued = pipe(toy_dataset, tiny_config(iterations=13, checkpoint_every=5), checkpoint_dir=tmp_path,
                     resume=True)
    assert continued.losses[:7] == short.losses and len(continued.losses) == 13
    torch.testing.assert_close(continued.latents, full.latents)
    assert continued.seconds_per_iteration is not None  # timed over the 6 new iterations only
    assert continued.distill_seconds > short.distill_seconds  # the time of both calls


def test_resume_refuses_a_state_past_the_budget_or_with_other_settings(pipe, toy_dataset, tmp_path):
    pipe(toy_dataset, tiny_config(iterations=12), checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointMismatchError, match="at iteration 12, past this run's iterations \\(5\\)"):
        pipe(toy_dataset, tiny_config(iterations=5), checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointMismatchError, match="other settings"):
        pipe(toy_dataset, tiny_config(iterations=20, learning_rate=0.5), checkpoint_dir=tmp_path, resume=True)


def test_latent_cache_is_reused(pipe, toy_dataset, tmp_path):
    pipe(toy_dataset, tiny_config(iterations=1), cache_dir=tmp_path)
    entries = list(tmp_path.iterdir())
    assert len(entries) == 1 and (entries[0] / "latents.safetensors").exists()
    pipe(toy_dataset, tiny_config(iterations=1), cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == entries


def test_save_and_load_pretrained_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    loaded = LatentDistillationPipeline.from_pretrained(tmp_path)
    assert loaded.transformer is None and loaded.scheduler is None
    for (name, a), (_, b) in zip(pipe.vae.state_dict().items(), loaded.vae.state_dict().items()):
        assert torch.equal(a, b), name


def test_model_folder_without_vae_is_a_clear_error(tmp_path):
    (tmp_path / "model_index.json").write_text('{"_class_name": "LatentDistillationPipeline"}')
    with pytest.raises(Exception, match="vae"):
        LatentDistillationPipeline.from_pretrained(tmp_path)


def test_budget_errors_name_the_fix(pipe, toy_dataset):
    with pytest.raises(BudgetError, match="smallest class has only 10"):
        pipe(toy_dataset, tiny_config(ipc=3))


def test_unencodable_image_size_is_a_clear_error(pipe, toy_dataset):
    with pytest.raises(CodecError, match="cannot encode"):
        pipe(toy_dataset, tiny_config(resolution=30))


def test_empty_class_is_a_clear_error(pipe):
    dataset = make_image_dataset(num_per_class=5, num_classes=3)
    dataset = dataset.filter(lambda row: row["label"] != 1)
    with pytest.raises(DataError, match="class_1"):
        pipe(dataset, tiny_config())


def test_string_labels_are_class_encoded_and_recorded(pipe, toy_dataset):
    from datasets import Value

    names = toy_dataset.features["label"].names
    as_names = toy_dataset.cast_column("label", Value("string")).map(lambda row: {"label": names[int(row["label"])]})
    output = pipe(as_names, tiny_config())
    assert output.class_names == sorted(names)
    assert output.labels.tolist() == pipe(toy_dataset, tiny_config()).labels.tolist()


def test_nan_loss_stops_with_advice(pipe, toy_dataset):
    from latent_distill.pipelines.latent_distillation import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="lower learning_rate"):
        pipe(toy_dataset, tiny_config(learning_rate=float("inf"), iterations=5))


def test_output_saves_reloads_and_decodes_with_the_recorded_autoencoder(pipe, toy_dataset, tmp_path):
    import datasets
    import numpy as np

    from latent_distill import DistilledDataset

    pipe.save_pretrained(tmp_path / "pipeline")
    loaded_pipe = LatentDistillationPipeline.from_pretrained(tmp_path / "pipeline")
    loaded_pipe.set_progress_bar_config(disable=True)
    out = loaded_pipe(toy_dataset, tiny_config(iterations=2))
    out.to_distilled_dataset().save_pretrained(tmp_path / "set")

    rows = datasets.load_dataset(str(tmp_path / "set"), "latents", split="train")
    assert np.array_equal(np.asarray(rows["latent"], dtype=np.float32), out.latents.numpy())
    assert rows.features["label"].names == ["class_0", "class_1"]

    restored = DistilledDataset.from_pretrained(tmp_path / "set")
    assert restored.record["models"]["vae"]["subfolder"] == "vae"
    assert torch.equal(LatentDistillationPipeline.from_distilled(restored).decode(restored), out.images)

    # A set published without images: its card's training snippet decodes the latents itself.
    latents_only = DistilledDataset(method=restored.method, class_names=restored.class_names, labels=restored.labels,
                                    latents=restored.latents, record=restored.record)
    folder = latents_only.save_pretrained(tmp_path / "latents-only", repo_id=str(tmp_path / "latents-only"))
    blocks = re.findall(r"```python\n(.*?)```", (folder / "README.md").read_text(), flags=re.S)
    namespace: dict = {}
    exec(next(block for block in blocks if "DataLoader" in block), namespace)
    assert torch.equal(namespace["images"], out.images) and namespace["y"].dtype == torch.int64


def test_decoding_errors_name_the_fix(pipe):
    from latent_distill import DistilledDataset
    from latent_distill.distilled import DistilledDatasetError

    labels = torch.zeros(2, dtype=torch.long)
    in_memory = DistilledDataset(method="latent-dm", class_names=["a"], labels=labels, latents=torch.zeros(2, 4, 7, 7))
    with pytest.raises(DistilledDatasetError, match=r"records no autoencoder.*LatentDistillationPipeline\(vae="):
        LatentDistillationPipeline.from_distilled(in_memory)
    images = DistilledDataset(method="pixel-dm", class_names=["a"], labels=labels,
                              images=torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(DistilledDatasetError, match="stores no latents to decode; use its images"):
        pipe.decode(images)


def test_frozen_autoencoder_follows_mixed_precision_and_latents_stay_float32(toy_dataset, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    pipe = make_tiny_pipeline()
    out = pipe(toy_dataset, config_for_method("latent-dm", ipc=1, iterations=2, batch_real=4, checkpoint_every=0))
    assert pipe.vae.dtype == torch.bfloat16
    assert out.latents.dtype == torch.float32 and torch.isfinite(out.latents).all()
