"""D3HR sets on the Hub layout: D3HRPipeline.regenerate() from the stored Gaussians, and the card of a D3HR set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiTTransformer2DModel
from huggingface_hub import DatasetCard

from latent_distill import D3HRPipeline, DistilledDataset
from latent_distill.distilled import DistilledDatasetError
from latent_distill.model_provenance import weights_fingerprint
from latent_distill.testing import (
    FAST_D3HR,
    make_image_dataset,
    make_tiny_pipeline,
    make_tiny_vae,
)


def in_memory_pipeline() -> D3HRPipeline:
    return make_tiny_pipeline(D3HRPipeline, num_classes=2)


def saved_pipeline(folder: Path) -> D3HRPipeline:
    """The tiny pipeline saved to ``folder`` and loaded back, so runs record ``folder`` as their models."""
    in_memory_pipeline().save_pretrained(folder)
    return D3HRPipeline.from_pretrained(folder)


def distil_and_reload(pipe: D3HRPipeline, folder: Path, ipc: int = 2):
    """Runs tiny D3HR, saves the set to ``folder`` and loads it back: ``(output, reloaded set)``."""
    out = pipe(make_image_dataset(num_per_class=6), **FAST_D3HR, ipc=ipc)
    out.to_distilled_dataset().save_pretrained(folder)
    return out, DistilledDataset.from_pretrained(folder)


def test_regenerate_with_the_recorded_pipeline_is_bit_identical(tmp_path):
    pipe = saved_pipeline(tmp_path / "pipe")
    out, distilled = distil_and_reload(pipe, tmp_path / "set")
    assert distilled.record["models"]["transformer"] == {"path": str(tmp_path / "pipe"), "subfolder": "transformer",
                                                         "revision": None,
                                                         "fingerprint": weights_fingerprint(pipe.transformer)}
    recorded = D3HRPipeline.from_distilled(distilled)
    regenerated = recorded.regenerate(distilled)
    assert torch.equal(regenerated.images, out.images) and torch.equal(regenerated.labels, out.labels)
    assert regenerated.gaussians["group_seeds"] == out.gaussians["group_seeds"]

    one = recorded.regenerate(distilled, ipc=1)
    assert one.images.shape == (2, 1, 28, 28) and one.labels.tolist() == [0, 1]
    # The regenerated run keeps the set's provenance, so it saves as a set of its own.
    assert one.record["image_shape"] == [1, 28, 28] and one.record["models"] == distilled.record["models"]
    smaller = DistilledDataset.from_pretrained(one.to_distilled_dataset().save_pretrained(tmp_path / "ipc1"))
    assert smaller.ipc == 1 and smaller.source_image_shape == (1, 28, 28)
    assert smaller.record["distillation"]["ipc"] == 1


def test_regenerate_with_an_explicit_pipeline(tmp_path):
    pipe = in_memory_pipeline()
    out, distilled = distil_and_reload(pipe, tmp_path / "set")
    assert distilled.record["models"]["transformer"]["path"] is None
    with pytest.raises(DistilledDatasetError, match=r"records no autoencoder.*D3HRPipeline\.from_pretrained"):
        D3HRPipeline.from_distilled(distilled)
    fresh = in_memory_pipeline()  # same weights, no Gaussians fitted
    assert torch.equal(fresh.regenerate(distilled).images, out.images)
    other_seed = fresh.regenerate(distilled, seed=1)
    assert other_seed.gaussians["seed"] == 1 and not torch.equal(other_seed.latents, out.latents)
    # A changed search setting searches again instead of redrawing the stored groups: one candidate
    # per class keeps the first draw of each class's first chunk.
    overridden = fresh.regenerate(distilled, num_candidates=1)
    assert overridden.record["distillation"]["num_candidates"] == 1
    assert overridden.gaussians["search"]["num_candidates"] == 1 and overridden.gaussians["group_indices"] == [0, 0]
    with pytest.raises(ValueError, match="Unknown D3HR config keys"):
        fresh.regenerate(distilled, no_such_field=1)


def test_regenerate_loads_an_autoencoder_recorded_apart_from_the_denoiser(tmp_path):
    in_memory_pipeline().save_pretrained(tmp_path / "pipe")
    make_tiny_vae(seed=1).save_pretrained(tmp_path / "other-vae")
    pipe = D3HRPipeline(vae=AutoencoderKL.from_pretrained(tmp_path / "other-vae"),
                        transformer=DiTTransformer2DModel.from_pretrained(tmp_path / "pipe", subfolder="transformer"),
                        scheduler=DDIMScheduler.from_pretrained(tmp_path / "pipe", subfolder="scheduler"))
    out, distilled = distil_and_reload(pipe, tmp_path / "set")
    assert distilled.record["models"]["vae"]["path"] == str(tmp_path / "other-vae")
    # Regenerating with the pipeline folder's own autoencoder would give other images.
    assert torch.equal(D3HRPipeline.from_distilled(distilled).regenerate(distilled).images, out.images)


def test_regenerate_errors_name_the_fix(tmp_path):
    latents = DistilledDataset(method="latent-dm", class_names=["a"], labels=torch.zeros(2, dtype=torch.long),
                               latents=torch.zeros(2, 4, 3, 3))
    with pytest.raises(DistilledDatasetError, match=r"stores no Gaussians.*LatentDistillationPipeline\.decode"):
        in_memory_pipeline().regenerate(latents)
    _, distilled = distil_and_reload(saved_pipeline(tmp_path / "pipe"), tmp_path / "set")
    distilled.record["models"]["transformer"]["path"] = str(tmp_path / "deleted")
    with pytest.raises(DistilledDatasetError, match=r"could not be loaded.*Build D3HRPipeline\(vae="):
        D3HRPipeline.from_distilled(distilled)


def test_card_of_a_d3hr_set_counts_the_gaussians(tmp_path):
    out, distilled = distil_and_reload(saved_pipeline(tmp_path / "pipe"), tmp_path / "set", ipc=3)
    card = DatasetCard.load(tmp_path / "set" / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["images", "gaussians"]
    assert card.data.configs[0]["default"] is True
    assert card.data.tags == ["dataset-distillation", "d3hr", "ipc-3"]
    assert card.data.distillation["models"]["transformer"]["path"] == "pipe"  # the folder name, no machine path
    assert distilled.stored_representation == "gaussians"
    # mean and std (2 classes x 196) float32 + per class the kept group's seed, index and chunk count
    gaussian_bytes = 2 * 2 * 4 * 7 * 7 * 4 + 2 * 3 * 8
    assert distilled.storage_bytes() == gaussian_bytes
    text = card.text
    assert f"| stored (per-class Gaussians, float32 mean and std (2, 196) + int64 group seeds, group indices, chunk counts) | {gaussian_bytes:,} |" \
        in text
    assert f"| {3 * 2 * 28 * 28 * 4:,} |" in text  # IPC 3 x 2 classes x 1x28x28 float32 images
    assert "one Gaussian per class stands for IPC 3 images per class" in text
    assert "decoded from the stored gaussians" in text and "(preview.png)" in text
    assert "| `distillation.num_candidates` | 64 |" in text
    assert 'load_dataset("set", "images", split="train")' in text and str(tmp_path) not in text
