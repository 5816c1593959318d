"""The synthetic scene's content: its parameters (``SceneSpec``), textures, object, lighting and camera rig.

``_sample_scene`` draws every random quantity of a scene from its spec's seed; :mod:`.synthetic_render` ray casts
the sampled scene and :mod:`.synthetic` writes it to disk.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Optional, Tuple

import numpy as np

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
