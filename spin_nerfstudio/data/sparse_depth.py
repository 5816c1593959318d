"""Sparse depth from the poses: SIFT matches between neighbouring views, triangulated with the given cameras.

A radiance field fitted to colour alone can render the right images from the wrong geometry (on the fox capture the
wall rendered 13-25% farther than matches triangulated across wide baselines, while neighbouring views agreed with
each other); every stage that lifts pixels to 3D inherits that error. Matches triangulated with the poses are
independent of the field: their depths supervise it during the reconstruction (``sparse-depth-loss-mult``), as
DS-NeRF does with COLMAP's sparse points. Only matches that reproject within ``tolerance`` of the long side in both
views, lie in front of both cameras and are seen under at least ``min_angle_deg`` are kept (a narrow angle makes the
depth uncertain); a pixel with several triangulations keeps their median when they agree within ``max_spread``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch
from jaxtyping import Float, UInt8
from torch import Tensor

from spin_nerfstudio.data.pose_check import SAMPSON_TOLERANCE, WORK_SIDE, _match, neighbour_pairs, prepare_views

NEIGHBOURS = 4
"""Each view is matched with this many nearest cameras (more pairs: more points, wider angles)."""
MIN_ANGLE_DEG = 2.0
"""Smallest angle between the two rays of a kept triangulation."""
MAX_SPREAD = 0.05
"""Relative spread (max / min - 1) of a pixel's triangulations above which the pixel is dropped."""


@dataclass
class SparseDepth:
    """Triangulated points of every view."""

    pixels: List[np.ndarray] = field(default_factory=list)
    """Per view, K x 2 integer pixel indices (x, y) at the training image's size."""
    distances: List[np.ndarray] = field(default_factory=list)
    """Per view, K ray distances (world units of the cameras given) of those pixels' points."""
    pairs: int = 0
    """View pairs matched."""
    seconds: float = 0.0
    """Wall time of matching and triangulation."""

    @property
    def points(self) -> int:
        """Supervised pixels over all views."""
        return int(sum(len(d) for d in self.distances))

    def line(self) -> str:
        """One console line."""
        per_view = [len(d) for d in self.distances]
        median = int(np.median(per_view)) if per_view else 0
        return (
            f"sparse depth: {self.points} pixels triangulated from SIFT matches with the poses ({self.pairs} view "
            f"pairs, median {median} per view, {self.seconds:.1f} s)"
        )

    def as_dict(self) -> Dict:
        """The figures for RUN/geometry.json."""
        per_view = [len(d) for d in self.distances]
        return {
            "points": self.points,
            "pairs": self.pairs,
            "per_view_median": float(np.median(per_view)) if per_view else 0.0,
            "views_without": int(sum(n == 0 for n in per_view)),
            "seconds": self.seconds,
        }

    def maps(self, sizes: Sequence[Tuple[int, int]]) -> Float[Tensor, "num_views H W 1"]:
        """Per-view depth maps at ``sizes`` ((width, height) each, all equal): the ray distance at the supervised
        pixels, 0 elsewhere."""
        width, height = sizes[0]
        out = torch.zeros(len(sizes), height, width, 1)
        for v, (xy, dist) in enumerate(zip(self.pixels, self.distances)):
            if len(dist):
                out[v, xy[:, 1], xy[:, 0], 0] = torch.from_numpy(dist.astype(np.float32))
        return out


def triangulate_pair(
    proj_a: Float[np.ndarray, "3 4"],
    proj_b: Float[np.ndarray, "3 4"],
    pts_a: Float[np.ndarray, "num 2"],
    pts_b: Float[np.ndarray, "num 2"],
    max_error: float,
    min_angle_deg: float = MIN_ANGLE_DEG,
) -> Tuple[np.ndarray, Float[np.ndarray, "kept 3"]]:
    """World points of the correspondences that reproject within ``max_error`` pixels in both views, lie in front of
    both cameras and are seen under at least ``min_angle_deg``; returns (kept indices, points)."""
    if len(pts_a) == 0:
        return np.zeros(0, int), np.zeros((0, 3))
    homog = cv2.triangulatePoints(proj_a, proj_b, pts_a.T.astype(np.float64), pts_b.T.astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        world = (homog[:3] / homog[3]).T
    ok = np.isfinite(world).all(axis=1)
    centres = []
    for proj, pts in ((proj_a, pts_a), (proj_b, pts_b)):
        h = np.concatenate([world, np.ones((len(world), 1))], axis=1) @ proj.T
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.linalg.norm(h[:, :2] / h[:, 2:3] - pts, axis=1)
        ok &= (h[:, 2] > 0) & (err < max_error)
        centres.append(np.linalg.svd(proj)[2][-1])
    ca, cb = (c[:3] / c[3] for c in centres)
    ra, rb = world - ca, world - cb
    cos = np.sum(ra * rb, axis=1) / np.maximum(np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1), 1e-12)
    ok &= cos <= np.cos(np.deg2rad(min_angle_deg))
    keep = np.nonzero(ok)[0]
    return keep, world[keep]


def sparse_depth(
    images: Sequence[UInt8[np.ndarray, "H W 3"]],
    c2w: Float[np.ndarray, "num 3 4"],
    fx: Sequence[float],
    fy: Sequence[float],
    cx: Sequence[float],
    cy: Sequence[float],
    neighbours: int = NEIGHBOURS,
    work_side: int = WORK_SIDE,
    tolerance: float = SAMPSON_TOLERANCE,
    min_angle_deg: float = MIN_ANGLE_DEG,
    max_spread: float = MAX_SPREAD,
) -> SparseDepth:
    """Triangulated depths of SIFT matches between each view and its ``neighbours`` nearest cameras.

    ``c2w`` are OpenGL camera-to-world matrices (nerfstudio's) and ``fx``.. the intrinsics of the images as given;
    images larger than ``work_side`` are matched downscaled. Distances are along each pixel's ray from its camera
    centre, in the cameras' world units (what the field renders as depth).
    """
    start = time.perf_counter()
    c2w = np.asarray(c2w, np.float64)
    pairs = neighbour_pairs(c2w[:, :, 3], neighbours, max_pairs=neighbours * len(c2w))  # no cap
    prepared = prepare_views(images, sorted({v for pair in pairs for v in pair}), c2w, fx, fy, cx, cy, work_side)
    found: List[Dict[Tuple[int, int], List[float]]] = [dict() for _ in range(len(c2w))]
    for i, j in pairs:
        a, b = prepared[i], prepared[j]
        pts_i, pts_j = _match(a.features, b.features)
        max_error = max(0.5, tolerance * max(a.side, b.side))
        keep, world = triangulate_pair(a.projection, b.projection, pts_i, pts_j, max_error, min_angle_deg)
        for view, pts in ((i, pts_i), (j, pts_j)):
            sx, sy = prepared[view].scale
            dist = np.linalg.norm(world - c2w[view, :, 3], axis=1)
            width, height = prepared[view].size
            xs = np.clip(np.floor((pts[keep, 0] + 0.5) / sx).astype(int), 0, width - 1)
            ys = np.clip(np.floor((pts[keep, 1] + 0.5) / sy).astype(int), 0, height - 1)
            for x, y, d in zip(xs.tolist(), ys.tolist(), dist.tolist()):
                found[view].setdefault((x, y), []).append(d)
    result = SparseDepth(pairs=len(pairs))
    for view in range(len(c2w)):
        xy, dist = [], []
        for (x, y), ds in found[view].items():
            if max(ds) / min(ds) - 1.0 <= max_spread:
                xy.append((x, y))
                dist.append(float(np.median(ds)))
        result.pixels.append(np.array(xy, dtype=np.int64).reshape(-1, 2))
        result.distances.append(np.array(dist, dtype=np.float64))
    result.seconds = time.perf_counter() - start
    return result
