"""Visibility-aware targets: reuse the background that other views saw.

In a hand-held capture much of what the object hides in one view is visible in others. For every pixel of a view's
removal mask we find the hidden background point on its ray, project it into every other view, and accept that
view as a witness where

- the point lands inside the image, in front of the camera, with all four pixels around it outside that view's
  removal mask (so the colour there is real background, not the object or an inpainted guess), and
- that view's rendered depth at those four pixels agrees with the point's distance within a relative tolerance
  (so the point is the surface that view sees, not something hidden behind it).

Where on the ray the background lies (``VisibilityConfig.search``): by default a sweep along the ray from the
object's rendered surface outwards finds where it meets the surfaces the other views rendered on their unmasked
pixels (:func:`.witnesses.sweep_background_depth`); ``inpainted`` lifts with the 2D-inpainted depth instead, which is 5-15% off
where the hidden background bends (a floor meeting a wall) and then misses half of what was seen. The swept depth
also replaces the depth prior at the seen pixels, and the unseen rest of each mask is filled again from them and
the pixels around the mask (a membrane fill in disparity, ``correct_depth``).

Each view is checked against at most ``max_witnesses`` other views (:func:`.witnesses.witness_order`: spread over the camera
positions, among the views facing the same way), so the work grows with views x witnesses x masked pixels rather
than with the square of the views.

A pixel counts as seen with ``min_views`` witnesses (two by default: one view's colour at a slightly wrong depth is
too often an edge or a texture boundary). Its "seen elsewhere" colour is the per-channel median of the witnesses'
bilinearly sampled colours.
Those pixels are then supervised with the observed colour (``model.seen_loss_mult``). The rest of the mask keeps the
2D inpainting, corrected towards what was seen: the differences between observed and 2D-inpainted colour at the
seen pixels are spread over the unseen pixels by a membrane (Laplace) fill, which never overshoots (re-inpainting
around scattered observed pixels with a thin-plate or learned inpainter can ring or hallucinate). Only the unseen
part gets the reference-view colour loss and the perceptual patches.

Outputs in the run folder: ``seen_elsewhere/`` (per-view masks, white = seen in another view),
``inpainted_targets/`` (per-view colour targets: observed colour where seen, 2D inpainting elsewhere),
``seen_depth/`` (the corrected depth priors, with ``correct_depth``) and
``seen_elsewhere.json`` (per-view and overall share of removal-mask pixels seen elsewhere). The pipeline writes them
as resumable stage folders (``spin_nerfstudio.stages.seen_elsewhere``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Literal, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.inpainting.biharmonic import harmonic_fill
from spin_nerfstudio.inpainting.witnesses import WitnessStack, sweep_background_depth, witness_colours, witness_order
from spin_nerfstudio.segmentation.propagate import PinholeView, dilate, lift

SEEN_DIR = "seen_elsewhere"
"""Run-folder subfolder of the per-view seen-elsewhere masks."""
TARGETS_DIR = "inpainted_targets"
"""Run-folder subfolder of the per-view colour targets (seen colour + 2D fill of the unseen rest)."""
DEPTH_DIR = "seen_depth"
"""Run-folder subfolder of the per-view depth priors corrected by the sweep (``correct_depth``)."""
SUMMARY_FILE = "seen_elsewhere.json"
"""Run-folder file with the share of removal-mask pixels seen elsewhere."""


@dataclass
class VisibilityConfig:
    """Visibility-aware targets: supervise masked pixels that other views saw with the colour they saw."""

    enabled: bool = True
    """Use observed background where another view saw it; False gives SPIn-NeRF's plain 2D-inpainted targets."""
    depth_tolerance: float = 0.05
    """Relative slack between a lifted point's distance and a witness view's rendered depth."""
    min_views: int = 2
    """Witness views a pixel needs to count as seen. With one, a single view's colour at a slightly wrong depth (an
    edge, a texture boundary) is taken as the background and then spread over the unseen pixels around it; two
    agreeing views cost a few points of the seen share and removed a 5 dB target error on one generated scene."""
    margin: int = 2
    """Pixels a witness sample must keep from that view's removal mask (its edge may still show the object)."""
    chunk: int = 65536
    """Bound on the points handled at once: masked pixels x views (colours) or x ``sweep_samples`` (the sweep)."""
    search: Literal["sweep", "inpainted"] = "sweep"
    """Where along a masked pixel's ray the hidden background lies: ``sweep`` finds where the ray meets the
    surfaces the other views rendered (their unmasked pixels), ``inpainted`` lifts with the 2D-inpainted depth."""
    sweep_samples: int = 64
    """Depths tried along each ray by the sweep (uniform in disparity, from just before the pixel's rendered
    surface to 1.5 times the farthest rendered depth)."""
    reject_object_colours: bool = True
    """Never count a pixel as seen when the colour its witnesses saw is more likely the removed object's than the
    background's (colour histograms of the pixels inside the final masks and outside the removal masks): where a
    mask misses a sliver of the object in one view, that view would otherwise witness the sliver as background."""
    max_witnesses: int = 64
    """Other views each view's masked pixels are checked against (0: all of them). Checking all makes the stage grow
    with the square of the views (about 10^10 projected samples for 100 views at 1008x567); the ones kept are spread
    over the camera positions (farthest first from the view itself, so the widest baselines, which see most behind
    the object, are in), among the views facing the same way. Fewer witnesses see less: on a 64-view generated
    run (rendered depth) 32 kept 88% of the seen share for 57% of the time, 24 kept 77% for 45%
    (``spin-nerf dev witnesses --replay``). The default, 64, leaves captures of up to 65 views (juicebox: 64)
    exactly as without the cap and makes larger ones grow linearly."""
    depth_median: int = 5
    """Side of the median filter applied to every view's rendered depth before the sweep and the witness test (0:
    none; 3 or 5). Speckle and small floaters in the reconstruction's depth break the test that a ray crosses a
    surface another view rendered: on two generated tiled scenes the 5 x 5 median raised the share of removal-mask
    pixels seen elsewhere from 17.5 / 23.7% to 28.0 / 34.7% with the seen colours as accurate (23.6 / 24.4 dB
    against the true background before, 23.9 / 24.2 after); with the true depth the sweep finds 45.6% on the
    first (docs/figures.md)."""
    correct_depth: bool = True
    """Replace the inpainted depth prior by the swept depth where a pixel was seen, and fill the unseen rest of the
    mask again from those and the pixels around the mask (membrane fill in disparity; only with ``search sweep``)."""


@dataclass
class VisibilityTargets:
    """Per-view results of :func:`seen_elsewhere_targets`."""

    seen: List[np.ndarray] = field(default_factory=list)
    """Per view, H x W bool: removal-mask pixels some other view saw."""
    targets: List[np.ndarray] = field(default_factory=list)
    """Per view, H x W x 3 uint8 colour target: observed colour where seen, 2D inpainting elsewhere in the mask."""
    witnesses: List[np.ndarray] = field(default_factory=list)
    """Per view, H x W int: number of witness views (0 outside the mask; empty when loaded from a run)."""
    rejected: int = 0
    """Pixels whose witnesses saw a colour more likely the object's than the background's (left unseen)."""
    depth: List[np.ndarray] = field(default_factory=list)
    """Per view, H x W float ray distance: the depth prior with the swept depth where seen (empty unless the
    config's ``correct_depth`` applies)."""

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


def seen_elsewhere_targets(
    views: Sequence[PinholeView],
    images: Sequence[UInt8[np.ndarray, "H W 3"]],
    removal: Sequence[Bool[np.ndarray, "H W"]],
    inpainted_rgb: Sequence[UInt8[np.ndarray, "H W 3"]],
    inpainted_depth: Sequence[Float[np.ndarray, "H W"]],
    rendered_depth: Sequence[Float[np.ndarray, "H W"]],
    config: VisibilityConfig,
    progress: Optional[Callable[[Iterable[int]], Iterable[int]]] = None,
    object_probability: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    device: Union[str, torch.device] = "cpu",
) -> VisibilityTargets:
    """Seen-elsewhere masks and colour targets of every view (``progress`` wraps the loop over views, e.g. a
    progress bar; ``object_probability`` maps N x 3 colours in [0, 1] to the probability that each is the object's,
    and pixels whose seen colour scores above 0.5 stay unseen). The sweep and the colour look-ups run on ``device``
    (every view's depth, mask and image are put there once).

    ``rendered_depth`` is the reconstruction's depth (the surface each view sees, object included) and
    ``inpainted_depth`` the object-free depth inside each removal mask; both hold ray distances. Pixels whose
    inpainted depth is not finite and positive are never seen. The unseen rest of each mask is the 2D inpainting
    ``inpainted_rgb`` plus the membrane-filled correction from the seen pixels.
    """
    result = VisibilityTargets()
    rendered_depth = [median_depth(d, config.depth_median) for d in rendered_depth]
    grown = [m if config.margin <= 0 else dilate(np.asarray(m, bool), 2 * config.margin + 1, 1) for m in removal]
    stack = WitnessStack(views, grown, rendered_depth, images, device)
    for i in (progress or iter)(range(len(views))):
        view = views[i]
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
        sweep = config.search == "sweep"
        swept = np.full(len(ys), np.nan)
        witnesses = witness_order(views, i, config.max_witnesses)
        step = max(1, config.chunk // max(1, len(witnesses), config.sweep_samples if sweep else 1))
        for start in range(0, len(ys), step):
            sl = slice(start, start + step)
            xy = np.stack([xs[sl], ys[sl]], -1)
            if sweep:
                swept[sl] = sweep_background_depth(
                    views,
                    grown,
                    rendered_depth,
                    i,
                    xy,
                    config.depth_tolerance,
                    0,
                    config.sweep_samples,
                    witnesses,
                    stack,
                )
                pts = view.origin + view.rays(xy) * np.nan_to_num(swept[sl], nan=0.0)[:, None]
            else:
                pts, _ = lift(view, xy, inpainted_depth[i])
            samples = witness_colours(
                views, images, grown, rendered_depth, i, pts, config.depth_tolerance, 0, witnesses, stack
            )
            if sweep:
                samples[:, ~np.isfinite(swept[sl])] = np.nan
            n = np.isfinite(samples[..., 0]).sum(axis=0)
            count[ys[sl], xs[sl]] = n
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: pixels no view saw
                colours[sl] = np.nanmedian(samples, axis=0)
        ok = count[ys, xs] >= max(1, config.min_views)
        if object_probability is not None and ok.any():
            background = object_probability(colours[ok] / 255.0) <= 0.5
            result.rejected += int((~background).sum())
            ok[ok] = background
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
        if sweep and config.correct_depth:
            result.depth.append(_corrected_depth(inpainted_depth[i], mask, ys[ok], xs[ok], swept[ok]))
    return result


def median_depth(depth: Float[np.ndarray, "H W"], size: int) -> Float[np.ndarray, "H W"]:
    """``depth`` after a ``size`` x ``size`` median (0 or 1: unchanged); non-finite pixels count as 0 (no surface)
    in the filter and stay non-finite."""
    if size <= 1:
        return depth
    finite = np.isfinite(depth)
    filtered = cv2.medianBlur(np.where(finite, depth, 0.0).astype(np.float32), size)
    return np.where(finite, filtered, depth).astype(np.float32)


def _corrected_depth(
    prior: Float[np.ndarray, "H W"], mask: Bool[np.ndarray, "H W"], ys: np.ndarray, xs: np.ndarray, swept: np.ndarray
) -> Float[np.ndarray, "H W"]:
    """The depth prior with the swept depth at the seen pixels and the unseen rest of the mask filled again, by a
    membrane fill in disparity from the pixels around the mask and the seen pixels (exact on planes, and never
    outside the range of the depths it starts from, so a wall's correction cannot overshoot into the floor)."""
    depth = np.array(prior, dtype=np.float32, copy=True)
    good = np.isfinite(swept) & (swept > 0)
    if not good.any():
        return depth
    depth[ys[good], xs[good]] = swept[good]
    rest = mask.copy()
    rest[ys[good], xs[good]] = False
    known = ~rest & np.isfinite(depth) & (depth > 0)
    if rest.any() and known.any():
        disparity = np.where(known, 1.0 / np.where(known, depth, 1.0), 0.0)[..., None].astype(np.float64)
        filled = harmonic_fill(disparity, ~known)[..., 0]
        depth[rest] = (1.0 / np.maximum(filled[rest], 1e-12)).astype(np.float32)
    return depth


def load_targets(
    run_dir: Path, names: Sequence[str], tokens: Optional[Sequence[str]] = None, with_depth: bool = False
) -> Optional[VisibilityTargets]:
    """Read the seen-elsewhere masks and colour targets of a run (and, ``with_depth``, the corrected depth priors);
    None when missing, incomplete or (with ``tokens``) written by another lineage."""
    from spin_nerfstudio.stage_io import load_views

    seen = load_views(run_dir / SEEN_DIR, names, tokens)
    targets = load_views(run_dir / TARGETS_DIR, names, tokens)
    if seen is None or targets is None:
        return None
    depth = load_views(run_dir / DEPTH_DIR, names, tokens) if with_depth else None
    if with_depth and depth is None:
        return None
    return VisibilityTargets(
        seen=[s > 0 for s in seen],
        targets=[np.asarray(t, np.uint8) for t in targets],
        depth=[np.asarray(d, np.float32) for d in depth] if depth is not None else [],
    )
