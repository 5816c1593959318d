"""Checks that camera poses agree with the images: SIFT matches between views against the epipolar geometry.

For two views with poses ``P1``, ``P2`` a correct pair of poses puts every true correspondence on its epipolar line,
so the Sampson distance of ratio-test SIFT matches is about the keypoint noise (well under a pixel); poses in a wrong
convention (a flipped axis, world-to-camera read as camera-to-world) put it at tens of pixels. The same matches,
triangulated with the poses, give each view the depths of the scene it sees (used for LLFF near/far bounds).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import cv2
import numpy as np
from jaxtyping import Float, UInt8

OPENGL_TO_OPENCV = np.array([1.0, -1.0, -1.0])
"""Column signs that turn an OpenGL camera frame ``[right, up, back]`` into OpenCV's ``[right, down, forward]``."""


def opencv_projection(
    c2w_opengl: Float[np.ndarray, "3 4"], fx: float, fy: float, cx: float, cy: float
) -> Float[np.ndarray, "3 4"]:
    """Projection matrix onto pixel-index coordinates (x right, y down, pixel ``i`` centred at ``i``).

    ``cx``, ``cy`` follow nerfstudio's convention (pixel ``i`` spans ``[i, i + 1]``), hence the half-pixel shift.
    """
    rot = c2w_opengl[:, :3] * OPENGL_TO_OPENCV
    w2c = np.concatenate([rot.T, (-rot.T @ c2w_opengl[:, 3])[:, None]], axis=1)
    k = np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])
    return k @ w2c


def sampson_distance(
    proj_a: Float[np.ndarray, "3 4"],
    proj_b: Float[np.ndarray, "3 4"],
    pts_a: Float[np.ndarray, "num 2"],
    pts_b: Float[np.ndarray, "num 2"],
) -> Float[np.ndarray, " num"]:
    """Sampson distance in pixels of the correspondences ``pts_a <-> pts_b`` under the two cameras' geometry."""
    centre_a = np.linalg.svd(proj_a)[2][-1]
    e = proj_b @ centre_a
    cross = np.array([[0.0, -e[2], e[1]], [e[2], 0.0, -e[0]], [-e[1], e[0], 0.0]])
    fundamental = cross @ proj_b @ np.linalg.pinv(proj_a)
    ha = np.concatenate([pts_a, np.ones((len(pts_a), 1))], axis=1)
    hb = np.concatenate([pts_b, np.ones((len(pts_b), 1))], axis=1)
    fa, ftb = ha @ fundamental.T, hb @ fundamental
    num = np.sum(hb * fa, axis=1) ** 2
    den = fa[:, 0] ** 2 + fa[:, 1] ** 2 + ftb[:, 0] ** 2 + ftb[:, 1] ** 2
    return np.sqrt(num / np.maximum(den, 1e-30))


def sift_matches(
    image_a: UInt8[np.ndarray, "H W 3"], image_b: UInt8[np.ndarray, "H W 3"], ratio: float = 0.75
) -> Tuple[Float[np.ndarray, "num 2"], Float[np.ndarray, "num 2"]]:
    """Ratio-test SIFT correspondences (pixel-index coordinates) between two RGB images."""
    sift = cv2.SIFT_create(nfeatures=2000)
    kp_a, des_a = sift.detectAndCompute(cv2.cvtColor(image_a, cv2.COLOR_RGB2GRAY), None)
    kp_b, des_b = sift.detectAndCompute(cv2.cvtColor(image_b, cv2.COLOR_RGB2GRAY), None)
    if des_a is None or des_b is None or len(kp_a) < 2 or len(kp_b) < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    pairs = [m for m, n in cv2.BFMatcher().knnMatch(des_a, des_b, k=2) if m.distance < ratio * n.distance]
    pts_a = np.array([kp_a[m.queryIdx].pt for m in pairs], dtype=np.float64).reshape(-1, 2)
    pts_b = np.array([kp_b[m.trainIdx].pt for m in pairs], dtype=np.float64).reshape(-1, 2)
    return pts_a, pts_b


def check_poses(
    images: Sequence[np.ndarray],
    projections: Sequence[np.ndarray],
    gap: int = 2,
    max_reprojection: float = 2.0,
) -> Tuple[Float[np.ndarray, " num_matches"], List[List[float]]]:
    """Matches each view with the next ``gap`` views; returns all Sampson distances and per-view depths.

    The depths are those of matches triangulated with the poses that lie in front of both cameras and reproject
    within ``max_reprojection`` pixels in both.
    """
    distances = []
    depths: List[List[float]] = [[] for _ in images]
    for i in range(len(images)):
        for j in range(i + 1, min(i + 1 + gap, len(images))):
            pts_i, pts_j = sift_matches(images[i], images[j])
            if len(pts_i) < 8:
                continue
            distances.append(sampson_distance(projections[i], projections[j], pts_i, pts_j))
            homog = cv2.triangulatePoints(projections[i], projections[j], pts_i.T, pts_j.T)
            xyz = np.concatenate([(homog[:3] / homog[3]).T, np.ones((len(pts_i), 1))], axis=1)
            keep = np.ones(len(pts_i), dtype=bool)
            view_z = []
            for view, pts in ((i, pts_i), (j, pts_j)):
                cam = projections[view] @ xyz.T
                z = cam[2]
                err = np.linalg.norm(cam[:2] / np.where(z == 0, 1e-12, z) - pts.T, axis=0)
                keep &= (z > 0) & (err < max_reprojection)
                view_z.append(z)
            for view, z in zip((i, j), view_z):
                depths[view].extend(z[keep].tolist())
    return (np.concatenate(distances) if distances else np.zeros(0)), depths
