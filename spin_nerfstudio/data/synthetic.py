"""Deterministic synthetic forward-facing capture with one removable object.

The scene is rendered by analytic ray casting in numpy (no torch needed). World coordinates have z pointing up:

* a textured floor plane ``z = 0``;
* a textured back wall plane ``y = wall_y`` behind the object;
* one axis-aligned box standing on the floor near the origin, painted in saturated red / orange / yellow colours
  that never occur in the (muted, low-saturation) background textures;
* a forward-facing rig of pinhole cameras on a jittered grid in front of the object, all looking at it.

Every view is rendered twice, with and without the object, which yields exact ground truth for object removal:
object masks, background images and depth maps. The output folder is readable both as a nerfstudio dataset
(``transforms.json``) and as an LLFF dataset (``poses_bounds.npy`` + ``images/``).

Example::

    python -m spin_nerfstudio.data.synthetic /tmp/synthetic_scene --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt

# Horizontal field of view of every camera, in degrees.
HORIZONTAL_FOV_DEG = 50.0

# Surface ids returned by the ray caster.
_FLOOR, _WALL, _OBJECT = 0, 1, 2

# Muted (low saturation) palettes of the background textures.
_FLOOR_PALETTE = np.array(
    [
        [0.44, 0.52, 0.40],  # moss green
        [0.55, 0.55, 0.53],  # warm grey
        [0.42, 0.48, 0.57],  # slate blue
        [0.53, 0.47, 0.40],  # earth brown
    ]
)
_WALL_PALETTE = np.array(
    [
        [0.70, 0.67, 0.60],  # beige
        [0.57, 0.62, 0.69],  # pale blue grey
        [0.56, 0.62, 0.56],  # grey green
        [0.66, 0.66, 0.66],  # light grey
    ]
)

# Saturated object colours (hues between red and yellow).
_OBJECT_SIDE = np.array([0.86, 0.10, 0.05])  # red
_OBJECT_STRIPE = np.array([0.98, 0.82, 0.06])  # yellow
_OBJECT_TOP = np.array([0.98, 0.47, 0.05])  # orange
# Other object palettes (side, stripe, top) for varied scenes; "warm" is the default above.
_OBJECT_PALETTES = {
    "warm": (_OBJECT_SIDE, _OBJECT_STRIPE, _OBJECT_TOP),
    "cool": (np.array([0.10, 0.30, 0.90]), np.array([0.05, 0.85, 0.90]), np.array([0.55, 0.15, 0.85])),
    "green": (np.array([0.10, 0.70, 0.15]), np.array([0.85, 0.90, 0.10]), np.array([0.05, 0.45, 0.10])),
}
SHAPES = ("box", "cylinder", "sphere")
TEXTURES = ("smooth", "tiles", "stripes", "checker")
"""Background textures: smooth blends only (the default), or a sharp high-frequency pattern over them."""

# Direction towards the light (upper left, in front of the object), and the ambient term of the shading.
_LIGHT_DIR = np.array([-0.5, -0.7, 0.9]) / np.linalg.norm([-0.5, -0.7, 0.9])
_AMBIENT = 0.35


@dataclass
class SceneSpec:
    """Parameters of a generated scene."""

    num_views: int = 24
    """Number of camera views rendered."""
    width: int = 120
    """Image width in pixels."""
    height: int = 90
    """Image height in pixels."""
    seed: int = 0
    """Random seed controlling textures, object placement and camera jitter."""
    shape: str = "box"
    """Object shape: box, cylinder (vertical) or sphere, standing on the floor."""
    object_palette: str = "warm"
    """Object colours: warm (red, yellow stripe, orange top), cool (blue, cyan, violet) or green."""
    object_scale: float = 1.0
    """Object size relative to the default (a box of about 0.44 x 0.44 x 0.52)."""
    object_offset: Tuple[float, float] = (0.0, 0.0)
    """Shift of the object on the floor (x, y) in world units; the cameras keep looking at the unshifted spot."""
    partial_views: int = 0
    """How many of the last views are aimed beside the object, so that it is partly or wholly out of frame."""
    texture: str = "smooth"
    """Background texture: smooth (low-frequency colour blends, the default), or one of tiles (square tiles with dark
    grout lines), stripes or checker laid sharply over them on the floor and the wall (a few pixels per period), so
    that blur and misplaced geometry cost what they cost on real captures. The pattern's period, angle and contrast
    follow the seed (a separate random stream: the rest of the scene is as for ``texture="smooth"``)."""


def varied_spec(seed: int, num_views: int = 16, width: int = 96, height: int = 72) -> SceneSpec:
    """A scene spec whose object shape, colours, size and position, and 2 or 3 partly-out-of-frame views, follow
    ``seed`` (drawn from a stream separate from the scene's own, so the rest of the scene is as for ``seed``)."""
    rng = np.random.default_rng([seed, 7919])
    return SceneSpec(
        num_views=num_views,
        width=width,
        height=height,
        seed=seed,
        shape=str(SHAPES[int(rng.integers(len(SHAPES)))]),
        object_palette=str(sorted(_OBJECT_PALETTES)[int(rng.integers(len(_OBJECT_PALETTES)))]),
        object_scale=float(rng.uniform(0.7, 1.25)),
        object_offset=(float(rng.uniform(-0.25, 0.25)), float(rng.uniform(-0.2, 0.2))),
        partial_views=int(rng.integers(2, 4)),
    )


def _spec_json(spec: SceneSpec) -> dict:
    """The spec for scene.json: the variation fields only where they differ from the defaults."""
    default = SceneSpec()
    base = ("num_views", "width", "height", "seed")
    out = asdict(spec)
    return {
        f.name: out[f.name] for f in fields(spec) if f.name in base or getattr(spec, f.name) != getattr(default, f.name)
    }


@dataclass
class _Texture:
    """Smooth procedural colour field: a softmax blend of palette colours driven by random-phase sinusoids."""

    palette: np.ndarray
    """(K, 3) palette colours in [0, 1]."""
    directions: np.ndarray
    """(K, M, 2) unit wave directions, M sinusoids per palette colour."""
    frequencies: np.ndarray
    """(K, M) spatial frequencies in cycles per world unit."""
    phases: np.ndarray
    """(K, M) phases in radians."""
    amplitudes: np.ndarray
    """(K, M) amplitudes."""
    sharpness: float = 2.0
    """Softmax sharpness; larger values give more distinct patches."""

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Evaluate the colour at plane coordinates (a, b); returns an array of shape a.shape + (3,)."""
        coords = np.stack([a, b], axis=-1)[..., None, None, :]  # (..., 1, 1, 2)
        arg = 2.0 * np.pi * self.frequencies * np.sum(coords * self.directions, axis=-1) + self.phases
        fields = np.sum(self.amplitudes * np.sin(arg), axis=-1)  # (..., K)
        logits = self.sharpness * fields
        logits -= logits.max(axis=-1, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(axis=-1, keepdims=True)
        return weights @ self.palette


@dataclass
class _Pattern:
    """A sharp periodic pattern that darkens the background colour where it is 1."""

    kind: str
    """One of ``TEXTURES`` except smooth."""
    period: float
    """Period in world units."""
    angle: float
    """Rotation of the pattern in its plane, radians."""
    offset: Tuple[float, float]
    """Shift of the pattern in world units."""
    contrast: float
    """Share of the colour removed where the pattern is 1."""

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Colour multiplier at plane coordinates (a, b), shape a.shape + (1,)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        u = (c * a - s * b + self.offset[0]) / self.period
        v = (s * a + c * b + self.offset[1]) / self.period
        fu, fv = u - np.floor(u), v - np.floor(v)
        if self.kind == "stripes":
            on = fu < 0.5
        elif self.kind == "checker":
            on = (np.floor(u) + np.floor(v)) % 2 == 1
        else:  # tiles: grout lines 12% of the period wide
            on = (fu < 0.12) | (fv < 0.12)
        return (1.0 - self.contrast * on.astype(np.float64))[..., None]


def _make_pattern(spec: "SceneSpec") -> Optional[Tuple[_Pattern, _Pattern]]:
    """Floor and wall patterns of ``spec.texture`` (None for smooth), from a random stream of their own."""
    if spec.texture == "smooth":
        return None
    if spec.texture not in TEXTURES:
        raise ValueError(f"unknown texture {spec.texture!r} (expected one of {', '.join(TEXTURES)})")
    rng = np.random.default_rng([spec.seed, 3571])
    base = {"tiles": 0.2, "stripes": 0.08, "checker": 0.12}[spec.texture]
    return tuple(  # type: ignore[return-value]
        _Pattern(
            spec.texture,
            period=float(base * rng.uniform(0.8, 1.25)),
            angle=float(rng.uniform(0.0, np.pi)),
            offset=(float(rng.uniform(0, 1)), float(rng.uniform(0, 1))),
            contrast=float(rng.uniform(0.3, 0.45)),
        )
        for _ in range(2)
    )


@dataclass
class _Scene:
    """Sampled scene content."""

    floor: _Texture
    wall: _Texture
    wall_y: float
    box_min: np.ndarray
    box_max: np.ndarray
    stripe_z: tuple[float, float]
    c2ws: np.ndarray
    """(N, 4, 4) camera-to-world matrices, OpenGL axes (x right, y up, looking down -z)."""
    focal: float
    cx: float
    cy: float
    shape: str = "box"
    """Object shape (see ``SceneSpec.shape``)."""
    palette: tuple = (_OBJECT_SIDE, _OBJECT_STRIPE, _OBJECT_TOP)
    """Object colours: side, stripe, top."""
    patterns: Optional[Tuple[_Pattern, _Pattern]] = None
    """Sharp floor and wall patterns (None: smooth textures only)."""


def _make_texture(rng: np.random.Generator, palette: np.ndarray, waves: int = 3) -> _Texture:
    """Sample a smooth low-frequency texture over a slightly perturbed copy of ``palette``."""
    k = palette.shape[0]
    angles = rng.uniform(0.0, 2.0 * np.pi, size=(k, waves))
    return _Texture(
        palette=np.clip(palette + rng.uniform(-0.03, 0.03, size=palette.shape), 0.0, 1.0),
        directions=np.stack([np.cos(angles), np.sin(angles)], axis=-1),
        frequencies=rng.uniform(0.3, 1.0, size=(k, waves)),
        phases=rng.uniform(0.0, 2.0 * np.pi, size=(k, waves)),
        amplitudes=rng.uniform(0.5, 1.0, size=(k, waves)),
    )


def _look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world matrix (OpenGL axes) of a camera at ``position`` looking at ``target`` with world z up."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right = right / np.linalg.norm(right)
    up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0] = right
    c2w[:3, 1] = up
    c2w[:3, 2] = -forward
    c2w[:3, 3] = position
    return c2w


def _sample_scene(spec: SceneSpec) -> _Scene:
    """Draw all random scene quantities from ``spec.seed``."""
    rng = np.random.default_rng(spec.seed)
    floor = _make_texture(rng, _FLOOR_PALETTE)
    wall = _make_texture(rng, _WALL_PALETTE)
    wall_y = 1.5 + rng.uniform(-0.1, 0.1)

    # Box of about 0.44 x 0.44 x 0.52 standing on the floor near the origin.
    center_xy = rng.uniform(-0.05, 0.05, size=2)
    half_xy = 0.22 * rng.uniform(0.95, 1.05, size=2)
    box_height = 0.52 * rng.uniform(0.95, 1.05)
    box_min = np.array([center_xy[0] - half_xy[0], center_xy[1] - half_xy[1], 0.0])
    box_max = np.array([center_xy[0] + half_xy[0], center_xy[1] + half_xy[1], box_height])
    stripe_mid = box_height * rng.uniform(0.45, 0.55)
    stripe_z = (stripe_mid - 0.05, stripe_mid + 0.05)
    look_height = box_height
    if spec.object_scale != 1.0 or tuple(spec.object_offset) != (0.0, 0.0):
        centre = center_xy + np.asarray(spec.object_offset, dtype=np.float64)
        half, box_height = half_xy * spec.object_scale, box_height * spec.object_scale
        box_min = np.array([centre[0] - half[0], centre[1] - half[1], 0.0])
        box_max = np.array([centre[0] + half[0], centre[1] + half[1], box_height])
        stripe_mid *= spec.object_scale
        stripe_z = (stripe_mid - 0.05 * spec.object_scale, stripe_mid + 0.05 * spec.object_scale)
    aside = np.random.default_rng([spec.seed, 104729])  # separate stream: the default scene stays unchanged

    # Jittered grid of camera centres about 2.3 units in front of the object.
    cols = max(1, math.ceil(math.sqrt(spec.num_views * 1.5)))
    rows = math.ceil(spec.num_views / cols)
    xs = np.linspace(-0.8, 0.8, cols) if cols > 1 else np.zeros(1)
    zs = np.linspace(1.3, 0.7, rows) if rows > 1 else np.ones(1)
    dx = 1.6 / max(cols - 1, 1)
    dz = 0.6 / max(rows - 1, 1)
    look_center = np.array([center_xy[0], center_xy[1], 0.45 * look_height])
    c2ws = []
    for i in range(spec.num_views):
        r, c = divmod(i, cols)
        position = np.array(
            [
                xs[c] + rng.uniform(-0.2, 0.2) * dx,
                -2.3 + rng.uniform(-0.1, 0.1),
                zs[r] + rng.uniform(-0.2, 0.2) * dz,
            ]
        )
        target = look_center + rng.uniform(-0.04, 0.04, size=3)
        if i >= spec.num_views - spec.partial_views:
            # Aim beside the object, alternating sides: it lands on the image border.
            forward = (target - position) / np.linalg.norm(target - position)
            right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
            side = 1.0 if (spec.num_views - i) % 2 else -1.0
            target = target + side * aside.uniform(0.85, 1.1) * right / np.linalg.norm(right)
        c2ws.append(_look_at(position, target))

    focal = 0.5 * spec.width / math.tan(math.radians(HORIZONTAL_FOV_DEG) / 2.0)
    return _Scene(
        floor=floor,
        wall=wall,
        wall_y=float(wall_y),
        box_min=box_min,
        box_max=box_max,
        stripe_z=(float(stripe_z[0]), float(stripe_z[1])),
        shape=spec.shape,
        palette=_OBJECT_PALETTES[spec.object_palette],
        patterns=_make_pattern(spec),
        c2ws=np.stack(c2ws),
        focal=float(focal),
        cx=spec.width / 2.0,
        cy=spec.height / 2.0,
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


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Quantise a float image in [0, 1] to uint8."""
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def interior_distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (pixels) from each mask pixel to the nearest pixel outside the mask (or the image).

    Exact brute force over the outer boundary, which is enough because the nearest outside pixel is always
    4-adjacent to a mask pixel. Pixels outside the mask get 0.
    """
    padded = np.pad(mask.astype(bool), 1)
    grown = padded.copy()
    grown[1:, :] |= padded[:-1, :]
    grown[:-1, :] |= padded[1:, :]
    grown[:, 1:] |= padded[:, :-1]
    grown[:, :-1] |= padded[:, 1:]
    boundary = np.argwhere(grown & ~padded).astype(np.float64) - 1.0
    inside = np.argwhere(mask)
    dist = np.zeros(mask.shape, dtype=np.float64)
    if len(inside) == 0:
        return dist
    best = np.empty(len(inside))
    chunk = max(1, 2_000_000 // max(len(boundary), 1))
    for start in range(0, len(inside), chunk):
        pts = inside[start : start + chunk].astype(np.float64)
        d2 = ((pts[:, None, :] - boundary[None, :, :]) ** 2).sum(axis=-1)
        best[start : start + chunk] = np.sqrt(d2.min(axis=1))
    dist[inside[:, 0], inside[:, 1]] = best
    return dist


def _demo_prompts(mask: np.ndarray, surface: np.ndarray) -> tuple[list[int], list[int]]:
    """Positive click deep inside the object mask and a negative click on the floor far from the object.

    Returns ``([x, y], [x, y])`` integer pixel coordinates (x right, y down).
    """
    dist = interior_distance(mask)
    row, col = np.unravel_index(int(np.argmax(dist)), mask.shape)
    positive = [int(col), int(row)]

    height, width = mask.shape
    margin_r, margin_c = max(1, height // 10), max(1, width // 10)
    candidates = surface == _FLOOR
    candidates[:margin_r] = candidates[-margin_r:] = False
    candidates[:, :margin_c] = candidates[:, -margin_c:] = False
    rr, cc = np.nonzero(candidates)
    if len(rr) == 0:
        candidates = surface == _FLOOR
        rr, cc = np.nonzero(candidates)
    # distance of every pixel to the nearest object pixel (exact Euclidean; memory linear in the pixels)
    to_object = distance_transform_edt(~mask.astype(bool))
    k = int(np.argmax(to_object[rr, cc]))
    negative = [int(cc[k]), int(rr[k])]
    return positive, negative


def _write_json(path: Path, data: Any) -> None:
    """Write JSON deterministically."""
    path.write_text(json.dumps(data, indent=2) + "\n")


def _llff_poses_bounds(c2ws: np.ndarray, height: int, width: int, focal: float, bounds: np.ndarray) -> np.ndarray:
    """Build the (N, 17) LLFF array from OpenGL camera-to-world matrices and per-view (near, far) bounds."""
    rows = []
    for c2w, (near, far) in zip(c2ws, bounds):
        right, up, back, position = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3]
        mat = np.stack([-up, right, back, position, np.array([height, width, focal])], axis=1)  # (3, 5)
        rows.append(np.concatenate([mat.reshape(-1), [near, far]]))
    return np.asarray(rows, dtype=np.float64)


def _render_views(scene: _Scene, width: int, height: int) -> Iterator[dict[str, np.ndarray]]:
    """Every view of ``scene`` in order, ray cast on a few threads (numpy releases the GIL in its array work).

    At most ``2 * threads`` views are held at once, so memory stays bounded on large scenes; the result is the same
    as casting the views one after the other (each view is a pure function of the scene and its camera)."""
    threads = max(1, min(8, os.cpu_count() or 1))
    chunk = 2 * threads
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, len(scene.c2ws), chunk):
            c2ws = scene.c2ws[start : start + chunk]
            yield from pool.map(lambda c2w: _render_view(scene, c2w, width, height), c2ws)


def make_scene(out_dir: Path, spec: SceneSpec | None = None, llff: bool = True) -> Path:
    """Render the synthetic scene into ``out_dir`` and return ``out_dir``.

    Writes ``images/``, ``background/``, ``masks/``, ``depth/``, ``depth_background/`` (one file per view, named
    ``000``, ``001``, ...), ``transforms.json`` (nerfstudio format), ``scene.json`` (metadata), ``prompts.json``
    (demo click on the object in view 000) and, if ``llff`` is true, ``poses_bounds.npy`` (LLFF format).

    Args:
        out_dir: output folder, created if needed.
        spec: scene parameters; defaults to ``SceneSpec()``.
        llff: also write ``poses_bounds.npy``.

    Returns:
        ``out_dir`` as a Path.
    """
    spec = SceneSpec() if spec is None else spec
    if spec.num_views < 1 or spec.width < 16 or spec.height < 16:
        raise ValueError(f"invalid scene spec: {spec}")
    out_dir = Path(out_dir)
    scene = _sample_scene(spec)
    digits = max(3, len(str(spec.num_views - 1)))
    for sub in ("images", "background", "masks", "depth", "depth_background"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)

    frames = []
    bounds = np.zeros((spec.num_views, 2))
    prompts: dict[str, Any] = {"prompts": []}
    click_point: list[float] = []
    positive: list[int] = []
    for i, (c2w, view) in enumerate(zip(scene.c2ws, _render_views(scene, spec.width, spec.height))):
        name = f"{i:0{digits}d}"
        mask = view["mask"]
        partial = i >= spec.num_views - spec.partial_views
        if not partial and (not mask.any() or mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()):
            raise RuntimeError(f"object not fully inside view {name}")
        Image.fromarray(_to_uint8(view["rgb"])).save(out_dir / "images" / f"{name}.png")
        Image.fromarray(_to_uint8(view["rgb_bg"])).save(out_dir / "background" / f"{name}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(out_dir / "masks" / f"{name}.png")
        np.save(out_dir / "depth" / f"{name}.npy", view["depth"])
        np.save(out_dir / "depth_background" / f"{name}.npy", view["depth_bg"])
        bounds[i] = (0.9 * float(view["depth"].min()), 1.1 * float(view["depth_bg"].max()))
        frames.append({"file_path": f"images/{name}.png", "transform_matrix": c2w.tolist()})
        if i == 0:
            positive, negative = _demo_prompts(mask, view["surface"])
            prompts["prompts"].append({"image": f"{name}.png", "positive": [positive], "negative": [negative]})
            ray = pixel_rays(c2w, scene.focal, scene.cx, scene.cy, spec.width, spec.height)[positive[1], positive[0]]
            click_point = (c2w[:3, 3] + float(view["depth"][positive[1], positive[0]]) * ray).tolist()

    transforms = {
        "camera_model": "OPENCV",
        "fl_x": scene.focal,
        "fl_y": scene.focal,
        "cx": scene.cx,
        "cy": scene.cy,
        "w": spec.width,
        "h": spec.height,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "frames": frames,
    }
    _write_json(out_dir / "transforms.json", transforms)
    _write_json(out_dir / "prompts.json", prompts)
    _write_json(
        out_dir / "scene.json",
        {
            "seed": spec.seed,
            "spec": _spec_json(spec),
            "object_bounds": {"min": scene.box_min.tolist(), "max": scene.box_max.tolist()},
            "object_center": ((scene.box_min + scene.box_max) / 2.0).tolist(),
            "wall_y": scene.wall_y,
            "light_direction": _LIGHT_DIR.tolist(),
            "horizontal_fov_deg": HORIZONTAL_FOV_DEG,
            "click": {"image": prompts["prompts"][0]["image"], "pixel": positive, "point": click_point},
        },
    )
    if llff:
        np.save(
            out_dir / "poses_bounds.npy", _llff_poses_bounds(scene.c2ws, spec.height, spec.width, scene.focal, bounds)
        )
    return out_dir


def load_ground_truth(scene_dir: Path) -> dict[str, Any]:
    """Load the ground truth written by :func:`make_scene`.

    Returns:
        Dict with ``names`` (list of image file names, sorted), ``masks`` (N, H, W) bool, ``background`` (N, H, W, 3)
        uint8, ``depth`` (N, H, W) float32 with the object, plus for convenience ``images`` (N, H, W, 3) uint8 and
        ``depth_background`` (N, H, W) float32.
    """
    scene_dir = Path(scene_dir)
    names = sorted(p.name for p in (scene_dir / "images").glob("*.png"))
    stems = [Path(n).stem for n in names]
    return {
        "names": names,
        "masks": np.stack([np.asarray(Image.open(scene_dir / "masks" / n)) > 127 for n in names]),
        "background": np.stack([np.asarray(Image.open(scene_dir / "background" / n).convert("RGB")) for n in names]),
        "images": np.stack([np.asarray(Image.open(scene_dir / "images" / n).convert("RGB")) for n in names]),
        "depth": np.stack([np.load(scene_dir / "depth" / f"{s}.npy") for s in stems]).astype(np.float32),
        "depth_background": np.stack([np.load(scene_dir / "depth_background" / f"{s}.npy") for s in stems]).astype(
            np.float32
        ),
    }


def main() -> None:
    """Command line entry point: render a scene into a folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    defaults = SceneSpec()
    parser.add_argument("--num-views", type=int, default=defaults.num_views)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--no-llff", action="store_true", help="do not write poses_bounds.npy")
    args = parser.parse_args()
    spec = SceneSpec(num_views=args.num_views, width=args.width, height=args.height, seed=args.seed)
    print(make_scene(args.out_dir, spec, llff=not args.no_llff))


if __name__ == "__main__":
    main()
