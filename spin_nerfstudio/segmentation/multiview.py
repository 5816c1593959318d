"""Initial masks in every view from clicks in one or more views, and the agreement check of the mask field.

Propagation (:func:`propagate_prompts`):

1. In each clicked image the segmenter turns the clicks into a mask; the mask is checked (not empty, not the
   background: :func:`check_object_mask`) and its confidently placed pixels (``confident_pixels``: off the outline,
   opaque, within the object's depth range, so no floater) are lifted to 3D with the reconstruction's rendered
   depth. Clicks in several images all contribute: their point clouds are merged.
2. The merged cloud is projected into every other view; points are dropped only where something stands clearly in
   front of the whole object (``object_visible_projection``: the object's own far side and its slightly misplaced
   depth do not hide it, small floaters are ignored). The visible pixels form a prior mask that the segmenter snaps
   to the object's edges (``Segmenter.refine``); a snap that overlaps the prior too little is discarded for the
   prior. A view where (almost) nothing is visible — the object is out of frame or hidden — gets an empty mask
   rather than a wrong one.

Agreement (:func:`agreement_outliers`): halfway through the mask-head fit the pipeline renders the field's masks
and compares them with the initial masks; views whose IoU is below a threshold get a new initial mask from the
field's render snapped to the image (:func:`repair_views`), or are dropped from the mask loss (per-pixel weight 0)
where the field renders nothing, so that one bad 2D mask cannot drag the 3D field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.prompts import PromptSet, SpinInputError
from spin_nerfstudio.segmentation.base import Segmenter
from spin_nerfstudio.segmentation.propagate import (
    PinholeView,
    confident_pixels,
    despeckled,
    disk,
    front_fraction,
    lift,
    object_visible_projection,
    splat_mask,
)


@dataclass
class PropagationResult:
    """Initial masks and what happened in each view."""

    masks: List[np.ndarray]
    """One boolean H x W mask per view."""
    status: List[str] = field(default_factory=list)
    """Per view: 'clicked', 'propagated' (projected and snapped to the image), 'projected' (the snap disagreed with
    the projection, which is kept), 'out of frame or hidden'."""
    visible_points: List[int] = field(default_factory=list)
    """Per view: how many points of the 3D cloud are visible there (clicked views: the cloud size)."""


def border_spans(mask: Bool[np.ndarray, "H W"]) -> Dict[str, bool]:
    """Whether the mask reaches each image border, and whether it spans the image edge to edge."""
    touches = {"left": mask[:, 0].any(), "right": mask[:, -1].any(), "top": mask[0].any(), "bottom": mask[-1].any()}
    touches["spans"] = (touches["left"] and touches["right"]) or (touches["top"] and touches["bottom"])
    return {k: bool(v) for k, v in touches.items()}


def _inverse_z(depth: Float[np.ndarray, "H W"], view: Optional[PinholeView]) -> Float[np.ndarray, "H W"]:
    """1 / forward depth (a plane is affine in it); without a camera, 1 / ray distance (close for a narrow view)."""
    h, w = depth.shape
    d = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float64)
    if view is None:
        return 1.0 / d
    ys, xs = np.mgrid[:h, :w]
    norm = np.sqrt(((xs + 0.5 - view.cx) / view.fx) ** 2 + ((ys + 0.5 - view.cy) / view.fy) ** 2 + 1.0)
    return norm / d


def _fit_planes(
    xs: np.ndarray, ys: np.ndarray, values: np.ndarray, tol: float, iterations: int = 150, max_planes: int = 3
) -> List[np.ndarray]:
    """Planes (a, b, c: value = a x + b y + c) found one after another by RANSAC, each holding >= 20% of the points
    within relative ``tol``; empty when together they hold less than half of them."""
    rng = np.random.default_rng(0)
    a = np.stack([xs, ys, np.ones_like(xs)], -1).astype(np.float64)
    left = np.ones(len(values), bool)
    planes: List[np.ndarray] = []
    for _ in range(max_planes):
        idx = np.nonzero(left)[0]
        if len(idx) < max(12, 0.2 * len(values)):
            break
        best, best_in = None, None
        for _ in range(iterations):
            pick = rng.choice(idx, 3, replace=False)
            try:
                coef = np.linalg.solve(a[pick], values[pick])
            except np.linalg.LinAlgError:
                continue
            inl = left & (np.abs(a @ coef - values) < tol * np.abs(values))
            if best_in is None or inl.sum() > best_in.sum():
                best, best_in = coef, inl
        if best is None or best_in.sum() < 0.2 * len(values):
            break
        best = np.linalg.lstsq(a[best_in], values[best_in], rcond=None)[0]
        planes.append(best)
        left &= ~(np.abs(a @ best - values) < tol * np.abs(values))
    if not planes or left.mean() > 0.5:
        return []
    return planes


def plane_protrusion(
    mask: Bool[np.ndarray, "H W"],
    depth: Float[np.ndarray, "H W"],
    view: Optional[PinholeView] = None,
    edge: float = 0.05,
) -> Optional[float]:
    """How much the masked region stands out of the surfaces around it: the share of its pixels clearly in front of
    every plane fitted to its surroundings, minus the same share among the surroundings (depth noise).

    The planes (at most three: a floor, a wall behind, a side wall) are fitted by RANSAC in inverse forward depth,
    where a plane is affine in the pixel coordinates, to a ring around the mask that starts 3 px out, so that the
    blurred outline of a rendered depth map does not count; a 5 x 5 median first removes speckle and small floaters.
    An object resting on a floor occludes the floor behind it, so its pixels lie in front of the floor's plane
    everywhere except along the contact line, even where its outline has no depth step; a patch of floor or wall
    lies on one of the planes. "In front" means closer by more than ``edge`` (relative). Returns None when the
    surroundings are not made of a few planes (cluttered, or too few pixels).
    """
    h, w = mask.shape
    valid = np.isfinite(depth) & (depth > 0)
    smooth = cv2.medianBlur(np.where(valid, depth, 0.0).astype(np.float32), 5)
    inv = _inverse_z(np.where(valid & (smooth > 0), smooth, np.nan), view)
    m8 = mask.astype(np.uint8)
    width = int(np.clip(0.35 * np.sqrt(mask.sum()), 4, 0.25 * min(h, w)))
    near = cv2.dilate(m8, np.ones((7, 7), np.uint8)) > 0
    ring = (cv2.dilate(m8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 7,) * 2)) > 0) & ~near
    ring &= np.isfinite(inv)
    inner = (cv2.erode(m8, np.ones((3, 3), np.uint8)) > 0) & np.isfinite(inv)
    if not inner.any():
        inner = mask & np.isfinite(inv)
    if ring.sum() < 12 or not inner.any():
        return None
    ys, xs = np.nonzero(ring)
    planes = _fit_planes(xs, ys, inv[ys, xs], edge / 2.0)
    if not planes:
        return None

    def in_front(sel: np.ndarray) -> float:
        yy, xx = np.nonzero(sel)
        value = inv[yy, xx]
        ahead = np.ones(len(value), bool)
        for coef in planes:
            plane = coef[0] * xx + coef[1] * yy + coef[2]
            # A plane seen edge-on or behind the camera there (plane <= 0): the pixel looks at no point of it.
            ahead &= (plane <= 0) | (value > plane * (1.0 + edge))
        return float(np.mean(ahead))

    return max(0.0, in_front(inner) - in_front(ring))


def click_neighbourhood(shape: Tuple[int, int], points: Float[np.ndarray, "P 2"]) -> Bool[np.ndarray, "H W"]:
    """Pixels within 3% of the image's short side (at least 2 px) of a click: what a segmenter that found nothing
    but its click seeds returns."""
    radius = max(2.0, 0.03 * min(shape))
    near = np.zeros(shape, dtype=bool)
    for point in np.asarray(points, dtype=np.float64).reshape(-1, 2):
        near |= disk(shape, point, radius)
    return near


def check_object_mask(
    mask: Bool[np.ndarray, "H W"],
    where: str,
    max_fraction: float,
    depth: Optional[Float[np.ndarray, "H W"]] = None,
    min_front: float = 0.15,
    min_pixels: int = 20,
    view: Optional[PinholeView] = None,
    min_protrusion: float = 0.3,
    positive: Optional[Float[np.ndarray, "P 2"]] = None,
    segmenter: str = "the segmenter",
) -> None:
    """Reject a clicked-view mask that is empty, looks like background, or is little more than the clicks.

    Background means: it covers more than ``max_fraction`` of the image, spans it from edge to edge, is hardly more
    than the clicked pixels (fewer than ``min_pixels``), or (with a depth map) it neither has a depth step along
    ``min_front`` of its outline (:func:`front_fraction`) nor stands out of the surface around it over
    ``min_protrusion`` of its pixels (:func:`plane_protrusion`). The first test accepts objects in front of a far
    background; the second accepts an object resting on a floor or table seen from a low angle, whose outline is a
    depth step only along its top (or along none of it once the rendered depth has blurred the outline). Both read
    the depth map after a 5 x 5 median (speckle, small floaters). Patches of floor or wall fail both. ``view`` (the
    camera) makes the plane fit exact; ``max_fraction >= 1`` switches these checks off.

    With the ``positive`` clicks, a mask with fewer than ``min_pixels`` pixels beyond :func:`click_neighbourhood`
    is refused whatever ``max_fraction`` is: the segmenter (named by ``segmenter``) kept its seeds and found no
    outline around them (GrabCut on a cluttered image with noisy depth), and propagating a few dots from it gives
    nothing to remove in the other views.
    """
    if not mask.any():
        raise SpinInputError(f"{where}: the clicks select no object (empty mask)")
    if max_fraction < 1.0:
        _check_not_background(mask, where, max_fraction, depth, min_front, min_pixels, view, min_protrusion)
    if positive is not None and len(positive):
        beyond = int((mask & ~click_neighbourhood(mask.shape, positive)).sum())
        if beyond < min_pixels:
            raise SpinInputError(
                f"{where}: {segmenter} found no object outline around the clicks (the mask is {int(mask.sum())} "
                f"pixels, {beyond} of them beyond the clicks' neighbourhood); click across the whole object "
                "(several positive clicks, negative ones on what surrounds it) or use SAM "
                "(--pipeline.segmenter.backend sam with its checkpoint)"
            )


def _check_not_background(
    mask: Bool[np.ndarray, "H W"],
    where: str,
    max_fraction: float,
    depth: Optional[Float[np.ndarray, "H W"]],
    min_front: float,
    min_pixels: int,
    view: Optional[PinholeView],
    min_protrusion: float,
) -> None:
    """The background tests of :func:`check_object_mask`."""
    frac = float(mask.mean())
    why = None
    if frac > max_fraction:
        why = f"covers {frac:.0%} of the image"
    elif border_spans(mask)["spans"]:
        why = "spans the image from edge to edge"
    elif mask.sum() < min_pixels:
        why = f"is only {int(mask.sum())} pixels"
    elif depth is not None:
        front = front_fraction(mask, despeckled(depth))
        if front < min_front:
            protrusion = plane_protrusion(mask, depth, view)
            if protrusion is None or protrusion < min_protrusion:
                stands = (
                    "" if protrusion is None else f", and {protrusion:.0%} of it stands out of the surface around it"
                )
                why = f"does not stand in front of its surroundings (only {front:.0%} of its outline is a depth step{stands})"
    if why is not None:
        raise SpinInputError(
            f"{where}: the clicked region {why}, which looks like background, not an object; click on the object "
            "(add negative clicks on the background), or set --pipeline.segmenter.max-object-fraction 1 to skip this check"
        )


def propagate_prompts(
    prompts: PromptSet,
    prompt_views: Sequence[int],
    images: UInt8[np.ndarray, "N H W 3"],
    depths: Sequence[Float[np.ndarray, "H W"]],
    accumulations: Sequence[Float[np.ndarray, "H W"]],
    views: Sequence[PinholeView],
    segmenter: Segmenter,
    visibility_tolerance: float = 0.05,
    max_object_fraction: float = 0.6,
    min_visible_fraction: float = 0.002,
    progress=None,
    min_refine_iou: float = 0.4,
    grow: bool = True,
    min_grow_iou: float = 0.6,
) -> PropagationResult:
    """Initial masks of all views from the clicks (see the module docstring).

    Args:
        prompts: the clicks; one entry per clicked image (several images are allowed and all used).
        prompt_views: index of each prompt's image among the views.
        images: all views' images.
        depths: rendered ray-distance depth per view.
        accumulations: rendered opacity per view (a click where it is below 0.5 lands on no surface).
        views: cameras.
        segmenter: 2D segmenter.
        visibility_tolerance: relative depth slack of the visibility test (at least 0.15: a pixel hides the object
            only where its surface is closer than the object's nearest point by that much).
        max_object_fraction: see :func:`check_object_mask`.
        min_visible_fraction: a view whose visible projected pixels cover less than this fraction of the image
            (and fewer than 4 pixels) is treated as not seeing the object.
        progress: optional wrapper for the loop over views (e.g. rich's ``track``).
        min_refine_iou: a view whose snapped mask overlaps its projected prior less than this (IoU) keeps the
            prior (status 'projected').
        grow: visit the views nearest the clicked ones first (:func:`growth_order`) and lift what each snapped
            mask adds to its projected prior into the object's points: the clicked view saw only the object's near
            side, and going round it view by view its sides and back join the points the next views project.
        min_grow_iou: a snapped mask adds its points only when it overlaps its prior at least this much (IoU): a
            snap that strayed further must not carry its error round the object.

    Raises:
        SpinInputError: a click lands on no surface, or the clicks select nothing / the background.
    """
    n = len(views)
    clouds: List[np.ndarray] = []
    clicked: Dict[int, np.ndarray] = {}
    for prompt, k in zip(prompts.prompts, prompt_views):
        depth, acc = depths[k], accumulations[k]
        pos = np.asarray(prompt.positive, dtype=np.float64).reshape(-1, 2)
        neg = np.asarray(prompt.negative, dtype=np.float64).reshape(-1, 2)
        if len(pos) == 0:
            continue  # only negative clicks here: they constrain nothing in 3D on their own
        for x, y in pos:
            d = depth[int(y), int(x)]
            if acc[int(y), int(x)] < 0.5 or not np.isfinite(d) or d <= 0:
                raise SpinInputError(
                    f"{prompts.source}: click ({x:g}, {y:g}) in {prompt.image} lands on no surface "
                    f"(rendered opacity {acc[int(y), int(x)]:.2f}, depth {d:.3g}); click on the object"
                )
        mask = segmenter.segment(images[k], pos, neg, depth).astype(bool)
        check_object_mask(
            mask, f"{prompts.source}: {prompt.image}", max_object_fraction, depth, view=views[k], positive=pos,
            segmenter=f"the segmenter ({segmenter.name})",
        )  # fmt: skip
        clicked[k] = clicked[k] | mask if k in clicked else mask
        ys, xs = np.nonzero(confident_pixels(mask, depth, acc))
        pts, _ = lift(views[k], np.stack([xs, ys], -1), depth)
        clouds.append(pts)
    cloud = np.concatenate(clouds, axis=0)
    masks: Dict[int, np.ndarray] = {}
    status: Dict[int, str] = {}
    visible: Dict[int, int] = {}
    order = growth_order(views, cloud, sorted(clicked)) if grow else list(range(n))
    for j in progress(order) if progress is not None else order:
        if j in clicked:
            masks[j], status[j], visible[j] = clicked[j], "clicked", len(cloud)
            continue
        v = views[j]
        xs, ys, sel = object_visible_projection(v, cloud, depths[j], max(visibility_tolerance, 0.15))
        prior = splat_mask(xs, ys, v.height, v.width, close=2)
        visible[j] = int(sel.sum())
        if prior.sum() < max(4, min_visible_fraction * v.height * v.width):
            masks[j], status[j] = np.zeros((v.height, v.width), dtype=bool), "out of frame or hidden"
            continue
        refined = segmenter.refine(images[j], prior, depths[j]).astype(bool)
        iou = agreement_ious([refined], [prior])[0]
        if iou < min_refine_iou:
            # The snap went astray (it lost the object, or leaked into a surface of the same colour): the projection
            # itself is the better guess, and the mask field's agreement check repairs it later if needed.
            masks[j], status[j] = prior, "projected"
            continue
        masks[j], status[j] = refined, "propagated"
        if grow and iou >= min_grow_iou:
            added = confident_pixels(refined, depths[j]) & ~prior
            if added.any():
                ys_new, xs_new = np.nonzero(added)
                points = lift(v, np.stack([xs_new, ys_new], -1), depths[j])[0]
                decided = [k for k in masks if k != j and masks[k].any()]
                keep = inside_silhouettes(points, [views[k] for k in decided], [masks[k] for k in decided])
                cloud = np.concatenate([cloud, points[keep]], axis=0)
    return PropagationResult(
        masks=[masks[j] for j in range(n)],
        status=[status[j] for j in range(n)],
        visible_points=[visible[j] for j in range(n)],
    )


def inside_silhouettes(
    points: Float[np.ndarray, "P 3"],
    views: Sequence[PinholeView],
    masks: Sequence[Bool[np.ndarray, "H W"]],
    share: float = 0.7,
    slack: int = 2,
) -> Bool[np.ndarray, " P"]:
    """Which points project inside the masks (dilated by ``slack`` pixels) of at least ``share`` of the views whose
    frame they fall in (points in no view's frame are kept).

    A point of the object lands inside the object's silhouette in every view, seen or hidden there (the back of a
    head falls inside the silhouette of its face); a point of the wall or floor beside it falls outside the
    silhouette in views from other directions. Growing the object's points only with points that pass keeps a snap
    that leaked onto the background in one view from spreading round the object."""
    points = np.asarray(points, np.float64).reshape(-1, 3)
    inside = np.zeros(len(points), int)
    seen = np.zeros(len(points), int)
    kernel = np.ones((2 * slack + 1, 2 * slack + 1), np.uint8)
    for view, mask in zip(views, masks):
        xy, z, _ = view.project(points)
        xi, yi = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
        frame = (z > 0) & (xi >= 0) & (yi >= 0) & (xi < view.width) & (yi < view.height)
        grown = cv2.dilate(np.asarray(mask, np.uint8), kernel) > 0
        seen += frame
        inside[frame] += grown[yi[frame], xi[frame]]
    return (seen == 0) | (inside >= share * seen)


def growth_order(views: Sequence[PinholeView], cloud: Float[np.ndarray, "P 3"], first: Sequence[int]) -> List[int]:
    """Every view, the ``first`` ones (the clicked views) first, then by the angle at the object's centre (the
    median of ``cloud``) between the view's camera and the nearest of the ``first`` cameras, smallest first."""
    if not len(first):
        return list(range(len(views)))
    centre = np.median(np.asarray(cloud, np.float64).reshape(-1, 3), axis=0)
    rays = np.stack([np.asarray(v.c2w)[:3, 3] - centre for v in views])
    rays /= np.maximum(np.linalg.norm(rays, axis=1, keepdims=True), 1e-12)
    closeness = (rays @ rays[list(first)].T).max(axis=1)  # cosine of the angle to the nearest first view
    chosen = set(first)
    return list(first) + [j for j in np.argsort(-closeness, kind="stable").tolist() if j not in chosen]


def agreement_ious(
    field_masks: Sequence[Bool[np.ndarray, "H W"]], initial_masks: Sequence[Bool[np.ndarray, "H W"]]
) -> List[float]:
    """IoU of each view's rendered field mask with its initial mask (1 when both are empty)."""
    out = []
    for f, m in zip(field_masks, initial_masks):
        union = np.logical_or(f, m).sum()
        out.append(1.0 if union == 0 else float(np.logical_and(f, m).sum() / union))
    return out


def agreement_outliers(
    ious: Sequence[float], min_iou: float = 0.5, keep: Optional[Sequence[int]] = None, settled: float = 0.7
) -> List[int]:
    """Views whose initial mask disagrees with the field: IoU below ``min_iou`` (views in ``keep`` never count).

    Only when the median IoU is at least ``settled``: a field that most views disagree with has not learnt the
    object yet (or the masks are bad everywhere), and dropping views would then remove good ones. At most half of
    the views are dropped (the worst ones).
    """
    if not len(ious) or float(np.median(ious)) < settled:
        return []
    keep = set(keep or [])
    bad = [i for i, v in enumerate(ious) if v < min_iou and i not in keep]
    bad.sort(key=lambda i: ious[i])
    return sorted(bad[: len(ious) // 2])


def choose_final_mask(
    field_mask: Bool[np.ndarray, "H W"],
    initial: Bool[np.ndarray, "H W"],
    keep_iou: float = 0.9,
    clicked: bool = False,
    clicked_min_iou: float = 0.5,
) -> Tuple[Bool[np.ndarray, "H W"], bool]:
    """A view's final mask: its initial mask where the mask field confirms it, else the field's; and which it was.

    The field is one object shaped by every view's initial mask, so it corrects a view whose own mask went wrong
    (a missed face, a leak into the background). Where it agrees with the view's mask (IoU >= ``keep_iou``), that
    mask is kept: it was snapped to the image's edges, while the field's render is soft along the object's outline.
    A ``clicked`` view's mask (the object the user pointed at) also stays where the field overlaps it less than
    ``clicked_min_iou``: the field then lost the object (most other views' masks empty or wrong), not corrected it.
    """
    iou = agreement_ious([field_mask], [initial])[0]
    keep = iou >= keep_iou or (clicked and iou < clicked_min_iou and bool(initial.any()))
    return (initial.copy() if keep else field_mask.copy()), keep


def repair_views(
    images: UInt8[np.ndarray, "N H W 3"],
    field_masks: Sequence[Bool[np.ndarray, "H W"]],
    bad: Sequence[int],
    segmenter: Segmenter,
    depths: Optional[Sequence[Float[np.ndarray, "H W"]]] = None,
    min_iou: float = 0.6,
) -> Dict[int, Tuple[Bool[np.ndarray, "H W"], str]]:
    """New initial masks for the views whose own mask disagrees with the mask field (``bad``).

    The field is one object shaped by every view, so where a view's propagated mask went wrong (empty, shifted,
    half the object) its render is the better prior: it is snapped to the image's edges by the segmenter (as a
    projected mask is) and kept when the snap still overlaps the render (IoU >= ``min_iou``), else the render itself
    is taken. A view where the field renders nothing is left out (the field says the object is not there).
    Returns {view: (mask, 'snapped' or 'field')}; full-resolution ``field_masks`` are expected.
    """
    out: Dict[int, Tuple[np.ndarray, str]] = {}
    for j in bad:
        prior = np.asarray(field_masks[j], bool)
        if not prior.any():
            continue
        snapped = segmenter.refine(images[j], prior, None if depths is None else depths[j]).astype(bool)
        if snapped.any() and agreement_ious([snapped], [prior])[0] >= min_iou:
            out[j] = (snapped, "snapped")
        else:
            out[j] = (prior.copy(), "field")
    return out
