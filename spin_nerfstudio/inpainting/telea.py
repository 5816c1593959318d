"""Offline inpainter: OpenCV's fast-marching method (Telea), for colour and for depth."""

from __future__ import annotations

import cv2
import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.inpainting.base import Inpainter


class TeleaInpainter(Inpainter):
    """OpenCV ``cv2.inpaint`` with ``INPAINT_TELEA``."""

    name = "telea"

    def __init__(self, radius: int = 5) -> None:
        self.radius = radius

    def _fill_rgb(self, image: UInt8[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]) -> UInt8[np.ndarray, "H W 3"]:
        return cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8), self.radius, cv2.INPAINT_TELEA)

    def _fill_depth(self, depth: Float[np.ndarray, "H W"], mask: Bool[np.ndarray, "H W"]) -> Float[np.ndarray, "H W"]:
        """In float32, so no quantisation."""
        # OpenCV's float path still steps and rounds as if values were 0..255: work at that scale.
        scale = 1000.0 / max(float(np.abs(depth[~mask]).max()), 1e-12)
        src = np.where(mask, 0.0, depth * scale).astype(np.float32)
        return cv2.inpaint(src, mask.astype(np.uint8), self.radius, cv2.INPAINT_TELEA) / scale
