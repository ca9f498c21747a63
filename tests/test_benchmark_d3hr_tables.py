"""The D3HR benchmark's ablation table pairs each D3HR cell with the ablations it can be compared to."""

from benchmarks.d3hr import (
    RANDOM_SUBSET,
    ROUND_TRIP_SUBSET,
    SAME_STORAGE_SUBSET,
    ablation_rows,
    same_storage_reference,
    setting_rows,
    stored_bytes_summary,
)


def cell(variant, acc, candidates, **fields):
    return {"method": "d3hr", "variant": variant, "acc_mean": acc, "acc_std": 0.5, "num_candidates": candidates,
            "denoiser": "dit@1", "autoencoder": None, "guidance": 4.0, "timestep": 400, "inversion_steps": 21,
            "ipc": 10, "protocol": "soft", "fit_per_class": 200, "sets": 8, "noising": "ddim", **fields}


def test_ddpm_ablation_needs_the_same_candidate_count_and_the_draw_does_not():
    records = [cell("d3hr", 85.0, 100_000), cell("d3hr", 85.5, 1_000_000),
               cell("ddpm-noising", 84.0, 100_000), cell("random-draw (m=1)", 84.5, 1)]
    rows = {row["candidates"]: row for row in ablation_rows(records)}
    assert rows[100_000]["inversion_ahead"] == "+1.00" and rows[100_000]["groups_ahead"] == "+0.50"
    assert rows[1_000_000]["ddpm"] == "not run" and rows[1_000_000]["inversion_ahead"] is None
    assert rows[1_000_000]["groups_ahead"] == "+1.00"


def test_cells_without_any_ablation_get_no_row_and_other_settings_never_pair():
    records = [cell("d3hr", 85.0, 100_000), cell("d3hr", 84.0, 100_000, guidance=2.0),
               cell("ddpm-noising", 84.0, 100_000, guidance=2.0), cell("random-draw (m=1)", 80.0, 1, ipc=1)]
    rows = ablation_rows(records)
    assert [(row["guidance"], row["d3hr"]) for row in rows] == [(2.0, "84.00 ± 0.50")]
    assert rows[0]["inversion_ahead"] == "+0.00" and rows[0]["draw"] == "not run"


def test_settings_put_soft_and_hard_side_by_side_against_the_random_subset():
    references = [{"method": "random-subset", "variant": RANDOM_SUBSET, "ipc": 10, "protocol": protocol,
                   "acc_mean": acc, "acc_std": 1.0, "sets": 8} for protocol, acc in (("soft", 85.0), ("hard", 74.0))]
    records = references + [
        cell("d3hr", 84.0, 100_000), cell("d3hr", 75.0, 100_000, protocol="hard"),
        cell("d3hr", 86.0, 100_000, guidance=2.0),
        # ablations are not settings
        cell("ddpm-noising", 90.0, 100_000, noising="ddpm"), cell("random-draw (m=1)", 90.0, 1),
        cell("d3hr", 90.0, 100_000, ipc=1), cell("d3hr", 90.0, 100_000, sets=1)]  # other IPC, one-set cells
    rows = setting_rows(records)
    assert [row["guidance"] for row in rows] == [2.0, 4.0]  # best soft accuracy first
    assert rows[0]["soft_ahead"] == "+1.00" and rows[0].get("hard") is None
    assert rows[1]["soft"] == "84.00 ± 0.50" and rows[1]["soft_ahead"] == "-1.00"
    assert rows[1]["hard"] == "75.00 ± 0.50" and rows[1]["hard_ahead"] == "+1.00"


def test_a_setting_measured_with_more_sets_is_its_own_row_against_references_with_as_many():
    references = [{"method": "random-subset", "variant": RANDOM_SUBSET, "ipc": 10, "protocol": "soft",
                   "acc_mean": acc, "acc_std": 1.0, "sets": sets} for sets, acc in ((8, 85.0), (24, 84.0))]
    records = references + [cell("d3hr", 84.5, 100_000), cell("d3hr", 84.5, 100_000, sets=24),
                            cell("d3hr", 75.0, 100_000, protocol="hard")]
    rows = {row["sets"]: row for row in setting_rows(records)}
    assert rows[8]["soft_ahead"] == "-0.50" and rows[8]["hard"] == "75.00 ± 0.50"
    assert rows[24]["soft_ahead"] == "+0.50" and rows[24].get("hard") is None


def test_same_storage_reference_follows_the_latent_shape_not_the_decoder():
    def storage(count, autoencoder):
        return {"method": "random-subset", "variant": SAME_STORAGE_SUBSET, "ipc": count, "samples_per_class": count,
                "protocol": "soft", "acc_mean": 70.0 + count, "acc_std": 1.0, "sets": 8, "autoencoder": autoencoder}

    records = [storage(2, None), storage(4, "8x7x7 latents")]
    assert same_storage_reference(records, cell("d3hr", 85.0, 100_000))["ipc"] == 2
    fine_tuned = cell("d3hr", 85.0, 100_000, autoencoder="decoder fine-tuned 9 steps")
    assert same_storage_reference(records, fine_tuned)["ipc"] == 2  # same latents, same bytes
    wide = cell("d3hr", 85.0, 100_000, autoencoder="8x7x7 latents, decoder fine-tuned 9 steps")
    assert same_storage_reference(records, wide)["ipc"] == 4
    assert same_storage_reference(records, cell("d3hr", 85.0, 100_000, protocol="hard")) is None


def test_stored_bytes_are_listed_once_per_latent_shape():
    def storage(per_class, autoencoder, sets):
        return {"method": "random-subset", "variant": SAME_STORAGE_SUBSET, "protocol": "soft", "sets": sets,
                "d3hr_bytes_per_class": per_class, "autoencoder": autoencoder}

    records = [storage(1592, None, 1), storage(1592, None, 8), storage(6296, "4x14x14 latents", 8),
               {**storage(1592, None, 8), "protocol": "hard"}]
    assert stored_bytes_summary(records) == "1592 bytes, 6296 bytes with 4x14x14 latents"
    assert stored_bytes_summary([]) == "?"


def test_settings_are_compared_with_the_round_trip_through_their_own_models():
    def round_trip(acc, **fields):
        return {"method": "random-subset", "variant": ROUND_TRIP_SUBSET, "ipc": 10, "protocol": "soft",
                "acc_mean": acc, "acc_std": 0.5, "sets": 8, "denoiser": "dit@1", "autoencoder": None,
                "guidance": 4.0, "timestep": 400, **fields}

    records = [cell("d3hr", 85.0, 100_000), cell("d3hr", 84.0, 100_000, timestep=600, inversion_steps=31),
               round_trip(84.5), round_trip(86.0, denoiser="dit@2"), round_trip(83.0, protocol="hard")]
    rows = {row["timestep"]: row for row in setting_rows(records)}
    assert rows[400]["soft_round_trip"] == "84.50" and rows[400]["soft_over_round_trip"] == "+0.50"
    assert "hard_round_trip" not in rows[400]  # no hard D3HR cell to compare
    assert "soft_round_trip" not in rows[600]  # another depth: another round trip, not measured
