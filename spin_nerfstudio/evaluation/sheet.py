"""Contact sheets: labelled grids of views, the picture to open after a run."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] or bool or uint8 image → H x W x 3 uint8."""
    if image.dtype == bool:
        image = image.astype(np.float32)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return image[..., :3]


def overlay(image: np.ndarray, mask: np.ndarray, colour=(255, 0, 255), alpha: float = 0.5) -> np.ndarray:
    """Tint the masked pixels of an image."""
    out = to_uint8(image).astype(np.float32)
    m = mask.astype(bool)
    out[m] = (1 - alpha) * out[m] + alpha * np.asarray(colour, np.float32)
    return out.astype(np.uint8)


def contact_sheet(
    rows: Sequence[Sequence[np.ndarray]],
    columns: Sequence[str],
    row_labels: Optional[Sequence[str]] = None,
    scale: int = 2,
    title: Optional[str] = None,
) -> Image.Image:
    """Grid of images (rows x columns, all the same size) with column titles and row labels."""
    h, w = to_uint8(rows[0][0]).shape[:2]
    cw, ch = w * scale, h * scale
    pad, top, left = 4, 18 + (16 if title else 0), 60 if row_labels else 0
    sheet = Image.new("RGB", (left + len(columns) * (cw + pad) + pad, top + len(rows) * (ch + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 2), title, fill="black")
    for c, name in enumerate(columns):
        draw.text((left + pad + c * (cw + pad), top - 14), name, fill="black")
    for r, row in enumerate(rows):
        y = top + pad + r * (ch + pad)
        if row_labels:
            draw.text((2, y + ch // 2 - 6), row_labels[r], fill="black")
        for c, img in enumerate(row):
            tile = Image.fromarray(to_uint8(img)).resize((cw, ch), Image.NEAREST)
            sheet.paste(tile, (left + pad + c * (cw + pad), y))
    return sheet


def save_sheet(sheet: Image.Image, path: Path) -> Path:
    """Write the sheet as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def pick_views(n: int, k: int) -> List[int]:
    """k view indices spread evenly over n views."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)})
