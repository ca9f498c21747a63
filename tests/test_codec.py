"""Encoding, decoding, fingerprints and the memory-mapped latent cache (bad inputs: test_bad_input.py)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from latent_distill.codec import (
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


def test_fingerprint_is_the_same_in_every_process():
    """The cache is found again by a new run: nothing hash-randomised enters the key."""
    code = ("from latent_distill.codec import LatentCodec; from latent_distill.testing import make_tiny_vae; "
            "print(LatentCodec(make_tiny_vae(), 28).fingerprint())")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300,
                           env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": seed}).stdout.strip()
            for seed in ("1", "2")}
    assert len(keys) == 1


# Store (or load) a ~200 MB cache entry in a fresh process; loading prints the peak-RSS growth.
CACHE_SCRIPT = textwrap.dedent("""
    import json, resource, sys, torch
    from latent_distill.codec import LatentCache, LatentCodec
    from latent_distill.representations import RealPool
    from latent_distill.testing import make_tiny_vae

    rows = {rows}
    codec, cache = LatentCodec(make_tiny_vae(), 28), LatentCache({root!r})
    codec.fingerprint()  # hashing the weights is not part of what is measured
    if {store}:
        latents = torch.arange(rows, dtype=torch.float32)[:, None, None, None].expand(rows, 4, 7, 7)
        cache.store(codec, "big", latents.contiguous(), torch.arange(rows) % 3)
        sys.exit(0)
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    before = peak()
    latents, labels = cache.load(codec, "big")
    grown = peak() - before
    mapped = str(cache.entry(codec, "big") / "latents.safetensors") in open("/proc/self/maps").read()
    pool = RealPool(latents, labels, num_classes=3)
    rows_seen = pool.gather(torch.tensor([0, 7, rows - 1]))[:, 0, 0, 0].tolist()
    latents[0] += 1.0  # copy-on-write: the file keeps its bytes
    again = cache.load(codec, "big")[0][0, 0, 0, 0].item()
    print(json.dumps({{"grown": grown, "mapped": mapped, "rows": rows_seen, "again": again}}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps and ru_maxrss in KiB")
def test_loaded_cache_is_memory_mapped_not_read_into_memory(tmp_path):
    rows = 200 * 2**20 // (4 * 7 * 7 * 4)  # 200 MiB of float32 latents
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(store: bool) -> str:
        script = CACHE_SCRIPT.format(rows=rows, root=str(tmp_path), store=store)
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run(store=True)
    report = json.loads(run(store=False).strip().splitlines()[-1])
    assert report["mapped"]
    assert report["grown"] < 20 * 2**20, f"loading raised peak RSS by {report['grown'] / 2**20:.0f} MiB"
    assert report["rows"] == [0.0, 7.0, rows - 1] and report["again"] == 0.0
