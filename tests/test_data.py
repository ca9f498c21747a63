"""Columns, preprocessing and uint8 conversion (bad inputs are in test_bad_input.py)."""

import numpy as np
import torch
from PIL import Image as PILImage

from latent_distill.data import (
    ImagePreprocessor,
    dataset_to_tensors,
    detect_columns,
    float_to_uint8,
    uint8_to_float,
)


def test_columns_are_detected_by_feature_type(toy_dataset):
    assert detect_columns(toy_dataset) == ("image", "label")


def test_dataset_becomes_uint8_tensors_with_class_names(toy_dataset):
    data = dataset_to_tensors(toy_dataset, resolution=28, channels=1)
    assert data.images.shape == (20, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.tolist() == [0] * 10 + [1] * 10
    assert data.class_names == ["class_0", "class_1"]


def test_float_conversion_round_trips():
    images = torch.randint(0, 256, (4, 1, 5, 5), dtype=torch.uint8)
    floats = uint8_to_float(images)
    assert floats.min() >= -1 and floats.max() <= 1
    assert torch.equal(float_to_uint8(floats), images)


def test_preprocessor_centre_crops_the_longer_side():
    array = np.zeros((10, 30), dtype=np.uint8)
    array[:, 10:20] = 255
    out = ImagePreprocessor(resolution=10, channels=1)(PILImage.fromarray(array))
    assert out.shape == (1, 10, 10) and out.min() == 255
