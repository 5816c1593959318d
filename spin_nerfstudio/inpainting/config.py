"""Which 2D inpainter runs: the backend registry (:class:`InpainterConfig` builds a backend from its name).

The backends import only the interface in base.py; this module imports the backends, so there is no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Tuple, Type

from nerfstudio.configs.base_config import InstantiateConfig
from nerfstudio.utils.rich_utils import CONSOLE

from spin_nerfstudio.inpainting import lama
from spin_nerfstudio.inpainting.base import Inpainter
from spin_nerfstudio.inpainting.biharmonic import BiharmonicInpainter
from spin_nerfstudio.inpainting.select import SelectingInpainter
from spin_nerfstudio.inpainting.telea import TeleaInpainter
from spin_nerfstudio.prompts import SpinInputError

SELECT_NOTE = "biharmonic or Telea colour fill per view, whichever fills decoy holes beside the mask better"
"""What the log says of the 'select' backend."""


@dataclass
class InpainterConfig(InstantiateConfig):
    """Which 2D inpainter fills each view's colour and depth."""

    _target: Type = field(default_factory=lambda: Inpainter)
    backend: Literal["auto", "select", "biharmonic", "telea", "lama"] = "auto"
    """Inpainter backend. 'lama': LaMa's TorchScript export (simple-lama-inpainting's big-lama.pt); 'select': per
    view the biharmonic or the Telea colour fill, whichever fills decoy holes beside the mask better (the offline
    default; no learned weights; inpainting/select.py); 'biharmonic': multi-scale thin-plate fill; 'telea': OpenCV's
    fast marching; 'auto': LaMa when a checkpoint is configured, in LAMA_MODEL or in torch's cache, else (only with
    ``download`` True) a SHA-256-verified download of it, else 'select', saying why in the log."""
    checkpoint: Optional[Path] = None
    """LaMa TorchScript file (big-lama.pt); None looks at LAMA_MODEL, then $TORCH_HOME/hub/checkpoints/big-lama.pt."""
    download: bool = False
    """Allow downloading big-lama.pt into torch's cache when no checkpoint is found (off by default: nothing reaches
    the network unless asked; the env var SPIN_NERF_NO_DOWNLOAD=1 forbids it whatever this says)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device LaMa runs on (auto: CUDA when available)."""
    radius: int = 5
    """Neighbourhood radius in pixels for OpenCV's inpainting (telea)."""

    def check(self) -> None:
        """Fail early (SpinInputError) on a configured LaMa checkpoint that is missing or not TorchScript."""
        if self.checkpoint is not None and self.backend in ("auto", "lama"):
            lama.check_torchscript(self.checkpoint)

    def setup(self, **kwargs) -> Inpainter:  # type: ignore[override]
        """Build the configured inpainter and say in the log which one runs and why."""
        inpainter, why = self._build()
        CONSOLE.print(f"spin-nerfstudio: inpainter backend '{inpainter.name}' ({why})", soft_wrap=True)
        return inpainter

    def _build(self) -> Tuple[Inpainter, str]:
        if self.backend == "telea":
            return TeleaInpainter(radius=self.radius), "offline, no learned weights"
        if self.backend == "biharmonic":
            return BiharmonicInpainter(), "offline, no learned weights"
        if self.backend == "select":
            return SelectingInpainter(radius=self.radius), f"offline, no learned weights; {SELECT_NOTE}"
        path, source = lama.find_checkpoint(self.checkpoint, self.download)
        if path is not None:
            return lama.LamaInpainter(path, self.device), f"{path} from {source}"
        if self.backend == "lama":
            raise SpinInputError(
                f"no LaMa checkpoint: {source}; pass --pipeline.inpainter.checkpoint PATH or set LAMA_MODEL"
            )
        return (
            SelectingInpainter(radius=self.radius),
            f"offline default, no learned weights; {SELECT_NOTE}; no LaMa checkpoint: {source}",
        )
