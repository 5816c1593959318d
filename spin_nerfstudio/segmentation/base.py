"""The segmenter interface: clicks (and an optional depth map) in, a binary mask out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Type

import numpy as np
from jaxtyping import Bool, Float, UInt8
from nerfstudio.configs.base_config import InstantiateConfig


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


@dataclass
class SegmenterConfig(InstantiateConfig):
    """Which segmenter to use for the initial 2D masks."""

    _target: Type = field(default_factory=lambda: Segmenter)
    backend: Literal["auto", "grabcut"] = "auto"
    """Segmenter backend. 'grabcut' needs no learned weights; 'auto' picks the best available (today: grabcut)."""
    depth_band: float = 0.12
    """Relative depth band around a click inside which the object is looked for (grabcut)."""
    depth_edge: float = 0.1
    """Step in log-depth between neighbouring pixels that counts as an object boundary (grabcut)."""
    iterations: int = 5
    """GrabCut iterations."""

    def setup(self, **kwargs) -> Segmenter:  # type: ignore[override]
        """Build the configured segmenter and say which one runs."""
        from nerfstudio.utils.rich_utils import CONSOLE

        from spin_nerfstudio.segmentation.grabcut import GrabCutSegmenter

        seg = GrabCutSegmenter(depth_band=self.depth_band, iterations=self.iterations, depth_edge=self.depth_edge)
        CONSOLE.print(f"spin-nerfstudio: segmenter backend '{seg.name}' (offline, no learned weights)")
        return seg
