"""Representative group sampling (D3HR step 2).

For one class with Gaussian ``N(mu, diag(sigma^2))``, ``m`` candidate groups of ``ipc`` i.i.d. draws
are scored by

    L(S) = l_mu * ||mean(S) - mu|| + l_sigma * ||std(S) - sigma|| + l_skew * ||skew(S)||

and the lowest-scoring group is kept. Draws are made in standard form ``e`` (``S = mu + sigma * e``),
so the score needs only moments of ``e``: ``mean(S) - mu = sigma * mean(e)``,
``std(S) - sigma = sigma * (std(e) - 1)``, and skewness is unchanged by the affine map. Moments
come from power sums in one pass over each chunk of candidates.

Skewness, per the ``skew`` option:

- ``"per_dimension"`` (default, the paper's intent): the adjusted sample skewness of each latent
  dimension over the group's members, ``n / ((n-1)(n-2)) * sum(((x - mean) / std)^3)``; a vector
  of ``D`` values whose norm is penalised. Defined for ``ipc >= 3``; zero for ``ipc = 2`` (two
  points are always symmetric).
- ``"reference"``: the public code's statistic: each member's standardised values cubed and summed
  over the ``D`` feature dimensions, scaled by ``D / ((D-1)(D-2))``; one value per member.

``ipc = 1`` is defined by the mean term alone (one draw has no spread or skew): the kept draw is
the candidate nearest to the class mean in the sigma-weighted norm.

Randomness: chunk ``r`` of class ``c`` is drawn from a generator seeded by ``(seed, c, r)``, so a
chosen group is reproduced from ``(seed, class, chunk, index)`` alone, whatever the chunk order,
process count or thread count.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from typing import Optional

import torch

from ..seeding import derive_seed

SKEW_MODES = ("per_dimension", "reference")


@dataclass(frozen=True)
class GroupScoreWeights:
    """Weights of the score terms (defaults: the paper's ``l_mu = 1, l_sigma = 1, l_skew = 0.5``)."""

    mean: float = 1.0
    std: float = 1.0
    skew: float = 0.5


@dataclass
class GroupChoice:
    """The kept group of one class.

    Args:
        draws: ``(ipc, D)`` standard-form draws ``e`` of the kept group.
        chunk_seed: seed of the generator of the chunk that holds it.
        index: its index within that chunk.
        chunk_count: candidates in that chunk (needed to redraw it).
        score: its score.
        candidates: number of candidates scored.
    """

    draws: torch.Tensor
    chunk_seed: int
    index: int
    chunk_count: int
    score: float
    candidates: int


def _moments(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-dimension mean, centred second and third power sums over the member axis (dim 1)."""
    n = draws.shape[1]
    s1 = draws.sum(1)
    squares = draws * draws
    s2 = squares.sum(1)
    s3 = squares.mul_(draws).sum(1)
    mean = s1 / n
    m2 = (s2 - n * mean * mean).clamp_min_(0.0)
    m3 = s3 - 3.0 * mean * s2 + 2.0 * n * mean * mean * mean
    return mean, m2, m3


def score_groups(draws: torch.Tensor, sigma: torch.Tensor, weights: GroupScoreWeights = GroupScoreWeights(),
                 skew: str = "per_dimension") -> torch.Tensor:
    """Scores candidate groups given in standard form.

    Args:
        draws: ``(G, ipc, D)`` standard-form draws of ``G`` groups.
        sigma: ``(D,)`` the class's standard deviation.
        weights: the term weights.
        skew: ``"per_dimension"`` or ``"reference"``.

    Returns:
        ``(G,)`` scores (lower is more representative).
    """
    if skew not in SKEW_MODES:
        raise ValueError(f"skew must be one of {SKEW_MODES}, got {skew!r}.")
    n = draws.shape[1]
    if skew == "reference" and n > 1:
        reference_skew = _reference_skew(draws)
    mean, m2, m3 = _moments(draws)
    score = weights.mean * (sigma * mean).norm(dim=1)
    if n == 1:
        return score
    variance = m2 / (n - 1)
    std = variance.sqrt()
    score += weights.std * (sigma * (std - 1.0)).norm(dim=1)
    if weights.skew == 0:
        return score
    if skew == "reference":
        return score + weights.skew * reference_skew.norm(dim=1)
    if n < 3:
        return score
    skewness = (n / ((n - 1) * (n - 2))) * m3 / variance.clamp_min(1e-12).pow(1.5)
    return score + weights.skew * skewness.norm(dim=1)


def _reference_skew(draws: torch.Tensor) -> torch.Tensor:
    """The public code's statistic: ``(G, ipc)`` per-member sums over features of cubed standard scores."""
    features = draws.shape[2]
    standard = (draws - draws.mean(1, keepdim=True)) / draws.std(1, keepdim=True).clamp_min(1e-12)
    return standard.pow(3).sum(2) * (features / ((features - 1) * (features - 2)))


def chunk_seed(seed: int, class_index: int, chunk: int) -> int:
    """Seed of the generator of candidate chunk ``chunk`` of class ``class_index``."""
    return derive_seed(seed, "d3hr-group", class_index, chunk)


def draw_chunk(seed: int, count: int, ipc: int, dim: int) -> torch.Tensor:
    """The ``(count, ipc, dim)`` standard-form draws of the chunk seeded by ``seed``."""
    return torch.randn((count, ipc, dim), generator=torch.Generator().manual_seed(seed))


def chunk_size_for(ipc: int, dim: int, max_chunk_bytes: int) -> int:
    """Candidates per chunk so one chunk's draws (and their work copy) stay under ``max_chunk_bytes``."""
    return max(1, max_chunk_bytes // (2 * 4 * ipc * dim))


def _best_of_chunk(seed_of_chunk: int, count: int, ipc: int, sigma: torch.Tensor, weights: GroupScoreWeights,
                   skew: str) -> tuple[float, int]:
    """``(score, index)`` of the best group of one chunk."""
    scores = score_groups(draw_chunk(seed_of_chunk, count, ipc, sigma.numel()), sigma, weights, skew)
    index = int(scores.argmin())
    return float(scores[index]), index


def select_group(sigma: torch.Tensor, ipc: int, num_candidates: int, seed: int, class_index: int,
                 weights: GroupScoreWeights = GroupScoreWeights(), skew: str = "per_dimension",
                 max_chunk_bytes: int = 2 * 2**20, workers: Optional[int] = None,
                 progress: Optional[callable] = None) -> GroupChoice:
    """Draws ``num_candidates`` groups of ``ipc`` draws for one class and keeps the best.

    Chunks are small enough to stay in cache (the default 2 MiB is several times faster than large
    chunks on CPU) and are scored in parallel by ``workers`` threads, each op single-threaded; the
    choice does not depend on the chunk order or the number of workers.

    Args:
        sigma: ``(D,)`` the class's standard deviation (the mean does not change the ranking).
        ipc: draws per group.
        num_candidates: ``m``, groups scored; 1 gives a plain random draw from the Gaussian.
        seed: run seed.
        class_index: the class (part of every chunk's seed).
        weights: score weights.
        skew: skewness statistic (``"per_dimension"`` or ``"reference"``).
        max_chunk_bytes: memory bound of one chunk of candidates.
        workers: threads scoring chunks (default: ``torch.get_num_threads()``).
        progress: optional wrapper of the chunk iterator.

    Returns:
        The kept :class:`GroupChoice` (ties go to the earliest candidate).
    """
    if ipc < 1 or num_candidates < 1:
        raise ValueError(f"ipc and num_candidates must be positive, got {ipc} and {num_candidates}.")
    dim = sigma.numel()
    sigma = sigma.reshape(-1).float()
    per_chunk = min(num_candidates, chunk_size_for(ipc, dim, max_chunk_bytes))
    chunks = [(chunk_seed(seed, class_index, chunk), min(per_chunk, num_candidates - chunk * per_chunk))
              for chunk in range(-(-num_candidates // per_chunk))]
    workers = max(1, min(workers or torch.get_num_threads(), len(chunks)))

    def score(chunk: tuple[int, int]) -> tuple[float, int]:
        return _best_of_chunk(chunk[0], chunk[1], ipc, sigma, weights, skew)

    threads = torch.get_num_threads()
    try:
        if workers > 1:
            torch.set_num_threads(1)
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                results = pool.map(score, chunks)
                results = list(progress(results) if progress is not None else results)
        else:
            results = [score(chunk) for chunk in (progress(chunks) if progress is not None else chunks)]
    finally:
        torch.set_num_threads(threads)
    best = min(range(len(chunks)), key=lambda c: (results[c][0], c))
    (seed_of_chunk, count), (best_score, index) = chunks[best], results[best]
    draws = draw_chunk(seed_of_chunk, count, ipc, dim)[index]
    return GroupChoice(draws=draws, chunk_seed=seed_of_chunk, index=index, chunk_count=count, score=best_score,
                       candidates=num_candidates)


def redraw_group(chunk_seed_value: int, index: int, chunk_count: int, ipc: int, dim: int) -> torch.Tensor:
    """Reproduces a kept group's standard-form draws from its chunk seed and index."""
    return draw_chunk(chunk_seed_value, chunk_count, ipc, dim)[index]
