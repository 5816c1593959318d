"""Tests of the ready-made mask folder reader (``--pipeline.mask-dir``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
from PIL import Image

from spin_nerfstudio.data.masks import check_mask, find_mask_file, load_mask_dir
from spin_nerfstudio.prompts import SpinInputError

W, H = 40, 30
NAMES = ["000.png", "001.png"]
SIZES: List[Tuple[int, int]] = [(W, H), (W, H)]


def box_mask(x0: int, y0: int, x1: int, y1: int, shape: Tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def save_mask(path: Path, mask: np.ndarray, mode: str = "L") -> Path:
    """Save a bool mask as white-on-black in the given PIL mode."""
    gray = mask.astype(np.uint8) * 255
    if mode == "L":
        img = Image.fromarray(gray)
    elif mode == "RGB":
        img = Image.fromarray(np.stack([gray] * 3, axis=-1))
    elif mode == "RGBA":
        img = Image.fromarray(np.stack([gray] * 3 + [np.full_like(gray, 255)], axis=-1))
    else:
        raise ValueError(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def error_of(mask_dir: Path, names=NAMES, sizes=SIZES) -> str:
    with pytest.raises(SpinInputError) as info:
        load_mask_dir(mask_dir, names, sizes)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def good_masks() -> List[np.ndarray]:
    return [box_mask(5, 4, 20, 15), box_mask(10, 10, 30, 25)]


def test_good_folder_loads_bool_masks(tmp_path: Path, good_masks: List[np.ndarray]) -> None:
    for name, mask in zip(NAMES, good_masks):
        save_mask(tmp_path / name, mask)
    loaded = load_mask_dir(tmp_path, NAMES, SIZES)
    assert len(loaded) == 2
    for got, want in zip(loaded, good_masks):
        assert got.dtype == bool and got.shape == (H, W)
        assert np.array_equal(got, want)


def test_grey_values_are_thresholded_at_half(tmp_path: Path) -> None:
    gray = np.zeros((H, W), np.uint8)
    gray[0:10, 0:10] = 128  # counts as object
    gray[20:30, 20:40] = 127  # does not
    Image.fromarray(gray).save(tmp_path / "000.png")
    (mask,) = load_mask_dir(tmp_path, ["000.png"], [(W, H)])
    assert np.array_equal(mask, box_mask(0, 0, 10, 10))


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_colour_masks_accepted(tmp_path: Path, good_masks: List[np.ndarray], mode: str) -> None:
    for name, mask in zip(NAMES, good_masks):
        save_mask(tmp_path / name, mask, mode=mode)
    loaded = load_mask_dir(tmp_path, NAMES, SIZES)
    assert all(np.array_equal(got, want) for got, want in zip(loaded, good_masks))


def test_same_stem_different_suffix(tmp_path: Path, good_masks: List[np.ndarray]) -> None:
    save_mask(tmp_path / "frame_a.png", good_masks[0])
    save_mask(tmp_path / "frame_b.bmp", good_masks[1])
    names = ["images/frame_a.JPG", "frame_b.jpeg"]
    assert find_mask_file(tmp_path, names[0]) == tmp_path / "frame_a.png"
    assert find_mask_file(tmp_path, names[1]) == tmp_path / "frame_b.bmp"
    loaded = load_mask_dir(tmp_path, names, SIZES)
    assert all(np.array_equal(got, want) for got, want in zip(loaded, good_masks))


def test_exact_name_preferred(tmp_path: Path, good_masks: List[np.ndarray]) -> None:
    save_mask(tmp_path / "000.jpg", good_masks[0])
    save_mask(tmp_path / "000.png", good_masks[1])
    assert find_mask_file(tmp_path, "000.jpg") == tmp_path / "000.jpg"
    assert find_mask_file(tmp_path, "000.tif") == tmp_path / "000.png"


def test_missing_folder(tmp_path: Path) -> None:
    message = error_of(tmp_path / "no_such_dir")
    assert message == f"{tmp_path / 'no_such_dir'}: mask folder not found"


def test_missing_mask_for_an_image(tmp_path: Path, good_masks: List[np.ndarray]) -> None:
    save_mask(tmp_path / "000.png", good_masks[0])
    save_mask(tmp_path / "other.png", good_masks[1])
    message = error_of(tmp_path)
    assert str(tmp_path) in message
    assert "no mask for image '001.png'" in message and "expected 001.png" in message


def test_wrong_size(tmp_path: Path, good_masks: List[np.ndarray]) -> None:
    save_mask(tmp_path / "000.png", good_masks[0])
    save_mask(tmp_path / "001.png", box_mask(1, 1, 5, 5, shape=(H, W + 1)))
    message = error_of(tmp_path)
    assert message.startswith(str(tmp_path / "001.png"))
    assert f"mask is {W + 1}x{H} but image '001.png' is {W}x{H}" in message


def test_transposed_size(tmp_path: Path) -> None:
    save_mask(tmp_path / "000.png", box_mask(1, 1, 5, 5, shape=(W, H)))
    message = error_of(tmp_path, names=["000.png"], sizes=[(W, H)])
    assert f"mask is {H}x{W} but image '000.png' is {W}x{H}" in message


def test_empty_mask(tmp_path: Path, good_masks: List[np.ndarray]) -> None:
    save_mask(tmp_path / "000.png", good_masks[0])
    save_mask(tmp_path / "001.png", np.zeros((H, W), bool))
    message = error_of(tmp_path)
    assert message.startswith(str(tmp_path / "001.png"))
    assert "mask is empty" in message


def test_nearly_full_mask(tmp_path: Path, good_masks: List[np.ndarray]) -> None:
    full = np.ones((H, W), bool)
    full[0, :] = False  # 29/30 of the image
    save_mask(tmp_path / "000.png", full)
    save_mask(tmp_path / "001.png", good_masks[1])
    message = error_of(tmp_path)
    assert message.startswith(str(tmp_path / "000.png"))
    assert "mask covers 97% of the image" in message


def test_check_mask_threshold() -> None:
    mask = np.zeros((10, 10), bool)
    mask[:8] = True  # 80 %: fine
    check_mask(mask, Path("m.png"))
    mask[:9] = True  # 90 %: refused at the default threshold
    with pytest.raises(SpinInputError, match="m.png: mask covers 90%"):
        check_mask(mask, Path("m.png"))


def test_unreadable_mask(tmp_path: Path) -> None:
    (tmp_path / "000.png").write_bytes(b"this is not a png")
    message = error_of(tmp_path, names=["000.png"], sizes=[(W, H)])
    assert message.startswith(str(tmp_path / "000.png"))
    assert "cannot read mask" in message
