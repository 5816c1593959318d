"""Which segmenter runs: the backend registry (:class:`SegmenterConfig` resolves and builds a backend).

The backends import only the interface in base.py; this module imports the backends, so there is no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Tuple, Type

from nerfstudio.configs.base_config import InstantiateConfig
from nerfstudio.utils.rich_utils import CONSOLE

from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.segmentation import sam_weights as W
from spin_nerfstudio.segmentation.base import Segmenter
from spin_nerfstudio.segmentation.grabcut import GrabCutSegmenter


@dataclass
class SegmenterConfig(InstantiateConfig):
    """Which segmenter to use for the initial 2D masks."""

    _target: Type = field(default_factory=lambda: Segmenter)
    backend: Literal["auto", "grabcut", "sam", "mobilesam"] = "grabcut"
    """'grabcut' (the default) needs no learned weights and no network; 'sam' runs segment-anything with a checkpoint
    (configured, cached, or downloaded when ``download`` is True); 'mobilesam' runs MobileSAM (vit_t, the CPU-sized
    SAM) with a configured or cached ``mobile_sam.pt`` (never downloaded); 'auto' takes a configured checkpoint of
    either kind, else a cached one (on a CPU MobileSAM before SAM, on CUDA SAM first), else (with ``download``)
    downloads SAM, else says why in one line and uses grabcut."""
    checkpoint: Optional[Path] = None
    """SAM or MobileSAM checkpoint file; None looks in torch's hub cache ($TORCH_HOME/hub/checkpoints) for the
    official SAM files and MobileSAM's mobile_sam.pt."""
    model_type: Literal["auto", "vit_b", "vit_l", "vit_h", "vit_t"] = "auto"
    """SAM model type (vit_t: MobileSAM); auto reads it from the checkpoint. Also the type downloaded when none is
    cached (auto: vit_h on CUDA, vit_b elsewhere)."""
    download: bool = False
    """Allow downloading the official SAM checkpoint into the cache when none is found (off by default: nothing
    reaches the network unless asked; the env var SPIN_NERF_NO_DOWNLOAD=1 forbids it whatever this says)."""
    refine_points: int = 3
    """Positive points sampled inside a propagated mask to prompt SAM in the other views (with its box)."""
    depth_band: float = 0.12
    """Relative depth band around a click inside which the object is looked for (grabcut)."""
    depth_edge: float = 0.1
    """Step in log-depth between neighbouring pixels that counts as an object boundary (grabcut)."""
    iterations: int = 5
    """GrabCut iterations."""
    work_side: int = 320
    """Images whose long side exceeds this many pixels are segmented by grabcut at 1/k of their size (k an integer)
    and the masks scaled back, so the depth-edge test sees the object's edges as at the sizes it was tuned on (at
    480x270 the carton's mask leaked onto its table); 0: always at full size."""
    depth_colour_margin: float = 0.15
    """In the clicked view grabcut also runs with the log-depth in place of lightness and keeps that mask when its
    outline is a depth step along at least this much more of it (0-1) than the colour mask's: shading splits an
    object in colour (a lit and a shaded half), not in depth. Negative: colour only."""
    grow: bool = True
    """Propagate round the object: visit the views nearest the clicked one first and add to the object's 3D points
    what each snapped mask adds to its projection (the clicked view sees only the object's near side; without this
    the views of its back get masks of that side alone). False: every view from the clicked view's points only."""
    max_object_fraction: float = 0.6
    """A clicked-view mask covering more of the image than this, or spanning it from edge to edge, is taken for
    background and stops the run with a message (1 disables the check)."""

    def resolve(self, device: str = "cpu") -> Tuple[str, Optional[Path], str]:
        """Decide which backend runs: (backend, SAM checkpoint or None, reason for the log).

        Looks for the checkpoint without loading the model; downloads it for 'auto'/'sam' when allowed. A configured
        checkpoint that is missing or is not a SAM checkpoint is an error (SpinInputError), never a silent fallback.
        """
        if self.backend == "grabcut":
            return "grabcut", None, "selected"
        model_type = "vit_t" if self.backend == "mobilesam" else self.model_type
        if self.backend == "mobilesam" and self.model_type not in ("auto", "vit_t"):
            raise SpinInputError(
                f"--pipeline.segmenter.model-type {self.model_type}: the mobilesam backend runs vit_t only "
                "(use --pipeline.segmenter.backend sam for vit_b/vit_l/vit_h)"
            )
        if self.checkpoint is not None:
            _, kind = W.read_checkpoint(Path(self.checkpoint), model_type)  # one-line error when it is not usable
            return _backend(kind), Path(self.checkpoint), "configured checkpoint"
        if model_type == "auto" and self.backend == "auto":
            cpu_first = [W.cached_mobile_sam(), W.cached_checkpoint("auto")]
            found = [p for p in (cpu_first if not str(device).startswith("cuda") else cpu_first[::-1]) if p is not None]
            cached = found[0] if found else None
        else:
            cached = W.cached_checkpoint(model_type)
        if cached is not None:
            _, kind = W.read_checkpoint(cached, model_type)
            return _backend(kind), cached, "cached checkpoint"
        if model_type == "vit_t":
            if self.backend == "auto":
                _print(
                    f"[yellow]spin-nerfstudio: no MobileSAM checkpoint ({W.MOBILE_SAM_FILE} not in {W.cache_dir()}); "
                    "using the offline segmenter 'grabcut'"
                )
                return "grabcut", None, "no MobileSAM checkpoint"
            raise SpinInputError(
                f"segmenter 'mobilesam': no checkpoint (none configured with --pipeline.segmenter.checkpoint, no "
                f"{W.MOBILE_SAM_FILE} in {W.cache_dir()}; MobileSAM weights are never downloaded)"
            )
        kind = self.model_type
        if kind == "auto":
            kind = "vit_h" if str(device).startswith("cuda") else "vit_b"
        try:
            if W.downloads_disabled():
                raise W.DownloadError(f"downloads are switched off ({W.NO_DOWNLOAD_ENV}=1)")
            if not self.download:
                raise W.DownloadError("downloads are off (--pipeline.segmenter.download True allows one)")
            _print(f"spin-nerfstudio: downloading the SAM {kind} checkpoint into {W.cache_dir()}")
            path = W.download_checkpoint(kind)
            W.read_checkpoint(path, kind)
            return "sam", path, "downloaded and verified checkpoint"
        except W.DownloadError as err:
            if self.backend == "sam":
                raise SpinInputError(
                    f"segmenter 'sam': no checkpoint (none configured, none in {W.cache_dir()}, download failed: {err})"
                ) from None
            _print(f"[yellow]spin-nerfstudio: no SAM checkpoint ({err}); using the offline segmenter 'grabcut'")
            return "grabcut", None, "no SAM checkpoint"

    def setup(self, device: str = "cpu", resolved: Optional[tuple] = None, **kwargs) -> Segmenter:  # type: ignore[override]
        """Build the segmenter (``resolved`` from :meth:`resolve`, else resolved now) and say which one runs."""
        backend, checkpoint, reason = resolved if resolved is not None else self.resolve(device)
        if backend in ("sam", "mobilesam"):
            from spin_nerfstudio.segmentation.sam import SamSegmenter  # torch and segment-anything: only when used

            assert checkpoint is not None
            kind = "vit_t" if backend == "mobilesam" else self.model_type
            seg = SamSegmenter.from_checkpoint(checkpoint, kind, device, refine_points=self.refine_points)
            _print(f"spin-nerfstudio: segmenter backend '{seg.name}' ({seg.model_type}, {reason}: {checkpoint})")
            return seg
        seg = GrabCutSegmenter(
            depth_band=self.depth_band,
            iterations=self.iterations,
            depth_edge=self.depth_edge,
            work_side=self.work_side,
            depth_colour_margin=self.depth_colour_margin,
        )
        why = "" if reason == "selected" else f"; {reason}"
        _print(f"spin-nerfstudio: segmenter backend '{seg.name}' (offline, no learned weights{why})")
        return seg


def _backend(model_type: str) -> str:
    """The backend that runs a checkpoint of this model type."""
    return "mobilesam" if model_type == "vit_t" else "sam"


def _print(message: str) -> None:
    CONSOLE.print(message, soft_wrap=True)
