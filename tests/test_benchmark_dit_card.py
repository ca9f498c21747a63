"""The denoiser's model card describes the shipped DiT it is written for and how to retrain it."""

import json

from benchmarks.latent_diffusion import render_card, training_rounds
from benchmarks.results_io import shipped_cards
from latent_distill import DEFAULT_PIPELINE_PATH, FASHION_MNIST_14X14_PIPELINE_PATH

RECORDS = [{"guidance": 1.0, "steps": 50, "samples": 1000, "class_fidelity": 85.1, "worst_class": "shirt (50.0)",
            "fid": 20.09, "precision": 51.6, "recall": 68.5, "classifier_test_acc": 92.0}]


def shipped(folder):
    config = json.loads((folder / "transformer" / "config.json").read_text())
    training = json.loads((folder / "latent_diffusion_training.json").read_text())
    return config, training


def test_card_of_the_14x14_denoiser_names_its_tokens_rounds_and_snippet():
    config, training = shipped(FASHION_MNIST_14X14_PIPELINE_PATH)
    card = render_card(RECORDS, training, config, shipped_cards(FASHION_MNIST_14X14_PIPELINE_PATH))
    assert "**4x14x14 latents**" in card and "patch size 2 (49 tokens)" in card
    assert len(training_rounds(training)) == 2 and "Round 2, fine-tuning the EMA weights of round 1" in card
    assert "--transformer <pipeline folder>/transformer" in card and "--patch_size 2" in card
    assert "![samples](fashion-mnist-14x14-dit-samples.png)" in card
    assert "from_pretrained(FASHION_MNIST_14X14_PIPELINE_PATH)" in card and "85.1" in card


def test_card_of_the_default_denoiser_keeps_its_own_design():
    config, training = shipped(DEFAULT_PIPELINE_PATH)
    card = render_card(RECORDS, training, config, shipped_cards(DEFAULT_PIPELINE_PATH))
    assert "**4x7x7 latents**" in card and "patch size 1 (49 tokens)" in card
    assert "![samples](fashion-mnist-dit-samples.png)" in card and "from_pretrained(DEFAULT_PIPELINE_PATH)" in card
