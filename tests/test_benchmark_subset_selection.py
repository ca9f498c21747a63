"""The selection rules of the subset-selection benchmark keep what their names say."""

import pytest
import torch

from benchmarks.subset_selection import (
    RULES,
    farthest_point,
    herding,
    kmeans_medoids,
    pool_rows,
)


def clustered(per_cluster=30, seed=0):
    """Unit-norm features in three tight, well separated clusters of unequal size."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.eye(3, 8, dtype=torch.float64)
    sizes = (per_cluster, per_cluster, 3 * per_cluster)
    rows = torch.cat([centres[k] + 0.01 * torch.randn(n, 8, generator=generator, dtype=torch.float64)
                      for k, n in enumerate(sizes)])
    return torch.nn.functional.normalize(rows, dim=1), torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))


@pytest.mark.parametrize("name", list(RULES))
def test_every_rule_keeps_the_asked_number_of_distinct_pool_images(name):
    features, _ = clustered()
    confidence = torch.rand(len(features), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kept = RULES[name](features, confidence, 7, torch.Generator().manual_seed(2))
    assert len(kept) == 7 and len(set(kept)) == 7 and all(0 <= i < len(features) for i in kept)


def test_kmeans_medoids_and_farthest_point_cover_every_cluster():
    features, cluster = clustered()
    for rule in (kmeans_medoids, farthest_point):
        assert set(cluster[rule(features, None, 3, torch.Generator().manual_seed(0))].tolist()) == {0, 1, 2}


def test_herding_matches_the_pool_mean_better_than_nearly_every_random_pick():
    features, cluster = clustered()
    kept = herding(features, None, 5, torch.Generator())
    herded = (features[kept].mean(0) - features.mean(0)).norm()
    generator = torch.Generator().manual_seed(0)
    random_gaps = [(features[torch.randperm(len(features), generator=generator)[:5]].mean(0)
                    - features.mean(0)).norm() for _ in range(200)]
    assert herded < sorted(random_gaps)[10]  # closer than 95 % of random picks
    assert (cluster[kept] == 2).sum() >= 2  # the big cluster holds most of the mass, and of the picks


def test_confidence_rules_keep_the_extremes():
    features, _ = clustered()
    confidence = torch.linspace(0, 1, len(features), dtype=torch.float64)
    assert sorted(RULES["most confident"](features, confidence, 3, torch.Generator())) == [len(features) - 3 + i
                                                                                            for i in range(3)]
    assert sorted(RULES["least confident"](features, confidence, 3, torch.Generator())) == [0, 1, 2]


def test_pools_are_seeded_per_set_and_stay_within_each_class():
    by_class = [torch.arange(0, 50), torch.arange(50, 120)]
    pools = pool_rows(by_class, 20, seed=3)
    assert [len(p) for p in pools] == [20, 20]
    assert all(set(p.tolist()) <= set(rows.tolist()) for p, rows in zip(pools, by_class))
    assert all(torch.equal(a, b) for a, b in zip(pools, pool_rows(by_class, 20, seed=3)))
    assert not torch.equal(pools[0], pool_rows(by_class, 20, seed=4)[0])


def test_the_table_compares_each_rule_with_the_random_pick_of_the_same_pools(monkeypatch):
    import benchmarks.subset_selection as benchmark

    def record(source, rule, set_means):
        return {"source": source, "denoiser": None if source == "real" else "dit@1", "guidance": None,
                "rule": rule, "ipc": 10, "pool": 50, "protocol": "soft", "sets": 2, "acc_mean": 80.0,
                "acc_std": 0.1, "set_means": set_means}

    records = [record("real", "random", [80.0, 81.0]), record("real", "herding", [81.0, 81.5]),
               record("d3hr", "random", [70.0, 70.0]), record("d3hr", "herding", [69.0, 70.0])]
    written = {}
    monkeypatch.setattr(benchmark, "load_records", lambda name: records)
    monkeypatch.setattr(benchmark, "write_markdown", lambda name, text: written.update(text=text))
    benchmark.write_table()
    lines = [line for line in written["text"].splitlines() if "herding" in line and line.startswith("| ")]
    assert any(line.startswith("| real ") and "+0.75 ± 0.25 (2/2)" in line for line in lines)
    assert any(line.startswith("| d3hr ") and "-0.50 ± 0.50 (0/2)" in line for line in lines)
