"""Generator metrics on features: Fréchet distance, improved precision/recall, class fidelity."""

import math

import pytest
import torch

from latent_distill.evaluation import (
    class_fidelity,
    classifier_features,
    frechet_distance,
    precision_recall,
)
from latent_distill.networks import get_network


def gaussian(n: int, mean: float, std: float, dim: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * std + mean


def test_frechet_distance_matches_the_closed_form():
    real, same = gaussian(20000, 0.0, 1.0, seed=0), gaussian(20000, 0.0, 1.0, seed=1)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(real, same) < 0.01
    # Isotropic Gaussians: |mu_r - mu_g|^2 + D (s_r - s_g)^2 = 4 * 0.5^2 + 4 * (1 - 2)^2 = 5.
    assert frechet_distance(real, gaussian(20000, 0.5, 2.0, seed=2)) == pytest.approx(5.0, rel=0.03)


def test_frechet_distance_refuses_mismatched_features():
    with pytest.raises(ValueError, match="same width"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))


def test_precision_and_recall_separate_fidelity_from_coverage():
    real = torch.cat([gaussian(300, 0.0, 0.1, seed=3), gaussian(300, 5.0, 0.1, seed=4)])
    assert precision_recall(real, real.clone()) == {"precision": 100.0, "recall": 100.0}
    collapsed = gaussian(300, 0.0, 0.1, seed=5)  # one of the two modes only
    scores = precision_recall(real, collapsed)
    assert scores["precision"] > 90 and 40 < scores["recall"] < 60
    assert precision_recall(real, gaussian(300, 20.0, 0.1, seed=6)) == {"precision": 0.0, "recall": 0.0}


def test_class_fidelity_per_class():
    scores = class_fidelity(torch.tensor([0, 0, 1, 0]), torch.tensor([0, 0, 1, 1]), num_classes=3)
    assert scores["overall"] == 75.0 and scores["per_class"][:2] == [100.0, 50.0]
    assert math.isnan(scores["per_class"][2])


def test_classifier_features_are_the_penultimate_layer():
    model = get_network("convnet", in_channels=1, num_classes=3, resolution=28, width=8).eval()
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    features = classifier_features(model, images, batch_size=2)
    assert features.dtype == torch.float64 and features.shape == (5, model.classifier.in_features)
    with pytest.raises(TypeError, match="embed"):
        classifier_features(torch.nn.Linear(3, 3), images)
