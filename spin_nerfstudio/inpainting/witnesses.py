"""Witness views: which other views see a hidden background point unmasked, what colour they saw there, and where
along a masked pixel's ray the surfaces they rendered lie (the depth sweep).

Used by :mod:`.visibility` to build the seen-elsewhere targets; the module docstring there describes the method.
"""

from __future__ import annotations

import warnings
from typing import List, Optional, Sequence

import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.segmentation.propagate import PinholeView, dilate


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


def witness_order(views: Sequence[PinholeView], source: int, limit: int) -> List[int]:
    """The views checked as witnesses of ``source`` (ascending): all others when ``limit`` is 0 or not below their
    number, else ``limit`` of them picked by farthest-point sampling of the camera centres, seeded with ``source``'s
    own, among the views whose optical axis is within 90 degrees of ``source``'s (the others after them)."""
    others = [j for j in range(len(views)) if j != source]
    if limit <= 0 or len(others) <= limit:
        return others
    forward = -views[source].c2w[:, 2]
    facing = [j for j in others if float(-views[j].c2w[:, 2] @ forward) > 0]
    pool = facing if len(facing) >= limit else others
    centres = np.stack([views[j].origin for j in pool])
    nearest = np.linalg.norm(centres - views[source].origin, axis=1)
    chosen: List[int] = []
    for _ in range(limit):
        k = int(np.argmax(nearest))
        chosen.append(pool[k])
        nearest = np.minimum(nearest, np.linalg.norm(centres - centres[k], axis=1))
        nearest[k] = -1.0
    return sorted(chosen)


def _witness_views(
    views: Sequence[PinholeView],
    removal: Sequence[np.ndarray],
    source: int,
    margin: int,
    witnesses: Optional[Sequence[int]] = None,
):
    """The views that may witness ``source``'s hidden background: (index, view, removal mask grown by ``margin``);
    only those in ``witnesses`` when given."""
    for j in range(len(views)) if witnesses is None else witnesses:
        view = views[j]
        h, w = removal[j].shape
        if j == source or h < 2 or w < 2:
            continue
        yield j, view, (removal[j] if margin <= 0 else dilate(removal[j], 2 * margin + 1, 1))


def witness_colours(
    views: Sequence[PinholeView],
    images: Sequence[UInt8[np.ndarray, "H W 3"]],
    removal: Sequence[Bool[np.ndarray, "H W"]],
    rendered_depth: Sequence[Float[np.ndarray, "H W"]],
    source: int,
    points: Float[np.ndarray, "N 3"],
    depth_tolerance: float,
    margin: int = 0,
    witnesses: Optional[Sequence[int]] = None,
) -> Float[np.ndarray, "V N 3"]:
    """Colour of each 3D point in every other view (those in ``witnesses`` when given) that sees it unmasked (NaN
    where a view is no witness)."""
    out = np.full((len(views), len(points), 3), np.nan)
    for j, view, blocked in _witness_views(views, removal, source, margin, witnesses):
        h, w = blocked.shape
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


def sweep_background_depth(
    views: Sequence[PinholeView],
    removal: Sequence[Bool[np.ndarray, "H W"]],
    rendered_depth: Sequence[Float[np.ndarray, "H W"]],
    source: int,
    xy: Float[np.ndarray, "N 2"],
    depth_tolerance: float,
    margin: int = 0,
    samples: int = 64,
    witnesses: Optional[Sequence[int]] = None,
) -> Float[np.ndarray, " N"]:
    """Ray distance at which each pixel's ray meets a surface that another view (one of ``witnesses`` when given)
    saw unmasked (NaN: none did).

    The ray is sampled from just before the source view's rendered surface (the object, which hides the
    background) to 1.5 times the farthest rendered depth, uniformly in disparity. A witness view says "in front"
    while the sample is nearer to it than its rendered surface there and "behind" once it is farther; the first step
    from in front to behind, with both samples landing on unmasked pixels, is where the ray meets that surface. A
    step whose surface depth jumps by more than the ray moved (an occlusion edge in the witness) is no crossing, nor
    is one past the first sample that any witness sees behind a surface it rendered (beyond the depth tolerance): the
    ray has then passed a surface no view saw, and what lies further back is not the background of this pixel. The
    result is the median over the witnesses' crossings. Unlike lifting with the 2D-inpainted depth, which is off by
    5-15% where the hidden background bends (a floor meeting a wall), it needs no guess of the hidden geometry.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    out = np.full(n, np.nan)
    view = views[source]
    h, w = rendered_depth[source].shape
    xi = np.clip(np.round(xy[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(xy[:, 1]).astype(int), 0, h - 1)
    near = rendered_depth[source][yi, xi].astype(np.float64) * 0.9
    finite = [d[np.isfinite(d) & (d > 0)] for d in rendered_depth]
    far = 1.5 * max((float(f.max()) for f in finite if f.size), default=np.nan)
    valid = np.flatnonzero(np.isfinite(near) & (near > 0) & (near < far))
    if len(valid) == 0 or n == 0 or samples < 2:
        return out
    steps = np.linspace(0.0, 1.0, samples)
    t = 1.0 / (1.0 / near[valid, None] * (1.0 - steps) + (1.0 / far) * steps)  # (M, K), increasing
    dirs = view.rays(xy[valid])
    points = (view.origin + dirs[:, None, :] * t[..., None]).reshape(-1, 3)
    m, k = t.shape
    dt = np.diff(t, axis=1)
    rows = np.arange(m)
    crossings = np.full((len(views), m), np.nan)
    crossed_at = np.full((len(views), m), k)  # sample index just past each witness's crossing (k: none)
    behind_from = np.full(m, k)  # first sample that some witness sees behind a surface it rendered
    for j, other, blocked in _witness_views(views, removal, source, margin, witnesses):
        hj, wj = blocked.shape
        pxy, z, dist = other.project(points)
        x, y = pxy[:, 0], pxy[:, 1]
        inside = (z > 1e-6) & (x >= 0) & (x <= wj - 1) & (y >= 0) & (y <= hj - 1)
        with np.errstate(invalid="ignore"):  # an infinite rendered depth gives NaN surfaces: never crossed
            surface, ys, xs = _bilinear(rendered_depth[j], np.clip(x, 0, wj - 1), np.clip(y, 0, hj - 1))
            surface = surface[:, 0]
            ok = (inside & ~blocked[ys, xs].any(axis=0) & np.isfinite(surface)).reshape(m, k)
            gap = (dist - surface).reshape(m, k)
            jump = (gap[:, 1:] - gap[:, :-1]) <= 2.0 * dt + depth_tolerance * surface.reshape(m, k)[:, 1:]
            cross = ok[:, :-1] & ok[:, 1:] & (gap[:, :-1] < 0) & (gap[:, 1:] >= 0) & jump
            behind = ok & (gap > depth_tolerance * surface.reshape(m, k))
        has_behind = behind.any(axis=1)
        behind_from = np.where(has_behind, np.minimum(behind_from, np.argmax(behind, axis=1)), behind_from)
        hit = cross.any(axis=1)
        if not hit.any():
            continue
        first = np.argmax(cross, axis=1)
        a, b = gap[rows, first], gap[rows, first + 1]
        frac = a / np.where(a - b != 0, a - b, -1.0)
        t_cross = t[rows, first] + frac * (t[rows, first + 1] - t[rows, first])
        crossings[j, hit] = t_cross[hit]
        crossed_at[j, hit] = first[hit] + 1
    # A crossing past the point where some witness already saw the ray go behind a surface is a surface further
    # back (the floor under a table whose top no view saw); the first surface on the ray was never observed.
    crossings[crossed_at > behind_from[None, :]] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: rays no witness crossed
        out[valid] = np.nanmedian(crossings, axis=0)
    return out
