"""The real training set in latent space: encoded once, shared out over processes, cached on disk.

Every latent method (LatentDD's representations, D3HR's fit) starts from the autoencoder latents of
the real images. :func:`encode_training_latents` encodes them in batches split over the processes
(each process encodes a batch-aligned slice, the slices are gathered), and stores them in the
:class:`~latent_distill.codec.LatentCache` keyed by the autoencoder and the data, so a second run on
the same data and model loads them instead.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from accelerate import PartialState

from .codec import LatentCache, LatentCodec
from .data import TrainingSplit, uint8_to_float
from .distributed import all_gather_rows, batch_aligned_bounds


def encode_training_latents(data: TrainingSplit, codec: LatentCodec, cache: LatentCache,
                            progress: Optional[Callable] = None) -> torch.Tensor:
    """The latents of every training image, from the cache or encoded across processes.

    Images are read batch by batch (a :class:`~latent_distill.data.StreamedImageClassification`
    decodes each batch only then), so memory holds the latents plus one batch of images.

    Args:
        data: the real training split, in memory or streamed.
        codec: the autoencoder codec.
        cache: the latent cache (keyed by the codec and ``data.fingerprint()``).
        progress: wraps the batch iterator (e.g. a ``tqdm``), or ``None``.

    Returns:
        ``(N, C, h, w)`` float32 latents in the order of ``data``, the same on every process.
    """
    fingerprint = data.fingerprint()
    cached = cache.load(codec, fingerprint)
    if cached is not None:
        return cached[0]
    state = PartialState()
    bounds = batch_aligned_bounds(len(data), codec.batch_size, state)
    start, stop = bounds[state.process_index]
    batches = [(first, min(first + codec.batch_size, stop)) for first in range(start, stop, codec.batch_size)]
    local = torch.empty((stop - start, *codec.latent_shape), dtype=torch.float32)
    for first, last in (progress(batches) if progress is not None else batches):
        local[first - start: last - start] = codec.encode(data.images_between(first, last), to_float=uint8_to_float)
    latents = all_gather_rows(local, bounds, state)
    if state.is_main_process:
        cache.store(codec, fingerprint, latents, data.labels)
    state.wait_for_everyone()
    return latents
