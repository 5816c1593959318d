"""Clicks and masks between views: lift pixels to 3D with rendered depth, project 3D points into other views.

Conventions: pixel (x, y) is the pixel whose centre is at (x + 0.5, y + 0.5); depth maps hold the distance along
each (unit) ray, as nerfstudio renders it; cameras are nerfstudio's (OpenGL axes, camera-to-world 3x4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from jaxtyping import Bool, Float


@dataclass
class PinholeView:
    """One view's camera as plain arrays."""

    c2w: Float[np.ndarray, "3 4"]
    """Camera-to-world matrix (OpenGL axes: x right, y up, looking down -z)."""
    fx: float
    """Focal length in pixels, x."""
    fy: float
    """Focal length in pixels, y."""
    cx: float
    """Principal point, x (pixels)."""
    cy: float
    """Principal point, y (pixels)."""
    width: int
    """Image width."""
    height: int
    """Image height."""

    @classmethod
    def from_cameras(cls, cameras, index: int) -> "PinholeView":
        """Read camera ``index`` of a nerfstudio ``Cameras`` object."""
        c = cameras[index]
        return cls(
            c2w=c.camera_to_worlds.detach().cpu().numpy().reshape(3, 4).astype(np.float64),
            fx=float(c.fx.item()),
            fy=float(c.fy.item()),
            cx=float(c.cx.item()),
            cy=float(c.cy.item()),
            width=int(c.width.item()),
            height=int(c.height.item()),
        )

    @property
    def origin(self) -> Float[np.ndarray, "3"]:
        """Camera centre in world coordinates."""
        return self.c2w[:, 3]

    def rays(self, xy: Float[np.ndarray, "N 2"]) -> Float[np.ndarray, "N 3"]:
        """Unit world directions through pixels (x, y)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        cam = np.stack(
            [(xy[:, 0] + 0.5 - self.cx) / self.fx, -(xy[:, 1] + 0.5 - self.cy) / self.fy, -np.ones(len(xy))], axis=-1
        )
        d = cam @ self.c2w[:, :3].T
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def project(self, points: Float[np.ndarray, "N 3"]) -> tuple:
        """Pixel coordinates (x, y as pixel indices, possibly fractional), forward depth and ray distance."""
        rel = np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.origin
        cam = rel @ self.c2w[:, :3]
        z = -cam[:, 2]
        safe = np.where(z > 1e-9, z, 1e-9)
        x = self.fx * cam[:, 0] / safe + self.cx - 0.5
        y = -self.fy * cam[:, 1] / safe + self.cy - 0.5
        return np.stack([x, y], axis=-1), z, np.linalg.norm(rel, axis=-1)


def lift(view: PinholeView, xy: Float[np.ndarray, "N 2"], depth: Float[np.ndarray, "H W"]) -> tuple:
    """World points under pixels, using the ray distance stored in ``depth``; also returns their depths."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    xi = np.clip(np.floor(xy[:, 0]).astype(int), 0, view.width - 1)
    yi = np.clip(np.floor(xy[:, 1]).astype(int), 0, view.height - 1)
    t = depth[yi, xi].astype(np.float64)
    return view.origin + view.rays(xy) * t[:, None], t


def pixels_in_frame(view: PinholeView, points: Float[np.ndarray, "N 3"]) -> tuple:
    """Nearest integer pixel (x, y) and camera distance of every point, and the indices of the points in front of
    the camera that land inside the image."""
    xy, z, dist = view.project(points)
    xi = np.floor(xy[:, 0] + 0.5).astype(int)
    yi = np.floor(xy[:, 1] + 0.5).astype(int)
    ok = (z > 0) & (xi >= 0) & (xi < view.width) & (yi >= 0) & (yi < view.height)
    return xi, yi, dist, np.nonzero(ok)[0]


def visible_projection(
    view: PinholeView, points: Float[np.ndarray, "N 3"], depth: Float[np.ndarray, "H W"], tolerance: float = 0.05
) -> tuple:
    """Integer pixels of the points that land inside the view and are not hidden behind its rendered surface.

    A point is visible when its distance to the camera is at most the rendered depth at its pixel times
    (1 + tolerance). Returns (x, y) integer arrays and the boolean selection over ``points``.
    """
    xi, yi, dist, idx = pixels_in_frame(view, points)
    sel = np.zeros(len(points), dtype=bool)
    surface = depth[yi[idx], xi[idx]]
    sel[idx] = dist[idx] <= surface * (1.0 + tolerance)
    return xi[sel], yi[sel], sel


def splat_mask(xs: np.ndarray, ys: np.ndarray, height: int, width: int, close: int = 1) -> Bool[np.ndarray, "H W"]:
    """Mask of the given pixels, closed and hole-filled so that sparse splats become a region."""
    mask = np.zeros((height, width), np.uint8)
    mask[ys, xs] = 1
    if close > 0 and mask.any():
        kernel = np.ones((3, 3), np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=close)
        mask = fill_holes(mask > 0).astype(np.uint8)
    return mask > 0


def disk(shape: tuple, centre, radius: float) -> Bool[np.ndarray, "H W"]:
    """Pixels of an image of ``shape`` (H, W) within ``radius`` of ``centre`` (x, y)."""
    h, w = shape
    yy, xx = np.ogrid[:h, :w]
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2


def fill_holes(mask: Bool[np.ndarray, "H W"]) -> Bool[np.ndarray, "H W"]:
    """Fill the background regions that do not touch the image border."""
    inv = (~mask).astype(np.uint8)
    n, labels = cv2.connectedComponents(inv, connectivity=4)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    holes = (labels > 0) & ~np.isin(labels, list(border))
    return mask | holes


def dilate(mask: Bool[np.ndarray, "H W"], kernel: int, iterations: int) -> Bool[np.ndarray, "H W"]:
    """Binary dilation with a square kernel, as SPIn-NeRF dilates masks before inpainting."""
    if iterations <= 0 or kernel <= 1:
        return mask.astype(bool)
    return cv2.dilate(mask.astype(np.uint8), np.ones((kernel, kernel), np.uint8), iterations=iterations) > 0


def confident_pixels(
    mask: Bool[np.ndarray, "H W"],
    depth: Float[np.ndarray, "H W"],
    accumulation: Optional[Float[np.ndarray, "H W"]] = None,
    band: float = 0.15,
    min_share: float = 0.3,
) -> Bool[np.ndarray, "H W"]:
    """The pixels of an object mask whose rendered depth can be trusted for lifting it to 3D.

    A rendered depth map is unreliable along the object's outline (blended with the background), where the field is
    not opaque (accumulation below 0.5) and at floaters. Kept: the mask eroded by one pixel, opaque, with a log-depth
    within ``band`` (or three robust standard deviations, whichever is wider) of the median over the mask, which is
    the object's depth range. When that leaves fewer than ``min_share`` of the eroded mask (a thin object, or depth
    too noisy to tell), the eroded mask is kept whole.
    """
    core = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if not core.any():
        core = mask.astype(bool)
    ok = core & np.isfinite(depth) & (depth > 0)
    if accumulation is not None:
        ok &= accumulation >= 0.5
    if not ok.any():
        return core
    logd = np.log(np.where(ok, depth, 1.0))
    centre = float(np.median(logd[ok]))
    spread = 1.4826 * float(np.median(np.abs(logd[ok] - centre)))
    keep = ok & (np.abs(logd - centre) <= max(np.log1p(band), 3.0 * spread))
    return keep if keep.sum() >= min_share * core.sum() else core


def object_visible_projection(
    view: PinholeView,
    points: Float[np.ndarray, "N 3"],
    depth: Float[np.ndarray, "H W"],
    tolerance: float = 0.15,
    floater_px: int = 5,
) -> tuple:
    """Pixels of an object's 3D points in a view, kept unless something stands in front of the whole object there.

    The mask wanted is the object's silhouette, so a point hidden behind the object's own front surface still
    belongs to it; per-point tests against a noisy rendered depth also drop points wherever the object's depth was
    rendered a little too close. Here a pixel is hidden only when the rendered surface there is closer than the
    object's nearest point in this view (5th percentile of the in-frame points' distances) by more than
    ``tolerance`` (relative): an occluder in front of the object, not the object's own depth rendered a little too
    close (the default is wider than :func:`visible_projection`'s for that reason). Blobs of near depth narrower than ``floater_px``
    pixels (floaters of an imperfect reconstruction) are removed first by a grey-value dilation (local maximum) of
    the depth map. Returns (x, y) integer arrays and the boolean selection over ``points``.
    """
    xi, yi, dist, idx = pixels_in_frame(view, points)
    sel = np.zeros(len(points), dtype=bool)
    if len(idx) == 0:
        return xi[sel], yi[sel], sel
    surface = np.nan_to_num(np.asarray(depth, np.float32), nan=0.0, posinf=0.0)
    if floater_px > 1:
        surface = cv2.dilate(surface, np.ones((floater_px, floater_px), np.uint8))
    nearest = float(np.percentile(dist[idx], 5))
    sel[idx] = surface[yi[idx], xi[idx]] * (1.0 + tolerance) >= nearest
    return xi[sel], yi[sel], sel


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


def despeckled(depth: Float[np.ndarray, "H W"]) -> Float[np.ndarray, "H W"]:
    """A rendered depth map after a 5 x 5 median (speckle and small floaters gone; NaN read as 0), as the outline
    tests (:func:`front_fraction`) read it."""
    return cv2.medianBlur(np.nan_to_num(np.asarray(depth, np.float32)), 5)
