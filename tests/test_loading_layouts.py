"""LatentDistillationPipeline loads stock Hub layouts, tested on tiny local replicas."""

import json

import torch
from conftest import make_tiny_vae
from diffusers import AutoencoderKL, DDIMScheduler, DiTTransformer2DModel

from latent_distill import LatentDistillationPipeline


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_vae_only_repo_layout(tmp_path):
    """`stabilityai/sd-vae-ft-mse` style: config.json and weights at the root."""
    vae = make_tiny_vae()
    vae.save_pretrained(tmp_path)
    pipe = LatentDistillationPipeline.from_pretrained(tmp_path)
    assert isinstance(pipe.vae, AutoencoderKL) and same_weights(pipe.vae, vae)
    assert pipe.transformer is None


def test_dit_pipeline_repo_layout(tmp_path):
    """`facebook/DiT-XL-2-256` style: model_index.json naming DiTPipeline, with transformer, vae, scheduler."""
    vae = make_tiny_vae()
    transformer = DiTTransformer2DModel(sample_size=7, patch_size=1, in_channels=4, out_channels=8, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=2, num_embeds_ada_norm=3,
                                        norm_num_groups=4)
    scheduler = DDIMScheduler()
    vae.save_pretrained(tmp_path / "vae")
    transformer.save_pretrained(tmp_path / "transformer")
    scheduler.save_pretrained(tmp_path / "scheduler")
    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "DiTPipeline", "_diffusers_version": "0.28.0",
        "transformer": ["diffusers", "DiTTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DDIMScheduler"],
    }))
    pipe = LatentDistillationPipeline.from_pretrained(tmp_path)
    assert same_weights(pipe.vae, vae) and same_weights(pipe.transformer, transformer)
    assert isinstance(pipe.scheduler, DDIMScheduler)


def test_from_pipe_reuses_components(tmp_path):
    source = LatentDistillationPipeline(vae=make_tiny_vae())
    pipe = LatentDistillationPipeline.from_pipe(source)
    assert pipe.vae is source.vae
