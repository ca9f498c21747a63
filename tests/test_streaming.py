"""Latent methods read a datasets split batch by batch: the same latents as from tensors, one batch in memory."""

import pytest
import torch

from latent_distill.codec import LatentCache, LatentCodec
from latent_distill.data import (
    DataError,
    StreamedImageClassification,
    dataset_to_tensors,
    streamed_training_split,
)
from latent_distill.encoding import encode_training_latents


def test_streamed_split_reads_what_tensors_hold(toy_dataset):
    stream = streamed_training_split(toy_dataset, resolution=28, channels=1)
    tensors = dataset_to_tensors(toy_dataset, resolution=28, channels=1)
    assert isinstance(stream, StreamedImageClassification)
    assert torch.equal(stream.labels, tensors.labels) and stream.class_names == tensors.class_names
    assert torch.equal(stream.images_between(3, 9), tensors.images[3:9])
    assert torch.equal(stream.load().images, tensors.images)
    picks = torch.tensor([0, 11, 19])
    assert torch.equal(stream.select(picks).load().images, tensors.select(picks).images)


def test_streamed_encoding_equals_in_memory_encoding_one_batch_at_a_time(toy_dataset, tiny_vae, tmp_path,
                                                                         monkeypatch):
    codec = LatentCodec(tiny_vae, 28, batch_size=6)
    stream = streamed_training_split(toy_dataset, resolution=28, channels=1)
    reads = []
    original = StreamedImageClassification.images_between
    monkeypatch.setattr(StreamedImageClassification, "images_between",
                        lambda self, start, stop: reads.append(stop - start) or original(self, start, stop))
    streamed = encode_training_latents(stream, codec, LatentCache(tmp_path / "a"))
    in_memory = encode_training_latents(dataset_to_tensors(toy_dataset), codec, LatentCache(tmp_path / "b"))
    assert torch.equal(streamed, in_memory)
    assert reads == [6, 6, 6, 2]  # never the whole split
    reads.clear()
    assert torch.equal(encode_training_latents(stream, codec, LatentCache(tmp_path / "a")), streamed)
    assert reads == []  # second run: from the cache


def test_streamed_split_checks_labels_up_front(toy_dataset):
    with pytest.raises(DataError, match="have no training sample"):
        streamed_training_split(toy_dataset.filter(lambda row: row["label"] != 1).cast_column(
            "label", toy_dataset.features["label"]), resolution=28, channels=1)


def test_streamed_fingerprint_follows_the_preprocessing(toy_dataset):
    grey = streamed_training_split(toy_dataset, resolution=28, channels=1)
    assert grey.fingerprint() == streamed_training_split(toy_dataset, resolution=28, channels=1).fingerprint()
    assert grey.fingerprint() != streamed_training_split(toy_dataset, resolution=32, channels=1).fingerprint()
    assert grey.fingerprint() != grey.select(torch.arange(5)).fingerprint()


def test_random_subset_of_a_streamed_split_decodes_only_the_subset(toy_dataset, monkeypatch):
    from latent_distill.evaluation import random_subset

    stream = streamed_training_split(toy_dataset, resolution=28, channels=1)
    decoded = []
    original = StreamedImageClassification.images_between
    monkeypatch.setattr(StreamedImageClassification, "images_between",
                        lambda self, start, stop: decoded.append(stop - start) or original(self, start, stop))
    images, labels = random_subset(stream, per_class=2, seed=3)
    expected_images, expected_labels = random_subset(dataset_to_tensors(toy_dataset), per_class=2, seed=3)
    assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)
    assert decoded == [4]


def test_evaluation_split_prefers_test_then_validation():
    from datasets import DatasetDict

    from latent_distill.data import evaluation_split
    from latent_distill.testing import make_image_dataset

    data = make_image_dataset(num_per_class=1)
    assert evaluation_split(DatasetDict(train=data, validation=data)) is not None
    splits = DatasetDict(train=data, validation=data.select([0]), test=data.select([1]))
    assert len(evaluation_split(splits)) == 1 and evaluation_split(splits)["label"] == [1]
    assert evaluation_split(splits, "validation")["label"] == [0]
    with pytest.raises(DataError, match="no split 'dev'"):
        evaluation_split(splits, "dev")
    with pytest.raises(DataError, match="no test or validation split.*train_test_split"):
        evaluation_split(DatasetDict(train=data))
