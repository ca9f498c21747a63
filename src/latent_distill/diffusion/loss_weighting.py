"""Per-timestep weights of the denoising loss (training the class-conditional denoiser)."""

from __future__ import annotations

import torch


def signal_to_noise(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ``abar_t / (1 - abar_t)`` of the noised latents at ``timesteps``.

    Args:
        alphas_cumprod: the schedule's cumulative products of alphas, ``(num_train_timesteps,)``.
        timesteps: integer timesteps, any shape.

    Returns:
        Float tensor shaped like ``timesteps``.
    """
    alpha_bar = alphas_cumprod.to(timesteps.device)[timesteps].float()
    return alpha_bar / (1 - alpha_bar)


def min_snr_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weights of the noise-prediction loss (Hang et al., "Efficient Diffusion Training
    via Min-SNR Weighting Strategy", 2023): ``min(SNR_t, gamma) / SNR_t``.

    Low-noise timesteps (``SNR_t > gamma``) are down-weighted so that they stop dominating the
    gradient; the others keep weight 1. The paper reports about 3x faster convergence of DiT-style
    models with ``gamma = 5``.

    Args:
        alphas_cumprod: the schedule's cumulative products of alphas.
        timesteps: the batch's integer timesteps, ``(B,)``.
        gamma: the clamp, positive.

    Returns:
        ``(B,)`` float weights in ``(0, 1]``.

    Raises:
        ValueError: for a gamma that is not positive.
    """
    if not gamma > 0:
        raise ValueError(f"snr_gamma must be positive (the paper uses 5), got {gamma}.")
    snr = signal_to_noise(alphas_cumprod, timesteps)
    return torch.clamp(snr, max=gamma) / snr
