"""A PNG screenshot of the report page with headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from spin_nerfstudio.prompts import SpinInputError


def find_chromium() -> Optional[str]:
    """Path of a Chromium / Chrome executable, if one is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(index: Path, png: Path, width: int = 1400, height: int = 8000) -> Path:
    """Render the page to PNG with headless Chromium (``--headless --no-sandbox --disable-gpu --screenshot``).

    The window is ``height`` pixels tall; the blank part below the page is cropped off afterwards.
    """
    exe = find_chromium()
    if exe is None:
        raise SpinInputError("no chromium / google-chrome executable on PATH (e.g. apt-get install -y chromium)")
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--screenshot={Path(png).resolve()}", f"--window-size={width},{height}", Path(index).resolve().as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not Path(png).is_file():
        raise SpinInputError(f"chromium failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    with Image.open(png) as shot:
        rgb = np.asarray(shot.convert("RGB"))
    rows = np.nonzero((rgb < 250).any(axis=(1, 2)))[0]
    if len(rows) and rows[-1] + 24 < rgb.shape[0]:
        Image.fromarray(rgb[: rows[-1] + 24]).save(png)
    return Path(png)
