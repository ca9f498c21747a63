"""The training loop of the public DatasetCondensation reference (``evaluate_synset``), in its shape.

A ``DataLoader`` over a ``TensorDataset`` (batch 256, shuffled), fp32 eager, optional DSA per
batch, SGD momentum 0.9 / weight decay 5e-4 at lr 0.01 dropped x0.1 by rebuilding the optimiser at
half of ``epochs + 1`` epochs, then testing through a ``DataLoader`` of 256. Benchmarks use it as an
independent check of :func:`latent_distill.evaluate_synthetic`: for speed (``evaluation_speed.py``)
and for the protocol check against published figures (``quality.py``).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from latent_distill.augment import DifferentiableSiameseAugmentation
from latent_distill.networks import get_network


def reference_loop(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
                   epochs: int, seed: int, augment: bool = True, **network_kwargs) -> tuple[float, float]:
    """Trains a ConvNet-3 the reference way and tests it.

    Args:
        images: float training images ``(N, C, H, W)``, already scaled as the network expects.
        labels: int64 labels ``(N,)``.
        test_images: float test images, scaled like ``images``.
        test_labels: int64 test labels.
        epochs: training epochs (the loop runs ``epochs + 1`` of them, as the reference does).
        seed: seeds the network initialisation, the shuffling and the augmentation.
        augment: apply DSA (per sample) to every training batch.
        **network_kwargs: passed to :func:`~latent_distill.networks.get_network` (e.g. ``first_padding``).

    Returns:
        ``(accuracy in percent, seconds)``.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    num_classes = int(test_labels.max()) + 1
    network = get_network("convnet", images.shape[1], num_classes, images.shape[-1], **network_kwargs)
    dsa = DifferentiableSiameseAugmentation() if augment else None
    train_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=256,
                                               shuffle=True)
    lr = 0.01
    optimizer = torch.optim.SGD(network.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    for epoch in range(epochs + 1):
        network.train()
        for x, y in train_loader:
            loss = F.cross_entropy(network(dsa(x, per_sample=True) if dsa else x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch == epochs // 2:
            lr *= 0.1
            optimizer = torch.optim.SGD(network.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    network.eval()
    test_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(test_images, test_labels), batch_size=256)
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += int((network(x).argmax(1) == y).sum())
    return 100.0 * correct / len(test_labels), time.perf_counter() - started
