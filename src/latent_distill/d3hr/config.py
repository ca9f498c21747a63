"""The run configuration of D3HR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from ..config import SavedConfig
from .group_sampling import SKEW_MODES, GroupScoreWeights

NOISING_MODES = ("ddim", "ddpm")


@dataclass
class D3HRConfig(SavedConfig):
    """Every hyper-parameter of a D3HR run; defaults follow the paper and its code.

    The paper: Taming Diffusion for Dataset Distillation with High Representativeness.

    Args:
        ipc: images per class to generate.
        num_candidates: ``m``, candidate groups scored per class (1: a plain random draw).
        inversion_steps: DDIM inversion steps from the clean latent (31 on a 50-step grid reaches
            timestep 600, the paper's best depth).
        num_inference_steps: size of the DDIM timestep grid shared by inversion and regeneration.
        guidance_scale: classifier-free guidance scale of inversion and regeneration.
        noising: ``"ddim"`` (deterministic inversion) or ``"ddpm"`` (stochastic forward noising, the
            paper's ablation).
        weight_mean: ``l_mu`` of the group score.
        weight_std: ``l_sigma`` of the group score.
        weight_skew: ``l_skew`` of the group score (the public code uses 0.1).
        skew: ``"per_dimension"`` (intended statistic) or ``"reference"`` (the public code's).
        max_samples_per_class: fit each class's Gaussian on at most this many real samples (the
            first ones of a seeded shuffle); ``None`` uses them all.
        resolution: working image resolution; ``None`` takes the autoencoder's ``sample_size``.
        batch_size: latents per inversion / regeneration forward pass.
        max_chunk_bytes: memory bound of one chunk of candidate groups.
        seed: seed of every random choice (keyed by class, so independent of process count).
        checkpoint_every_class: save the fitting state after every class (resume skips done classes).
    """

    ipc: int = 10
    num_candidates: int = 100_000
    inversion_steps: int = 31
    num_inference_steps: int = 50
    guidance_scale: float = 4.0
    noising: str = "ddim"
    weight_mean: float = 1.0
    weight_std: float = 1.0
    weight_skew: float = 0.5
    skew: str = "per_dimension"
    max_samples_per_class: Optional[int] = None
    resolution: Optional[int] = None
    batch_size: int = 500
    max_chunk_bytes: int = 2 * 2**20
    seed: int = 0
    checkpoint_every_class: bool = True

    config_name: ClassVar[str] = "D3HR config"

    def __post_init__(self) -> None:
        if self.noising not in NOISING_MODES:
            raise ValueError(f"noising must be one of {NOISING_MODES}, got {self.noising!r}.")
        if self.skew not in SKEW_MODES:
            raise ValueError(f"skew must be one of {SKEW_MODES}, got {self.skew!r}.")
        if self.ipc < 1:
            raise ValueError(f"ipc must be at least 1, got {self.ipc}.")
        if self.num_candidates < 1:
            raise ValueError(f"num_candidates must be at least 1, got {self.num_candidates}.")

    @property
    def weights(self) -> GroupScoreWeights:
        return GroupScoreWeights(self.weight_mean, self.weight_std, self.weight_skew)

    @property
    def method_name(self) -> str:
        return "d3hr"

    def fit_key(self) -> dict[str, Any]:
        """The fields that determine the fitted Gaussians (a resumed fit must match them)."""
        return {key: getattr(self, key) for key in ("inversion_steps", "num_inference_steps", "guidance_scale",
                                                    "noising", "max_samples_per_class", "resolution", "seed")}
