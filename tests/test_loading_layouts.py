"""LatentDistillationPipeline loads stock Hub layouts, tested on tiny local replicas."""

import json

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
)

from latent_distill import LatentDistillationPipeline
from latent_distill.model_provenance import weights_fingerprint
from latent_distill.pipelines.run_record import component_reference
from latent_distill.testing import make_tiny_dit, make_tiny_vae


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
    transformer = make_tiny_dit(num_classes=3)
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


def write_tiny_clip_tokenizer(folder) -> CLIPTokenizer:
    """A CLIP BPE tokenizer over a six-token vocabulary, written offline (vocab.json + merges.txt)."""
    folder.mkdir(parents=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "c": 2, "a": 3, "t</w>": 4, "ca": 5, "cat</w>": 6}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=8)
    tokenizer.save_pretrained(folder)
    return tokenizer


def test_stable_diffusion_repo_layout(tmp_path):
    """`stable-diffusion-v1-5` / `2-1` style: model_index.json naming StableDiffusionPipeline with unet,
    text_encoder, tokenizer, scheduler, feature_extractor and a null safety checker. Only the VAE (and
    the scheduler) are kept; the other components are ignored, not loaded."""
    vae = make_tiny_vae()
    vae.save_pretrained(tmp_path / "vae")
    torch.manual_seed(0)
    UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                         block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                         up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                         attention_head_dim=2, norm_num_groups=4).save_pretrained(tmp_path / "unet")
    text_config = CLIPTextConfig(vocab_size=7, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=8, projection_dim=16,
                                 bos_token_id=0, eos_token_id=1, pad_token_id=1)
    CLIPTextModel(text_config).save_pretrained(tmp_path / "text_encoder")
    write_tiny_clip_tokenizer(tmp_path / "tokenizer")
    PNDMScheduler(skip_prk_steps=True, steps_offset=1).save_pretrained(tmp_path / "scheduler")
    CLIPImageProcessor(crop_size=8, size=8).save_pretrained(tmp_path / "feature_extractor")
    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.8.0",
        "feature_extractor": ["transformers", "CLIPImageProcessor"], "requires_safety_checker": False,
        "safety_checker": [None, None], "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    }))
    # The replica is a genuine Stable Diffusion folder: diffusers' own pipeline loads every component.
    stable_diffusion = StableDiffusionPipeline.from_pretrained(tmp_path)
    assert stable_diffusion.tokenizer("cat").input_ids == [0, 6, 1]  # <|startoftext|> cat <|endoftext|>
    pipe = LatentDistillationPipeline.from_pretrained(tmp_path)
    assert isinstance(pipe.vae, AutoencoderKL) and same_weights(pipe.vae, vae)
    assert pipe.transformer is None and isinstance(pipe.scheduler, PNDMScheduler)
    assert set(pipe.components) == {"vae", "transformer", "scheduler"}
    # Distilled sets record the VAE inside the repo, so LatentDistillationPipeline.from_distilled() reloads it.
    assert component_reference(pipe, "vae") == {"path": str(tmp_path), "subfolder": "vae", "revision": None,
                                                "fingerprint": weights_fingerprint(vae)}
