"""Tests of the synthetic forward-facing scene generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spin_nerfstudio.data.synthetic import SceneSpec, load_ground_truth, make_scene

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = SceneSpec(num_views=4, width=64, height=48, seed=0)


@pytest.fixture(scope="module")
def default_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Render the default scene (seed 0, default spec) once for the module."""
    return make_scene(tmp_path_factory.mktemp("default_scene"), SceneSpec())


@pytest.fixture(scope="module")
def ground_truth(default_scene: Path) -> dict:
    """Load the ground truth arrays of the default scene."""
    return load_ground_truth(default_scene)


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _camera(transforms: dict, index: int) -> tuple[np.ndarray, float, float, float]:
    c2w = np.asarray(transforms["frames"][index]["transform_matrix"], dtype=np.float64)
    return c2w, float(transforms["fl_x"]), float(transforms["cx"]), float(transforms["cy"])


def _hsv(images: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> HSV with hue in degrees and saturation / value in [0, 1]."""
    hsv = np.stack([np.asarray(Image.fromarray(im).convert("HSV")) for im in images.reshape(-1, *images.shape[-3:])])
    hsv = hsv.reshape(images.shape).astype(np.float64)
    return np.stack([hsv[..., 0] * 360.0 / 256.0, hsv[..., 1] / 255.0, hsv[..., 2] / 255.0], axis=-1)


def test_layout_and_formats(default_scene: Path, ground_truth: dict) -> None:
    spec = SceneSpec()
    names = [f"{i:03d}.png" for i in range(spec.num_views)]
    assert ground_truth["names"] == names
    for sub in ("images", "background", "masks"):
        assert sorted(p.name for p in (default_scene / sub).iterdir()) == names
    for sub in ("depth", "depth_background"):
        assert sorted(p.name for p in (default_scene / sub).iterdir()) == [n.replace(".png", ".npy") for n in names]

    image = Image.open(default_scene / "images" / "000.png")
    assert image.mode == "RGB" and image.size == (spec.width, spec.height)
    assert Image.open(default_scene / "masks" / "000.png").mode == "L"
    assert set(np.unique(np.asarray(Image.open(default_scene / "masks" / "000.png")))) == {0, 255}
    depth = np.load(default_scene / "depth" / "000.npy")
    assert depth.dtype == np.float32 and depth.shape == (spec.height, spec.width)

    n, h, w = spec.num_views, spec.height, spec.width
    assert ground_truth["masks"].shape == (n, h, w) and ground_truth["masks"].dtype == bool
    assert ground_truth["background"].shape == (n, h, w, 3) and ground_truth["background"].dtype == np.uint8
    assert ground_truth["depth"].shape == (n, h, w) and ground_truth["depth"].dtype == np.float32
    # Every pixel hits the floor, the wall or the object: finite positive depth everywhere.
    for key in ("depth", "depth_background"):
        assert np.all(np.isfinite(ground_truth[key])) and np.all(ground_truth[key] > 0)
    # The object only ever occludes the background.
    assert np.all(ground_truth["depth"] <= ground_truth["depth_background"])
    assert np.all(
        ground_truth["depth"][~ground_truth["masks"]] == ground_truth["depth_background"][~ground_truth["masks"]]
    )

    transforms = json.loads((default_scene / "transforms.json").read_text())
    assert transforms["camera_model"] == "OPENCV"
    assert (transforms["w"], transforms["h"]) == (w, h)
    assert transforms["fl_x"] == transforms["fl_y"]
    fov = 2.0 * np.degrees(np.arctan(0.5 * w / transforms["fl_x"]))
    assert 45.0 < fov < 55.0
    assert [f["file_path"] for f in transforms["frames"]] == [f"images/{name}" for name in names]
    for frame in transforms["frames"]:
        c2w = np.asarray(frame["transform_matrix"])
        assert c2w.shape == (4, 4)
        np.testing.assert_allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-9)
        np.testing.assert_allclose(np.linalg.det(c2w[:3, :3]), 1.0, atol=1e-9)

    meta = json.loads((default_scene / "scene.json").read_text())
    assert meta["seed"] == 0 and meta["spec"]["num_views"] == n
    lo, hi = np.asarray(meta["object_bounds"]["min"]), np.asarray(meta["object_bounds"]["max"])
    np.testing.assert_allclose(meta["object_center"], (lo + hi) / 2.0)
    assert lo[2] == 0.0 and 0.3 < hi[0] - lo[0] < 0.6 and 0.4 < hi[2] - lo[2] < 0.65


def test_cameras_look_at_object(default_scene: Path) -> None:
    transforms = json.loads((default_scene / "transforms.json").read_text())
    meta = json.loads((default_scene / "scene.json").read_text())
    center = np.asarray(meta["object_center"])
    for index in range(len(transforms["frames"])):
        c2w, _, _, _ = _camera(transforms, index)
        position, forward = c2w[:3, 3], -c2w[:3, 2]
        to_object = (center - position) / np.linalg.norm(center - position)
        assert np.degrees(np.arccos(np.clip(forward @ to_object, -1, 1))) < 5.0
        assert 1.8 < np.linalg.norm(center - position) < 3.2
        assert abs(c2w[2, 0]) < 1e-9  # no roll: camera x axis stays horizontal


def test_deterministic(tmp_path: Path) -> None:
    first = _file_bytes(make_scene(tmp_path / "a", SMALL))
    second = _file_bytes(make_scene(tmp_path / "b", SMALL))
    assert first == second
    other = _file_bytes(make_scene(tmp_path / "c", SceneSpec(num_views=4, width=64, height=48, seed=1)))
    assert first.keys() == other.keys()
    for key in ("images/000.png", "background/000.png", "transforms.json", "scene.json", "poses_bounds.npy"):
        assert first[key] != other[key], key


def test_llff_optional(tmp_path: Path) -> None:
    out = make_scene(tmp_path / "scene", SceneSpec(num_views=2, width=48, height=36), llff=False)
    assert not (out / "poses_bounds.npy").exists()
    assert (out / "transforms.json").exists()


def test_object_coverage(ground_truth: dict) -> None:
    masks = ground_truth["masks"]
    coverage = masks.mean(axis=(1, 2))
    assert np.all(coverage >= 0.03) and np.all(coverage <= 0.25), coverage
    # Fully in frame: never touches the image border.
    assert not masks[:, 0].any() and not masks[:, -1].any()
    assert not masks[:, :, 0].any() and not masks[:, :, -1].any()


def test_masks_match_image_difference(ground_truth: dict) -> None:
    differs = np.any(ground_truth["images"] != ground_truth["background"], axis=-1)
    mismatch = np.mean(differs != ground_truth["masks"])
    assert mismatch < 1e-3


def test_object_colours_absent_from_background(ground_truth: dict) -> None:
    masks = ground_truth["masks"]
    hsv_obj = _hsv(ground_truth["images"])[masks]
    hsv_bg = _hsv(ground_truth["background"])

    def objectlike(hsv: np.ndarray) -> np.ndarray:
        """Saturated red / orange / yellow."""
        return (hsv[..., 1] > 0.5) & ((hsv[..., 0] < 70.0) | (hsv[..., 0] > 345.0))

    assert np.mean(objectlike(hsv_obj)) > 0.99
    assert not objectlike(hsv_bg).any()
    assert hsv_bg[..., 1].max() < 0.45
    # Backgrounds are textured, not constant.
    assert ground_truth["background"].reshape(-1, 3).std(axis=0).min() > 3.0


def test_depth_reprojection(default_scene: Path, ground_truth: dict) -> None:
    transforms = json.loads((default_scene / "transforms.json").read_text())
    c2w0, focal, cx, cy = _camera(transforms, 0)
    c2w1, _, _, _ = _camera(transforms, 1)
    depth0, depth1 = ground_truth["depth"][0].astype(np.float64), ground_truth["depth"][1].astype(np.float64)
    h, w = depth0.shape

    # Back-project pixel centres of view 0 (nerfstudio convention: OpenGL axes, pixel centre at +0.5).
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    cam = np.stack([(u - cx) / focal * depth0, -(v - cy) / focal * depth0, -depth0], axis=-1)
    world = cam @ c2w0[:3, :3].T + c2w0[:3, 3]

    # Project into view 1.
    local = (world - c2w1[:3, 3]) @ c2w1[:3, :3]
    z1 = -local[..., 2]
    u1 = focal * local[..., 0] / z1 + cx
    v1 = -focal * local[..., 1] / z1 + cy

    # Bilinear interpolation of inverse depth (exact on planes) at the projected positions.
    x, y = u1 - 0.5, v1 - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    inside = (z1 > 0) & (x0 >= 0) & (y0 >= 0) & (x0 < w - 1) & (y0 < h - 1)
    x0, y0, fx, fy = x0[inside], y0[inside], (x - np.floor(x))[inside], (y - np.floor(y))[inside]
    inv = 1.0 / depth1
    corners = np.stack([inv[y0, x0], inv[y0, x0 + 1], inv[y0 + 1, x0], inv[y0 + 1, x0 + 1]])
    smooth = corners.max(axis=0) / corners.min(axis=0) < 1.02  # skip samples straddling depth edges
    interp = (1 - fy) * ((1 - fx) * corners[0] + fx * corners[1]) + fy * ((1 - fx) * corners[2] + fx * corners[3])
    sampled = 1.0 / interp[smooth]
    projected = z1[inside][smooth]
    rel = np.abs(projected - sampled) / sampled

    assert inside.mean() > 0.7 and smooth.mean() > 0.9
    # Most of view 0 is seen by view 1 at the same depth; the rest is hidden behind the object, never in front.
    assert np.mean(rel < 0.01) > 0.95
    assert np.median(rel) < 1e-3
    assert np.all(projected > sampled * (1 - 0.02))


def test_poses_bounds_roundtrip(default_scene: Path, ground_truth: dict) -> None:
    transforms = json.loads((default_scene / "transforms.json").read_text())
    poses_bounds = np.load(default_scene / "poses_bounds.npy")
    n = len(transforms["frames"])
    assert poses_bounds.shape == (n, 17)
    poses = poses_bounds[:, :15].reshape(n, 3, 5)
    bounds = poses_bounds[:, 15:]
    # LLFF columns are [down, right, back]; OpenGL is [right, up, back].
    c2w_gl = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:4]], axis=2)
    expected = np.stack([np.asarray(f["transform_matrix"])[:3] for f in transforms["frames"]])
    np.testing.assert_allclose(c2w_gl, expected, atol=1e-9)
    np.testing.assert_allclose(poses[:, :, 4], np.tile([transforms["h"], transforms["w"], transforms["fl_x"]], (n, 1)))
    assert np.all(bounds[:, 0] < ground_truth["depth"].reshape(n, -1).min(axis=1))
    assert np.all(bounds[:, 1] > ground_truth["depth_background"].reshape(n, -1).max(axis=1))
    assert np.all(bounds[:, 0] > 0)


def test_prompt_click_inside_object(default_scene: Path, ground_truth: dict) -> None:
    prompts = json.loads((default_scene / "prompts.json").read_text())["prompts"]
    assert len(prompts) == 1 and prompts[0]["image"] == "000.png"
    mask = ground_truth["masks"][0]
    (x, y), *_ = prompts[0]["positive"]
    assert mask[y, x]
    # Well inside: a 5x5 neighbourhood is all object.
    assert mask[y - 2 : y + 3, x - 2 : x + 3].all()
    for nx, ny in prompts[0]["negative"]:
        assert not mask[max(ny - 10, 0) : ny + 11, max(nx - 10, 0) : nx + 11].any()

    meta = json.loads((default_scene / "scene.json").read_text())
    assert meta["click"]["pixel"] == [x, y]
    lo, hi = np.asarray(meta["object_bounds"]["min"]), np.asarray(meta["object_bounds"]["max"])
    point = np.asarray(meta["click"]["point"])
    assert np.all(point >= lo - 1e-5) and np.all(point <= hi + 1e-5)


def test_shipped_demo_prompts_match_default_scene(default_scene: Path) -> None:
    shipped = json.loads((REPO_ROOT / "configs" / "demo_prompts.json").read_text())
    generated = json.loads((default_scene / "prompts.json").read_text())
    assert shipped == generated


def test_nerfstudio_reads_scene_with_matching_rays(default_scene: Path) -> None:
    """The transforms.json camera convention agrees with nerfstudio's own ray generation."""
    torch = pytest.importorskip("torch")
    cameras_module = pytest.importorskip("nerfstudio.cameras.cameras")
    parser_module = pytest.importorskip("nerfstudio.data.dataparsers.nerfstudio_dataparser")
    from spin_nerfstudio.data.synthetic_render import pixel_rays

    transforms = json.loads((default_scene / "transforms.json").read_text())
    c2w, focal, cx, cy = _camera(transforms, 3)
    cameras = cameras_module.Cameras(
        camera_to_worlds=torch.tensor(c2w[None, :3], dtype=torch.float32),
        fx=focal,
        fy=float(transforms["fl_y"]),
        cx=cx,
        cy=cy,
        width=transforms["w"],
        height=transforms["h"],
        camera_type=cameras_module.CameraType.PERSPECTIVE,
    )
    rays = cameras.generate_rays(camera_indices=0)
    ours = pixel_rays(c2w, focal, cx, cy, transforms["w"], transforms["h"])
    ours = ours / np.linalg.norm(ours, axis=-1, keepdims=True)
    np.testing.assert_allclose(rays.directions.numpy(), ours, atol=1e-5)
    np.testing.assert_allclose(rays.origins.numpy(), np.broadcast_to(c2w[:3, 3], ours.shape), atol=1e-5)

    outputs = parser_module.NerfstudioDataParserConfig(data=default_scene).setup().get_dataparser_outputs("train")
    assert 0 < len(outputs.image_filenames) <= len(transforms["frames"])
