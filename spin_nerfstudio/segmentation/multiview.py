"""Initial masks in every view from clicks in one or more views, and the agreement check of the mask field.

Propagation (:func:`propagate_prompts`):

1. In each clicked image the segmenter turns the clicks into a mask; the mask is checked (not empty, not the
   background) and its pixels are lifted to 3D with the reconstruction's rendered depth. Clicks in several images
   all contribute: their point clouds are merged.
2. The merged cloud is projected into every other view; only points that land inside the image and are not behind
   that view's rendered surface count (``visible_projection``). The visible pixels form a prior mask that the
   segmenter snaps to the object's edges (``Segmenter.refine``). A view where (almost) nothing is visible — the
   object is out of frame or hidden — gets an empty mask rather than a wrong one.

Agreement (:func:`agreement_outliers`): halfway through the mask-head fit the pipeline renders the field's masks
and compares them with the initial masks; views whose IoU is below a threshold are dropped from the mask loss
(their per-pixel weight becomes 0), so that one bad 2D mask cannot drag the 3D field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.prompts import PromptSet, SpinInputError
from spin_nerfstudio.segmentation.base import Segmenter
from spin_nerfstudio.segmentation.propagate import PinholeView, lift, splat_mask, visible_projection


@dataclass
class PropagationResult:
    """Initial masks and what happened in each view."""

    masks: List[np.ndarray]
    """One boolean H x W mask per view."""
    status: List[str] = field(default_factory=list)
    """Per view: 'clicked', 'propagated', 'out of frame or hidden'."""
    visible_points: List[int] = field(default_factory=list)
    """Per view: how many points of the 3D cloud are visible there (clicked views: the cloud size)."""


def border_spans(mask: Bool[np.ndarray, "H W"]) -> Dict[str, bool]:
    """Whether the mask reaches each image border, and whether it spans the image edge to edge."""
    touches = {"left": mask[:, 0].any(), "right": mask[:, -1].any(), "top": mask[0].any(), "bottom": mask[-1].any()}
    touches["spans"] = (touches["left"] and touches["right"]) or (touches["top"] and touches["bottom"])
    return {k: bool(v) for k, v in touches.items()}


def front_fraction(mask: Bool[np.ndarray, "H W"], depth: Float[np.ndarray, "H W"], edge: float = 0.1) -> float:
    """Fraction of the pixels just outside the mask (inside the image) that lie clearly behind it.

    An object stands in front of what surrounds it, so most of its outline is a depth step down into the mask
    (except where it rests on something). A patch of floor or wall is surrounded by more of the same surface or by
    things in front of it, so few of its outside neighbours are farther away. Each ring pixel (2 px wide) is compared
    with the nearest depth inside the mask within 2 px; "behind" means farther by more than ``edge`` (relative).
    """
    m8 = mask.astype(np.uint8)
    ring = (cv2.dilate(m8, np.ones((5, 5), np.uint8)) > 0) & ~mask
    if not ring.any():
        return 1.0  # the mask fills the image: no outline to judge
    inside = np.where(mask, depth, np.float32(np.inf)).astype(np.float32)
    nearest_inside = cv2.erode(inside, np.ones((5, 5), np.uint8), borderType=cv2.BORDER_REPLICATE)
    behind = depth[ring] > nearest_inside[ring] * (1.0 + edge)
    return float(np.mean(behind))


def check_object_mask(
    mask: Bool[np.ndarray, "H W"],
    where: str,
    max_fraction: float,
    depth: Optional[Float[np.ndarray, "H W"]] = None,
    min_front: float = 0.15,
    min_pixels: int = 20,
) -> None:
    """Reject a clicked-view mask that is empty or looks like background.

    Background means: it covers more than ``max_fraction`` of the image, spans it from edge to edge, is hardly more
    than the clicked pixels (fewer than ``min_pixels``), or (with a depth map) fewer than ``min_front`` of the pixels
    around it are behind it (see :func:`front_fraction`). Patches of floor or wall score 0 on the generated scenes;
    objects score 0.6 to 0.75 with their true masks and stay above 0.3 when the segmenter misses a face of them
    (a cylinder's top), hence the low default.
    ``max_fraction >= 1`` switches the background checks off.
    """
    if not mask.any():
        raise SpinInputError(f"{where}: the clicks select no object (empty mask)")
    if max_fraction >= 1.0:
        return
    frac = float(mask.mean())
    why = None
    if frac > max_fraction:
        why = f"covers {frac:.0%} of the image"
    elif border_spans(mask)["spans"]:
        why = "spans the image from edge to edge"
    elif mask.sum() < min_pixels:
        why = f"is only {int(mask.sum())} pixels"
    elif depth is not None:
        front = front_fraction(mask, depth)
        if front < min_front:
            why = f"does not stand in front of its surroundings (only {front:.0%} of its outline is a depth step)"
    if why is not None:
        raise SpinInputError(
            f"{where}: the clicked region {why}, which looks like background, not an object; click on the object "
            "(add negative clicks on the background), or set --pipeline.segmenter.max-object-fraction 1 to skip this check"
        )


def _erode(mask: np.ndarray) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


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
        visibility_tolerance: relative depth slack of the visibility test.
        max_object_fraction: see :func:`check_object_mask`.
        min_visible_fraction: a view whose visible projected pixels cover less than this fraction of the image
            (and fewer than 4 pixels) is treated as not seeing the object.
        progress: optional wrapper for the loop over views (e.g. rich's ``track``).

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
        check_object_mask(mask, f"{prompts.source}: {prompt.image}", max_object_fraction, depth)
        clicked[k] = clicked[k] | mask if k in clicked else mask
        ys, xs = np.nonzero(_erode(mask))
        if len(xs) == 0:
            ys, xs = np.nonzero(mask)
        pts, _ = lift(views[k], np.stack([xs, ys], -1), depth)
        clouds.append(pts)
    cloud = np.concatenate(clouds, axis=0)
    result = PropagationResult(masks=[])
    loop = progress(range(n)) if progress is not None else range(n)
    for j in loop:
        if j in clicked:
            result.masks.append(clicked[j])
            result.status.append("clicked")
            result.visible_points.append(len(cloud))
            continue
        v = views[j]
        xs, ys, sel = visible_projection(v, cloud, depths[j], visibility_tolerance)
        prior = splat_mask(xs, ys, v.height, v.width, close=2)
        result.visible_points.append(int(sel.sum()))
        if prior.sum() < max(4, min_visible_fraction * v.height * v.width):
            result.masks.append(np.zeros((v.height, v.width), dtype=bool))
            result.status.append("out of frame or hidden")
            continue
        result.masks.append(segmenter.refine(images[j], prior, depths[j]).astype(bool))
        result.status.append("propagated")
    return result


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
    field_mask: Bool[np.ndarray, "H W"], initial: Bool[np.ndarray, "H W"], keep_iou: float = 0.9
) -> Tuple[Bool[np.ndarray, "H W"], bool]:
    """A view's final mask: its initial mask where the mask field confirms it, else the field's; and which it was.

    The field is one object shaped by every view's initial mask, so it corrects a view whose own mask went wrong
    (a missed face, a leak into the background). Where it agrees with the view's mask (IoU >= ``keep_iou``), that
    mask is kept: it was snapped to the image's edges, while the field's render is soft along the object's outline.
    """
    keep = agreement_ious([field_mask], [initial])[0] >= keep_iou
    return (initial.copy() if keep else field_mask.copy()), keep
