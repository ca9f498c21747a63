"""Every bad input the library refuses, with the message that names the problem and the fix.

The table :data:`REFUSED` lists the data and autoencoder inputs (each raises at the first function
that sees it, before any model runs); :func:`test_odd_images_are_converted_not_refused` lists the
inputs that look odd but are handled. Bad inputs checked where they occur, whose tests live beside
their feature:

- a distilled set written by a newer schema version: ``DistilledDatasetError`` "upgrade
  latent-distill" (``tests/test_hub.py::test_newer_schema_is_refused``);
- a folder that is not a distilled set: ``DistilledDatasetError`` (``tests/test_hub.py::
  test_folder_without_recipe_is_refused``) and invalid set contents (``tests/test_hub.py::
  test_invalid_sets_raise_clear_errors``);
- latents whose channels or size do not fit the denoiser, labels the denoiser has no embedding for:
  ``latent_distill.d3hr.DenoiserError`` (``tests/test_d3hr.py::
  test_denoiser_rejects_mismatched_latents_and_labels``);
- the same data errors reached through a pipeline call (``tests/test_pipeline.py::
  test_empty_class_is_a_clear_error``, ``test_unencodable_image_size_is_a_clear_error``,
  ``test_budget_errors_name_the_fix``).
"""

import io

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage

from latent_distill.codec import CodecError, LatentCodec
from latent_distill.data import (
    DataError,
    ImageClassificationTensors,
    ImagePreprocessor,
    dataset_to_tensors,
    training_tensors,
)
from latent_distill.testing import make_image_dataset, make_tiny_vae


def with_labels(labels: list, feature=None) -> Dataset:
    """``len(labels)`` toy images with the given label values (``feature`` types the column)."""
    images = list(make_image_dataset(num_per_class=len(labels), num_classes=1)["image"])
    return Dataset.from_dict({"image": images, "label": labels},
                             features=Features({"image": Image(), "label": feature}) if feature else None)


def with_images(images: list) -> Dataset:
    return Dataset.from_dict({"image": images, "label": [0] * len(images)},
                             features=Features({"image": Image(), "label": Value("int64")}))


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("L", (28, 28), 7).save(buffer, format="PNG")
    return buffer.getvalue()


def with_encoded_images(encoded: list[bytes]) -> Dataset:
    """Rows whose image column holds the given raw bytes (decoded only when read)."""
    return Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in encoded], "label": [0] * len(encoded)},
                             features=Features({"image": Image(), "label": Value("int64")}))


def toy_tensors(labels: list[int], resolution: int = 28, channels: int = 1) -> ImageClassificationTensors:
    images = torch.zeros(len(labels), channels, resolution, resolution, dtype=torch.uint8)
    return ImageClassificationTensors(images, torch.tensor(labels), ["class_0", "class_1"])


def to_tensors(dataset) -> ImageClassificationTensors:
    """What every pipeline does first with its dataset (grey, 28x28)."""
    return training_tensors(dataset, resolution=28, channels=1)


REFUSED = [
    # ---- columns
    pytest.param(lambda: to_tensors(Dataset.from_dict({"pixels": [[0, 1]], "label": [0]})),
                 DataError, r"No image column.*cast_column", id="no-image-column"),
    pytest.param(lambda: dataset_to_tensors(make_image_dataset(), image_column="img"),
                 DataError, r"image_column='img' is not a column", id="wrong-image-column"),
    pytest.param(lambda: to_tensors(make_image_dataset().remove_columns("label")),
                 DataError, r"No label column.*label_column=", id="no-label-column"),
    pytest.param(lambda: to_tensors(make_image_dataset().cast_column("label", Value("float32"))),
                 DataError, r"not class indices or class names.*class_encode_column", id="float-label-column"),
    pytest.param(lambda: dataset_to_tensors(with_labels(["cat", "dog", "cow"], Value("string")),
                                            class_names=["cat", "dog"]),
                 DataError, r"class names \['cow'\] that are not among \['cat', 'dog'\]", id="unknown-class-name"),
    pytest.param(lambda: to_tensors(with_labels(["cat", None], Value("string"))),
                 DataError, r"no class name \(None\).*filter", id="missing-class-name"),
    # ---- labels
    pytest.param(lambda: to_tensors(with_labels([0, None, 1, None], Value("int64"))),
                 DataError, r"2 of 4 rows have no label.*filter\(lambda row: row\['label'\] is not None\)",
                 id="some-labels-none"),
    pytest.param(lambda: to_tensors(with_labels([0, None, 1], ClassLabel(names=["a", "b"]))),
                 DataError, r"1 of 3 rows have no label.*is not None", id="some-classlabels-none"),
    pytest.param(lambda: to_tensors(with_labels([None, None]).cast_column("image", Image())),
                 DataError, r"no label at all.*labelled split", id="all-labels-none"),
    pytest.param(lambda: to_tensors(with_labels([0, -1, 1], ClassLabel(names=["a", "b"]))),
                 DataError, r"1 of 3 rows have a negative label.*row\['label'\] >= 0", id="unlabelled-minus-one"),
    pytest.param(lambda: to_tensors(with_labels([0, 5, 1], Value("int64")).cast_column(
                     "label", ClassLabel(names=["a", "b"]))),
                 DataError, r"label 5 but its ClassLabel has only 2 names.*cast_column", id="label-beyond-names"),
    pytest.param(lambda: to_tensors(toy_tensors([0, 1, 2])),
                 DataError, r"1 of 3 labels are not class indices in \[0, 2\).*class_names", id="tensor-label-range"),
    # ---- rows and splits
    pytest.param(lambda: to_tensors(make_image_dataset().select([])),
                 DataError, r"empty", id="empty-dataset"),
    pytest.param(lambda: to_tensors(with_images([PILImage.new("L", (28, 28)), None])),
                 DataError, r"Row 1 has no image.*is not None", id="row-without-image"),
    pytest.param(lambda: to_tensors(with_encoded_images([png_bytes(), b"\x89PNG\r\n\x1a\n truncated"])),
                 DataError, r"Row 1 of column 'image' does not decode as an image.*repair or drop it", id="corrupt-bytes"),
    pytest.param(lambda: to_tensors(DatasetDict(test=make_image_dataset())),
                 DataError, r"no 'train' split.*pass the split", id="no-train-split"),
    pytest.param(lambda: to_tensors(make_image_dataset(num_per_class=2, num_classes=3).filter(
                     lambda row: row["label"] != 1)),
                 DataError, r"\['class_1'\] have no training sample.*filter", id="empty-class"),
    # ---- image geometry
    pytest.param(lambda: to_tensors(toy_tensors([0, 1], resolution=32)),
                 DataError, r"not 28x28.*dataset_to_tensors\(dataset, resolution=", id="tensor-resolution"),
    pytest.param(lambda: to_tensors(toy_tensors([0, 1], channels=3)),
                 DataError, r"3 channels but the autoencoder takes 1.*channels=1", id="tensor-channels"),
    pytest.param(lambda: ImagePreprocessor(channels=4), DataError, r"1 \(grey\) or 3 \(RGB\)", id="channels-4"),
    # ---- tensors given directly
    pytest.param(lambda: ImageClassificationTensors(torch.rand(2, 1, 28, 28), torch.tensor([0, 1]), ["a", "b"]),
                 DataError, r"Images are torch.float32, but splits hold uint8.*float_to_uint8", id="float-images"),
    pytest.param(lambda: ImageClassificationTensors(torch.full((2, 1, 28, 28), float("nan")), torch.tensor([0, 1]),
                                                    ["a", "b"]),
                 DataError, r"1568 NaN values.*drop or repair", id="nan-images"),
    pytest.param(lambda: ImageClassificationTensors(torch.zeros(2, 28, 28, dtype=torch.uint8), torch.tensor([0, 1]),
                                                    ["a", "b"]),
                 DataError, r"\(N, C, H, W\).*unsqueeze\(1\)", id="images-without-channel-axis"),
    pytest.param(lambda: ImageClassificationTensors(torch.zeros(2, 1, 28, 28, dtype=torch.uint8),
                                                    torch.tensor([0.0, 1.0]), ["a", "b"]),
                 DataError, r"Labels are torch.float32.*labels\.long\(\)", id="float-labels"),
    pytest.param(lambda: ImageClassificationTensors(torch.zeros(2, 1, 28, 28, dtype=torch.uint8),
                                                    torch.tensor([0.0, float("nan")]), ["a", "b"]),
                 DataError, r"NaN or fractional labels cannot be classes", id="nan-labels"),
    pytest.param(lambda: ImageClassificationTensors(torch.zeros(2, 1, 28, 28, dtype=torch.uint8),
                                                    torch.tensor([0, 1, 1]), ["a", "b"]),
                 DataError, r"one class index per image \(2 images\)", id="label-count"),
    # ---- autoencoder
    pytest.param(lambda: LatentCodec(make_tiny_vae(), 18),
                 CodecError, r"downsamples by 4.*divisible by 4 \(e\.g\. \[4, 8, 12, 16\]\)", id="resolution-vs-factor"),
    pytest.param(lambda: LatentCodec(make_tiny_vae(), 14, resample=3),
                 CodecError, r"cannot encode 42x42.*another resample factor", id="resampled-size-vs-factor"),
    pytest.param(lambda: LatentCodec(make_tiny_vae(), 28, resample=0),
                 CodecError, r"resample must be a positive integer", id="resample-zero"),
]


@pytest.mark.parametrize("make, error, message", REFUSED)
def test_bad_input_is_refused_with_the_fix(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_odd_images_are_converted_not_refused():
    """Any PIL mode and size goes in: transparency on white, palettes through RGB(A), 16-bit scaled."""
    deep = np.full((16, 16), 1000, dtype=np.uint16)
    images = [
        PILImage.new("L", (20, 30), 10),
        PILImage.new("RGB", (16, 16), (255, 0, 0)),
        PILImage.new("RGBA", (40, 16), (0, 0, 0, 0)),  # fully transparent -> white
        PILImage.new("P", (16, 16), 3),
        PILImage.new("LA", (16, 16), (0, 0)),  # transparent -> white
        PILImage.new("PA", (16, 16)),  # transparent palette -> white
        PILImage.new("1", (16, 16), 1),
        PILImage.new("CMYK", (16, 16), (0, 0, 0, 0)),
        PILImage.fromarray(deep),  # a 16-bit grey PNG: 1000 / 65535 of full scale, not clipped to white
    ]
    dataset = with_images(images)
    assert dataset.features["image"].decode and dataset[8]["image"].mode == "I;16"
    grey = dataset_to_tensors(dataset, resolution=16, channels=1)
    rgb = dataset_to_tensors(dataset, resolution=16, channels=3)
    assert grey.images.shape == (9, 1, 16, 16) and rgb.images.shape == (9, 3, 16, 16)
    assert grey.images[0].unique().tolist() == [10]
    assert rgb.images[1, 0].float().mean() == 255 and rgb.images[1, 1].float().mean() == 0
    for white in (2, 4, 5, 6, 7):
        assert grey.images[white].min() == 255 and rgb.images[white].min() == 255
    assert grey.images[8].unique().tolist() == [round(1000 / 257)]


def test_class_names_are_encoded_and_recorded():
    """A column of class names becomes indices in sorted order (or the given order, for a test split)."""
    train = dataset_to_tensors(with_labels(["dog", "cat", "dog"], Value("string")))
    assert train.class_names == ["cat", "dog"] and train.labels.tolist() == [1, 0, 1]
    test = dataset_to_tensors(with_labels(["dog"], Value("string")), class_names=train.class_names)
    assert test.class_names == ["cat", "dog"] and test.labels.tolist() == [1]


def test_integer_label_tensors_become_int64():
    data = ImageClassificationTensors(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1], dtype=torch.int32),
                                      ["a", "b"])
    assert data.labels.dtype == torch.int64
