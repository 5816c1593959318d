"""Checks that camera poses agree with the images: SIFT matches between views against the epipolar geometry.

For two views with poses ``P1``, ``P2`` a correct pair of poses puts every true correspondence on its epipolar line,
so the Sampson distance of ratio-test SIFT matches is about the keypoint noise (well under a pixel); poses in a wrong
convention (a flipped axis, world-to-camera read as camera-to-world) put it at tens of pixels. The same matches,
triangulated with the poses, give each view the depths of the scene it sees (used for LLFF near/far bounds).
:func:`pose_agreement` condenses the check into one figure that a run checks before its first step.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

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


def _features(image: UInt8[np.ndarray, "H W 3"]):
    """SIFT keypoints (pixel-index coordinates) and descriptors of an RGB image."""
    sift = cv2.SIFT_create(nfeatures=2000)
    kp, des = sift.detectAndCompute(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), None)
    pts = np.array([k.pt for k in kp], dtype=np.float64).reshape(-1, 2)
    return pts, des


def _match(feat_a, feat_b, ratio: float = 0.75) -> Tuple[np.ndarray, np.ndarray]:
    """Ratio-test matches between two images' :func:`_features`, as two arrays of corresponding points."""
    (pts_a, des_a), (pts_b, des_b) = feat_a, feat_b
    if des_a is None or des_b is None or len(pts_a) < 2 or len(pts_b) < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    pairs = [m for m, n in cv2.BFMatcher().knnMatch(des_a, des_b, k=2) if m.distance < ratio * n.distance]
    return pts_a[[m.queryIdx for m in pairs]].reshape(-1, 2), pts_b[[m.trainIdx for m in pairs]].reshape(-1, 2)


def sift_matches(
    image_a: UInt8[np.ndarray, "H W 3"], image_b: UInt8[np.ndarray, "H W 3"], ratio: float = 0.75
) -> Tuple[Float[np.ndarray, "num 2"], Float[np.ndarray, "num 2"]]:
    """Ratio-test SIFT correspondences (pixel-index coordinates) between two RGB images."""
    return _match(_features(image_a), _features(image_b), ratio)


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


AGREEMENT_MIN = 0.15
"""A capture whose median share of epipolar-consistent matches is below this is said not to agree with its poses.
Measured (``spin-nerf dev poses``, docs/geometry.md): real captures 79-96%, generated scenes 21-64% with their own
poses; shuffled poses 0-10%."""
SAMPSON_TOLERANCE = 1.0 / 240.0
"""A match lies on its epipolar line when its Sampson distance is below this share of the image's long side (at the
working size; 1 px at 240 px, 2.7 px at 640 px)."""
MIN_MOVE = 3.0
"""Matches that move less than this many tolerances between the two images are left out: with little rotation
between the views (forward-facing captures) a match that does not move lies on its epipolar line under any poses."""
WORK_SIDE = 640
"""Images are downscaled so that their long side is at most this many pixels before matching."""
MAX_PAIRS = 32
"""At most this many pairs of neighbouring views are matched."""
NEIGHBOURS = 2
"""Each view is paired with this many views whose camera centres are nearest to its own."""
MIN_MATCHES = 8
"""A pair with fewer ratio-test matches than this is not judged."""
MIN_JUDGED_PAIRS = 3
"""With fewer judged pairs than this the capture is not judged (too little texture to tell)."""


@dataclass
class PoseAgreement:
    """How well ratio-test SIFT matches between neighbouring views fit the epipolar geometry of their poses."""

    share: Optional[float]
    """Median over the judged pairs of the share of matches within ``tolerance_px`` of their epipolar lines
    (None when the capture is not judged)."""
    pooled: Optional[float]
    """The same share over all matches of the judged pairs together."""
    pairs: int
    """Pairs of neighbouring views matched."""
    judged: int
    """Pairs with at least ``MIN_MATCHES`` matches."""
    matches: int
    """Matches of the judged pairs."""
    seconds: float
    tolerance_px: float
    """The Sampson distance below which a match counts as on its epipolar line, in pixels at the working size."""
    threshold: float = AGREEMENT_MIN

    @property
    def is_judged(self) -> bool:
        """Whether enough pairs matched to judge the poses."""
        return self.share is not None

    @property
    def agrees(self) -> Optional[bool]:
        """True or False when judged, None when not."""
        return None if self.share is None else self.share >= self.threshold

    def line(self) -> str:
        """One line with the figure, for the log."""
        if self.share is None:
            return (
                f"poses not judged: only {self.judged} of {self.pairs} pairs of neighbouring views have "
                f"{MIN_MATCHES}+ SIFT matches (too little texture) ({self.seconds:.1f} s)"
            )
        return (
            f"poses: {100 * self.share:.0f}% of SIFT matches between neighbouring views lie on their epipolar lines "
            f"(within {self.tolerance_px:.1f} px; {self.judged} of {self.pairs} pairs judged, {self.matches} matches, "
            f"{self.seconds:.1f} s)"
        )

    def problem(self) -> Optional[str]:
        """The diagnosis when the poses do not agree with the images, else None."""
        if self.agrees is not False:
            return None
        return (
            f"poses do not agree with the images: only {100 * self.share:.0f}% of SIFT matches between neighbouring "
            f"views lie on their epipolar lines (correct captures: 21-96%, shuffled poses: 0-10%); check the poses "
            "file's row order (the images' sorted file names) and its convention"
        )

    def as_dict(self) -> Dict:
        """Plain-JSON form (with ``agrees``)."""
        return {**asdict(self), "agrees": self.agrees}


@dataclass
class PreparedView:
    """One view ready for matching: its SIFT features and projection at the working size."""

    features: Tuple[np.ndarray, Optional[np.ndarray]]
    """Keypoints (pixel-index coordinates at the working size) and descriptors."""
    projection: np.ndarray
    """3 x 4 projection onto the working size's pixel indices."""
    side: int
    """Long side of the working size."""
    scale: Tuple[float, float]
    """Working size over the image's size, (x, y)."""
    size: Tuple[int, int]
    """The image's (width, height)."""


def prepare_views(
    images: Sequence[UInt8[np.ndarray, "H W 3"]],
    views: Sequence[int],
    c2w: Float[np.ndarray, "num 3 4"],
    fx: Sequence[float],
    fy: Sequence[float],
    cx: Sequence[float],
    cy: Sequence[float],
    work_side: int = WORK_SIDE,
) -> Dict[int, PreparedView]:
    """SIFT features and projections of ``views``, images larger than ``work_side`` downscaled (intrinsics with
    them)."""
    out: Dict[int, PreparedView] = {}
    for view in views:
        image = np.ascontiguousarray(np.asarray(images[view])[..., :3], dtype=np.uint8)
        height, width = image.shape[:2]
        scale = min(1.0, work_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        sx, sy = image.shape[1] / width, image.shape[0] / height
        projection = opencv_projection(c2w[view], fx[view] * sx, fy[view] * sy, cx[view] * sx, cy[view] * sy)
        out[view] = PreparedView(_features(image), projection, max(image.shape[:2]), (sx, sy), (width, height))
    return out


def neighbour_pairs(centres: Float[np.ndarray, "num 3"], neighbours: int = NEIGHBOURS, max_pairs: int = MAX_PAIRS):
    """Pairs ``(i, j)``, ``i < j``, of each view with its ``neighbours`` nearest cameras (by centre), at most
    ``max_pairs`` of them spread evenly over the list."""
    centres = np.asarray(centres, np.float64)
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    pairs = set()
    for i in range(len(centres)):
        for j in np.argsort(dist[i], kind="stable")[: min(neighbours, len(centres) - 1)]:
            pairs.add((min(i, int(j)), max(i, int(j))))
    ordered = sorted(pairs)
    if len(ordered) > max_pairs:
        ordered = [ordered[k] for k in np.linspace(0, len(ordered) - 1, max_pairs).round().astype(int)]
    return ordered


def pose_agreement(
    images: Sequence[UInt8[np.ndarray, "H W 3"]],
    c2w: Float[np.ndarray, "num 3 4"],
    fx: Sequence[float],
    fy: Sequence[float],
    cx: Sequence[float],
    cy: Sequence[float],
    work_side: int = WORK_SIDE,
    tolerance: float = SAMPSON_TOLERANCE,
    max_pairs: int = MAX_PAIRS,
) -> PoseAgreement:
    """Share of SIFT matches between each view and its nearest cameras that lie on the epipolar lines of the poses.

    ``c2w`` are OpenGL camera-to-world matrices (nerfstudio's), ``fx``.. nerfstudio intrinsics of the images as
    given; images larger than ``work_side`` are downscaled (intrinsics with them) before matching. Any similarity
    transform of the world (nerfstudio's orientation and scaling) leaves the figure unchanged.
    """
    start = time.perf_counter()
    c2w = np.asarray(c2w, np.float64)
    pairs = neighbour_pairs(c2w[:, :, 3], max_pairs=max_pairs)
    prepared = prepare_views(images, sorted({v for pair in pairs for v in pair}), c2w, fx, fy, cx, cy, work_side)
    shares, inliers, matches, judged = [], 0, 0, 0
    pixels = tolerance * (float(np.median([p.side for p in prepared.values()])) if prepared else WORK_SIDE)
    for i, j in pairs:
        pts_i, pts_j = _match(prepared[i].features, prepared[j].features)
        if len(pts_i) < MIN_MATCHES:
            continue
        moved = np.linalg.norm(pts_i - pts_j, axis=1) >= MIN_MOVE * pixels
        pts_i, pts_j = pts_i[moved], pts_j[moved]
        if len(pts_i) < MIN_MATCHES:
            continue
        within = sampson_distance(prepared[i].projection, prepared[j].projection, pts_i, pts_j) < pixels
        judged += 1
        shares.append(float(within.mean()))
        inliers += int(within.sum())
        matches += len(within)
    seconds = time.perf_counter() - start
    if judged < MIN_JUDGED_PAIRS:
        return PoseAgreement(None, None, len(pairs), judged, matches, seconds, pixels)
    return PoseAgreement(float(np.median(shares)), inliers / matches, len(pairs), judged, matches, seconds, pixels)
