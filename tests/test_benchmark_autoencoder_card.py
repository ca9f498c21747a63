"""The autoencoder's model card gives every training stage a command that reproduces it."""

import json

import pytest

from benchmarks.autoencoder import render_card
from benchmarks.results_io import shipped_cards
from latent_distill import DEFAULT_PIPELINE_PATH, FASHION_MNIST_14X14_PIPELINE_PATH

RECORD = {"parameters": 1000, "scaling_factor": 1.0, "classifier_epochs": 5, "psnr_mean_db": 29.5,
          "psnr_dataset_db": 27.4, "acc_original": 90.6, "acc_reconstructed": 90.0, "acc_drop": 0.6}
BASE = {"dataset": "fashion-mnist", "steps": 3500, "train_seconds": 600.0, "init_record": None,
        "args": {"max_steps": 3500, "batch_size": 128, "learning_rate": 0.001, "warmup_steps": 200,
                 "kl_weight": 1e-6, "mixed_precision": "bf16", "seed": 0, "train_part": "all"}}
FINE_TUNE = {"dataset": "fashion-mnist", "steps": 2000, "train_seconds": 120.0, "init_vae": "vae", "init_record": BASE,
             "args": {**BASE["args"], "max_steps": 2000, "learning_rate": 0.0003, "train_part": "decoder"}}


def test_card_of_a_fine_tuned_autoencoder_names_both_stages_in_order_each_with_its_own_folders():
    card = render_card(RECORD, FINE_TUNE)
    training = card[card.index("## Training"):card.index("## Quality")]
    first, second = training.index("### Stage 1: training"), training.index("### Stage 2: decoder fine-tune")
    assert first < second
    assert "--max_steps 3500" in training[first:second] and "--train_part" not in training[first:second]
    stage_two = training[second:]
    assert "--init_vae stage-1/vae --train_part decoder" in stage_two and "--max_steps 2000" in stage_two
    assert "--checkpoint_dir runs/stage-2" in stage_two  # not stage 1's checkpoint, which would be resumed
    assert "about 4.3 epochs" in stage_two and "encoder" in stage_two


def test_card_of_an_autoencoder_trained_once_has_one_stage():
    card = render_card(RECORD, BASE)
    assert "Stage" not in card and "--pipeline_dir" not in card
    assert "accelerate launch examples/train_autoencoder.py --max_steps 3500" in card


def test_pipeline_readme_keeps_both_model_cards(tmp_path):
    import benchmarks.results_io as results_io

    cards = results_io.shipped_cards(DEFAULT_PIPELINE_PATH, folder=tmp_path)
    cards.autoencoder.write_text("---\nlibrary_name: diffusers\n---\n\n# Autoencoder\n\nencoder text\n")
    cards.denoiser.write_text("---\nlibrary_name: diffusers\n---\n\n# DiT\n\ndenoiser text\n")
    results_io.write_pipeline_readme(tmp_path, cards)
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: diffusers\n---")  # one front matter: the autoencoder's
    assert readme.index("# Autoencoder") < readme.index("## DiT") and "denoiser text" in readme
    assert readme.count("library_name") == 1


def test_card_of_the_14x14_autoencoder_describes_its_own_design_and_reproduces_it():
    vae_config = json.loads((FASHION_MNIST_14X14_PIPELINE_PATH / "vae" / "config.json").read_text())
    training = json.loads((FASHION_MNIST_14X14_PIPELINE_PATH / "autoencoder_training.json").read_text())
    card = render_card({**RECORD, "latent_shape": [4, 14, 14]}, training, vae_config,
                       shipped_cards(FASHION_MNIST_14X14_PIPELINE_PATH))
    assert "**4x14x14 latent** (784 values for 784 pixels, so one image's storage holds 1 latent)" in card
    assert "2 resolution levels with block channels (32, 64)" in card
    assert "--downsampling 1" in card and "--latent_channels" not in card  # only what differs from the default
    assert "from_pretrained(FASHION_MNIST_14X14_PIPELINE_PATH)" in card


def test_default_card_keeps_the_default_design_and_only_shipped_folders_get_cards(tmp_path):
    card = render_card({**RECORD, "latent_shape": [4, 7, 7]}, BASE)
    assert "**4x7x7 latent** (196 values for 784 pixels, so one image's storage holds 4 latents)" in card
    assert "3 resolution levels with block channels (32, 64, 128)" in card and "--downsampling" not in card
    with pytest.raises(KeyError):
        shipped_cards(tmp_path / "candidate")
