"""Batched VAE encoding and decoding, with LatentDD's resample factor and an on-disk latent cache.

Latents are the posterior means multiplied by the autoencoder's ``scaling_factor`` (unit-variance
latents, as diffusion models consume them); decoding divides it back out. The resample factor
``resample`` (Dataset Distillation in Latent Space, §4.1) upsamples images before encoding and
downsamples the decoded images afterwards (``resample=2`` turns an ``f = 4`` autoencoder into an
effective ``f = 2``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from .checkpointing import atomic_directory


class CodecError(ValueError):
    """Raised when images cannot go through the autoencoder as configured."""


def config_downsampling(config) -> int:
    """Returns the spatial downsampling factor an ``AutoencoderKL`` config (a mapping) describes: each
    resolution level but the last halves the side."""
    return 2 ** (len(config["block_out_channels"]) - 1)


def autoencoder_downsampling(vae) -> int:
    """Returns the spatial downsampling factor of a diffusers ``AutoencoderKL``-like model."""
    return config_downsampling(vae.config)


@dataclass
class LatentCodec:
    """Encodes images to latents and decodes them back, in batches.

    Args:
        vae: a diffusers ``AutoencoderKL`` (or any model with ``encode(x).latent_dist`` and
            ``decode(z).sample``), used frozen.
        resolution: working image resolution (square).
        resample: integer upsampling applied before encoding and undone after decoding.
        batch_size: images per forward pass.
    """

    vae: torch.nn.Module
    resolution: int
    resample: int = 1
    batch_size: int = 500

    def __post_init__(self) -> None:
        factor = autoencoder_downsampling(self.vae)
        size = self.resolution * self.resample
        if self.resample < 1:
            raise CodecError(f"resample must be a positive integer, got {self.resample}.")
        if size % factor != 0:
            valid = [r for r in range(factor, 4 * self.resolution + 1, factor) if r % self.resample == 0][:4]
            raise CodecError(
                f"The autoencoder downsamples by {factor}, so it cannot encode {size}x{size} images "
                f"(resolution {self.resolution} x resample {self.resample}). Choose a resolution whose "
                f"resampled size is divisible by {factor} (e.g. {valid}) or another resample factor."
            )

    @property
    def scaling_factor(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", 1.0) or 1.0)

    @property
    def image_channels(self) -> int:
        return int(self.vae.config.in_channels)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.resolution * self.resample // autoencoder_downsampling(self.vae)
        return (int(self.vae.config.latent_channels), side, side)

    def _model_device_dtype(self) -> tuple[torch.device, torch.dtype]:
        parameter = next(self.vae.parameters())
        return parameter.device, parameter.dtype

    def encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Encodes float images in [-1, 1] (differentiable); returns scaled posterior means."""
        device, dtype = self._model_device_dtype()
        images = images.to(device=device, dtype=dtype)
        if self.resample > 1:
            images = F.interpolate(images, scale_factor=self.resample, mode="bicubic", align_corners=False)
        return self.vae.encode(images).latent_dist.mean.float() * self.scaling_factor

    def decode_batch(self, latents: torch.Tensor) -> torch.Tensor:
        """Decodes scaled latents (differentiable); returns float images in [-1, 1] at ``resolution``."""
        device, dtype = self._model_device_dtype()
        images = self.vae.decode(latents.to(device=device, dtype=dtype) / self.scaling_factor).sample.float()
        if self.resample > 1:
            images = F.avg_pool2d(images, self.resample)
        return images.clamp(-1, 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, to_float: Optional[Callable] = None,
               progress: Optional[Callable] = None) -> torch.Tensor:
        """Encodes many images in batches without gradients.

        Args:
            images: float images in [-1, 1], or ``uint8`` images with ``to_float`` given.
            to_float: conversion applied per batch (keeps ``uint8`` data compact in memory).
            progress: optional wrapper of the batch iterator (e.g. a tqdm factory).

        Returns:
            Float32 latents ``(N, *latent_shape)`` on the CPU.
        """
        starts = range(0, len(images), self.batch_size)
        starts = progress(starts) if progress is not None else starts
        out = torch.empty((len(images), *self.latent_shape), dtype=torch.float32)
        for start in starts:
            batch = images[start: start + self.batch_size]
            batch = to_float(batch) if to_float is not None else batch
            out[start: start + len(batch)] = self.encode_batch(batch).cpu()
        return out

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decodes many latents in batches without gradients; returns float images on the CPU."""
        chunks = [self.decode_batch(latents[i: i + self.batch_size]).cpu()
                  for i in range(0, len(latents), self.batch_size)]
        return torch.cat(chunks) if chunks else torch.empty(0)

    def fingerprint(self) -> str:
        """A hash of the autoencoder's config and weights and of the codec settings.

        Private config entries (``_name_or_path``, ``_use_default_values``, whose order changes with
        Python's string hashing) are left out, so the same model gives the same hash in every process.
        """
        digest = hashlib.sha256()
        config = {key: value for key, value in dict(self.vae.config).items() if not key.startswith("_")}
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        digest.update(f"{self.resolution}/{self.resample}".encode())
        for name, tensor in sorted(self.vae.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes()[:4096])
            digest.update(str(float(tensor.float().sum())).encode())
        return digest.hexdigest()[:16]


def check_decodable(latents: torch.Tensor, latent_shape: tuple[int, ...]) -> None:
    """Checks that stored latents fit an autoencoder and hold only finite values.

    Args:
        latents: ``(N, C, h, w)`` latents about to be decoded.
        latent_shape: the codec's ``(C, h, w)``.

    Raises:
        CodecError: for another shape (the set was made with another autoencoder or resolution), or
            NaN / infinite values (a diverged run: its latents decode to nothing meaningful).
    """
    if latents.dim() != 4 or tuple(latents.shape[1:]) != tuple(latent_shape):
        raise CodecError(
            f"Latents of shape {tuple(latents.shape)} do not fit this autoencoder, which decodes (N, "
            f"{', '.join(map(str, latent_shape))}): decode with the autoencoder and resolution the set was distilled "
            "with (from_distilled(set) loads them)."
        )
    bad = int((~torch.isfinite(latents)).flatten(1).any(1).sum())
    if bad:
        raise CodecError(f"{bad} of {len(latents)} latents hold NaN or infinite values (the run diverged): distil "
                         "again with a lower learning_rate, or drop those rows before decoding.")


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    """A content hash of tensors (used to key caches of in-memory datasets)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class LatentCache:
    """Latents of a dataset on disk, keyed by codec fingerprint and dataset fingerprint.

    Each entry is a folder ``<root>/<codec>-<dataset>/`` written atomically with
    ``latents.safetensors`` (latents and labels) and ``meta.json``; an entry whose files are missing,
    unreadable or inconsistent is rebuilt. Loaded entries are memory-mapped, so a cache larger than
    the free memory can still be used.

    Args:
        root: cache folder (``None`` disables caching).
    """

    def __init__(self, root: Optional[str | Path]) -> None:
        self.root = Path(root) if root is not None else None

    def entry(self, codec: LatentCodec, dataset_fingerprint: str) -> Optional[Path]:
        if self.root is None:
            return None
        return self.root / f"{codec.fingerprint()}-{dataset_fingerprint}"

    def load(self, codec: LatentCodec, dataset_fingerprint: str) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """Returns cached ``(latents, labels)``, memory-mapped, or ``None`` when absent or corrupt.

        The tensors are copy-on-write views of ``latents.safetensors``: loading reads no latent
        data, rows are paged in as they are indexed (and can be dropped again by the OS under memory
        pressure), processes loading the same entry share the pages, and writing into the tensors
        never changes the file. Entries are only ever replaced by renaming a new folder into place,
        never rewritten in place, so a mapped entry stays valid while it is rebuilt.

        Args:
            codec: the codec the latents were encoded with.
            dataset_fingerprint: the key of the encoded data.

        Returns:
            ``(latents, labels)`` on the CPU, or ``None``.
        """
        entry = self.entry(codec, dataset_fingerprint)
        if entry is None or not (entry / "meta.json").exists():
            return None
        try:
            meta = json.loads((entry / "meta.json").read_text())
            # safe_open maps the file (copy-on-write) and checks the header against the file size,
            # so a truncated file fails here; get_tensor returns views of the mapping, not copies.
            with safe_open(str(entry / "latents.safetensors"), framework="pt") as handle:
                latents, labels = handle.get_tensor("latents"), handle.get_tensor("labels")
        except Exception:  # a partial or corrupt entry is rebuilt
            return None
        if list(latents.shape) != meta.get("shape") or len(labels) != len(latents):
            return None
        return latents, labels

    def store(self, codec: LatentCodec, dataset_fingerprint: str, latents: torch.Tensor,
              labels: torch.Tensor) -> None:
        """Writes an entry atomically (a new folder renamed into place; an old entry is replaced).

        Args:
            codec: the codec the latents were encoded with.
            dataset_fingerprint: the key of the encoded data.
            latents: float latents ``(N, *latent_shape)``.
            labels: int64 labels ``(N,)``.
        """
        entry = self.entry(codec, dataset_fingerprint)
        if entry is None:
            return
        with atomic_directory(entry) as staging:
            save_file({"latents": latents.contiguous(), "labels": labels.contiguous()},
                      str(staging / "latents.safetensors"))
            (staging / "meta.json").write_text(json.dumps({"shape": list(latents.shape),
                                                            "latent_shape": list(codec.latent_shape)}))
