"""A class-conditional noise predictor with classifier-free guidance, around a diffusers DiT.

Hides two details of DiT checkpoints from the samplers: the null label used for guidance (the
number of classes, ``num_embeds_ada_norm``; 1000 for ImageNet DiTs) and the learned-sigma output
channels (DiT-XL/2 predicts noise and variance: only the noise half is used).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class DenoiserError(ValueError):
    """Raised when a denoiser does not fit the latents or labels it is given."""


@dataclass
class GuidedDenoiser:
    """Predicts noise with classifier-free guidance: ``e(z, null) + w * (e(z, y) - e(z, null))``.

    Args:
        transformer: a ``DiTTransformer2DModel`` (or any model called as
            ``transformer(z, timestep=t, class_labels=y).sample``) with a ``config`` holding
            ``in_channels``, ``out_channels`` and ``num_embeds_ada_norm``.
        guidance_scale: ``w``; 1 disables guidance (one forward pass instead of two).

    The transformer is put in eval mode (DiT's class embedding drops labels at random in training
    mode).
    """

    transformer: torch.nn.Module
    guidance_scale: float = 4.0

    def __post_init__(self) -> None:
        # Inference only: eval mode also switches off the label dropout of DiT's class embedding.
        self.transformer.eval()

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def latent_channels(self) -> int:
        return int(self.transformer.config.in_channels)

    @property
    def num_classes(self) -> int:
        return int(self.transformer.config.num_embeds_ada_norm)

    @property
    def null_label(self) -> int:
        """The label of the unconditional branch (DiT's convention: one past the last class)."""
        return self.num_classes

    def check_latents(self, latents: torch.Tensor) -> None:
        """Raises a :class:`DenoiserError` naming the fix when ``latents`` do not fit the denoiser."""
        if latents.shape[1] != self.latent_channels:
            raise DenoiserError(
                f"The latents have {latents.shape[1]} channels but the denoiser takes {self.latent_channels}: "
                "the autoencoder and the denoiser must come from the same latent space (train or fine-tune the "
                "denoiser on this autoencoder's latents with examples/train_latent_diffusion.py)."
            )
        sample_size = getattr(self.transformer.config, "sample_size", None)
        if sample_size is not None and latents.shape[-1] != sample_size:
            raise DenoiserError(
                f"The latents are {tuple(latents.shape[-2:])} but the denoiser was built for {sample_size}x"
                f"{sample_size}: use the resolution the denoiser was trained at ({sample_size} x the autoencoder's "
                "downsampling factor)."
            )

    def check_labels(self, labels: torch.Tensor) -> None:
        if len(labels) and int(labels.max()) >= self.num_classes:
            raise DenoiserError(
                f"Label {int(labels.max())} is out of range for a denoiser with {self.num_classes} classes: "
                "fine-tune a denoiser on this dataset (examples/train_latent_diffusion.py --dataset ...)."
            )

    def __call__(self, latents: torch.Tensor, timestep: int | torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Returns the guided noise prediction for ``latents`` at ``timestep`` (float32).

        Args:
            latents: ``(B, C, h, w)`` noisy latents.
            timestep: a scalar timestep shared by the batch, or one per row.
            labels: int64 ``(B,)`` class labels.

        Returns:
            ``(B, C, h, w)`` predicted noise.
        """
        parameter = next(self.transformer.parameters())
        batch = len(latents)
        timesteps = torch.as_tensor(timestep, device=parameter.device).reshape(-1).expand(batch)
        labels = labels.to(parameter.device)
        inputs = latents.to(device=parameter.device, dtype=parameter.dtype)
        if self.guidance_scale == 1.0:
            output = self.transformer(inputs, timestep=timesteps, class_labels=labels).sample
            return output[:, : self.latent_channels].float()
        null = torch.full_like(labels, self.null_label)
        output = self.transformer(torch.cat([inputs, inputs]), timestep=torch.cat([timesteps, timesteps]),
                                  class_labels=torch.cat([labels, null])).sample[:, : self.latent_channels].float()
        conditional, unconditional = output[:batch], output[batch:]
        return unconditional + self.guidance_scale * (conditional - unconditional)
