"""The inpainter interface: fill the masked pixels of a view's colour or depth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Type

import numpy as np
from jaxtyping import Bool, Float, UInt8
from nerfstudio.configs.base_config import InstantiateConfig


class Inpainter:
    """Fills masked pixels of colour images and depth maps."""

    name: str = "inpainter"
    """Name shown in the log."""

    def inpaint_rgb(
        self, image: UInt8[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]
    ) -> UInt8[np.ndarray, "H W 3"]:
        """Colour image with the masked pixels filled; unmasked pixels are returned unchanged."""
        raise NotImplementedError

    def inpaint_depth(self, depth: Float[np.ndarray, "H W"], mask: Bool[np.ndarray, "H W"]) -> Float[np.ndarray, "H W"]:
        """Depth map with the masked pixels filled; unmasked pixels are returned unchanged."""
        raise NotImplementedError


@dataclass
class InpainterConfig(InstantiateConfig):
    """Which 2D inpainter fills each view's colour and depth."""

    _target: Type = field(default_factory=lambda: Inpainter)
    backend: Literal["auto", "telea"] = "auto"
    """Inpainter backend. 'telea' is OpenCV's (no learned weights); 'auto' picks the best available (today: telea)."""
    radius: int = 5
    """Neighbourhood radius in pixels for OpenCV's inpainting."""

    def setup(self, **kwargs) -> Inpainter:  # type: ignore[override]
        """Build the configured inpainter and say which one runs."""
        from nerfstudio.utils.rich_utils import CONSOLE

        from spin_nerfstudio.inpainting.telea import TeleaInpainter

        inpainter = TeleaInpainter(radius=self.radius)
        CONSOLE.print(f"spin-nerfstudio: inpainter backend '{inpainter.name}' (offline, no learned weights)")
        return inpainter
