import pytest
import torch

from latent_distill.diffusion import min_snr_weights, signal_to_noise


def test_min_snr_weights_keep_noisy_timesteps_and_clamp_clean_ones():
    alphas_cumprod = torch.tensor([0.99, 0.9, 0.5, 0.1])  # SNR 99, 9, 1, 0.111
    timesteps = torch.tensor([0, 1, 2, 3])
    snr = signal_to_noise(alphas_cumprod, timesteps)
    assert snr.tolist() == pytest.approx([99.0, 9.0, 1.0, 1 / 9], rel=1e-5)
    weights = min_snr_weights(alphas_cumprod, timesteps, gamma=5.0)
    assert weights.tolist() == pytest.approx([5 / 99, 5 / 9, 1.0, 1.0], rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, -1.0, float("nan")])
def test_min_snr_weights_refuse_a_gamma_that_is_not_positive(gamma):
    with pytest.raises(ValueError, match="snr_gamma must be positive"):
        min_snr_weights(torch.tensor([0.5]), torch.tensor([0]), gamma)
