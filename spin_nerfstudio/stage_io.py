"""Stage outputs in the run folder: per-view PNG/NPY folders written atomically, with a completion marker.

A folder counts as complete only when its ``_complete.json`` marker lists every view; a folder without it (a
stage killed half-way) is never trusted as a whole. :class:`StageFolder` writes a folder view by view: its
``_started.json`` names the *token* of the stage boundary that produced the views (a random id saved in the
checkpoints of that run's lineage), so a resumed run keeps the views already written by the same lineage and
computes only the missing ones, while views left by another run are deleted and redone.

``SPIN_NERF_STAGE_DELAY`` (seconds, a test knob) sleeps after each view a :class:`StageFolder` writes, so a test can
kill a tiny run in the middle of a stage.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Collection, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

MARKER = "_complete.json"
STARTED = "_started.json"
DELAY_ENV = "SPIN_NERF_STAGE_DELAY"


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


def save_views(
    folder: Path, names: Sequence[str], arrays: Sequence[np.ndarray], kind: str = "png", token: Optional[str] = None
) -> None:
    """Write one file per view and then the completion marker (naming ``token``, when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(names, arrays):
        _save_view(folder, name, arr, kind)
    _write_marker(folder, MARKER, names, kind, token)


def _save_view(folder: Path, name: str, arr: np.ndarray, kind: str) -> None:
    if kind == "png":
        save_png(folder / f"{stem(name)}.png", arr)
    else:
        save_npy(folder / f"{stem(name)}.npy", arr)


def _read_view(folder: Path, name: str, kind: str) -> np.ndarray:
    if kind == "png":
        with Image.open(folder / f"{stem(name)}.png") as img:
            return np.array(img)
    return np.load(folder / f"{stem(name)}.npy")


def _write_marker(folder: Path, marker: str, names: Sequence[str], kind: str, token: Optional[str]) -> None:
    data: Dict[str, object] = {"views": [stem(n) for n in names], "kind": kind}
    if token is not None:
        data["token"] = token
    atomic_write_bytes(folder / marker, lambda t: t.write_text(json.dumps(data)))


def _read_marker(path: Path) -> Optional[Dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def folder_token(folder: Path) -> Optional[str]:
    """Token named by a complete folder's marker (None when absent, incomplete or untokened)."""
    marker = _read_marker(folder / MARKER)
    return marker.get("token") if marker is not None else None


def load_views(
    folder: Path, names: Sequence[str], tokens: Optional[Collection[str]] = None
) -> Optional[List[np.ndarray]]:
    """Read a complete folder written by :func:`save_views` or :class:`StageFolder`.

    None when the folder is absent, incomplete, lists other views, has a view that cannot be read, or (with
    ``tokens``) was written by a stage boundary whose token is not among ``tokens``.
    """
    marker = _read_marker(folder / MARKER)
    if marker is None or [stem(n) for n in names] != marker.get("views"):
        return None
    if tokens is not None and marker.get("token") not in tokens:
        return None
    try:
        return [_read_view(folder, n, str(marker.get("kind"))) for n in names]
    except (OSError, ValueError, EOFError):
        return None


class StageFolder:
    """A per-view stage output written view by view, resumable within one run lineage.

    Args:
        folder: the output folder inside the run folder.
        names: image names of all views, in camera order.
        kind: "png" (uint8 or bool images) or "npy" (arrays).
        token: id of the stage boundary producing these views; views written under another token are discarded.
    """

    def __init__(self, folder: Path, names: Sequence[str], kind: str, token: str) -> None:
        self.folder = Path(folder)
        self.names = list(names)
        self.kind = kind
        self.token = token
        self.delay = float(os.environ.get(DELAY_ENV, "0") or 0)
        started = _read_marker(self.folder / STARTED)
        same = started is not None and started.get("token") == token and started.get("kind") == kind
        same = same and started.get("views") == [stem(n) for n in self.names]
        if not same:
            self._reset()

    def _reset(self) -> None:
        """Forget views of another lineage: marker first, then their files, then the new start marker."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / MARKER).unlink(missing_ok=True)
        for path in self.folder.iterdir():
            if path.is_file() and path.name != STARTED and path.suffix in (".png", ".npy"):
                path.unlink()
        _write_marker(self.folder, STARTED, self.names, self.kind, self.token)

    @property
    def complete(self) -> bool:
        """Whether the folder is marked complete under this token, listing these views."""
        marker = _read_marker(self.folder / MARKER)
        views = [stem(n) for n in self.names]
        return marker is not None and marker.get("token") == self.token and marker.get("views") == views

    def existing(self) -> Dict[int, np.ndarray]:
        """Views (by index) already written under this token; unreadable files are left out (and redone)."""
        out: Dict[int, np.ndarray] = {}
        for i, name in enumerate(self.names):
            if (self.folder / f"{stem(name)}.{self.kind}").is_file():
                try:
                    out[i] = _read_view(self.folder, name, self.kind)
                except (OSError, ValueError, EOFError):
                    continue
        return out

    def put(self, index: int, array: np.ndarray) -> None:
        """Write one view atomically."""
        _save_view(self.folder, self.names[index], array, self.kind)
        if self.delay > 0:
            time.sleep(self.delay)

    def finish(self) -> None:
        """Mark the folder complete (after every view was written)."""
        _write_marker(self.folder, MARKER, self.names, self.kind, self.token)


def copy_stage_folder(src: Path, dst: Path) -> int:
    """Copy a stage output folder file by file (each atomically), markers last; returns the number of files."""
    files = sorted((p for p in Path(src).iterdir() if p.is_file() and ".tmp" not in p.name), key=_marker_last)
    Path(dst).mkdir(parents=True, exist_ok=True)
    for path in files:
        atomic_write_bytes(Path(dst) / path.name, lambda t, p=path: shutil.copy2(p, t))
    return len(files)


def _marker_last(path: Path) -> tuple:
    return (path.name == MARKER, path.name == STARTED, path.name)


def write_json(path: Path, data: Dict) -> None:
    """Write JSON atomically."""
    atomic_write_bytes(path, lambda t: t.write_text(json.dumps(data, indent=2)))


def copy_file(src: Path, dst: Path) -> int:
    """Copy one file atomically; returns 1."""
    atomic_write_bytes(Path(dst), lambda t: shutil.copy2(src, t))
    return 1
