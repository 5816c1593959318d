"""Stage outputs in the run folder: per-view PNG/NPY folders written atomically, with a completion marker.

A folder counts as complete only when its ``_complete.json`` marker lists every view; a folder without it (a
stage killed half-way) is redone, never trusted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

MARKER = "_complete.json"


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``, so a kill never leaves a truncated file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    write(tmp)
    tmp.replace(path)


def save_png(path: Path, array: np.ndarray) -> None:
    """Save a uint8 (or bool) image atomically."""
    arr = array.astype(np.uint8) * 255 if array.dtype == bool else array
    atomic_write_bytes(path, lambda t: Image.fromarray(arr).save(t, format="PNG"))


def save_npy(path: Path, array: np.ndarray) -> None:
    """Save an array atomically."""

    def write(t: Path) -> None:
        with open(t, "wb") as f:
            np.save(f, array)

    atomic_write_bytes(path, write)


def stem(name: str) -> str:
    """File stem of an image name (the key under which stage outputs are stored)."""
    return Path(name).stem


def save_views(folder: Path, names: Sequence[str], arrays: Sequence[np.ndarray], kind: str = "png") -> None:
    """Write one file per view and then the completion marker."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(names, arrays):
        if kind == "png":
            save_png(folder / f"{stem(name)}.png", arr)
        else:
            save_npy(folder / f"{stem(name)}.npy", arr)
    marker = {"views": [stem(n) for n in names], "kind": kind}
    atomic_write_bytes(folder / MARKER, lambda t: t.write_text(json.dumps(marker)))


def load_views(folder: Path, names: Sequence[str]) -> Optional[List[np.ndarray]]:
    """Read a complete folder written by :func:`save_views`; None when it is absent or incomplete."""
    marker_path = folder / MARKER
    if not marker_path.is_file():
        return None
    marker = json.loads(marker_path.read_text())
    if [stem(n) for n in names] != marker.get("views"):
        return None
    out = []
    for n in names:
        if marker.get("kind") == "png":
            out.append(np.array(Image.open(folder / f"{stem(n)}.png")))
        else:
            out.append(np.load(folder / f"{stem(n)}.npy"))
    return out


def write_json(path: Path, data: Dict) -> None:
    """Write JSON atomically."""
    atomic_write_bytes(path, lambda t: t.write_text(json.dumps(data, indent=2)))
