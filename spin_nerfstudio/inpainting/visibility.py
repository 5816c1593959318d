"""Visibility-aware inpainting targets: reuse the background that other views saw.

In a hand-held capture much of what the object hides in one view is visible in others. For every training view
we lift each pixel of its removal mask to 3D with the inpainted (object-free) depth, project the point into every
other view, and accept that view as a witness where

- the point lands inside the image, in front of the camera, with all four pixels around it outside that view's
  removal mask (so the colour there is real background, not the object or an inpainted guess), and
- that view's rendered depth at those four pixels agrees with the point's distance within a relative tolerance
  (so the point is the surface that view sees, not something hidden behind it).

The pixel's "seen elsewhere" colour is the per-channel median of the witnesses' bilinearly sampled colours.
Those pixels are then supervised with the observed colour (``model.seen_loss_mult``). The rest of the mask keeps the
2D inpainting, corrected towards what was seen: the differences between observed and 2D-inpainted colour at the
seen pixels are spread over the unseen pixels by a membrane (Laplace) fill, which never overshoots (re-inpainting
around scattered observed pixels with a thin-plate or learned inpainter can ring or hallucinate). Only the unseen
part gets the reference-view colour loss and the perceptual patches.

Outputs in the run folder: ``seen_elsewhere/`` (per-view masks, white = seen in another view),
``inpainted_targets/`` (per-view colour targets: observed colour where seen, 2D inpainting elsewhere) and
``seen_elsewhere.json`` (per-view and overall share of removal-mask pixels seen elsewhere). The pipeline writes them
as resumable stage folders (``spin_nerfstudio.pipeline.SpinPipeline._seen_elsewhere``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.inpainting.biharmonic import harmonic_fill
from spin_nerfstudio.segmentation.propagate import PinholeView, dilate, lift

SEEN_DIR = "seen_elsewhere"
"""Run-folder subfolder of the per-view seen-elsewhere masks."""
TARGETS_DIR = "inpainted_targets"
"""Run-folder subfolder of the per-view colour targets (seen colour + 2D fill of the unseen rest)."""
SUMMARY_FILE = "seen_elsewhere.json"
"""Run-folder file with the share of removal-mask pixels seen elsewhere."""


@dataclass
class VisibilityConfig:
    """Visibility-aware targets: supervise masked pixels that other views saw with the colour they saw."""

    enabled: bool = True
    """Use observed background where another view saw it; False gives SPIn-NeRF's plain 2D-inpainted targets."""
    depth_tolerance: float = 0.05
    """Relative slack between a lifted point's distance and a witness view's rendered depth."""
    min_views: int = 1
    """Witness views a pixel needs to count as seen."""
    margin: int = 2
    """Pixels a witness sample must keep from that view's removal mask (its edge may still show the object)."""
    chunk: int = 65536
    """Masked pixels processed at once (memory bound: chunk x views x 3 floats)."""


@dataclass
class VisibilityTargets:
    """Per-view results of :func:`seen_elsewhere_targets`."""

    seen: List[np.ndarray] = field(default_factory=list)
    """Per view, H x W bool: removal-mask pixels some other view saw."""
    targets: List[np.ndarray] = field(default_factory=list)
    """Per view, H x W x 3 uint8 colour target: observed colour where seen, 2D inpainting elsewhere in the mask."""
    witnesses: List[np.ndarray] = field(default_factory=list)
    """Per view, H x W int: number of witness views (0 outside the mask; empty when loaded from a run)."""

    def summary(self, names: Sequence[str], removal: Sequence[np.ndarray]) -> Dict[str, object]:
        """Share of removal-mask pixels seen elsewhere, overall and per view."""
        total = int(sum(int(m.sum()) for m in removal))
        seen = int(sum(int(s.sum()) for s in self.seen))
        per_view = []
        for name, s, m in zip(names, self.seen, removal):
            n = int(m.sum())
            per_view.append({"image": name, "masked": n, "seen": int(s.sum()), "fraction": s.sum() / n if n else None})
        return {
            "masked_pixels": total,
            "seen_pixels": seen,
            "seen_fraction": seen / total if total else None,
            "per_view": per_view,
        }


def _bilinear(
    image: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple:  # (values N x C, corner indices (4 x N of y), (4 x N of x))
    h, w = image.shape[:2]
    x0 = np.clip(np.floor(x).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, h - 2)
    fx = np.clip(x - x0, 0.0, 1.0)[:, None]
    fy = np.clip(y - y0, 0.0, 1.0)[:, None]
    img = image.reshape(h, w, -1).astype(np.float64)
    val = (
        img[y0, x0] * (1 - fx) * (1 - fy)
        + img[y0, x0 + 1] * fx * (1 - fy)
        + img[y0 + 1, x0] * (1 - fx) * fy
        + img[y0 + 1, x0 + 1] * fx * fy
    )
    ys = np.stack([y0, y0, y0 + 1, y0 + 1])
    xs = np.stack([x0, x0 + 1, x0, x0 + 1])
    return val, ys, xs


def witness_colours(
    views: Sequence[PinholeView],
    images: Sequence[UInt8[np.ndarray, "H W 3"]],
    removal: Sequence[Bool[np.ndarray, "H W"]],
    rendered_depth: Sequence[Float[np.ndarray, "H W"]],
    source: int,
    points: Float[np.ndarray, "N 3"],
    depth_tolerance: float,
    margin: int = 0,
) -> Float[np.ndarray, "V N 3"]:
    """Colour of each 3D point in every other view that sees it unmasked (NaN where a view is no witness)."""
    out = np.full((len(views), len(points), 3), np.nan)
    for j, view in enumerate(views):
        if j == source:
            continue
        blocked = removal[j] if margin <= 0 else dilate(removal[j], 2 * margin + 1, 1)
        h, w = removal[j].shape
        if h < 2 or w < 2:
            continue
        xy, z, dist = view.project(points)
        x, y = xy[:, 0], xy[:, 1]
        inside = (z > 1e-6) & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
        idx = np.flatnonzero(inside)
        if len(idx) == 0:
            continue
        colour, ys, xs = _bilinear(images[j], x[idx], y[idx])
        unmasked = ~blocked[ys, xs].any(axis=0)
        surface = rendered_depth[j][ys, xs].astype(np.float64)
        with np.errstate(invalid="ignore"):
            agree = (np.abs(surface - dist[idx][None]) <= depth_tolerance * np.abs(surface)).all(axis=0)
        ok = unmasked & agree & np.isfinite(surface).all(axis=0)
        out[j, idx[ok]] = colour[ok, :3]
    return out


def seen_elsewhere_targets(
    views: Sequence[PinholeView],
    images: Sequence[UInt8[np.ndarray, "H W 3"]],
    removal: Sequence[Bool[np.ndarray, "H W"]],
    inpainted_rgb: Sequence[UInt8[np.ndarray, "H W 3"]],
    inpainted_depth: Sequence[Float[np.ndarray, "H W"]],
    rendered_depth: Sequence[Float[np.ndarray, "H W"]],
    config: VisibilityConfig,
) -> VisibilityTargets:
    """Seen-elsewhere masks and colour targets of every view.

    ``rendered_depth`` is the reconstruction's depth (the surface each view sees, object included) and
    ``inpainted_depth`` the object-free depth inside each removal mask; both hold ray distances. Pixels whose
    inpainted depth is not finite and positive are never seen. The unseen rest of each mask is the 2D inpainting
    ``inpainted_rgb`` plus the membrane-filled correction from the seen pixels.
    """
    result = VisibilityTargets()
    for i, view in enumerate(views):
        mask = np.asarray(removal[i], dtype=bool)
        h, w = mask.shape
        seen = np.zeros((h, w), bool)
        count = np.zeros((h, w), np.int32)
        target = np.array(inpainted_rgb[i], dtype=np.uint8, copy=True)
        ys, xs = np.nonzero(mask)
        depth = inpainted_depth[i][ys, xs].astype(np.float64)
        valid = np.isfinite(depth) & (depth > 0)
        ys, xs = ys[valid], xs[valid]
        colours = np.zeros((len(ys), 3))
        step = max(1, config.chunk // max(1, len(views)))
        for start in range(0, len(ys), step):
            sl = slice(start, start + step)
            pts, _ = lift(view, np.stack([xs[sl], ys[sl]], -1), inpainted_depth[i])
            samples = witness_colours(
                views, images, removal, rendered_depth, i, pts, config.depth_tolerance, config.margin
            )
            n = np.isfinite(samples[..., 0]).sum(axis=0)
            count[ys[sl], xs[sl]] = n
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: pixels no view saw
                colours[sl] = np.nanmedian(samples, axis=0)
        ok = count[ys, xs] >= max(1, config.min_views)
        seen[ys[ok], xs[ok]] = True
        rest = mask & ~seen
        if seen.any():
            residual = np.zeros((h, w, 3))
            residual[ys[ok], xs[ok]] = colours[ok] - target[ys[ok], xs[ok]]
            if rest.any():
                residual = harmonic_fill(residual, rest)
            corrected = target.astype(np.float64) + residual
            target[mask] = np.clip(np.round(corrected[mask]), 0, 255).astype(np.uint8)
        result.seen.append(seen)
        result.targets.append(target)
        result.witnesses.append(count)
    return result


def load_targets(
    run_dir: Path, names: Sequence[str], tokens: Optional[Sequence[str]] = None
) -> Optional[VisibilityTargets]:
    """Read the seen-elsewhere masks and colour targets of a run; None when missing, incomplete or (with
    ``tokens``) written by another lineage."""
    from spin_nerfstudio.stage_io import load_views

    seen = load_views(run_dir / SEEN_DIR, names, tokens)
    targets = load_views(run_dir / TARGETS_DIR, names, tokens)
    if seen is None or targets is None:
        return None
    return VisibilityTargets(seen=[s > 0 for s in seen], targets=[np.asarray(t, np.uint8) for t in targets])
