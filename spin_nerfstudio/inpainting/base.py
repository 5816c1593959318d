"""The inpainter interface: fill the masked pixels of a view's colour or depth (backends: biharmonic.py, telea.py,
lama.py; which one runs: config.py)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from jaxtyping import Bool, Float, UInt8


class Inpainter:
    """Fills masked pixels of colour images and depth maps.

    Backends implement ``_fill_rgb`` and ``_fill_depth``; the public methods handle what every backend shares: an
    empty mask returns a copy, known depth must be finite and positive, and unmasked pixels come back unchanged.
    """

    name: str = "inpainter"
    """Name shown in the log."""

    def inpaint_rgb(
        self, image: UInt8[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]
    ) -> UInt8[np.ndarray, "H W 3"]:
        """Colour image with the masked pixels filled; unmasked pixels are returned unchanged."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return image.copy()
        out = self._fill_rgb(image, mask)
        out[~mask] = image[~mask]
        return out

    def inpaint_depth(self, depth: Float[np.ndarray, "H W"], mask: Bool[np.ndarray, "H W"]) -> Float[np.ndarray, "H W"]:
        """Depth map with the masked pixels filled; values inside the mask may be anything, values outside must be
        finite and positive (ValueError otherwise); unmasked pixels are returned unchanged."""
        mask = np.asarray(mask, dtype=bool)
        depth = np.asarray(depth, dtype=np.float32)
        if not mask.any():
            return depth.copy()
        check_known_depth(depth[~mask])
        out = self._fill_depth(depth, mask).astype(np.float32)
        out[~mask] = depth[~mask]
        return out

    def summary(self) -> Optional[str]:
        """A line for the log after every view was filled (None: nothing to say)."""
        return None

    def _fill_rgb(self, image: UInt8[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]) -> UInt8[np.ndarray, "H W 3"]:
        """The backend's fill of a colour image (a non-empty mask); unmasked pixels are restored afterwards."""
        raise NotImplementedError

    def _fill_depth(self, depth: Float[np.ndarray, "H W"], mask: Bool[np.ndarray, "H W"]) -> Float[np.ndarray, "H W"]:
        """The backend's fill of a depth map (a non-empty mask, checked known depth); unmasked pixels are restored
        afterwards."""
        raise NotImplementedError


def check_known_depth(known: np.ndarray) -> None:
    """Raise ValueError unless the depth values outside the mask are finite and positive."""
    if not np.isfinite(known).all():
        raise ValueError("depth has NaN or infinite values outside the mask; cannot inpaint it")
    if (known <= 0).any():
        raise ValueError("depth has zero or negative values outside the mask; cannot inpaint it")
