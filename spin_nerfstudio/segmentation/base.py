"""The segmenter interface: clicks (and an optional depth map) in, a binary mask out (backends: grabcut.py, sam.py;
which one runs: config.py)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from jaxtyping import Bool, Float, UInt8


class Segmenter:
    """Turns clicks in one image into an object mask, and refines a mask propagated from another view."""

    name: str = "segmenter"
    """Name shown in the log."""

    def segment(
        self,
        image: UInt8[np.ndarray, "H W 3"],
        positive: Float[np.ndarray, "P 2"],
        negative: Float[np.ndarray, "Q 2"],
        depth: Optional[Float[np.ndarray, "H W"]] = None,
    ) -> Bool[np.ndarray, "H W"]:
        """Mask of the object under the positive clicks (pixel coordinates x, y)."""
        raise NotImplementedError

    def refine(
        self,
        image: UInt8[np.ndarray, "H W 3"],
        prior: Bool[np.ndarray, "H W"],
        depth: Optional[Float[np.ndarray, "H W"]] = None,
    ) -> Bool[np.ndarray, "H W"]:
        """Snap a rough mask (e.g. projected from another view) to the object's edges."""
        return prior

    def summary(self) -> Optional[str]:
        """One line for the log about what the last :meth:`segment` did, or None."""
        return None
