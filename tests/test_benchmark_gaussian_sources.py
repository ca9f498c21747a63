"""The latent sources of the D3HR Gaussian-fit diagnostic draw what their names say."""

import torch

from benchmarks.d3hr_gaussian_fit import (
    SOURCES,
    correlated,
    diagonal,
    draw_class,
    full_covariance,
    kmeans,
    mixture,
)


def correlated_data(count=4000, dim=6, seed=0):
    """Rows with a strong two-factor correlation structure and unequal per-dimension scales."""
    generator = torch.Generator().manual_seed(seed)
    factors = torch.randn(count, 2, generator=generator, dtype=torch.float64)
    mixing = torch.randn(2, dim, generator=generator, dtype=torch.float64)
    noise = 0.3 * torch.randn(count, dim, generator=generator, dtype=torch.float64)
    return 2.0 + (factors @ mixing + noise) * torch.linspace(0.5, 3.0, dim, dtype=torch.float64)


def generator(seed=1):
    return torch.Generator().manual_seed(seed)


def test_diagonal_draws_keep_per_dimension_moments_and_scale_the_spread():
    data = correlated_data()
    draws = diagonal()(data, 20000, generator())
    assert torch.allclose(draws.mean(0), data.mean(0), atol=0.1)
    assert torch.allclose(draws.std(0), data.std(0), rtol=0.05)
    wider = diagonal(1.25)(data, 20000, generator())
    assert torch.allclose(wider.std(0), 1.25 * data.std(0), rtol=0.05)
    assert torch.corrcoef(draws.T)[0, 1].abs() < 0.05  # independent dimensions


def test_low_rank_correlations_keep_the_moments_and_recover_the_correlation():
    data = correlated_data()
    draws = correlated(2)(data, 20000, generator())
    assert torch.allclose(draws.mean(0), data.mean(0), atol=0.1)
    assert torch.allclose(draws.std(0), data.std(0), rtol=0.05)
    assert torch.allclose(torch.corrcoef(draws.T), torch.corrcoef(data.T), atol=0.05)


def test_full_covariance_draws_match_the_sample_covariance_even_when_rank_deficient():
    data = correlated_data()
    assert torch.allclose(torch.cov(full_covariance(data, 20000, generator()).T), torch.cov(data.T), rtol=0.1, atol=0.1)
    few = correlated_data(count=4, dim=6)  # 4 samples in 6 dimensions: no Cholesky factor exists
    draws = full_covariance(few, 50, generator())
    assert draws.shape == (50, 6) and torch.isfinite(draws).all()


def test_mixture_draws_one_sample_per_component_in_turn():
    generator_ = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-50.0, 0.0], [50.0, 0.0], [0.0, 50.0]], dtype=torch.float64)
    data = (centres.repeat_interleave(100, 0) + torch.randn(300, 2, generator=generator_, dtype=torch.float64))
    draws = mixture(3)(data, 6, generator())
    nearest = torch.cdist(draws, centres).argmin(1)
    assert sorted(nearest[:3].tolist()) == [0, 1, 2]  # each component once, then again
    assert nearest[:3].tolist() == nearest[3:].tolist()


def test_every_source_is_seeded_per_set_and_class():
    data = correlated_data(count=50)
    for name, draw in SOURCES.items():
        first = draw_class(draw, data, 10, seed=0, class_index=3)
        assert torch.equal(first, draw_class(draw, data, 10, seed=0, class_index=3)), name
        assert not torch.equal(first, draw_class(draw, data, 10, seed=1, class_index=3)), name


def test_kmeans_finds_separated_clusters_from_any_seed():
    generator_ = torch.Generator().manual_seed(0)
    centres = 50.0 * torch.randn(5, 3, generator=generator_, dtype=torch.float64)
    data = centres.repeat_interleave(40, 0) + torch.randn(200, 3, generator=generator_, dtype=torch.float64)
    truth = torch.arange(5).repeat_interleave(40)
    for seed in range(10):
        assignment = kmeans(data, 5, generator(seed))
        # the same partition up to renaming: each true cluster maps to one component, all distinct
        mapping = {int(t): set(assignment[truth == t].tolist()) for t in range(5)}
        assert all(len(found) == 1 for found in mapping.values()), seed
        assert len(set.union(*mapping.values())) == 5, seed
