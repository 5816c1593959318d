"""Viewer clicks as 3D points, and 3D points as clicks in training views (no GUI here; see ``panel.py``).

A click in the viewer is a ray (origin and direction in world coordinates). Its 3D point is where the model's
rendered depth along that ray puts the surface. Segmentation works on training images, so each 3D point is
projected into every training view and kept where the rendered surface of that view is at the point (it is not
hidden); views are then chosen greedily until every positive point is seen in one of them, and each chosen view
becomes one :class:`~spin_nerfstudio.prompts.ImagePrompt` with the pixels of the points it sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from jaxtyping import Float, Int
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.models.base_model import Model

from spin_nerfstudio.prompts import ImagePrompt, PromptSet, SpinInputError
from spin_nerfstudio.segmentation.propagate import PinholeView

# (view indices, pixel x, pixel y) -> (rendered ray distance, accumulation) at those pixels.
SurfaceFn = Callable[[np.ndarray, np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


@dataclass
class ClickPoint:
    """One click of the user, as a world point."""

    positive: bool
    """True for a click on the object, False for a click on what must stay."""
    xyz: Float[np.ndarray, "3"]
    """World point (nerfstudio's world coordinates, after the dataparser's transform)."""
    seen: Dict[int, Tuple[int, int]] = field(default_factory=dict)
    """Training views that see the point: view index -> integer pixel (x, y) of the point in that view."""
    towards_camera: Float[np.ndarray, "3"] = field(default_factory=lambda: np.zeros(3))
    """Unit vector from the point back towards the camera it was clicked from (zero if unknown)."""


@dataclass
class LiftResult:
    """Outcome of lifting one click."""

    point: Optional[Float[np.ndarray, "3"]]
    """World point of the click, or None when the click hit nothing usable."""
    message: str
    """What happened, for a notification (why there is no point, or where the point is)."""
    depth: float = float("nan")
    """Rendered distance along the click ray."""
    accumulation: float = 0.0
    """Rendered opacity along the click ray."""


def render_rays(
    model: Model, origins: Float[np.ndarray, "N 3"], directions: Float[np.ndarray, "N 3"]
) -> Tuple[Float[np.ndarray, " N"], Float[np.ndarray, " N"]]:
    """Rendered ray distance and accumulation along arbitrary rays (eval mode, no gradients).

    The directions are normalised first, so the depth is a distance in world units.
    """
    o = torch.as_tensor(np.asarray(origins, dtype=np.float32).reshape(1, -1, 3), device=model.device)
    d = torch.as_tensor(np.asarray(directions, dtype=np.float32).reshape(1, -1, 3), device=model.device)
    d = d / torch.linalg.norm(d, dim=-1, keepdim=True).clamp(min=1e-12)
    n = o.shape[1]
    bundle = RayBundle(
        origins=o,
        directions=d,
        pixel_area=torch.full((1, n, 1), 1e-6, device=model.device),
        camera_indices=torch.zeros((1, n, 1), dtype=torch.long, device=model.device),
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.get_outputs_for_camera_ray_bundle(bundle)
    finally:
        model.train(was_training)
    depth = out["depth"].reshape(-1).float().cpu().numpy()
    acc = out["accumulation"].reshape(-1).float().cpu().numpy()
    return depth, acc


def lift_click(
    model: Model,
    origin: Sequence[float],
    direction: Sequence[float],
    min_accumulation: float = 0.5,
    max_distance: float = 20.0,
) -> LiftResult:
    """The world point under a click: the ray ``origin + t * direction`` at the rendered depth ``t``.

    No point when the rendered opacity along the ray is below ``min_accumulation`` (nothing there) or when the
    point lies farther than ``max_distance`` from the world origin in the max-norm (background at infinity: the
    scene contraction squeezes everything beyond the unit box into ``[-2, 2]``, and a surface rendered that far
    out is sky or distant background, not an object).
    """
    o = np.asarray(origin, dtype=np.float64).reshape(3)
    d = np.asarray(direction, dtype=np.float64).reshape(3)
    norm = float(np.linalg.norm(d))
    if not np.all(np.isfinite(o)) or not np.isfinite(norm) or norm < 1e-12:
        return LiftResult(None, "the click has no valid ray")
    d = d / norm
    depth, acc = render_rays(model, o[None], d[None])
    t, a = float(depth[0]), float(acc[0])
    if not np.isfinite(t) or a < min_accumulation:
        return LiftResult(None, f"no surface here (opacity {a:.2f} < {min_accumulation:g})", t, a)
    point = o + t * d
    reach = float(np.abs(point).max())
    if reach > max_distance:
        return LiftResult(
            None, f"the surface here is background at infinity ({reach:.1f} > {max_distance:g} scene units)", t, a
        )
    return LiftResult(
        point, f"point at ({point[0]:.3f}, {point[1]:.3f}, {point[2]:.3f}), {t:.3f} from the camera", t, a
    )


def rendered_surface(model: Model, views: Sequence[PinholeView]) -> SurfaceFn:
    """Surface lookup that renders one ray per queried pixel (cheap: one ray per view and point)."""

    def lookup(view_ids: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        if len(view_ids) == 0:
            return np.zeros(0), np.zeros(0)
        origins = np.stack([views[j].origin for j in view_ids])
        dirs = np.concatenate([views[j].rays(np.array([[x, y]])) for j, x, y in zip(view_ids, xs, ys)])
        return render_rays(model, origins, dirs)

    return lookup


def map_surface(depths: Sequence[np.ndarray], accumulations: Sequence[np.ndarray]) -> SurfaceFn:
    """Surface lookup in already rendered depth and accumulation maps (H x W per view)."""

    def lookup(view_ids: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        d = np.array([depths[j][y, x] for j, x, y in zip(view_ids, xs, ys)], dtype=np.float64)
        a = np.array([accumulations[j][y, x] for j, x, y in zip(view_ids, xs, ys)], dtype=np.float64)
        return d, a

    return lookup


def seen_in_views(
    point: Float[np.ndarray, "3"],
    views: Sequence[PinholeView],
    surface: SurfaceFn,
    tolerance: float = 0.05,
    min_accumulation: float = 0.5,
) -> Dict[int, Tuple[int, int]]:
    """Training views in which ``point`` is visible, with its integer pixel there.

    Visible: it projects inside the image, in front of the camera, onto a pixel whose rendered opacity is at least
    ``min_accumulation``, and it is not farther than that pixel's rendered distance times ``1 + tolerance``.
    """
    ids: List[int] = []
    xs: List[int] = []
    ys: List[int] = []
    dists: List[float] = []
    for j, view in enumerate(views):
        xy, z, dist = view.project(np.asarray(point, dtype=np.float64)[None])
        xi, yi = int(np.floor(xy[0, 0] + 0.5)), int(np.floor(xy[0, 1] + 0.5))
        if z[0] > 0 and 0 <= xi < view.width and 0 <= yi < view.height:
            ids.append(j)
            xs.append(xi)
            ys.append(yi)
            dists.append(float(dist[0]))
    if not ids:
        return {}
    depth, acc = surface(np.array(ids), np.array(xs), np.array(ys))
    out = {}
    for k, j in enumerate(ids):
        if acc[k] >= min_accumulation and np.isfinite(depth[k]) and dists[k] <= depth[k] * (1.0 + tolerance):
            out[j] = (xs[k], ys[k])
    return out


def _centre_offset(view: PinholeView, pixels: List[Tuple[int, int]]) -> float:
    if not pixels:
        return 1.0
    p = np.asarray(pixels, dtype=np.float64)
    off = np.abs(p - np.array([view.width / 2.0, view.height / 2.0])) / np.array([view.width, view.height])
    return float(off.max(axis=1).mean())


FACING_STEP_DEG = 5.0
"""Views whose directions to the clicked points differ from the clicking camera's by angles within the same step of
this many degrees count as facing the points equally (``choose_views``)."""


def _facing(view: PinholeView, points: Sequence[ClickPoint]) -> float:
    """Minus the mean angle (in steps of ``FACING_STEP_DEG``) between each point's direction to this view's camera
    and its direction to the camera it was clicked from; 0 when no point knows its clicking camera."""
    angles = []
    for p in points:
        back = np.asarray(p.towards_camera, dtype=np.float64)
        to_view = np.asarray(view.c2w, dtype=np.float64)[:, 3] - np.asarray(p.xyz, dtype=np.float64)
        norms = float(np.linalg.norm(back)) * float(np.linalg.norm(to_view))
        if norms > 1e-12:
            angles.append(np.degrees(np.arccos(np.clip(float(back @ to_view) / norms, -1.0, 1.0))))
    return -float(np.floor(np.mean(angles) / FACING_STEP_DEG)) if angles else 0.0


def choose_views(points: Sequence[ClickPoint], views: Sequence[PinholeView]) -> List[int]:
    """Views to segment, chosen greedily until each positive point that some view sees is seen by one of them.

    Each round takes the view seeing the most not-yet-covered positive points; ties go to the view seeing more
    negative points, then to the view looking at the points from nearest the direction they were clicked from (the
    training photo closest to what the user saw when clicking), then to the one where the points lie nearest the
    image centre (most context around them).
    """
    positives = [p for p in points if p.positive]
    negatives = [p for p in points if not p.positive]
    uncovered = {i for i, p in enumerate(positives) if p.seen}
    chosen: List[int] = []
    while uncovered:
        best: Optional[Tuple[Tuple[float, float, float, float], int]] = None
        for j, view in enumerate(views):
            if j in chosen:
                continue
            covers = [i for i in uncovered if j in positives[i].seen]
            if not covers:
                continue
            n_neg = sum(1 for p in negatives if j in p.seen)
            pixels = [positives[i].seen[j] for i in covers]
            facing = _facing(view, [positives[i] for i in covers])
            key = (float(len(covers)), float(n_neg), facing, -_centre_offset(view, pixels))
            if best is None or key > best[0]:
                best = (key, j)
        if best is None:
            break
        j = best[1]
        chosen.append(j)
        uncovered -= {i for i in uncovered if j in positives[i].seen}
    return chosen


def build_prompts(
    points: Sequence[ClickPoint], views: Sequence[PinholeView], image_names: Sequence[str], source: str = "viewer"
) -> Tuple[PromptSet, List[int]]:
    """The prompt set (and the dataset index of each prompt's image) that stands for these 3D clicks.

    Every positive point goes to the first chosen view that sees it; every negative point goes to each chosen view
    that sees it. ``positive_3d`` / ``negative_3d`` hold the world points of the pixel clicks, in the same order.
    Raises :class:`SpinInputError` when no training view sees any positive point.
    """
    chosen = choose_views(points, views)
    if not chosen:
        raise SpinInputError(f"{source}: no training view sees a positive click; click on the object first")
    positives = [p for p in points if p.positive]
    negatives = [p for p in points if not p.positive]
    assigned = set()
    prompts = []
    for j in chosen:
        entry = ImagePrompt(image=image_names[j])
        for i, p in enumerate(positives):
            if i not in assigned and j in p.seen:
                assigned.add(i)
                entry.positive.append(tuple(float(c) for c in p.seen[j]))
                entry.positive_3d.append(tuple(float(c) for c in p.xyz))
        for p in negatives:
            if j in p.seen:
                entry.negative.append(tuple(float(c) for c in p.seen[j]))
                entry.negative_3d.append(tuple(float(c) for c in p.xyz))
        prompts.append(entry)
    return PromptSet(prompts=prompts, source=source), list(chosen)


def pixel_of(view: PinholeView, point: Float[np.ndarray, "3"]) -> Int[np.ndarray, "2"]:
    """Nearest integer pixel (x, y) of a world point in a view."""
    xy, _, _ = view.project(np.asarray(point, dtype=np.float64)[None])
    return np.floor(xy[0] + 0.5).astype(int)
