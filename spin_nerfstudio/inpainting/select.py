"""Offline default colour fill: biharmonic or Telea, chosen per view by filling decoy holes beside the mask.

Neither classic fill wins everywhere. The biharmonic fill carries smooth shading into the hole and is 2 dB ahead on
the smooth generated scenes; on sharp textures (tiles, stripes) it smears them into a grey blur, and OpenCV's Telea
fill, which continues edges from the rim inward, is 2.7 dB ahead (docs/figures.md). Which one suits a view is
measured on the view itself: the removal mask is copied to up to ``decoys`` places beside it where every pixel is
known, both fills fill the copy (with the real mask hidden too), and the one closer to the known pixels there fills
the real hole. Depth is always filled biharmonically in disparity (exact on planes).
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, List, Tuple

import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.inpainting.base import Inpainter
from spin_nerfstudio.inpainting.biharmonic import BiharmonicInpainter
from spin_nerfstudio.inpainting.telea import TeleaInpainter
from spin_nerfstudio.segmentation.propagate import dilate


def decoy_masks(mask: Bool[np.ndarray, "H W"], count: int = 2, gap: int = 2) -> List[Bool[np.ndarray, "H W"]]:
    """Copies of ``mask`` shifted by its own extent (plus ``gap``) left, right, up or down, kept where the whole copy
    lies inside the image and clear of the mask dilated by ``gap``; at most ``count``, the nearest shifts first."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return []
    h, w = mask.shape
    height, width = ys.max() - ys.min() + 1 + gap, xs.max() - xs.min() + 1 + gap
    grown = dilate(mask, 2 * gap + 1, 1)
    shifts = sorted([(0, -width), (0, width), (-height, 0), (height, 0)], key=lambda s: abs(s[0]) + abs(s[1]))
    out = []
    for dy, dx in shifts:
        ny, nx = ys + dy, xs + dx
        if ny.min() < 0 or nx.min() < 0 or ny.max() >= h or nx.max() >= w:
            continue
        decoy = np.zeros_like(mask, dtype=bool)
        decoy[ny, nx] = True
        if (decoy & grown).any():
            continue
        out.append(decoy)
        if len(out) == count:
            break
    return out


class SelectingInpainter(Inpainter):
    """Per view, the better of the biharmonic and the Telea colour fill on decoy holes (see the module docstring)."""

    name = "select"

    def __init__(self, decoys: int = 2, radius: int = 5) -> None:
        self.decoys = decoys
        self.candidates: Dict[str, Inpainter] = {"biharmonic": BiharmonicInpainter(), "telea": TeleaInpainter(radius)}
        self.choices: Counter = Counter()
        """How often each candidate was chosen (``default`` counts views without room for a decoy)."""
        self.last_errors: Dict[str, float] = {}
        """Mean squared error of each candidate on the last view's decoys (empty when it had none)."""

    def choose(self, image: UInt8[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]) -> Tuple[str, Dict[str, float]]:
        """Name of the candidate that fills decoy holes beside ``mask`` more faithfully, and every candidate's mean
        squared error there; the biharmonic fill (and no errors) where no decoy fits in the image."""
        decoys = decoy_masks(mask, self.decoys)
        if not decoys:
            return "biharmonic", {}
        errors = {}
        for name, candidate in self.candidates.items():
            total = 0.0
            for decoy in decoys:
                filled = candidate.inpaint_rgb(image, mask | decoy)
                total += float(np.mean((filled[decoy].astype(np.float64) - image[decoy]) ** 2))
            errors[name] = total / len(decoys)
        return min(errors, key=errors.__getitem__), errors

    def _fill_rgb(self, image: UInt8[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]) -> UInt8[np.ndarray, "H W 3"]:
        name, self.last_errors = self.choose(image, mask)
        self.choices[name if self.last_errors else "default"] += 1
        return self.candidates[name].inpaint_rgb(image, mask)

    def _fill_depth(self, depth: Float[np.ndarray, "H W"], mask: Bool[np.ndarray, "H W"]) -> Float[np.ndarray, "H W"]:
        return self.candidates["biharmonic"].inpaint_depth(depth, mask)

    def summary(self) -> str:
        """How often each fill was chosen, for the log."""
        parts = [f"{name} in {self.choices[name]}" for name in ("biharmonic", "telea") if self.choices[name]]
        if self.choices["default"]:
            parts.append(f"biharmonic in {self.choices['default']} without room for a decoy hole")
        return "2D colour fill chosen on decoy holes beside each mask: " + ", ".join(parts) + " view(s)"
