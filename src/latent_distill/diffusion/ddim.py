"""Deterministic DDIM: one step, inversion and regeneration on one timestep grid, and DDPM forward noising.

Inversion runs ``DDIMInverseScheduler`` for ``steps`` steps from the clean latent; regeneration
runs ``DDIMScheduler`` (eta 0) on the same grid from the timestep the inversion reached back to a
clean latent. With the diffusers "leading" grid of 50 steps over 1000 training steps, the grid is
``0, 20, ..., 980``: ``steps = 31`` reaches timestep 600, D3HR's default depth.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, SchedulerMixin

from .guidance import GuidedDenoiser


class InversionDepthError(ValueError):
    """Raised when an inversion depth does not fit the timestep grid."""


def ddim_schedulers(scheduler: SchedulerMixin, num_inference_steps: int) -> tuple[DDIMScheduler, DDIMInverseScheduler]:
    """Builds the sampling and inversion schedulers of ``scheduler``'s noise schedule.

    ``clip_sample`` is switched off in both: latents are not bounded like images.

    Returns:
        ``(sampler, inverter)`` with their timesteps set to a ``num_inference_steps`` grid.
    """
    sampler = DDIMScheduler.from_config(scheduler.config, clip_sample=False)
    inverter = DDIMInverseScheduler.from_config(scheduler.config, clip_sample=False)
    sampler.set_timesteps(num_inference_steps)
    inverter.set_timesteps(num_inference_steps)
    return sampler, inverter


def inversion_timestep(inverter: DDIMInverseScheduler, steps: int) -> int:
    """The timestep a latent reaches after ``steps`` inversion steps."""
    if not 1 <= steps <= len(inverter.timesteps):
        raise InversionDepthError(
            f"Inversion depth {steps} is outside 1..{len(inverter.timesteps)} (the inference grid): choose "
            "inversion_steps within the grid or raise num_inference_steps."
        )
    return int(inverter.timesteps[steps - 1])


@torch.no_grad()
def ddim_invert(denoiser: GuidedDenoiser, inverter: DDIMInverseScheduler, latents: torch.Tensor,
                labels: torch.Tensor, steps: int, start_step: int = 0) -> torch.Tensor:
    """Maps clean latents to the noise level reached after ``steps`` deterministic inversion steps.

    Each step evaluates the (guided) denoiser at the *target* timestep on the current latent, the
    usual approximate DDIM inversion (as in D3HR's code).

    Args:
        denoiser: the guided noise predictor.
        inverter: a ``DDIMInverseScheduler`` with its timesteps set.
        latents: ``(B, C, h, w)`` clean (scaled) latents.
        labels: int64 ``(B,)`` class labels.
        steps: the inversion depth to reach (number of steps from the clean latent).
        start_step: the depth ``latents`` are already at (0: clean), to continue an inversion in
            stages, e.g. to fit Gaussians at several depths in one pass.

    Returns:
        The inverted latents, float32.
    """
    inversion_timestep(inverter, steps)
    if not 0 <= start_step <= steps:
        raise InversionDepthError(f"start_step {start_step} must lie in 0..{steps} (the depth to reach).")
    sample = latents.to(denoiser.device, torch.float32)
    for timestep in inverter.timesteps[start_step:steps]:
        noise = denoiser(sample, timestep, labels)
        sample = inverter.step(noise, int(timestep), sample).prev_sample
    return sample


def sampling_start_index(sampler: DDIMScheduler, timestep: int) -> int:
    """Index in ``sampler.timesteps`` of ``timestep`` (the first regeneration step)."""
    matches = (sampler.timesteps == timestep).nonzero().flatten()
    if len(matches) == 0:
        raise InversionDepthError(f"Timestep {timestep} is not on the sampling grid {sampler.timesteps.tolist()}: "
                                  "invert and regenerate with the same num_inference_steps.")
    return int(matches[0])


@torch.no_grad()
def ddim_regenerate(denoiser: GuidedDenoiser, sampler: DDIMScheduler, latents: torch.Tensor, labels: torch.Tensor,
                    timestep: int, progress: Optional[Callable] = None) -> torch.Tensor:
    """Runs deterministic DDIM (eta 0) from ``timestep`` down to a clean latent.

    Args:
        denoiser: the guided noise predictor.
        sampler: a ``DDIMScheduler`` with its timesteps set (the grid of the inversion).
        latents: ``(B, C, h, w)`` latents at ``timestep``.
        labels: int64 ``(B,)`` class labels.
        timestep: the noise level of ``latents``.
        progress: optional wrapper of the timestep iterator.

    Returns:
        Clean latents, float32.
    """
    sample = latents.to(denoiser.device, torch.float32)
    timesteps = sampler.timesteps[sampling_start_index(sampler, timestep):]
    for step_timestep in (progress(timesteps) if progress is not None else timesteps):
        noise = denoiser(sample, step_timestep, labels)
        sample = sampler.step(noise, int(step_timestep), sample, eta=0.0).prev_sample
    return sample


def ddpm_noise(sampler: DDIMScheduler, latents: torch.Tensor, timestep: int, generator: torch.Generator) -> torch.Tensor:
    """Stochastic forward noising ``sqrt(abar) z + sqrt(1 - abar) e`` to ``timestep`` (the DDPM
    alternative to inversion that D3HR's ablation compares against)."""
    noise = torch.randn(latents.shape, generator=generator)
    return sampler.add_noise(latents.float(), noise, torch.full((len(latents),), int(timestep)))


def ddim_step(sample: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float,
              x0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One deterministic DDIM step (eta 0).

    Args:
        sample: ``x_t``.
        eps: the predicted noise.
        alpha_bar_t: cumulative alpha of the current timestep.
        alpha_bar_prev: cumulative alpha of the previous (less noisy) timestep.
        x0: the clean-latent estimate to step with; ``None`` uses the model's
            ``(x - sqrt(1 - abar_t) e) / sqrt(abar_t)``.

    Returns:
        ``(x_prev, x0_hat)``: ``sqrt(abar_prev) x0 + sqrt(1 - abar_prev) e`` and the model's
        clean-latent estimate.
    """
    x0_hat = (sample - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)
    x0 = x0_hat if x0 is None else x0
    return math.sqrt(alpha_bar_prev) * x0 + math.sqrt(1 - alpha_bar_prev) * eps, x0_hat
