"""Images: any PIL mode and size to fixed-size ``uint8`` arrays, decoding row by row, ``uint8`` <-> float."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import datasets
import numpy as np
import torch
from datasets import Dataset
from PIL import Image as PILImage

from .errors import DataError


@dataclass
class ImagePreprocessor:
    """Turns PIL images of any mode and size into fixed-size ``uint8`` arrays.

    Args:
        resolution: side of the square output; the shorter side is resized to it, then centre-cropped.
        channels: 1 (grey) or 3 (RGB). Transparent images are composited on white; palette images
            are converted through RGB(A); 16-bit (and 32-bit integer) grey images are scaled from
            [0, 65535] to [0, 255] instead of being clipped.
    """

    resolution: int = 28
    channels: int = 1

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise DataError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}.")

    def _to_mode(self, image: PILImage.Image) -> PILImage.Image:
        if image.mode.startswith("I"):  # 16-bit PNGs open as I;16 (or I): PIL's own conversion clips at 255
            scaled = np.asarray(image, dtype=np.float64) / 257.0
            image = PILImage.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        if image.mode in ("RGBA", "LA", "PA"):
            background = PILImage.new("RGBA", image.size, (255, 255, 255, 255))
            image = PILImage.alpha_composite(background, image.convert("RGBA"))
        return image.convert("L" if self.channels == 1 else "RGB")

    def __call__(self, image: PILImage.Image) -> np.ndarray:
        """Converts one image to a ``(channels, resolution, resolution)`` ``uint8`` array."""
        image = self._to_mode(image)
        width, height = image.size
        if (width, height) != (self.resolution, self.resolution):
            scale = self.resolution / min(width, height)
            size = (max(self.resolution, round(width * scale)), max(self.resolution, round(height * scale)))
            image = image.resize(size, PILImage.BICUBIC)
            left = (size[0] - self.resolution) // 2
            top = (size[1] - self.resolution) // 2
            image = image.crop((left, top, left + self.resolution, top + self.resolution))
        array = np.asarray(image, dtype=np.uint8)
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

def check_image_tensor(images: torch.Tensor) -> None:
    """Checks that ``images`` are ``uint8`` ``(N, C, H, W)`` tensors, as every split is held.

    Raises:
        DataError: for another type, dtype or rank; float images name their NaN count and the conversion.
    """
    if not isinstance(images, torch.Tensor):
        raise DataError(f"Images must be a torch.Tensor, got {type(images).__name__}: use torch.as_tensor(...).")
    if images.dtype != torch.uint8:
        detail = ""
        if images.is_floating_point():
            nan = int(torch.isnan(images).sum())
            detail = f" ({nan} NaN values: drop or repair those images first)" if nan else ""
        raise DataError(
            f"Images are {images.dtype}{detail}, but splits hold uint8 images in [0, 255]: convert float images in "
            "[-1, 1] with latent_distill.data.float_to_uint8(images), or images in [0, 1] with "
            "(images * 255).round().clamp(0, 255).to(torch.uint8)."
        )
    if images.dim() != 4:
        raise DataError(f"Images must be (N, C, H, W), got shape {tuple(images.shape)}: add the channel axis with "
                        "images.unsqueeze(1) for grey images.")

def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """Maps ``uint8`` images in [0, 255] to float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)

def float_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Maps float images in [-1, 1] to ``uint8`` in [0, 255] (clamped, rounded)."""
    return images.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)

def decoded_images(dataset: Dataset, image_column: str, batch_size: int = 1000) -> Iterator[PILImage.Image]:
    """The images of a column, decoded row by row so that a bad row is named.

    Args:
        dataset: a ``datasets.Dataset``.
        image_column: its ``datasets.Image`` column.
        batch_size: rows read from the table at a time.

    Yields:
        One decoded PIL image per row, in order.

    Raises:
        DataError: for a row without an image, or whose bytes (or file) do not decode as an image.
    """
    decoder = datasets.Image()  # the preprocessor converts modes; a decode=False column still decodes here
    view = dataset.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))
    for start in range(0, len(view), batch_size):
        for offset, encoded in enumerate(view[start: start + batch_size][image_column]):
            row = start + offset
            if encoded is None or (encoded.get("bytes") is None and encoded.get("path") is None):
                raise DataError(
                    f"Row {row} has no image in column {image_column!r}: drop rows without an image "
                    f"first with dataset.filter(lambda row: row[{image_column!r}] is not None)."
                )
            try:
                image = decoder.decode_example(encoded)
                image.load()
            except Exception as error:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ... by format
                raise DataError(
                    f"Row {row} of column {image_column!r} does not decode as an image ({type(error).__name__}: "
                    f"{error}): repair or drop it, e.g. dataset.select([i for i in range(len(dataset)) if i != {row}])."
                ) from error
            yield image
