"""The preview image of a distilled set: its images tiled one row per class."""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import torch
from PIL import Image as PILImage

from .png import to_pil

PREVIEW_SAMPLES_PER_CLASS = 10
PREVIEW_MAX_CLASSES = 100


def preview_grid(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int = 10,
                 max_classes: Optional[int] = None, padding: int = 2) -> PILImage.Image:
    """Tiles uint8 images into a grid, one row per class, the first ``per_class`` of each class.

    The grid is as wide as the fullest shown class (at most ``per_class`` columns).

    Args:
        images: uint8 ``(N, C, H, W)``.
        labels: class index per image.
        num_classes: number of rows (classes without images leave an empty row).
        per_class: most images shown per class.
        max_classes: show only the first classes (keeps the file small for large label sets).
        padding: pixels between tiles (black).

    Returns:
        A PIL image, mode ``"L"`` for grey input and ``"RGB"`` otherwise.
    """
    rows = num_classes if max_classes is None else min(num_classes, max_classes)
    slots = list(_grid_slots(labels, rows, per_class))
    columns = 1 + max((column for _, column, _ in slots), default=0)
    channels, height, width = images.shape[1:]
    cell_h, cell_w = height + padding, width + padding
    grid = np.zeros((channels, rows * cell_h + padding, columns * cell_w + padding), dtype=np.uint8)
    for row, column, index in slots:
        top, left = padding + row * cell_h, padding + column * cell_w
        grid[:, top:top + height, left:left + width] = images[index].numpy()
    return to_pil(grid)


def _grid_slots(labels: torch.Tensor, rows: int, per_class: int) -> Iterator[tuple[int, int, int]]:
    """Yields ``(row, column, image index)`` for the first ``per_class`` images of each shown class."""
    for row in range(rows):
        indices = torch.nonzero(labels == row, as_tuple=False).flatten()[:per_class]
        for column, index in enumerate(indices.tolist()):
            yield row, column, index
