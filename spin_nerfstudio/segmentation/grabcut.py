"""Offline segmenter: OpenCV GrabCut seeded from the clicks and bounded by the reconstruction's depth.

No learned weights. In the clicked view, the region that is depth-connected to the click (no depth edge, depth
within a band around the click's) gives GrabCut its box; the clicks are sure foreground/background seeds, and the
surface depth-connected to a negative click is sure background (a click on the table removes the table). In the
other views, a mask projected from the clicked view is snapped to the object's colour edges.

In the clicked view GrabCut runs twice when there is depth: on the colour image, and on the image with its lightness
replaced by the log-depth (:func:`depth_lightness`). Shading splits an object in colour (a lit and a shaded half),
never in depth; a flat thing on a wall or the floor around an object's foot is the other way round. The depth
version is kept when its outline is a depth step along clearly more of it (:func:`front_fraction`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.segmentation.base import Segmenter
from spin_nerfstudio.segmentation.propagate import despeckled, disk, front_fraction


def largest_component_under(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Keep the connected components of ``mask`` that contain one of ``points`` (x, y); all if none does."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    keep = set()
    h, w = mask.shape
    for x, y in points:
        xi, yi = int(np.clip(x, 0, w - 1)), int(np.clip(y, 0, h - 1))
        if labels[yi, xi] > 0:
            keep.add(int(labels[yi, xi]))
    if not keep:
        return mask.astype(bool)
    return np.isin(labels, list(keep))


def depth_connected_region(
    depth: Float[np.ndarray, "H W"], seeds: np.ndarray, band: float, edge: float = 0.1
) -> Bool[np.ndarray, "H W"]:
    """Pixels reachable from the seeds without crossing a depth edge, within a relative band of the seed depth."""
    h, w = depth.shape
    logd = np.log(np.clip(depth, 1e-6, None)).astype(np.float32)
    gy = np.abs(np.diff(logd, axis=0, prepend=logd[:1]))
    gx = np.abs(np.diff(logd, axis=1, prepend=logd[:, :1]))
    smooth = np.maximum(gx, gy) < edge
    region = np.zeros((h, w), dtype=bool)
    for x, y in seeds:
        xi, yi = int(np.clip(x, 0, w - 1)), int(np.clip(y, 0, h - 1))
        d0 = logd[yi, xi]
        allowed = smooth & (np.abs(logd - d0) < np.log1p(band))
        allowed[yi, xi] = True
        n, labels = cv2.connectedComponents(allowed.astype(np.uint8), connectivity=4)
        region |= labels == labels[yi, xi]
    return region


def _grabcut(image: np.ndarray, labels: np.ndarray, iterations: int) -> Optional[np.ndarray]:
    has_fg = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).any()
    has_bg = np.isin(labels, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
    if not (has_fg and has_bg):
        return None
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    lab = labels.astype(np.uint8).copy()
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models from OpenCV's global generator: make it repeatable
    try:
        cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), lab, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    return np.isin(lab, (cv2.GC_FGD, cv2.GC_PR_FGD))


def depth_lightness(image: UInt8[np.ndarray, "H W 3"], depth: Float[np.ndarray, "H W"]) -> UInt8[np.ndarray, "H W 3"]:
    """The image in CIELAB with its lightness channel replaced by the log-depth (5 x 5 median, 1st to 99th
    percentile stretched over 0-255): colour (a, b) and depth, without the shading that lightness carries. GrabCut
    reads any three 8-bit channels."""
    d = cv2.medianBlur(np.nan_to_num(np.asarray(depth, np.float32), nan=0.0, posinf=0.0), 5)
    logd = np.log(np.clip(d, 1e-6, None))
    lo, hi = np.percentile(logd, [1, 99])
    out = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB)
    out[..., 0] = np.clip(255.0 * (logd - lo) / max(hi - lo, 1e-6), 0, 255).astype(np.uint8)
    return out


def working_factor(shape: Tuple[int, int], work_side: int) -> int:
    """The smallest integer k that brings the long side of an image of ``shape`` (H, W) within ``work_side`` (1: the
    image is small enough, or ``work_side`` is 0)."""
    side = max(shape)
    return 1 if work_side <= 0 or side <= work_side else int(np.ceil(side / work_side))


def _shrunk(shape: Tuple[int, int], k: int) -> Tuple[int, int]:
    """cv2's (width, height) of an image of ``shape`` (H, W) shrunk k times."""
    return max(1, int(round(shape[1] / k))), max(1, int(round(shape[0] / k)))


def shrink_image(image: UInt8[np.ndarray, "H W 3"], k: int) -> UInt8[np.ndarray, "h w 3"]:
    """The image at 1/k of its size (area averaging)."""
    return cv2.resize(image, _shrunk(image.shape[:2], k), interpolation=cv2.INTER_AREA)


def shrink_depth(depth: Float[np.ndarray, "H W"], k: int) -> Float[np.ndarray, "h w"]:
    """The depth map at 1/k of its size by nearest sampling (no averaging across an object's edge, no spreading of
    invalid values)."""
    return cv2.resize(np.asarray(depth, np.float32), _shrunk(depth.shape, k), interpolation=cv2.INTER_NEAREST)


def shrink_points(points: Float[np.ndarray, "P 2"], k: int) -> Float[np.ndarray, "P 2"]:
    """Pixel coordinates (x, y) on the image shrunk k times (pixel centre to pixel centre)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return (pts + 0.5) / k - 0.5


def grow_mask(mask: Bool[np.ndarray, "h w"], shape: Tuple[int, int]) -> Bool[np.ndarray, "H W"]:
    """A mask scaled back to ``shape`` (H, W): bilinear on the 0/1 values, then half-way."""
    up = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return up > 0.5


class GrabCutSegmenter(Segmenter):
    """GrabCut with click seeds and a depth-derived box; no learned weights."""

    name = "grabcut"

    def __init__(
        self,
        depth_band: float = 0.12,
        iterations: int = 5,
        depth_edge: float = 0.1,
        refine_with_depth: bool = True,
        work_side: int = 320,
        depth_colour_margin: float = 0.15,
    ) -> None:
        self.depth_band = depth_band
        self.iterations = iterations
        self.depth_edge = depth_edge
        self.refine_with_depth = refine_with_depth
        self.work_side = work_side
        """Images whose long side exceeds this are segmented at 1/k of their size (k the smallest integer that brings
        them within it) and the mask scaled back: the depth-edge test compares neighbouring pixels, and on a finer
        grid the rendered depth's step at an object's foot spreads over more pixels, each below ``depth_edge``, so
        the object's region would leak onto the surface it stands on. 0: always at full size."""
        self.depth_colour_margin = depth_colour_margin
        """In the clicked view, the mask of GrabCut on :func:`depth_lightness` replaces the colour one when its outline
        is a depth step along at least this much more of it (:func:`front_fraction`, 0-1); negative: colour only."""
        self.last_choice: Optional[str] = None
        """What the last :meth:`segment` kept and why (for :meth:`summary`)."""

    def segment(
        self,
        image: UInt8[np.ndarray, "H W 3"],
        positive: Float[np.ndarray, "P 2"],
        negative: Float[np.ndarray, "Q 2"],
        depth: Optional[Float[np.ndarray, "H W"]] = None,
    ) -> Bool[np.ndarray, "H W"]:
        """Mask of the object under the positive clicks."""
        k = working_factor(image.shape[:2], self.work_side)
        if k > 1:
            small = self.segment(shrink_image(image, k), shrink_points(positive, k), shrink_points(negative, k),
                                 None if depth is None else shrink_depth(depth, k))  # fmt: skip
            return largest_component_under(grow_mask(small, image.shape[:2]), positive)
        labels = self.seed_labels(image.shape[:2], positive, negative, depth)
        mask = self._cut(image, labels, positive)
        self.last_choice = "colour"
        if depth is not None and self.depth_colour_margin >= 0:
            by_depth = self._cut(depth_lightness(image, depth), labels, positive)
            smooth = despeckled(depth)
            steps = front_fraction(mask, smooth), front_fraction(by_depth, smooth)
            use_depth = steps[1] >= steps[0] + self.depth_colour_margin
            if use_depth:
                mask = by_depth
            self.last_choice = (
                f"{'depth-lightness' if use_depth else 'colour'} GrabCut (outline a depth step along "
                f"{steps[0]:.0%} in colour, {steps[1]:.0%} with depth for lightness)"
            )
        return mask

    def _cut(
        self, image: UInt8[np.ndarray, "H W 3"], labels: UInt8[np.ndarray, "H W"], positive: Float[np.ndarray, "P 2"]
    ) -> Bool[np.ndarray, "H W"]:
        """GrabCut from ``labels``, the part connected to the positive clicks (the seeds alone if it fails)."""
        mask = _grabcut(image, labels, self.iterations)
        if mask is None:
            mask = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))
        return largest_component_under(mask, positive)

    def summary(self) -> Optional[str]:
        """Which GrabCut the last clicked view kept, or None before any."""
        return None if self.last_choice is None else f"clicked view: {self.last_choice}"

    def seed_labels(
        self,
        shape: Tuple[int, int],
        positive: Float[np.ndarray, "P 2"],
        negative: Float[np.ndarray, "Q 2"],
        depth: Optional[Float[np.ndarray, "H W"]] = None,
    ) -> UInt8[np.ndarray, "H W"]:
        """GrabCut's starting labels (``cv2.GC_*``) in the clicked view: clicks are sure seeds; with depth, the surface
        depth-connected to the positive clicks is probable foreground inside a box around it, and the surface
        depth-connected to a negative click is sure background where the positive surface does not reach."""
        h, w = shape
        radius = max(1, int(round(0.015 * min(h, w))))
        labels = np.full((h, w), cv2.GC_BGD, np.uint8)
        if depth is not None:
            region = depth_connected_region(depth, positive, self.depth_band, self.depth_edge)
            ys, xs = np.nonzero(region)
            pad = max(2, int(0.03 * max(h, w)))
            y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
            x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
            labels[y0:y1, x0:x1] = cv2.GC_PR_BGD
            labels[region] = cv2.GC_PR_FGD
            if len(negative):
                # A negative click marks a whole surface, not a dot: what is depth-connected to it (the table an
                # object stands on) is background, except where the positive region reaches it too (GrabCut decides).
                refused = depth_connected_region(depth, negative, self.depth_band, self.depth_edge)
                labels[refused & ~region] = cv2.GC_BGD
        else:
            labels[1:-1, 1:-1] = cv2.GC_PR_BGD
        for p in negative:
            labels[disk((h, w), p, radius)] = cv2.GC_BGD
        for p in positive:
            labels[disk((h, w), p, radius)] = cv2.GC_FGD
        return labels

    def refine(
        self,
        image: UInt8[np.ndarray, "H W 3"],
        prior: Bool[np.ndarray, "H W"],
        depth: Optional[Float[np.ndarray, "H W"]] = None,
    ) -> Bool[np.ndarray, "H W"]:
        """Snap a projected mask to the object: its core is sure foreground, a ring around it is undecided.

        With depth, the surface that continues the prior without a depth edge (parts of the object that the clicked
        view could not see, such as its far side) is marked probable foreground too, within a wider ring.
        """
        if not prior.any():
            return prior
        k = working_factor(prior.shape, self.work_side)
        if k > 1:
            small_prior = cv2.resize(prior.astype(np.float32), _shrunk(prior.shape, k), interpolation=cv2.INTER_AREA)
            small = self.refine(
                shrink_image(image, k), small_prior > 0.5, None if depth is None else shrink_depth(depth, k)
            )
            return grow_mask(small, prior.shape)
        h, w = prior.shape
        k = max(1, int(round(0.02 * min(h, w))))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        p8 = prior.astype(np.uint8)
        core = cv2.erode(p8, kernel) > 0
        ring = cv2.dilate(p8, kernel, iterations=2) > 0
        grown = prior
        if depth is not None and self.refine_with_depth:
            ring = cv2.dilate(p8, kernel, iterations=4) > 0
            seeds = np.stack(np.nonzero(core if core.any() else prior)[::-1], axis=-1)
            seeds = seeds[np.linspace(0, len(seeds) - 1, min(len(seeds), 8)).astype(int)]
            grown = prior | (depth_connected_region(depth, seeds, self.depth_band, self.depth_edge) & ring)
        labels = np.full((h, w), cv2.GC_BGD, np.uint8)
        labels[ring] = cv2.GC_PR_BGD
        labels[grown] = cv2.GC_PR_FGD
        labels[core] = cv2.GC_FGD
        mask = _grabcut(image, labels, self.iterations)
        return prior if mask is None else mask
