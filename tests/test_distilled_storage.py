"""Saving never deletes unrelated files; damaged or incomplete set folders are refused with the fix."""

import json

import pytest
import torch

from latent_distill.distilled import DistilledDataset, DistilledDatasetError


def small_set() -> DistilledDataset:
    labels = torch.tensor([0, 0, 1, 1])
    return DistilledDataset(method="latent-dm", class_names=["a", "b"], labels=labels,
                            latents=torch.randn(4, 4, 2, 2, generator=torch.Generator().manual_seed(0)),
                            images=torch.zeros(4, 1, 8, 8, dtype=torch.uint8))


def test_saving_refuses_a_folder_of_other_files_unless_told(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(DistilledDatasetError, match="not a distilled set.*overwrite=True"):
        small_set().save_pretrained(folder)
    assert (folder / "holiday.jpg").read_bytes() == b"precious"
    small_set().save_pretrained(folder, overwrite=True)
    assert not (folder / "holiday.jpg").exists()
    small_set().save_pretrained(folder)  # a distilled set is replaced without asking
    file = tmp_path / "a-file"
    file.write_text("x")
    with pytest.raises(DistilledDatasetError, match="is a file"):
        small_set().save_pretrained(file)


def test_card_names_the_folder_not_its_machine_path(tmp_path):
    folder = small_set().save_pretrained(tmp_path / "deep" / "fmnist-set")
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "fmnist-set" in card and str(tmp_path) not in card


@pytest.mark.parametrize("damage, message", [
    (lambda folder: (folder / "distillation_config.json").write_text("{not json"), "is not valid JSON"),
    (lambda folder: (folder / "distillation_config.json").write_text(json.dumps({"method": "latent-dm"})),
     r"lacks \['class_names'"),
    (lambda folder: [path.write_bytes(path.read_bytes()[:100]) for path in folder.glob("latents/*.parquet")],
     r"latents/.*parquet cannot be read as parquet.*truncated"),
])
def test_damaged_folders_are_refused_with_the_fix(tmp_path, damage, message):
    folder = small_set().save_pretrained(tmp_path / "set")
    damage(folder)
    with pytest.raises(DistilledDatasetError, match=message):
        DistilledDataset.from_pretrained(folder)
