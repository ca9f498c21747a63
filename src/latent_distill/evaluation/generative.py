"""How good a class-conditional generator is, judged through a classifier of the real data.

Used to measure the denoisers that D3HR and LD3M distil through, checkpoint by checkpoint:

- :func:`class_fidelity`: the share of generated samples the classifier labels as the class they
  were generated for (per class and overall);
- :func:`frechet_distance`: the Fréchet distance between Gaussians fitted to the classifier's
  penultimate features of real and generated images (FID computed on a dataset-specific network
  instead of Inception, so it is comparable across checkpoints of one dataset, not across papers);
- :func:`precision_recall`: improved precision (generated samples inside the real manifold) and
  recall (real samples inside the generated manifold), manifolds as unions of k-nearest-neighbour
  balls (Kynkäänniemi et al., *Improved Precision and Recall Metric for Assessing Generative Models*).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .common import to_float_samples


@torch.inference_mode()
def classifier_features(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Penultimate features of ``model`` (its ``embed()``) for every image.

    Args:
        model: a network of the registry (it has ``embed(x)``), in eval mode.
        images: ``uint8`` images, or float images in [-1, 1], ``(N, C, H, W)``.
        batch_size: images per forward pass.

    Returns:
        float64 features ``(N, D)`` on the CPU.

    Raises:
        TypeError: when the model has no ``embed`` method.
    """
    if not hasattr(model, "embed"):
        raise TypeError(f"{type(model).__name__} has no embed() method: use a network of the registry "
                        "(latent_distill.networks), whose embed() returns its penultimate features.")
    device = next(model.parameters()).device
    features = [model.embed(to_float_samples(images[start: start + batch_size]).to(device)).double().cpu()
                for start in range(0, len(images), batch_size)]
    return torch.cat(features)


def class_fidelity(predicted: torch.Tensor, intended: torch.Tensor, num_classes: int) -> dict:
    """The share of samples whose predicted class is the class they were generated for.

    Args:
        predicted: int64 predicted classes ``(N,)``.
        intended: int64 classes the samples were generated for ``(N,)``.
        num_classes: number of classes.

    Returns:
        ``{"overall": percent, "per_class": [percent of class c, ...]}`` (``nan`` for a class without
        samples).
    """
    hits = (predicted == intended).double()
    per_class = [float(hits[intended == c].mean() * 100) if bool((intended == c).any()) else float("nan")
                 for c in range(num_classes)]
    return {"overall": float(hits.mean() * 100), "per_class": per_class}


def _symmetric_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(real: torch.Tensor, generated: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r^1/2 S_g S_r^1/2)^1/2)``, computed in float64 with
    symmetric eigen-decompositions (no complex square roots).

    Args:
        real: ``(N, D)`` features of real images.
        generated: ``(M, D)`` features of generated images.

    Returns:
        The distance (0 for identical Gaussians). It is biased upward for small ``M``: compare
        models at the same sample count.

    Raises:
        ValueError: for feature sets of different widths or with fewer than two rows.
    """
    if real.shape[1] != generated.shape[1] or min(len(real), len(generated)) < 2:
        raise ValueError(f"Feature sets of shapes {tuple(real.shape)} and {tuple(generated.shape)}: both need the "
                         "same width and at least two rows.")
    real, generated = real.double(), generated.double()
    mean_gap = float(((real.mean(0) - generated.mean(0)) ** 2).sum())
    cov_real, cov_generated = torch.cov(real.T), torch.cov(generated.T)
    root = _symmetric_sqrt(cov_real)
    cross = torch.linalg.eigvalsh(root @ cov_generated @ root).clamp_min(0).sqrt().sum()
    return mean_gap + float(torch.trace(cov_real) + torch.trace(cov_generated) - 2 * cross)


def _knn_radii(features: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Distance of every row to its k-th nearest other row."""
    radii = []
    for start in range(0, len(features), batch_size):
        distances = torch.cdist(features[start: start + batch_size], features)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # the 1st is the row itself
    return torch.cat(radii)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Whether each point lies in at least one ball (centre, radius)."""
    inside = []
    for start in range(0, len(points), batch_size):
        inside.append((torch.cdist(points[start: start + batch_size], centres) <= radii).any(dim=1))
    return torch.cat(inside)


def precision_recall(real: torch.Tensor, generated: torch.Tensor, k: int = 3,
                     batch_size: Optional[int] = 1000) -> dict:
    """Improved precision and recall of generated features against real ones.

    Args:
        real: ``(N, D)`` features of real images.
        generated: ``(M, D)`` features of generated images.
        k: neighbours defining each sample's ball (3 in the paper).
        batch_size: rows per distance block (bounds memory).

    Returns:
        ``{"precision": percent, "recall": percent}``.

    Raises:
        ValueError: when either set has ``k`` rows or fewer.
    """
    if min(len(real), len(generated)) <= k:
        raise ValueError(f"precision_recall needs more than k={k} rows in both sets, got {len(real)} and "
                         f"{len(generated)}.")
    real, generated = real.float(), generated.float()
    batch_size = batch_size or max(len(real), len(generated))
    precision = _inside(generated, real, _knn_radii(real, k, batch_size), batch_size).double().mean()
    recall = _inside(real, generated, _knn_radii(generated, k, batch_size), batch_size).double().mean()
    return {"precision": float(precision * 100), "recall": float(recall * 100)}
