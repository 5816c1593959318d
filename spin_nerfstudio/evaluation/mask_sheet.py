"""The masks contact sheet a run writes after its final masks: initial and final masks over the images."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from jaxtyping import Bool, UInt8

from spin_nerfstudio.evaluation.sheet import contact_sheet, overlay, pick_views, save_sheet


def write_mask_sheet(
    path: Path,
    images: UInt8[np.ndarray, "N H W 3"],
    masks: Sequence[Bool[np.ndarray, "H W"]],
    names: Sequence[str],
    initial: Optional[Sequence[Bool[np.ndarray, "H W"]]] = None,
    num_views: int = 12,
    views_per_row: int = 4,
) -> Path:
    """Write a grid of views (spread over the capture) with the final masks tinted, and the initial masks if given.

    Each view is shown as image | initial mask | final mask (or image | final mask), magenta over the image; views
    are laid out ``views_per_row`` to a row. Tiles are scaled so that a tile is at least about 160 px wide.
    """
    chosen = pick_views(len(masks), max(1, num_views))
    tiles = []
    for k in chosen:
        group = [_labelled(images[k], Path(names[k]).stem)]
        if initial is not None:
            group.append(overlay(images[k], initial[k], colour=(0, 200, 255)))
        group.append(overlay(images[k], masks[k]))
        tiles.append(group)
    per_view = len(tiles[0])
    kinds = ["image", "initial", "final"] if initial is not None else ["image", "final"]
    columns = [f"{kind}" for _ in range(views_per_row) for kind in kinds]
    rows = []
    blank = np.full_like(tiles[0][0], 255)
    for start in range(0, len(tiles), views_per_row):
        row_tiles = tiles[start : start + views_per_row]
        row = [t for group in row_tiles for t in group]
        row += [blank] * (per_view * views_per_row - len(row))
        rows.append(row)
    width = images[0].shape[1]
    scale = max(1, int(np.ceil(160 / width)))
    title = f"{len(chosen)} of {len(masks)} views; final mask magenta" + (", initial mask cyan" if initial else "")
    return save_sheet(contact_sheet(rows, columns, None, scale=scale, title=title), Path(path))


def write_all_masks_sheet(
    path: Path,
    images: UInt8[np.ndarray, "N H W 3"],
    masks: Sequence[Bool[np.ndarray, "H W"]],
    names: Sequence[str],
    notes: Optional[Sequence[str]] = None,
    views_per_row: int = 8,
) -> Path:
    """Write every view with its final mask: magenta tint and a white outline over the image, the view's name (and
    ``notes``, e.g. the mask's agreement with the field) in its corner, ``views_per_row`` views to a row."""
    import cv2

    tiles = []
    for k in range(len(masks)):
        tile = overlay(images[k], masks[k], alpha=0.4)
        contours, _ = cv2.findContours(masks[k].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, (255, 255, 255), 1)
        label = Path(names[k]).stem + (f" {notes[k]}" if notes is not None else "")
        tiles.append(_labelled(tile, label))
    blank = np.full_like(tiles[0], 255)
    rows = []
    for start in range(0, len(tiles), views_per_row):
        row = tiles[start : start + views_per_row]
        rows.append(row + [blank] * (views_per_row - len(row)))
    width = images[0].shape[1]
    scale = max(1, int(np.ceil(160 / width)))
    title = f"all {len(masks)} views; final mask magenta with a white outline"
    return save_sheet(contact_sheet(rows, [""] * views_per_row, None, scale=scale, title=title), Path(path))


def _labelled(image: np.ndarray, text: str) -> np.ndarray:
    """The image with its name written in its top-left corner."""
    from PIL import Image, ImageDraw

    tile = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    draw = ImageDraw.Draw(tile)
    box = draw.textbbox((2, 1), text)
    draw.rectangle((box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1), fill="white")
    draw.text((2, 1), text, fill="black")
    return np.asarray(tile)
