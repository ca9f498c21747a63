import numpy as np
import pytest
import torch
from conftest import make_image_dataset
from datasets import Dataset, Features, Image, Value
from PIL import Image as PILImage

from latent_distill.data import (
    DataError,
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


def test_mixed_modes_and_sizes_are_handled():
    images = [
        PILImage.new("L", (20, 30), 10),
        PILImage.new("RGB", (16, 16), (255, 0, 0)),
        PILImage.new("RGBA", (40, 16), (0, 0, 0, 0)),  # fully transparent -> white
        PILImage.new("P", (16, 16), 3),
    ]
    dataset = Dataset.from_dict({"image": images, "label": [0, 1, 0, 1]},
                                features=Features({"image": Image(), "label": Value("int64")}))
    grey = dataset_to_tensors(dataset, resolution=16, channels=1)
    rgb = dataset_to_tensors(dataset, resolution=16, channels=3)
    assert grey.images.shape == (4, 1, 16, 16) and rgb.images.shape == (4, 3, 16, 16)
    assert int(grey.images[2].min()) == 255
    assert rgb.images[1, 0].float().mean() == 255 and rgb.images[1, 1].float().mean() == 0


def test_preprocessor_centre_crops_the_longer_side():
    array = np.zeros((10, 30), dtype=np.uint8)
    array[:, 10:20] = 255
    out = ImagePreprocessor(resolution=10, channels=1)(PILImage.fromarray(array))
    assert out.shape == (1, 10, 10) and out.min() == 255


def test_missing_image_column_names_the_fix():
    dataset = Dataset.from_dict({"pixels": [[0, 1]], "label": [0]})
    with pytest.raises(DataError, match="cast_column"):
        dataset_to_tensors(dataset)


def test_missing_label_column_names_the_fix(toy_dataset):
    with pytest.raises(DataError, match="label_column"):
        dataset_to_tensors(toy_dataset.remove_columns("label"))


def test_string_labels_name_the_fix(toy_dataset):
    dataset = toy_dataset.cast_column("label", Value("string"))
    with pytest.raises(DataError, match="class_encode_column"):
        dataset_to_tensors(dataset)


def test_rows_without_label_name_the_fix():
    dataset = make_image_dataset(num_per_class=2).cast_column("label", Value("int64"))
    labels = list(dataset["label"])
    labels[1] = None
    dataset = dataset.remove_columns("label").add_column("label", labels, feature=Value("int64"))
    with pytest.raises(DataError, match="no label"):
        dataset_to_tensors(dataset, resolution=28)
