import pytest
import torch

from latent_distill.codec import (
    CodecError,
    LatentCache,
    LatentCodec,
    tensor_fingerprint,
)
from latent_distill.data import uint8_to_float


def test_latent_shape_and_resample(tiny_vae):
    assert LatentCodec(tiny_vae, 28).latent_shape == (4, 7, 7)
    codec = LatentCodec(tiny_vae, 28, resample=2)
    assert codec.latent_shape == (4, 14, 14)
    images = torch.rand(3, 1, 28, 28) * 2 - 1
    latents = codec.encode(images)
    assert latents.shape == (3, 4, 14, 14)
    assert codec.decode(latents).shape == (3, 1, 28, 28)


def test_unencodable_resolution_is_a_clear_error(tiny_vae):
    with pytest.raises(CodecError, match="divisible by 4"):
        LatentCodec(tiny_vae, 18)


def test_batched_encoding_matches_one_pass(tiny_vae):
    images = torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8)
    codec = LatentCodec(tiny_vae, 28, batch_size=3)
    batched = codec.encode(images, to_float=uint8_to_float)
    with torch.no_grad():
        whole = codec.encode_batch(uint8_to_float(images))
    torch.testing.assert_close(batched, whole, atol=1e-5, rtol=1e-5)


def test_cache_round_trips_and_rebuilds_corrupt_entries(tiny_vae, tmp_path):
    codec = LatentCodec(tiny_vae, 28)
    cache = LatentCache(tmp_path)
    latents, labels = torch.randn(5, 4, 7, 7), torch.arange(5)
    key = tensor_fingerprint(labels)
    assert cache.load(codec, key) is None
    cache.store(codec, key, latents, labels)
    loaded, loaded_labels = cache.load(codec, key)
    assert torch.equal(loaded, latents) and torch.equal(loaded_labels, labels)
    (cache.entry(codec, key) / "latents.safetensors").write_bytes(b"truncated")
    assert cache.load(codec, key) is None


def test_fingerprint_changes_with_weights(tiny_vae):
    codec = LatentCodec(tiny_vae, 28)
    before = codec.fingerprint()
    with torch.no_grad():
        next(tiny_vae.parameters()).add_(1.0)
    assert codec.fingerprint() != before
