"""Distilled dataset repositories: parquet configs, card, JSON recipe, reload and push (offline)."""

from __future__ import annotations

import importlib
import json
import re
import string
import tempfile
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from huggingface_hub import DatasetCard
from PIL import Image as PILImage

from latent_distill.distilled import (
    CONFIG_FILE,
    SCHEMA_VERSION,
    DistilledDataset,
    DistilledDatasetError,
    HubUploadError,
    card_template,
    render_card,
    storage,
    upload,
)
from latent_distill.distilled.card import (
    CARD_TEMPLATE,
    TEMPLATE_PACKAGE,
    _stored_description,
)
from latent_distill.testing import RecordingHubApi

CLASSES = ["T-shirt", "Trouser", "Bag"]


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _evaluation() -> list[dict]:
    return [
        {"arch": "ConvNetD3", "protocol": "hard", "method": "latent-dm", "samples_per_class": 2,
         "acc_mean": 70.1, "acc_std": 0.6, "runs": 3},
        {"arch": "ConvNetD3", "protocol": "hard", "reference": "random-subset", "samples_per_class": 1,
         "acc_mean": 51.4, "acc_std": 1.2, "runs": 3},
    ]


def latent_set(soft_labels: bool = False) -> DistilledDataset:
    """Latents with their decoded grey images, 3 classes x 2 rows."""
    g = _generator()
    return DistilledDataset(
        method="latent-dm",
        class_names=CLASSES,
        labels=torch.tensor([0, 0, 1, 1, 2, 2]),
        latents=torch.randn(6, 4, 3, 3, generator=g),
        images=torch.randint(0, 256, (6, 1, 12, 12), generator=g, dtype=torch.uint8),
        soft_labels=torch.rand(6, 3, generator=g).softmax(-1) if soft_labels else None,
        record={"ipc": 1, "latents_per_class": 2, "budget": "storage", "image_shape": [1, 12, 12],
                "dataset": {"id": "zalando-datasets/fashion_mnist", "revision": "main", "fingerprint": "f00"},
                "models": {"vae": {"path": "pretrained/fashion-mnist", "revision": None}}, "lr": 0.1},
        evaluation=_evaluation(),
    )


def image_set(soft_labels: bool = False) -> DistilledDataset:
    """RGB images only, 2 classes x 2 rows."""
    g = _generator()
    return DistilledDataset(
        method="pixel-dsa",
        class_names=CLASSES[:2],
        labels=torch.tensor([0, 1, 0, 1]),
        images=torch.randint(0, 256, (4, 3, 8, 8), generator=g, dtype=torch.uint8),
        soft_labels=torch.rand(4, 2, generator=g) if soft_labels else None,
        record={"license": "mit", "lr_img": 1.0},
    )


def gaussian_set() -> DistilledDataset:
    """D3HR per-class Gaussians only, 3 classes."""
    g = _generator()
    return DistilledDataset(
        method="d3hr",
        class_names=CLASSES,
        labels=torch.arange(3),
        gaussians={"mean": torch.randn(3, 4 * 2 * 2, generator=g), "std": torch.rand(3, 16, generator=g),
                   "latent_shape": [4, 2, 2], "timestep": 18, "group_seeds": [12345, 0, 2**40],
                   "num_candidates": 1000},
        record={"ipc": 10, "image_shape": [3, 16, 16]},
    )


def gaussian_image_set() -> DistilledDataset:
    """A D3HR set as D3HROutput.to_distilled_dataset() makes it: Gaussians plus regenerated images."""
    g = _generator()
    gaussians = gaussian_set().gaussians
    return DistilledDataset(
        method="d3hr",
        class_names=CLASSES,
        labels=torch.tensor([0, 0, 1, 1, 2, 2]),
        images=torch.randint(0, 256, (6, 3, 16, 16), generator=g, dtype=torch.uint8),
        gaussians={**gaussians, "ipc": 2, "seed": 0, "fit_config": {"ipc": 2, "num_candidates": 1000}},
        record={"ipc": 2, "budget": "count", "image_shape": [3, 16, 16],
                "distillation": {"ipc": 2, "num_candidates": 1000, "method_name": "d3hr"}},
    )


ALL_SETS = {
    "latents+images": latent_set,
    "latents+images+soft": lambda: latent_set(soft_labels=True),
    "images": image_set,
    "images+soft": lambda: image_set(soft_labels=True),
    "gaussians": gaussian_set,
    "images+gaussians": gaussian_image_set,
}


def _load(folder: Path, config: str | None, cache: Path) -> datasets.Dataset:
    return datasets.load_dataset(str(folder), config, split="train", cache_dir=str(cache))


def _assert_same(restored: DistilledDataset, original: DistilledDataset) -> None:
    """Every field equal, tensors bit-exact with the same dtype."""
    assert restored.method == original.method
    assert restored.class_names == original.class_names
    assert restored.record == original.record
    assert restored.evaluation == original.evaluation
    for name in ("labels", "latents", "images", "soft_labels"):
        a, b = getattr(restored, name), getattr(original, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.dtype == b.dtype and torch.equal(a, b), name
    assert (restored.gaussians is None) == (original.gaussians is None)
    if original.gaussians is not None:
        assert restored.gaussians.keys() == original.gaussians.keys()
        for key, value in original.gaussians.items():
            if isinstance(value, torch.Tensor):
                assert restored.gaussians[key].dtype == value.dtype and torch.equal(restored.gaussians[key], value)
            else:
                assert restored.gaussians[key] == value


# ----------------------------------------------------------------------------------------------
# Folder layout and datasets round trip
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ALL_SETS))
def test_save_then_from_pretrained_is_bit_exact(tmp_path, name):
    original = ALL_SETS[name]()
    original.save_pretrained(tmp_path / "repo")
    _assert_same(DistilledDataset.from_pretrained(tmp_path / "repo"), original)


def test_folder_layout(tmp_path):
    folder = latent_set().save_pretrained(tmp_path / "repo")
    files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    assert files == [
        "README.md", CONFIG_FILE,
        "images/train-00000-of-00001.parquet", "latents/train-00000-of-00001.parquet", "preview.png",
    ]
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no staging left
    gaussian_folder = gaussian_set().save_pretrained(tmp_path / "g")
    gaussian_files = {path.relative_to(gaussian_folder).as_posix() for path in gaussian_folder.rglob("*")}
    assert "preview.png" not in gaussian_files and "gaussians/train-00000-of-00001.parquet" in gaussian_files


def test_load_dataset_latents_and_images(tmp_path):
    original = latent_set(soft_labels=True)
    folder = original.save_pretrained(tmp_path / "repo")
    latents = _load(folder, "latents", tmp_path / "cache")
    assert latents.features["label"].names == CLASSES
    assert isinstance(latents.features["latent"], datasets.Array3D)
    columns = latents.with_format("numpy")[:]
    assert columns["latent"].dtype == np.float32
    assert np.array_equal(columns["latent"], original.latents.numpy())
    assert np.array_equal(columns["label"], original.labels.numpy())
    assert np.array_equal(columns["soft_label"], original.soft_labels.numpy())

    images = _load(folder, "images", tmp_path / "cache")
    assert images.features["label"].names == CLASSES
    for row, expected in zip(images, original.images.numpy()):
        assert row["image"].mode == "L"
        assert np.array_equal(np.asarray(row["image"])[None], expected)
    assert images["label"][:] == original.labels.tolist()


def test_load_dataset_rgb_images(tmp_path):
    original = image_set()
    folder = original.save_pretrained(tmp_path / "repo")
    images = _load(folder, "images", tmp_path / "cache")
    assert images.column_names == ["image", "label"]
    for row, expected in zip(images, original.images.numpy()):
        assert row["image"].mode == "RGB"
        assert np.array_equal(np.asarray(row["image"]).transpose(2, 0, 1), expected)


def test_load_dataset_gaussians(tmp_path):
    original = gaussian_set()
    folder = original.save_pretrained(tmp_path / "repo")
    table = _load(folder, "gaussians", tmp_path / "cache")
    assert table.features["label"].names == CLASSES
    columns = table.with_format("numpy")[:]
    assert np.array_equal(columns["label"], np.arange(3))
    assert np.array_equal(columns["mean"], original.gaussians["mean"].numpy())
    assert np.array_equal(columns["std"], original.gaussians["std"].numpy())
    assert columns["timestep"].tolist() == [18, 18, 18]
    assert columns["group_seed"].tolist() == [12345, 0, 2**40]
    assert columns["latent_shape"].tolist() == [[4, 2, 2]] * 3


@pytest.mark.parametrize("factory, default, columns", [
    (latent_set, "latents", ["latent", "label"]),
    (image_set, "images", ["image", "label"]),
    (gaussian_set, "gaussians", ["label", "mean", "std", "timestep", "latent_shape", "group_seed"]),
])
def test_load_dataset_without_config_name_reads_the_default(tmp_path, factory, default, columns):
    folder = factory().save_pretrained(tmp_path / "repo")
    assert _load(folder, None, tmp_path / "cache").column_names == columns
    card = DatasetCard.load(folder / "README.md").data
    assert [c["config_name"] for c in card.configs if c.get("default")] == [default]


# ----------------------------------------------------------------------------------------------
# Card and JSON recipe
# ----------------------------------------------------------------------------------------------

def test_card_yaml_lists_every_config(tmp_path):
    original = latent_set()
    folder = original.save_pretrained(tmp_path / "repo", repo_id="me/fm-latent-dm-ipc-1")
    card = DatasetCard.load(folder / "README.md")
    data = card.data
    assert [c["config_name"] for c in data.configs] == ["latents", "images"]
    assert data.configs[0]["default"] is True and "default" not in data.configs[1]
    assert data.configs[1]["data_files"] == [{"split": "train", "path": "images/train-*.parquet"}]
    assert data.license == "other"
    assert data.tags == ["dataset-distillation", "latent-dm", "ipc-1"]
    assert data.source_datasets == ["zalando-datasets/fashion_mnist"]
    assert data.pretty_name
    assert data.distillation["models"] == {"vae": {"path": "pretrained/fashion-mnist", "revision": None}}
    text = card.text
    assert "![" in text and "(preview.png)" in text
    assert f"{original.storage_bytes():,}" in text and f"{original.image_budget_bytes():,}" in text
    assert "random-subset (reference)" in text and "70.1 ± 0.6" in text
    assert "| `lr` | 0.1 |" in text
    assert 'load_dataset("me/fm-latent-dm-ipc-1", "latents", split="train")' in text


def test_card_of_gaussians_and_images_sets(tmp_path):
    data = DatasetCard.load(gaussian_set().save_pretrained(tmp_path / "g") / "README.md").data
    assert [c["config_name"] for c in data.configs] == ["gaussians"] and data.configs[0]["default"] is True
    assert data.tags == ["dataset-distillation", "d3hr", "ipc-10"]
    card = DatasetCard.load(image_set().save_pretrained(tmp_path / "i") / "README.md")
    assert card.data.license == "mit" and card.data.tags[-1] == "ipc-2"
    assert "No evaluation was recorded." in card.text


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_card_template_is_shipped_with_the_package():
    template = card_template()
    assert template.startswith("---\n{card_data}\n---\n")
    assert {"method", "ipc", "repo_id", "configs_table", "storage_section", "evaluation_section"} <= \
        _placeholders(template)
    package = Path(importlib.import_module(TEMPLATE_PACKAGE).__file__).parent
    assert (package / CARD_TEMPLATE).is_file()  # inside the package, so wheels ship it


@pytest.mark.parametrize("name", list(ALL_SETS))
def test_rendered_card_parses_lists_every_config_and_the_storage_budget(name):
    dataset = ALL_SETS[name]()
    text = str(render_card(dataset, repo_id="me/distilled", preview=dataset.images is not None))
    assert not [field for field in _placeholders(card_template()) if "{" + field + "}" in text]
    card = DatasetCard(text)
    assert [c["config_name"] for c in card.data.configs] == dataset.config_names
    assert all(f"| `{config}` |" in card.text for config in dataset.config_names)
    assert "dataset-distillation" in card.data.tags and f"ipc-{dataset.ipc}" in card.data.tags
    assert f"| stored ({_stored_description(dataset)}) | {dataset.storage_bytes():,} |" in card.text
    assert f"| {dataset.image_budget_bytes():,} |" in card.text
    assert 'load_dataset("me/distilled", "' + dataset.config_names[0] + '", split="train")' in card.text
    assert "DistilledDataset.from_pretrained(\"me/distilled\")" in card.text


def test_card_of_a_set_of_gaussians_and_images():
    dataset = gaussian_image_set()
    assert dataset.stored_representation == "gaussians"
    assert dataset.storage_bytes() == 2 * 3 * 16 * 4 + 3 * 8  # the images are not counted
    text = str(render_card(dataset, repo_id="me/d3hr", preview=True))
    assert DatasetCard(text).data.configs[0] == {
        "config_name": "images", "data_files": [{"split": "train", "path": "images/train-*.parquet"}], "default": True}
    assert "one Gaussian per class stands for IPC 2 images per class" in text
    assert "images decoded from the stored gaussians for convenience; they are not counted above" in text
    assert "stored as one Gaussian per class from which the images are regenerated" in text


def _training_snippet(card_text: str) -> str:
    """The python block of the card that trains with a DataLoader."""
    blocks = re.findall(r"```python\n(.*?)```", card_text, flags=re.S)
    return next(block for block in blocks if "DataLoader" in block)


@pytest.mark.parametrize("factory", [latent_set, lambda: image_set(soft_labels=True)])
def test_card_training_snippet_runs(tmp_path, factory):
    original = factory()
    folder = original.save_pretrained(tmp_path / "repo", repo_id=str(tmp_path / "repo"))
    namespace: dict = {}
    exec(_training_snippet((folder / "README.md").read_text()), namespace)
    x, y = namespace["x"], namespace["y"]
    assert x.dtype == torch.float32 and tuple(x.shape[1:]) == tuple(original.images.shape[1:])
    assert -1 <= float(x.min()) and float(x.max()) <= 1 and y.dtype == torch.int64


def test_card_training_snippet_without_images_uses_the_library():
    latents_only = DistilledDataset(method="latent-dm", class_names=CLASSES[:1], labels=torch.zeros(2, dtype=torch.long),
                                    latents=torch.zeros(2, 4, 3, 3))
    latents_snippet = _training_snippet(str(render_card(latents_only, "me/l", preview=False)))
    assert "pipe = LatentDistillationPipeline.from_distilled(distilled)" in latents_snippet
    assert "images, labels = pipe.decode(distilled), distilled.labels" in latents_snippet
    gaussians_snippet = _training_snippet(str(render_card(gaussian_set(), "me/g", preview=False)))
    assert "from latent_distill import D3HRPipeline, DistilledDataset" in gaussians_snippet
    assert "regenerated = pipe.regenerate(distilled)" in gaussians_snippet


def test_distillation_config_json(tmp_path):
    original = latent_set()
    meta = json.loads((original.save_pretrained(tmp_path / "repo") / CONFIG_FILE).read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["method"] == "latent-dm" and meta["class_names"] == CLASSES
    assert meta["config"] == original.record and meta["evaluation"] == original.evaluation
    assert meta["latent_shape"] == [4, 3, 3] and meta["image_shape"] == [1, 12, 12]
    assert meta["configs"] == ["latents", "images"]


def test_preview_grid_one_row_per_class(tmp_path):
    folder = latent_set().save_pretrained(tmp_path / "repo")
    with PILImage.open(folder / "preview.png") as preview:
        assert preview.mode == "L"
        assert preview.size == (2 + 2 * (12 + 2), 2 + 3 * (12 + 2))  # 2 columns, 3 rows, 2-pixel padding


def test_newer_schema_is_refused(tmp_path):
    folder = latent_set().save_pretrained(tmp_path / "repo")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(DistilledDatasetError, match="upgrade latent-distill"):
        DistilledDataset.from_pretrained(folder)


def test_folder_without_recipe_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DistilledDatasetError, match="not a latent-distill dataset"):
        DistilledDataset.from_pretrained(tmp_path / "empty")
    with pytest.raises(DistilledDatasetError, match="is not a folder"):
        DistilledDataset.from_pretrained(tmp_path / "missing")


def test_from_pretrained_downloads_hub_ids_as_dataset_repos(tmp_path, monkeypatch):
    original = gaussian_set()
    folder = original.save_pretrained(tmp_path / "snapshot")
    requests = []

    def fake_snapshot_download(repo_id, **kwargs):
        requests.append((repo_id, kwargs))
        return str(folder)

    monkeypatch.setattr(storage, "snapshot_download", fake_snapshot_download)
    _assert_same(DistilledDataset.from_pretrained("me/d3hr", revision="v1", token="t"), original)
    assert requests == [("me/d3hr", {"repo_type": "dataset", "revision": "v1", "token": "t"})]


# ----------------------------------------------------------------------------------------------
# Budgets and validation
# ----------------------------------------------------------------------------------------------

def test_budgets():
    latents = latent_set(soft_labels=True)
    assert latents.ipc == 1 and latents.samples_per_class == 2 and latents.budget == "storage"
    assert latents.storage_bytes() == 6 * 4 * 3 * 3 * 4
    assert latents.storage_bytes(include_soft_labels=True) == 6 * 4 * 3 * 3 * 4 + 6 * 3 * 4
    assert latents.image_budget_bytes() == 1 * 3 * 1 * 12 * 12 * 4
    images = image_set()
    assert images.ipc == 2 and images.storage_bytes() == 4 * 3 * 8 * 8
    assert images.image_budget_bytes() == 2 * 2 * 3 * 8 * 8 * 4
    gaussians = gaussian_set()
    assert gaussians.storage_bytes() == 2 * 3 * 16 * 4 + 3 * 8
    assert gaussians.image_budget_bytes() == 10 * 3 * 3 * 16 * 16 * 4


def test_float_images_are_quantised():
    images = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1)
    dataset = DistilledDataset(method="pixel-dm", class_names=["a"], labels=torch.zeros(3, dtype=torch.long),
                               images=images)
    assert dataset.images.dtype == torch.uint8 and dataset.images.flatten().tolist() == [0, 128, 255]


@pytest.mark.parametrize("kwargs, message", [
    (dict(labels=torch.tensor([0, 1])), "rows but labels has 2"),
    (dict(labels=torch.tensor([0, 0, 1, 1, 2, 3])), r"labels must lie in \[0, 3\)"),
    (dict(record={"ipc": 1, "path": Path("x")}), "JSON values"),
    (dict(soft_labels=torch.rand(6, 2)), "one per class"),
    (dict(latents=None, images=None), "needs latents, images or gaussians"),
])
def test_invalid_sets_raise_clear_errors(kwargs, message):
    fields = dict(method="latent-dm", class_names=CLASSES, labels=torch.tensor([0, 0, 1, 1, 2, 2]),
                  latents=torch.zeros(6, 4, 3, 3), images=torch.zeros(6, 1, 12, 12, dtype=torch.uint8))
    with pytest.raises(DistilledDatasetError, match=message):
        DistilledDataset(**{**fields, **kwargs})


def test_storage_budget_needs_ipc():
    with pytest.raises(DistilledDatasetError, match=r"budget='storage'.*record\['ipc'\]"):
        DistilledDataset(method="latent-dm", class_names=["a"], labels=torch.zeros(2, dtype=torch.long),
                         latents=torch.zeros(2, 4, 3, 3), record={"budget": "storage"})


def test_gaussians_only_needs_ipc():
    with pytest.raises(DistilledDatasetError, match=r"record\['ipc'\]"):
        DistilledDataset(method="d3hr", class_names=["a"], labels=torch.arange(1),
                         gaussians={"mean": torch.zeros(1, 4), "std": torch.ones(1, 4), "latent_shape": [1, 2, 2],
                                    "timestep": 5})


# ----------------------------------------------------------------------------------------------
# push_to_hub
# ----------------------------------------------------------------------------------------------

def test_push_to_hub_uploads_every_file_in_one_commit(tmp_path):
    api = RecordingHubApi()
    result = latent_set().push_to_hub("me/fm-latent-dm-ipc-1", private=True, api=api, local_dir=tmp_path / "push")
    assert result == "commit-info"
    assert [name for name, _, _ in api.calls] == ["create_repo", "create_commit"]
    (_, repo_args, repo_kwargs), (_, commit_args, commit_kwargs) = api.calls
    assert repo_args == ("me/fm-latent-dm-ipc-1",) and commit_args == ("me/fm-latent-dm-ipc-1",)
    assert repo_kwargs["repo_type"] == "dataset" and repo_kwargs["private"] is True and repo_kwargs["exist_ok"] is True
    assert commit_kwargs["repo_type"] == "dataset" and commit_kwargs["revision"] is None
    assert "latent-dm" in commit_kwargs["commit_message"]
    assert set(api.uploaded) == {
        "README.md", CONFIG_FILE, "preview.png",
        "latents/train-00000-of-00001.parquet", "images/train-00000-of-00001.parquet",
    }
    assert b"me/fm-latent-dm-ipc-1" in api.uploaded["README.md"]


def test_push_to_hub_to_a_branch_removes_the_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    api = RecordingHubApi()
    gaussian_set().push_to_hub("me/d3hr", revision="v1", commit_message="first", api=api)
    assert [name for name, _, _ in api.calls] == ["create_repo", "create_branch", "create_commit"]
    assert api.calls[1][2] == {"branch": "v1", "repo_type": "dataset", "exist_ok": True, "token": None}
    assert api.calls[2][2]["revision"] == "v1" and api.calls[2][2]["commit_message"] == "first"
    assert set(api.uploaded) == {"README.md", CONFIG_FILE, "gaussians/train-00000-of-00001.parquet"}
    assert list(tmp_path.iterdir()) == []


def test_push_to_hub_failure_keeps_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    original = image_set()
    with pytest.raises(HubUploadError) as raised:
        original.push_to_hub("me/pixels", api=RecordingHubApi(fail=True))
    error = raised.value
    assert error.repo_id == "me/pixels" and "me/pixels" in str(error)
    assert str(error.local_dir) in str(error) and error.local_dir.parent.parent == tmp_path
    assert isinstance(error.__cause__, ConnectionError)
    _assert_same(DistilledDataset.from_pretrained(error.local_dir), original)


def test_push_to_hub_only_on_the_main_process(tmp_path, monkeypatch):
    class Worker:
        is_main_process = False

    monkeypatch.setattr(upload, "PartialState", Worker)
    api = RecordingHubApi()
    assert image_set().push_to_hub("me/pixels", api=api, local_dir=tmp_path / "push") is None
    assert api.calls == [] and not (tmp_path / "push").exists()
