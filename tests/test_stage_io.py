"""Tests of stage outputs on disk (atomic per-view files with a completion marker) and of safe checkpoint loading."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from spin_nerfstudio.safe_load import allow_nerfstudio_checkpoints, nerfstudio_checkpoint_globals
from spin_nerfstudio.stage_io import MARKER, load_views, save_npy, save_png, save_views, write_json

NAMES = ["images/000.png", "images/001.png", "images/002.jpg"]


def all_files(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_png_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = [rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8) for _ in NAMES]
    folder = tmp_path / "inpainted_rgb"
    save_views(folder, NAMES, rgb, kind="png")
    assert all_files(folder) == ["000.png", "001.png", "002.png", MARKER]
    assert json.loads((folder / MARKER).read_text()) == {"views": ["000", "001", "002"], "kind": "png"}
    loaded = load_views(folder, NAMES)
    assert loaded is not None and len(loaded) == 3
    for got, want in zip(loaded, rgb):
        assert got.dtype == np.uint8 and np.array_equal(got, want)


def test_bool_masks_round_trip_as_white_on_black(tmp_path: Path) -> None:
    masks = [np.zeros((8, 10), bool) for _ in NAMES]
    for i, m in enumerate(masks):
        m[i : i + 3, 2:6] = True
    save_views(tmp_path / "masks", NAMES, masks)  # png is the default
    loaded = load_views(tmp_path / "masks", NAMES)
    assert loaded is not None
    for got, want in zip(loaded, masks):
        assert got.dtype == np.uint8 and set(np.unique(got)) == {0, 255}
        assert np.array_equal(got > 127, want)


def test_npy_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    depths = [rng.uniform(0.5, 9.0, size=(7, 9)).astype(np.float32) for _ in NAMES]
    depths[1][2, 3] = np.nan
    folder = tmp_path / "inpainted_depth"
    save_views(folder, NAMES, depths, kind="npy")
    assert all_files(folder) == ["000.npy", "001.npy", "002.npy", MARKER]
    loaded = load_views(folder, NAMES)
    assert loaded is not None
    for got, want in zip(loaded, depths):
        assert got.dtype == np.float32 and np.array_equal(got, want, equal_nan=True)


def test_missing_or_unmarked_folder_is_none(tmp_path: Path) -> None:
    assert load_views(tmp_path / "absent", NAMES) is None
    folder = tmp_path / "killed"
    save_views(folder, NAMES, [np.zeros((4, 4), np.uint8)] * 3)
    (folder / MARKER).unlink()  # a stage killed before it wrote its marker
    assert load_views(folder, NAMES) is None


@pytest.mark.parametrize(
    "asked",
    [
        ["000.png", "001.png"],  # fewer views
        ["000.png", "001.png", "002.png", "003.png"],  # more views
        ["001.png", "000.png", "002.png"],  # other order
        ["000.png", "001.png", "009.png"],  # another view
    ],
)
def test_marker_listing_other_views_is_none(tmp_path: Path, asked: list) -> None:
    save_views(tmp_path, NAMES, [np.ones((4, 4), np.uint8)] * 3)
    assert load_views(tmp_path, asked) is None
    assert load_views(tmp_path, ["000.png", "001.png", "002.png"]) is not None  # same stems, other suffix/folder


def test_atomic_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    save_views(tmp_path / "a", NAMES, [np.zeros((4, 4, 3), np.uint8)] * 3, kind="png")
    save_views(tmp_path / "b", NAMES, [np.zeros((4, 4), np.float32)] * 3, kind="npy")
    save_png(tmp_path / "c" / "x.png", np.ones((3, 3), bool))
    save_npy(tmp_path / "c" / "y.npy", np.arange(3))
    write_json(tmp_path / "c" / "z.json", {"k": [1, 2]})
    files = all_files(tmp_path)
    assert not [f for f in files if "tmp" in Path(f).name]
    assert json.loads((tmp_path / "c" / "z.json").read_text()) == {"k": [1, 2]}
    assert np.array_equal(np.load(tmp_path / "c" / "y.npy"), np.arange(3))


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "view.npy"
    save_npy(path, np.arange(4))

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_npy(path, np.array([Unsaveable()], dtype=object))
    assert np.array_equal(np.load(path), np.arange(4))  # never truncated


# --- safe_load ----------------------------------------------------------------------------------------------------


class Custom:
    def __init__(self) -> None:
        self.value = 1


@pytest.fixture
def clean_safe_globals():
    """Start without the nerfstudio allow-list and restore torch's list afterwards (it is process-wide)."""
    before = list(torch.serialization.get_safe_globals())
    ours = nerfstudio_checkpoint_globals()
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals([g for g in before if not any(g is o for o in ours)])
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(before)


def test_nerfstudio_checkpoint_loads_weights_only(tmp_path: Path, clean_safe_globals) -> None:
    path = tmp_path / "step-000000003.ckpt"
    torch.save({"step": np.int64(3), "x": torch.ones(2), "f": np.float64(1.5), "g": np.float32(0.5)}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # torch's default (weights-only) refuses numpy scalars on its own
    allow_nerfstudio_checkpoints()
    data = torch.load(path)
    assert data["step"] == 3 and isinstance(data["step"], np.int64)
    assert data["f"] == 1.5 and data["g"] == np.float32(0.5)
    assert torch.equal(data["x"], torch.ones(2))


def test_arbitrary_objects_still_refused(tmp_path: Path, clean_safe_globals) -> None:
    allow_nerfstudio_checkpoints()
    path = tmp_path / "evil.ckpt"
    torch.save({"step": np.int64(1), "obj": Custom()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Custom"):
        torch.load(path)
