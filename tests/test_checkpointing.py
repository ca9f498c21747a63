"""State files: RNG-exact round trip, read without unpickling code, damaged files refused with the fix."""

import random

import numpy as np
import pytest
import torch

from latent_distill.checkpointing import (
    CheckpointFormatError,
    CheckpointMismatchError,
    load_resumable_state,
    load_state,
    save_state,
)
from latent_distill.config import DistillationConfig


class NotATensor:
    """An arbitrary object: unpickling it would run code a state file must not carry."""


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_state_round_trip_restores_tensors_and_random_streams(tmp_path):
    path = tmp_path / "state.pt"
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_state(path, step=7, weights={"w": torch.arange(6.0).view(2, 3)}, history=[0.5, 0.25], name="run")
    expected = draws()
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    state = load_state(path)
    assert draws() == expected
    assert state["step"] == 7 and state["history"] == [0.5, 0.25] and state["name"] == "run"
    assert torch.equal(state["weights"]["w"], torch.arange(6.0).view(2, 3))


def test_state_with_pickled_objects_is_refused_and_kept(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"step": 1, "payload": NotATensor(), "rng": {}}, path)
    with pytest.raises(CheckpointFormatError, match="Delete it"):
        load_state(path)
    assert path.exists()  # nothing is deleted on the user's behalf


def test_truncated_state_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "state.pt"
    save_state(path, step=3, weights=torch.zeros(1000))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointFormatError, match="damaged"):
        load_state(path)


def test_file_without_random_states_is_refused(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"step": 1}, path)
    with pytest.raises(CheckpointFormatError, match="not a latent-distill state file"):
        load_state(path)


def test_missing_state_means_a_fresh_run(tmp_path):
    assert load_state(tmp_path / "absent.pt") is None


def test_state_written_before_the_objective_rename_resumes_after_upgrade(tmp_path):
    path = tmp_path / "state.pt"
    config = DistillationConfig(objective="dc", ipc=2)
    legacy = {"method" if key == "objective" else key: value for key, value in config.to_dict().items()}
    save_state(path, step=4, config=legacy)
    with pytest.raises(CheckpointMismatchError, match="other settings"):
        load_resumable_state(path, True, "config", config.to_dict())
    saved = load_resumable_state(path, True, "config", config.to_dict(), DistillationConfig.upgrade_dict)
    assert saved["step"] == 4
