"""The pipeline folders shipped inside the package load offline, fit together, and carry their cards."""

import json

import pytest
import torch

from latent_distill import (
    DEFAULT_PIPELINE_PATH,
    FASHION_MNIST_14X14_PIPELINE_PATH,
    SHIPPED_PIPELINES,
    D3HRPipeline,
    shipped_pipeline_path,
)


@pytest.mark.parametrize("name", sorted(SHIPPED_PIPELINES))
def test_shipped_pipeline_loads_and_its_denoiser_takes_its_autoencoders_latents(name):
    pipe = D3HRPipeline.from_pretrained(SHIPPED_PIPELINES[name])
    codec = pipe.latent_codec()
    latents = codec.encode(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    config = pipe.transformer.config
    assert latents.shape[1:] == (config.in_channels, config.sample_size, config.sample_size)
    with torch.no_grad():
        prediction = pipe.transformer(latents, timestep=torch.tensor([500, 500]),
                                      class_labels=torch.tensor([0, 9])).sample
    assert prediction.shape == latents.shape and torch.isfinite(prediction).all()


@pytest.mark.parametrize("name", sorted(SHIPPED_PIPELINES))
def test_shipped_pipeline_has_a_card_with_its_training_and_quality(name):
    folder = SHIPPED_PIPELINES[name]
    readme = (folder / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: diffusers")
    for section in ("## Training", "## Quality", "examples/train_autoencoder.py", "examples/train_latent_diffusion.py"):
        assert section in readme, section
    steps = json.loads((folder / "latent_diffusion_training.json").read_text())
    assert f"{steps.get('total_steps', steps['steps'])} steps" in readme


def test_the_two_shipped_pipelines_differ_in_latent_size():
    default = D3HRPipeline.from_pretrained(DEFAULT_PIPELINE_PATH).latent_codec().latent_shape
    fine = D3HRPipeline.from_pretrained(FASHION_MNIST_14X14_PIPELINE_PATH).latent_codec().latent_shape
    assert tuple(default) == (4, 7, 7) and tuple(fine) == (4, 14, 14)


def test_shipped_names_resolve_and_anything_else_passes_through(tmp_path, monkeypatch):
    assert shipped_pipeline_path("fashion-mnist-14x14") == FASHION_MNIST_14X14_PIPELINE_PATH
    assert shipped_pipeline_path("org/my-pipeline") == "org/my-pipeline"
    assert shipped_pipeline_path(tmp_path) == tmp_path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fashion-mnist").mkdir()  # a local folder of that name is what the user means
    assert shipped_pipeline_path("fashion-mnist") == "fashion-mnist"
