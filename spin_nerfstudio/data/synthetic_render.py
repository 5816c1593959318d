"""Analytic ray casting of a sampled synthetic scene: floor, wall and the box, cylinder or sphere on the floor."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np

from spin_nerfstudio.data.synthetic_scene import (
    _AMBIENT,
    _FLOOR,
    _LIGHT_DIR,
    _OBJECT,
    _WALL,
    SHAPES,
    _Scene,
)


def pixel_rays(c2w: np.ndarray, focal: float, cx: float, cy: float, width: int, height: int) -> np.ndarray:
    """World-space ray directions through pixel centres, scaled so that their camera-axis component is 1.

    A point at parameter ``t`` along such a ray therefore has z-depth ``t``. Pixel ``(row, col)`` has its centre at
    image coordinates ``(col + 0.5, row + 0.5)`` (x right, y down), as in nerfstudio.

    Args:
        c2w: (3 or 4, 4) camera-to-world matrix with OpenGL axes (x right, y up, looking down -z).
        focal: focal length in pixels (square pixels).
        cx: principal point x in pixels.
        cy: principal point y in pixels.
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        (height, width, 3) array of direction vectors.
    """
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    cam = np.stack([(u - cx) / focal, -(v - cy) / focal, -np.ones_like(u)], axis=-1)
    return cam @ c2w[:3, :3].T


def _shade(normal: np.ndarray) -> np.ndarray:
    """Lambertian shading factor for (..., 3) unit normals."""
    return _AMBIENT + (1.0 - _AMBIENT) * np.clip(normal @ _LIGHT_DIR, 0.0, None)


def _render_view(scene: _Scene, c2w: np.ndarray, width: int, height: int) -> dict[str, np.ndarray]:
    """Ray cast one view; returns float RGB and z-depth with and without the object, and the object mask."""
    origin = c2w[:3, 3]
    dirs = pixel_rays(c2w, scene.focal, scene.cx, scene.cy, width, height)
    dy, dz = dirs[..., 1], dirs[..., 2]

    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(dz < 0, -origin[2] / dz, np.inf)
        t_wall = np.where(dy > 0, (scene.wall_y - origin[1]) / dy, np.inf)
    hit_wall = t_wall < t_floor
    t_bg = np.where(hit_wall, t_wall, t_floor)
    if not np.all(np.isfinite(t_bg)) or np.any(t_bg <= 0):
        raise RuntimeError("a camera ray missed the floor and the wall; check the camera rig")
    p_bg = origin + t_bg[..., None] * dirs
    floor_rgb = scene.floor(p_bg[..., 0], p_bg[..., 1]) * _shade(np.array([0.0, 0.0, 1.0]))
    wall_rgb = scene.wall(p_bg[..., 0], p_bg[..., 2]) * _shade(np.array([0.0, -1.0, 0.0]))
    if scene.patterns is not None:
        floor_rgb = floor_rgb * scene.patterns[0](p_bg[..., 0], p_bg[..., 1])
        wall_rgb = wall_rgb * scene.patterns[1](p_bg[..., 0], p_bg[..., 2])
    rgb_bg = np.where(hit_wall[..., None], wall_rgb, floor_rgb)

    if scene.shape == "box":
        # Ray / axis-aligned box intersection (slab method).
        safe = np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)
        t1 = (scene.box_min - origin) / safe
        t2 = (scene.box_max - origin) / safe
        t_lo = np.minimum(t1, t2)
        t_near = t_lo.max(axis=-1)
        t_far = np.maximum(t1, t2).min(axis=-1)
        mask = (t_near <= t_far) & (t_near > 0) & (t_near < t_bg)

        axis = t_lo.argmax(axis=-1)
        normal = np.zeros_like(dirs)
        np.put_along_axis(normal, axis[..., None], -np.sign(np.take_along_axis(dirs, axis[..., None], axis=-1)), -1)
        top = axis == 2
    else:
        t_near, normal, top = _round_object(scene, origin, dirs)
        mask = np.isfinite(t_near) & (t_near < t_bg)
        t_near = np.where(mask, t_near, 0.0)
    side_rgb, stripe_rgb, top_rgb = scene.palette
    p_obj = origin + t_near[..., None] * dirs
    in_stripe = (p_obj[..., 2] >= scene.stripe_z[0]) & (p_obj[..., 2] <= scene.stripe_z[1])
    albedo = np.where(in_stripe[..., None], stripe_rgb, side_rgb)
    albedo = np.where(top[..., None], top_rgb, albedo)
    rgb_obj = albedo * _shade(normal)[..., None]

    surface = np.where(mask, _OBJECT, np.where(hit_wall, _WALL, _FLOOR))
    return {
        "rgb": np.where(mask[..., None], rgb_obj, rgb_bg),
        "rgb_bg": rgb_bg,
        "depth": np.where(mask, t_near, t_bg).astype(np.float32),
        "depth_bg": t_bg.astype(np.float32),
        "mask": mask,
        "surface": surface,
    }


def _round_object(scene: _Scene, origin: np.ndarray, dirs: np.ndarray) -> tuple:
    """Nearest hit (t, inf where none), unit normal and top-face flag of a vertical cylinder or a sphere.

    Both fit the box ``box_min``..``box_max``: the cylinder's radius is the box's smaller half-width; the sphere's
    radius is half the box height, resting on the floor at the box's centre.
    """
    centre = (scene.box_min + scene.box_max) / 2.0
    height = float(scene.box_max[2])
    o = origin - np.array([centre[0], centre[1], 0.0])
    if scene.shape == "sphere":
        radius = height / 2.0
        oc = o - np.array([0.0, 0.0, radius])
        b = np.sum(dirs * oc, axis=-1)
        a = np.sum(dirs * dirs, axis=-1)
        disc = b * b - a * (np.dot(oc, oc) - radius**2)
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a
        t = np.where((disc >= 0) & (t > 0), t, np.inf)
        p = oc + np.where(np.isfinite(t), t, 0.0)[..., None] * dirs
        normal = p / radius
        return t, normal, normal[..., 2] > 0.92
    if scene.shape != "cylinder":
        raise ValueError(f"unknown object shape '{scene.shape}' (expected one of {', '.join(SHAPES)})")
    radius = float(min(scene.box_max[0] - scene.box_min[0], scene.box_max[1] - scene.box_min[1]) / 2.0)
    dxy = dirs[..., :2]
    a = np.sum(dxy * dxy, axis=-1)
    b = np.sum(dxy * o[:2], axis=-1)
    disc = b * b - a * (np.dot(o[:2], o[:2]) - radius**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (-b - np.sqrt(disc)) / a
        z_side = o[2] + t_side * dirs[..., 2]
        t_side = np.where((disc >= 0) & (t_side > 0) & (z_side >= 0) & (z_side <= height), t_side, np.inf)
        t_top = np.where(dirs[..., 2] < 0, (height - o[2]) / dirs[..., 2], np.inf)
    p_top = o + np.where(np.isfinite(t_top), t_top, 0.0)[..., None] * dirs
    t_top = np.where(
        np.isfinite(t_top) & (t_top > 0) & (np.sum(p_top[..., :2] ** 2, axis=-1) <= radius**2), t_top, np.inf
    )
    top = t_top < t_side
    t = np.minimum(t_side, t_top)
    p = o + np.where(np.isfinite(t), t, 0.0)[..., None] * dirs
    side_normal = np.concatenate([p[..., :2] / radius, np.zeros_like(p[..., :1])], axis=-1)
    normal = np.where(top[..., None], np.array([0.0, 0.0, 1.0]), side_normal)
    return t, normal, top


def render_views(scene: _Scene, width: int, height: int) -> Iterator[dict[str, np.ndarray]]:
    """Every view of ``scene`` in order, ray cast on a few threads (numpy releases the GIL in its array work).

    At most ``2 * threads`` views are held at once, so memory stays bounded on large scenes; the result is the same
    as casting the views one after the other (each view is a pure function of the scene and its camera)."""
    threads = max(1, min(8, os.cpu_count() or 1))
    chunk = 2 * threads
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, len(scene.c2ws), chunk):
            c2ws = scene.c2ws[start : start + chunk]
            yield from pool.map(lambda c2w: _render_view(scene, c2w, width, height), c2ws)
