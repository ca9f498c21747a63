"""Peak RSS and time of encoding Fashion-MNIST's training images with the shipped autoencoder.

    python -m benchmarks.encoding_memory               # all 60,000 images
    python -m benchmarks.encoding_memory --limit 2000  # a quick check

Records (``benchmarks/results/encoding_memory.json`` / ``.md``, keyed by image count): peak_rss_mb (peak resident set of the whole process, from
``resource.getrusage``), seconds (encoding only), and, to read the peak against, the RSS peak before
encoding (model and uint8 images loaded), the size of the float32 latents that are returned, and the
size one float32 copy of the images would take (what a non-streaming encoder would add).
"""

import argparse
import json
import time

import torch

from latent_distill import (
    DEFAULT_PIPELINE_PATH,
    LatentDistillationPipeline,
    fashion_mnist_tensors,
)
from latent_distill.codec import LatentCodec
from latent_distill.data import uint8_to_float

from .results_io import markdown_table, peak_rss_mb, upsert_record, write_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="encode only the first N images")
    parser.add_argument("--batch-size", type=int, default=500, help="images per forward pass")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    vae = LatentDistillationPipeline.from_pretrained(DEFAULT_PIPELINE_PATH).vae.eval().requires_grad_(False)
    data = fashion_mnist_tensors("train")
    images = data.images if args.limit is None else data.images[: args.limit].clone()
    del data
    codec = LatentCodec(vae, 28, batch_size=args.batch_size)
    before = peak_rss_mb()
    started = time.perf_counter()
    latents = codec.encode(images, to_float=uint8_to_float)
    seconds = time.perf_counter() - started
    record = {
        "benchmark": "encoding_memory", "dataset": "fashion-mnist",
        "images": len(images),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_before_encoding_mb": round(before, 1),
        "seconds": round(seconds, 2),
        "images_per_second": round(len(images) / seconds, 1),
        "latent_shape": list(latents.shape),
        "latents_mb": round(latents.numel() * latents.element_size() / 2**20, 1),
        "uint8_images_mb": round(images.numel() / 2**20, 1),
        "float32_images_mb": round(images.numel() * 4 / 2**20, 1),
        "finite": bool(torch.isfinite(latents).all()),
    }
    records = upsert_record("encoding_memory", record, ("images", "batch_size", "threads"))
    write_markdown("encoding_memory", "# Peak memory of encoding (shipped autoencoder, streamed in batches)\n\n" +
                   markdown_table(records, [("images", "images"), ("batch", "batch_size"), ("threads", "threads"),
                                            ("peak RSS MB", "peak_rss_mb"),
                                            ("peak RSS before encoding MB", "peak_rss_before_encoding_mb"),
                                            ("latents MB", "latents_mb"), ("float32 images MB", "float32_images_mb"),
                                            ("seconds", "seconds")]))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
