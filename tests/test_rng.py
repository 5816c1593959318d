"""The random streams saved with a checkpoint continue where they were when it is loaded (weights-only)."""

from __future__ import annotations

import random

import numpy as np
import torch

from spin_nerfstudio.rng import restore_rng_state, rng_state
from spin_nerfstudio.safe_load import load_checkpoint


def _draws() -> tuple:
    return (torch.rand(5).tolist(), [random.random() for _ in range(5)], np.random.rand(5).tolist())


def test_streams_continue_after_a_weights_only_round_trip(tmp_path) -> None:
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    _draws()  # move the streams away from their seeds
    path = tmp_path / "step-000000001.ckpt"
    torch.save({"step": 1, "pipeline": {}, "rng": rng_state()}, path)
    expected = _draws()
    _draws()  # the streams move on, as a killed run's did
    state = load_checkpoint(path)  # weights-only, like ns-train --load-dir
    assert restore_rng_state(state["rng"])
    assert _draws() == expected


def test_a_checkpoint_without_streams_changes_nothing() -> None:
    torch.manual_seed(5)
    before = torch.get_rng_state().clone()
    assert not restore_rng_state(None)
    assert not restore_rng_state({"version": 0})
    assert torch.equal(torch.get_rng_state(), before)
