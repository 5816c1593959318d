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

The scene's content (``SceneSpec``, textures, object, camera rig) is in :mod:`.synthetic_scene`, the ray caster in
:mod:`.synthetic_render`; this module writes the views and their ground truth to disk.

Example::

    python -m spin_nerfstudio.data.synthetic /tmp/synthetic_scene --seed 0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt

from spin_nerfstudio.data.synthetic_render import pixel_rays, render_views
from spin_nerfstudio.data.synthetic_scene import (
    _FLOOR,
    _LIGHT_DIR,
    HORIZONTAL_FOV_DEG,
    SceneSpec,
    _sample_scene,
    _spec_json,
)


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
    for i, (c2w, view) in enumerate(zip(scene.c2ws, render_views(scene, spec.width, spec.height))):
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
