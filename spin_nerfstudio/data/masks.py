"""Ready-made object masks (``--pipeline.mask-dir``): binary PNGs named like the images, white = object."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image

from spin_nerfstudio.prompts import SpinInputError

MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def find_mask_file(mask_dir: Path, image_name: str) -> Path:
    """The mask of an image: same file name, or same stem with an image suffix."""
    exact = mask_dir / Path(image_name).name
    if exact.is_file():
        return exact
    for suffix in MASK_SUFFIXES:
        cand = mask_dir / (Path(image_name).stem + suffix)
        if cand.is_file():
            return cand
    raise SpinInputError(f"{mask_dir}: no mask for image '{image_name}' (expected {Path(image_name).stem}.png)")


def check_mask(mask: np.ndarray, path: Path, max_fraction: float = 0.9) -> None:
    """A usable object mask is neither empty nor (nearly) the whole image."""
    frac = float(mask.mean())
    if frac == 0.0:
        raise SpinInputError(f"{path}: mask is empty (no white pixel); nothing to remove in this view")
    if frac >= max_fraction:
        raise SpinInputError(f"{path}: mask covers {frac:.0%} of the image; nothing would be left to inpaint from")


def load_mask_dir(mask_dir: Path, image_names: Sequence[str], sizes: Sequence[Tuple[int, int]]) -> List[np.ndarray]:
    """Read and check one mask per training image; sizes are (width, height)."""
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise SpinInputError(f"{mask_dir}: mask folder not found")
    masks = []
    for name, (w, h) in zip(image_names, sizes):
        path = find_mask_file(mask_dir, name)
        mask = read_mask(path)
        if mask.shape != (h, w):
            raise SpinInputError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but image '{name}' is {w}x{h}")
        check_mask(mask, path)
        masks.append(mask)
    return masks


def read_mask(path: Path, threshold: int = 127) -> np.ndarray:
    """A mask file as a boolean array: any channel above ``threshold`` = object; SpinInputError when unreadable."""
    try:
        img = np.array(Image.open(path))
    except OSError as err:
        raise SpinInputError(f"{path}: cannot read mask ({err})") from None
    if img.ndim == 3:
        img = img[..., :3].max(axis=-1)
    return img > threshold


def resize_mask(mask: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """A boolean mask at ``size`` (width, height), nearest neighbour."""
    if (mask.shape[1], mask.shape[0]) == tuple(size):
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize(tuple(size), resample=Image.Resampling.NEAREST)
    return np.asarray(img) > 127
