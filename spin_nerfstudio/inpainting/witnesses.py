"""Witness views: which other views see a hidden background point unmasked, what colour they saw there, and where
along a masked pixel's ray the surfaces they rendered lie (the depth sweep).

Used by :mod:`.visibility` to build the seen-elsewhere targets; the module docstring there describes the method.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from jaxtyping import Bool, Float, UInt8
from torch import Tensor

from spin_nerfstudio.segmentation.propagate import PinholeView, dilate


class WitnessStack:
    """Every view's camera, rendered depth, grown removal mask and (optionally) image as tensors on one device.

    Built once per stage, so that the depth sweep and the colour look-ups move only the rays to the device; on a GPU
    the whole sweep of a chunk of rays against every witness then runs there. Everything is float64, as the
    arithmetic of the numpy version it replaced, whose results it reproduces."""

    def __init__(
        self,
        views: Sequence[PinholeView],
        removal: Sequence[Bool[np.ndarray, "H W"]],
        rendered_depth: Sequence[Float[np.ndarray, "H W"]],
        images: Optional[Sequence[UInt8[np.ndarray, "H W 3"]]] = None,
        device: Union[str, torch.device] = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.c2w: Float[Tensor, "V 3 4"] = torch.as_tensor(
            np.stack([v.c2w for v in views]), dtype=torch.float64, device=self.device
        )
        self.intrinsics = [(float(v.fx), float(v.fy), float(v.cx), float(v.cy)) for v in views]
        self.depth: List[Float[Tensor, "H W"]] = [
            torch.as_tensor(np.asarray(d, np.float64), device=self.device) for d in rendered_depth
        ]
        self.blocked: List[Bool[Tensor, "H W"]] = [
            torch.as_tensor(np.asarray(m, bool), device=self.device) for m in removal
        ]
        self.images: Optional[List[UInt8[Tensor, "H W 3"]]] = (
            None if images is None else [torch.as_tensor(np.asarray(im), device=self.device) for im in images]
        )
        finite = [d[np.isfinite(d) & (d > 0)] for d in rendered_depth]
        self.far = 1.5 * max((float(f.max()) for f in finite if f.size), default=np.nan)
        """Where the sweep ends: 1.5 x the farthest rendered depth of any view."""

    def project(self, j: int, points: Float[Tensor, "P 3"]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pixel x, y (fractional pixel indices), forward depth and ray distance of world points in view ``j``."""
        fx, fy, cx, cy = self.intrinsics[j]
        rel = points - self.c2w[j, :, 3]
        cam = rel @ self.c2w[j, :, :3]
        z = -cam[:, 2]
        safe = z.clamp_min(1e-9)
        return fx * cam[:, 0] / safe + cx - 0.5, -fy * cam[:, 1] / safe + cy - 0.5, z, torch.linalg.norm(rel, dim=-1)


def _bilinear(image: Tensor, x: Float[Tensor, " N"], y: Float[Tensor, " N"]) -> Tuple[Tensor, Tensor]:
    """Bilinear samples (N x C, float64) of an H x W (x C) image and the flat indices of the 4 corners (4 x N)."""
    h, w = image.shape[:2]
    x0 = torch.floor(x).long().clamp(0, w - 2)
    y0 = torch.floor(y).long().clamp(0, h - 2)
    fx = (x - x0).clamp(0.0, 1.0)[:, None]
    fy = (y - y0).clamp(0.0, 1.0)[:, None]
    img = image.reshape(h * w, -1).to(torch.float64)
    corner = y0 * w + x0
    val = (
        img[corner] * (1 - fx) * (1 - fy)
        + img[corner + 1] * fx * (1 - fy)
        + img[corner + w] * (1 - fx) * fy
        + img[corner + w + 1] * fx * fy
    )
    return val, torch.stack([corner, corner + 1, corner + w, corner + w + 1])


def _nanmedian(values: Float[Tensor, "V N"]) -> Float[Tensor, " N"]:
    """numpy's nanmedian over the first axis (the mean of the two middle values for an even count; NaN where all
    are NaN); torch's own takes the lower middle value."""
    count = torch.isfinite(values).sum(dim=0)
    ordered = torch.sort(torch.where(torch.isfinite(values), values, torch.inf), dim=0).values
    lo = ordered.gather(0, ((count - 1).clamp_min(0) // 2)[None])[0]
    hi = ordered.gather(0, (count // 2).clamp(max=len(values) - 1)[None])[0]
    return torch.where(count > 0, (lo + hi) / 2, torch.nan)


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
    stack: Optional[WitnessStack] = None,
) -> Float[np.ndarray, "V N 3"]:
    """Colour of each 3D point in every other view (those in ``witnesses`` when given) that sees it unmasked (NaN
    where a view is no witness). ``stack``: the views as tensors (then ``images``, ``removal``, ``rendered_depth``
    and ``margin`` are read from it instead), made once per stage by the caller."""
    if stack is None or stack.images is None:
        grown = [m if margin <= 0 else dilate(m, 2 * margin + 1, 1) for m in removal]
        stack = WitnessStack(views, grown, rendered_depth, images)
    assert stack.images is not None
    pts = torch.as_tensor(np.asarray(points, np.float64).reshape(-1, 3), device=stack.device)
    out = torch.full((len(views), len(pts), 3), torch.nan, dtype=torch.float64, device=stack.device)
    for j, _, blocked in _witness_views(views, stack.blocked, source, 0, witnesses):
        h, w = blocked.shape
        x, y, z, dist = stack.project(j, pts)
        inside = (z > 1e-6) & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
        idx = torch.nonzero(inside)[:, 0]
        if len(idx) == 0:
            continue
        colour, corners = _bilinear(stack.images[j], x[idx], y[idx])
        unmasked = ~blocked.reshape(-1)[corners].any(dim=0)
        surface = stack.depth[j].reshape(-1)[corners]
        agree = ((surface - dist[idx][None]).abs() <= depth_tolerance * surface.abs()).all(dim=0)
        ok = unmasked & agree & torch.isfinite(surface).all(dim=0)
        out[j, idx[ok]] = colour[ok, :3]
    return out.cpu().numpy()


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
    stack: Optional[WitnessStack] = None,
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
    if stack is None:
        grown = [m if margin <= 0 else dilate(m, 2 * margin + 1, 1) for m in removal]
        stack = WitnessStack(views, grown, rendered_depth)
    xy_np = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    n = len(xy_np)
    out = np.full(n, np.nan)
    dev, f64 = stack.device, torch.float64
    depth = stack.depth[source]
    h, w = depth.shape
    xy_t = torch.as_tensor(xy_np, device=dev)
    xi = torch.round(xy_t[:, 0]).long().clamp(0, w - 1)
    yi = torch.round(xy_t[:, 1]).long().clamp(0, h - 1)
    near = depth[yi, xi] * 0.9
    far = stack.far
    valid = torch.isfinite(near) & (near > 0) & (near < far)
    if not bool(valid.any()) or n == 0 or samples < 2:
        return out
    steps = torch.linspace(0.0, 1.0, samples, dtype=f64, device=dev)
    t = 1.0 / (1.0 / near[valid, None] * (1.0 - steps) + (1.0 / far) * steps)  # (M, K), increasing
    dirs = torch.as_tensor(views[source].rays(xy_np[valid.cpu().numpy()]), device=dev)
    points = (stack.c2w[source, :, 3] + dirs[:, None, :] * t[..., None]).reshape(-1, 3)
    m, k = t.shape
    dt = torch.diff(t, dim=1)
    rows = torch.arange(m, device=dev)
    crossings = torch.full((len(views), m), torch.nan, dtype=f64, device=dev)
    crossed_at = torch.full((len(views), m), k, dtype=torch.long, device=dev)  # sample just past each crossing
    behind_from = torch.full((m,), k, dtype=torch.long, device=dev)  # first sample some witness sees behind
    for j, _, blocked in _witness_views(views, stack.blocked, source, 0, witnesses):
        hj, wj = blocked.shape
        x, y, z, dist = stack.project(j, points)
        inside = (z > 1e-6) & (x >= 0) & (x <= wj - 1) & (y >= 0) & (y <= hj - 1)
        # an infinite rendered depth gives NaN surfaces: never crossed
        surface, corners = _bilinear(stack.depth[j], x.clamp(0, wj - 1), y.clamp(0, hj - 1))
        surface = surface[:, 0]
        ok = (inside & ~blocked.reshape(-1)[corners].any(dim=0) & torch.isfinite(surface)).reshape(m, k)
        gap = (dist - surface).reshape(m, k)
        surf = surface.reshape(m, k)
        jump = (gap[:, 1:] - gap[:, :-1]) <= 2.0 * dt + depth_tolerance * surf[:, 1:]
        cross = ok[:, :-1] & ok[:, 1:] & (gap[:, :-1] < 0) & (gap[:, 1:] >= 0) & jump
        behind = ok & (gap > depth_tolerance * surf)
        has_behind = behind.any(dim=1)
        first_behind = torch.argmax(behind.to(torch.uint8), dim=1)
        behind_from = torch.where(has_behind, torch.minimum(behind_from, first_behind), behind_from)
        hit = cross.any(dim=1)
        if not bool(hit.any()):
            continue
        first = torch.argmax(cross.to(torch.uint8), dim=1)
        a, b = gap[rows, first], gap[rows, first + 1]
        frac = a / torch.where(a - b != 0, a - b, torch.tensor(-1.0, dtype=f64, device=dev))
        t_cross = t[rows, first] + frac * (t[rows, first + 1] - t[rows, first])
        crossings[j, hit] = t_cross[hit]
        crossed_at[j, hit] = first[hit] + 1
    # A crossing past the point where some witness already saw the ray go behind a surface is a surface further
    # back (the floor under a table whose top no view saw); the first surface on the ray was never observed.
    crossings[crossed_at > behind_from[None, :]] = torch.nan
    out[valid.cpu().numpy()] = _nanmedian(crossings).cpu().numpy()
    return out
