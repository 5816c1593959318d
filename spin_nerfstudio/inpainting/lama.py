"""LaMa inpainter: the TorchScript ``big-lama.pt`` that ``simple-lama-inpainting`` uses, for colour and depth.

Calling convention of that file (the one ``simple_lama_inpainting.SimpleLama`` follows): ``model(image, mask)``
with ``image`` float32 [1, 3, H, W] in [0, 1] and ``mask`` [1, 1, H, W] holding integer 0/1 (1 = fill), both padded
symmetrically at the bottom and right to a multiple of 8; it returns [1, 3, H', W'] in [0, 1] at the padded size,
which we crop back. Depth is inpainted as SPIn-NeRF does it: inverse depth (disparity), normalised to the image
range over the known pixels, as a grey image; the three output channels are averaged and mapped back.

Where the file comes from: ``--pipeline.inpainter.checkpoint PATH``, else the ``LAMA_MODEL`` environment variable
(as simple-lama-inpainting), else torch's hub cache (``$TORCH_HOME/hub/checkpoints/big-lama.pt``), else a download
of simple-lama-inpainting's release file; cached and downloaded copies are checked against its SHA-256
(``SPIN_NERF_NO_DOWNLOAD=1`` switches downloads off).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.inpainting.base import Inpainter
from spin_nerfstudio.prompts import SpinInputError

LAMA_URL = "https://github.com/enesmsahin/simple-lama-inpainting/releases/download/v0.1.0/big-lama.pt"
"""simple-lama-inpainting's release file (a TorchScript export of big-lama)."""
LAMA_SHA256 = "7ba7aa7ac37a4d41fdbbeba3a2af7ead18058552997e3a3cd1a3b2210c9e6b4c"
"""SHA-256 of that file (205,803,670 bytes), as pinned by several independent projects."""
LAMA_FILE = "big-lama.pt"
PAD = 8


def cache_path() -> Path:
    """Where simple-lama-inpainting keeps the downloaded model: torch's hub cache."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / LAMA_FILE


def check_torchscript(path: Path) -> Path:
    """Raise SpinInputError unless ``path`` is an existing TorchScript archive (checked without loading it)."""
    path = Path(path)
    if not path.is_file():
        raise SpinInputError(f"{path}: LaMa checkpoint not found")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        raise SpinInputError(
            f"{path}: not a TorchScript file (not a zip archive); export LaMa with torch.jit"
        ) from None
    if not any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        raise SpinInputError(
            f"{path}: not a TorchScript file (a plain torch.save checkpoint?); LaMa must be a torch.jit export"
        )
    return path


def find_checkpoint(configured: Optional[Path], download: bool = True) -> Tuple[Optional[Path], str]:
    """The LaMa file to use and where it came from; (None, reason) when there is none.

    Order: a configured path, then ``LAMA_MODEL`` (both must exist and be TorchScript, else SpinInputError; they
    are the user's own files, so no checksum), then torch's hub cache, then a download (unless ``download`` is
    False or ``SPIN_NERF_NO_DOWNLOAD=1``). The cached and downloaded file must match simple-lama-inpainting's
    release (SHA-256, through :func:`spin_nerfstudio.weights.fetch_verified`).
    """
    from spin_nerfstudio import weights

    if configured is not None:
        return check_torchscript(Path(configured)), "--pipeline.inpainter.checkpoint"
    env = os.environ.get("LAMA_MODEL")
    if env:
        return check_torchscript(Path(env)), "LAMA_MODEL"
    cached = cache_path()
    was_cached = cached.is_file()
    if not was_cached:
        if weights.downloads_disabled():
            return None, f"no {LAMA_FILE} in {cached.parent} and downloads are off ({weights.NO_DOWNLOAD_ENV}=1)"
        if not download:
            return (
                None,
                f"no {LAMA_FILE} in {cached.parent} and downloads are off (--pipeline.inpainter.download True allows one)",
            )
    try:
        path = weights.fetch_verified(LAMA_URL, cached, LAMA_SHA256)
    except weights.WeightsError as err:
        return None, str(err)
    return check_torchscript(path), (
        "torch hub cache, SHA-256 verified" if was_cached else "downloaded, SHA-256 verified"
    )


def pad_to_multiple(array: np.ndarray, multiple: int = PAD) -> np.ndarray:
    """Symmetric padding at the bottom and right of a C x H x W array to a multiple of ``multiple``."""
    _, h, w = array.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    return np.pad(array, ((0, 0), (0, ph), (0, pw)), mode="symmetric")


class LamaInpainter(Inpainter):
    """LaMa through its TorchScript export."""

    name = "lama"

    def __init__(self, checkpoint: Path, device: str = "auto") -> None:
        import torch

        path = check_torchscript(checkpoint)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch's deprecation note on torch.jit
                model = torch.jit.load(str(path), map_location=device)
        except Exception as err:  # noqa: BLE001 - torch raises RuntimeError/ValueError variants
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SpinInputError(f"{path}: cannot load as a TorchScript LaMa model ({first})") from None
        model.eval()
        self.model = model
        self.device = device
        self.checkpoint = path

    def _run(self, image: Float[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]) -> Float[np.ndarray, "H W 3"]:
        import torch

        h, w = mask.shape
        img = pad_to_multiple(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))
        msk = pad_to_multiple(mask[None].astype(np.float32))
        img_t = torch.from_numpy(img)[None].to(self.device)
        msk_t = (torch.from_numpy(msk)[None].to(self.device) > 0).long()
        with torch.inference_mode():
            out = self.model(img_t, msk_t)
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[:2] != (1, 3):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise SpinInputError(f"{self.checkpoint}: LaMa model returned {shape}, expected [1, 3, H, W]")
        if out.shape[2] < h or out.shape[3] < w:
            raise SpinInputError(f"{self.checkpoint}: LaMa output {tuple(out.shape)} is smaller than the input")
        res = out[0, :, :h, :w].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        if not np.isfinite(res).all():
            raise SpinInputError(f"{self.checkpoint}: LaMa output has NaN or infinite values")
        return res

    def _fill_rgb(self, image: UInt8[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]) -> UInt8[np.ndarray, "H W 3"]:
        res = self._run(image.astype(np.float32) / 255.0, mask)
        return np.clip(np.round(res * 255.0), 0, 255).astype(np.uint8)

    def _fill_depth(self, depth: Float[np.ndarray, "H W"], mask: Bool[np.ndarray, "H W"]) -> Float[np.ndarray, "H W"]:
        """Through normalised disparity (SPIn-NeRF's recipe, without 8-bit rounding)."""
        disparity = 1.0 / np.where(mask, 1.0, depth.astype(np.float64))
        lo, hi = float(disparity[~mask].min()), float(disparity[~mask].max())
        span = max(hi - lo, 1e-12)
        grey = np.where(mask, 0.0, (disparity - lo) / span).astype(np.float32)
        res = self._run(np.repeat(grey[..., None], 3, axis=-1), mask).mean(axis=-1).astype(np.float64)
        filled = lo + res * span
        return (1.0 / np.maximum(filled, lo if lo > 0 else 1e-12)).astype(np.float32)
