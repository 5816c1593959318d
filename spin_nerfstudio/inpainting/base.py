"""The inpainter interface: fill the masked pixels of a view's colour or depth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Tuple, Type

import numpy as np
from jaxtyping import Bool, Float, UInt8
from nerfstudio.configs.base_config import InstantiateConfig


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


@dataclass
class InpainterConfig(InstantiateConfig):
    """Which 2D inpainter fills each view's colour and depth."""

    _target: Type = field(default_factory=lambda: Inpainter)
    backend: Literal["auto", "biharmonic", "telea", "lama"] = "auto"
    """Inpainter backend. 'lama': LaMa's TorchScript export (simple-lama-inpainting's big-lama.pt); 'biharmonic':
    multi-scale thin-plate fill, the offline default (no learned weights); 'telea': OpenCV's fast marching; 'auto':
    LaMa when a checkpoint is configured, in LAMA_MODEL or in torch's cache, else a SHA-256-verified download of it
    (unless downloads are off), else biharmonic, saying why in the log."""
    checkpoint: Optional[Path] = None
    """LaMa TorchScript file (big-lama.pt); None looks at LAMA_MODEL, then $TORCH_HOME/hub/checkpoints/big-lama.pt."""
    download: bool = True
    """Allow downloading big-lama.pt into torch's cache (the env var SPIN_NERF_NO_DOWNLOAD=1 also forbids it)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device LaMa runs on (auto: CUDA when available)."""
    radius: int = 5
    """Neighbourhood radius in pixels for OpenCV's inpainting (telea)."""

    def check(self) -> None:
        """Fail early (SpinInputError) on a configured LaMa checkpoint that is missing or not TorchScript."""
        if self.checkpoint is not None and self.backend in ("auto", "lama"):
            from spin_nerfstudio.inpainting.lama import check_torchscript

            check_torchscript(self.checkpoint)

    def setup(self, **kwargs) -> Inpainter:  # type: ignore[override]
        """Build the configured inpainter and say in the log which one runs and why."""
        from nerfstudio.utils.rich_utils import CONSOLE

        inpainter, why = self._build()
        CONSOLE.print(f"spin-nerfstudio: inpainter backend '{inpainter.name}' ({why})", soft_wrap=True)
        return inpainter

    def _build(self) -> Tuple[Inpainter, str]:
        from spin_nerfstudio.inpainting import lama
        from spin_nerfstudio.inpainting.biharmonic import BiharmonicInpainter
        from spin_nerfstudio.inpainting.telea import TeleaInpainter

        if self.backend == "telea":
            return TeleaInpainter(radius=self.radius), "offline, no learned weights"
        if self.backend == "biharmonic":
            return BiharmonicInpainter(), "offline, no learned weights"
        path, source = lama.find_checkpoint(self.checkpoint, self.download)
        if path is not None:
            return lama.LamaInpainter(path, self.device), f"{path} from {source}"
        if self.backend == "lama":
            from spin_nerfstudio.prompts import SpinInputError

            raise SpinInputError(
                f"no LaMa checkpoint: {source}; pass --pipeline.inpainter.checkpoint PATH or set LAMA_MODEL"
            )
        return BiharmonicInpainter(), f"offline default, no learned weights; no LaMa checkpoint: {source}"
