"""LD3M's skip connection: the initial state mixed into every DDIM step with a linearly decaying weight.

The forms (a registry, :data:`SKIP_CONNECTIONS`; step indices ``i = K-1`` (first, noisiest) ... ``0``):

- ``"paper"`` (Eq. 7 / Algorithm 1): ``x_prev = (1 - w) * ddim(x, e) + w * z_T`` with ``w = (i+1)/K``
  (``t/T``) and ``z_T`` the forward-noised initial latent of the pass;
- ``"reference"`` (the authors' patched ``p_sample_ddim``): the mix is on the x0-prediction,
  ``x0 = (1 - w) * x0_hat + w * z`` with ``w = i/(K-1)`` and ``z`` the clean learnable latent;
- ``"none"``: plain DDIM (the vanishing-gradient baseline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..diffusion.ddim import ddim_step
from ..registry import Registry


def _paper_step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, skip_source):
    plain, _ = ddim_step(sample, eps, alpha_bar_t, alpha_bar_prev)
    return (1 - weight) * plain + weight * skip_source


def _reference_step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, skip_source):
    x0_hat = (sample - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)
    return ddim_step(sample, eps, alpha_bar_t, alpha_bar_prev, x0=(1 - weight) * x0_hat + weight * skip_source)[0]


def _plain_step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, skip_source):
    return ddim_step(sample, eps, alpha_bar_t, alpha_bar_prev)[0]


@dataclass(frozen=True)
class SkipConnection:
    """One form of LD3M's skip connection.

    Args:
        weight: ``weight(step_index, num_steps)``, the skip weight of step ``i`` (``K-1`` first).
        step: ``step(sample, eps, alpha_bar_t, alpha_bar_prev, weight, skip_source)`` -> ``x_prev``.
        source: ``source(clean, noised)`` -> the tensor mixed in (the clean learnable latent or the
            forward-noised start of the pass).
        replaces_sample_at_full_weight: whether a weight of 1 makes the output the skip source alone
            (the denoiser's prediction is then not needed).
        description: one line for documentation and error messages.
    """

    weight: Callable[[int, int], float]
    step: Callable[..., torch.Tensor]
    source: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    replaces_sample_at_full_weight: bool
    description: str


SKIP_CONNECTIONS: Registry[SkipConnection] = Registry("skip connection",
                                                     "register_skip_connection(name, SkipConnection(...))")
register_skip_connection = SKIP_CONNECTIONS.add
get_skip_connection = SKIP_CONNECTIONS.get
list_skip_connections = SKIP_CONNECTIONS.names

register_skip_connection("paper", SkipConnection(
    weight=lambda i, k: (i + 1) / k, step=_paper_step, source=lambda clean, noised: noised,
    replaces_sample_at_full_weight=True,
    description="Eq. 7: x_prev = (1 - t/T) ddim(x) + (t/T) z_T, z_T the noised initial latent"))
register_skip_connection("reference", SkipConnection(
    weight=lambda i, k: i / (k - 1) if k > 1 else 0.0, step=_reference_step, source=lambda clean, noised: clean,
    replaces_sample_at_full_weight=False,
    description="authors' code: x0 = (1 - i/(K-1)) x0_hat + i/(K-1) z, z the clean latent"))
register_skip_connection("none", SkipConnection(
    weight=lambda i, k: 0.0, step=_plain_step, source=lambda clean, noised: noised,
    replaces_sample_at_full_weight=False, description="plain DDIM"))


def skip_weight(step_index: int, num_steps: int, form: str) -> float:
    """The skip weight of DDIM step ``step_index`` of ``num_steps`` (``K-1`` is the first, noisiest).

    Args:
        step_index: ``i`` in ``K-1 ... 0``.
        num_steps: ``K``.
        form: a name of :data:`SKIP_CONNECTIONS` (``"paper"``: ``(i+1)/K``; ``"reference"``:
            ``i/(K-1)``, 0 when ``K == 1``; ``"none"``: 0).

    Returns:
        The weight in ``[0, 1]``.
    """
    if not 0 <= step_index < num_steps:
        raise ValueError(f"step_index {step_index} is outside 0..{num_steps - 1}.")
    return float(SKIP_CONNECTIONS.get(form).weight(step_index, num_steps))


def skip_ddim_step(sample: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float,
                   weight: float, skip_source: torch.Tensor, form: str) -> torch.Tensor:
    """One skip-connected DDIM step (eta 0), a pure function.

    Args:
        sample: ``x_t``.
        eps: the predicted (guided) noise.
        alpha_bar_t: cumulative alpha of the step's timestep.
        alpha_bar_prev: cumulative alpha of the next timestep (``final_alpha_cumprod`` at the end).
        weight: the skip weight (:func:`skip_weight`).
        skip_source: what is mixed in: the forward-noised initial latent ``z_T`` (``"paper"``) or
            the clean learnable latent ``z`` (``"reference"``); unused by ``"none"``.
        form: a name of :data:`SKIP_CONNECTIONS`.

    Returns:
        ``x_prev``.
    """
    return SKIP_CONNECTIONS.get(form).step(sample, eps, float(alpha_bar_t), float(alpha_bar_prev), float(weight),
                                           skip_source)
