"""Tests of lifting clicks and masks to 3D and projecting them into other views, on a generated scene."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType

from spin_nerfstudio.data.synthetic import SceneSpec, load_ground_truth, make_scene
from spin_nerfstudio.segmentation.propagate import (
    PinholeView,
    dilate,
    fill_holes,
    lift,
    splat_mask,
    visible_projection,
)

SPEC = SceneSpec(num_views=6, width=64, height=48, seed=0)


class Scene:
    """A generated scene read back as PinholeViews, with ray-distance depth maps."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gt = load_ground_truth(root)
        tf = json.loads((root / "transforms.json").read_text())
        self.transforms = tf
        self.views: List[PinholeView] = [
            PinholeView(
                c2w=np.asarray(frame["transform_matrix"], dtype=np.float64)[:3],
                fx=float(tf["fl_x"]),
                fy=float(tf["fl_y"]),
                cx=float(tf["cx"]),
                cy=float(tf["cy"]),
                width=int(tf["w"]),
                height=int(tf["h"]),
            )
            for frame in tf["frames"]
        ]
        self.depth = [ray_distance(v, z) for v, z in zip(self.views, self.gt["depth"])]
        self.depth_bg = [ray_distance(v, z) for v, z in zip(self.views, self.gt["depth_background"])]


def pixel_grid(view: PinholeView) -> np.ndarray:
    """(H*W, 2) integer pixel coordinates (x, y) in row-major order."""
    ys, xs = np.mgrid[: view.height, : view.width]
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def ray_distance(view: PinholeView, z_depth: np.ndarray) -> np.ndarray:
    """Convert the generator's z-depth to distance along each unit ray (what our functions take)."""
    cos = view.rays(pixel_grid(view)) @ (-view.c2w[:, 2])
    return (z_depth.ravel() / cos).reshape(z_depth.shape)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return Scene(make_scene(tmp_path_factory.mktemp("propagate_scene"), SPEC, llff=False))


def test_rays_match_nerfstudio(scene: Scene) -> None:
    tf = scene.transforms
    c2ws = torch.tensor(np.stack([v.c2w for v in scene.views[:2]]), dtype=torch.float32)
    cameras = Cameras(
        camera_to_worlds=c2ws,
        fx=float(tf["fl_x"]),
        fy=float(tf["fl_y"]),
        cx=float(tf["cx"]),
        cy=float(tf["cy"]),
        width=int(tf["w"]),
        height=int(tf["h"]),
        camera_type=CameraType.PERSPECTIVE,
    )
    for i in range(2):
        view = PinholeView.from_cameras(cameras, i)
        assert (view.width, view.height) == (SPEC.width, SPEC.height)
        assert view.fx == pytest.approx(tf["fl_x"], rel=1e-6) and view.cy == pytest.approx(tf["cy"])
        np.testing.assert_allclose(view.c2w, scene.views[i].c2w, atol=1e-6)
        bundle = cameras.generate_rays(camera_indices=i)  # (H, W) rays through pixel centres
        directions = bundle.directions.numpy()
        origins = bundle.origins.numpy()
        pixels = np.array([[0, 0], [63, 0], [0, 47], [63, 47], [31, 23], [10, 40]])
        ours = view.rays(pixels)
        np.testing.assert_allclose(np.linalg.norm(ours, axis=-1), 1.0, atol=1e-12)
        np.testing.assert_allclose(ours, directions[pixels[:, 1], pixels[:, 0]], atol=1e-5)
        np.testing.assert_allclose(view.origin, origins[0, 0], atol=1e-6)


def test_rays_match_generator_pixel_centres(scene: Scene) -> None:
    # The generator's (un-normalised) rays hit the rendered depth: ours must be the same directions.
    from spin_nerfstudio.data.synthetic_render import pixel_rays

    view = scene.views[3]
    ref = pixel_rays(view.c2w, view.fx, view.cx, view.cy, view.width, view.height).reshape(-1, 3)
    ref /= np.linalg.norm(ref, axis=-1, keepdims=True)
    np.testing.assert_allclose(view.rays(pixel_grid(view)), ref, atol=1e-12)


def test_project_inverts_lift(scene: Scene) -> None:
    view, depth = scene.views[2], scene.depth[2]
    rng = np.random.default_rng(0)
    xy = np.concatenate([pixel_grid(view)[::7].astype(np.float64), rng.uniform([0, 0], [64, 48], size=(50, 2))])
    points, t = lift(view, xy, depth)
    np.testing.assert_allclose(t, depth[np.floor(xy[:, 1]).astype(int), np.floor(xy[:, 0]).astype(int)])
    back, z, dist = view.project(points)
    np.testing.assert_allclose(back, xy, atol=1e-9)
    np.testing.assert_allclose(dist, t, rtol=1e-9)
    # the forward (z) depth of lifted pixel centres is the generator's z-depth
    centres = pixel_grid(view)
    _, z, _ = view.project(lift(view, centres, depth)[0])
    np.testing.assert_allclose(z, scene.gt["depth"][2].ravel(), rtol=1e-5)


def test_click_lifts_to_the_generated_point(scene: Scene) -> None:
    meta = json.loads((scene.root / "scene.json").read_text())
    x, y = meta["click"]["pixel"]
    point, _ = lift(scene.views[0], np.array([[x, y]]), scene.depth[0])
    np.testing.assert_allclose(point[0], meta["click"]["point"], atol=1e-5)


def test_mask_propagates_to_another_view(scene: Scene) -> None:
    ys, xs = np.nonzero(scene.gt["masks"][0])
    points, _ = lift(scene.views[0], np.stack([xs, ys], axis=-1), scene.depth[0])
    for target in (1, 3):
        px, py, sel = visible_projection(scene.views[target], points, scene.depth[target])
        assert sel.mean() > 0.8
        splat = splat_mask(px, py, SPEC.height, SPEC.width)
        assert iou(splat, scene.gt["masks"][target]) > 0.8


def test_points_behind_the_surface_are_rejected(scene: Scene) -> None:
    source, target = scene.views[0], scene.views[1]
    background = ~dilate(scene.gt["masks"][0], 3, 2)
    ys, xs = np.nonzero(background)
    points, t = lift(source, np.stack([xs, ys], axis=-1), scene.depth[0])
    on_surface = visible_projection(target, points, scene.depth[1])[2]
    pushed = source.origin + source.rays(np.stack([xs, ys], axis=-1)) * (1.2 * t)[:, None]
    behind = visible_projection(target, pushed, scene.depth[1])[2]
    assert on_surface.mean() > 0.6  # the rest is out of the target frame or hidden by the object
    assert behind.mean() < 0.02
    # in the source view itself, everything pushed back is hidden, everything on the surface is seen
    assert not visible_projection(source, pushed, scene.depth[0])[2].any()
    assert visible_projection(source, points, scene.depth[0])[2].all()


def test_visibility_tolerance_is_relative() -> None:
    view = PinholeView(c2w=np.eye(4)[:3], fx=10.0, fy=10.0, cx=5.0, cy=5.0, width=10, height=10)
    depth = np.full((10, 10), 2.0)
    ray = view.rays(np.array([[4.0, 4.0]]))[0]
    pts = np.stack([ray * 2.0 * 1.04, ray * 2.0 * 1.06])
    assert visible_projection(view, pts, depth, tolerance=0.05)[2].tolist() == [True, False]
    assert visible_projection(view, pts, depth, tolerance=0.1)[2].tolist() == [True, True]


def test_points_outside_the_frame_are_dropped() -> None:
    view = PinholeView(c2w=np.eye(4)[:3], fx=20.0, fy=20.0, cx=8.0, cy=6.0, width=16, height=12)
    depth = np.full((12, 16), 100.0)
    # pixel-index coordinates: rounding to the nearest pixel keeps [-0.5, W - 0.5)
    xy = np.array(
        [[-0.45, 3], [-0.55, 3], [15.45, 3], [15.55, 3], [3, -0.45], [3, -0.55], [3, 11.45], [3, 11.55], [-40, -40]]
    )
    points = view.origin + view.rays(xy) * 5.0
    behind_camera = np.array([[0.0, 0.0, 5.0]])  # camera looks down -z
    xs, ys, sel = visible_projection(view, np.concatenate([points, behind_camera]), depth)
    assert sel.tolist() == [True, False, True, False, True, False, True, False, False, False]
    assert xs.tolist() == [0, 15, 3, 3] and ys.tolist() == [3, 3, 0, 11]


def test_splat_mask_closes_sparse_points() -> None:
    ys, xs = np.mgrid[10:30:2, 5:25:2]  # every other pixel of a 20x20 square
    mask = splat_mask(xs.ravel(), ys.ravel(), 40, 40)
    expected = np.zeros((40, 40), bool)
    expected[10:29, 5:24] = True
    assert np.array_equal(mask, expected)
    assert not splat_mask(np.array([], int), np.array([], int), 5, 5).any()
    raw = splat_mask(xs.ravel(), ys.ravel(), 40, 40, close=0)
    assert raw.sum() == xs.size


def test_fill_holes() -> None:
    ring = np.zeros((20, 20), bool)
    ring[4:16, 4:16] = True
    ring[7:12, 7:12] = False  # enclosed hole
    filled = fill_holes(ring)
    assert filled[4:16, 4:16].all() and filled.sum() == 144

    notch = np.zeros((20, 20), bool)
    notch[0:12, 4:16] = True  # touches the top border
    notch[0:8, 8:11] = False  # a notch open to that border
    assert np.array_equal(fill_holes(notch), notch)

    # a hole reaching the border only through a diagonal gap is still enclosed (4-connected background)
    diag = np.ones((6, 6), bool)
    diag[0, 0] = False
    diag[1:3, 1:3] = False
    diag[0, 1] = diag[1, 0] = True
    out = fill_holes(diag)
    assert not out[0, 0] and out[1:3, 1:3].all()


@pytest.mark.parametrize(("kernel", "iterations"), [(3, 1), (3, 2), (5, 1), (5, 3), (7, 2)])
def test_dilate_grows_square(kernel: int, iterations: int) -> None:
    mask = np.zeros((41, 41), bool)
    mask[20, 20] = True
    grown = dilate(mask, kernel, iterations)
    side = 2 * iterations * (kernel // 2) + 1
    r = side // 2
    expected = np.zeros_like(mask)
    expected[20 - r : 21 + r, 20 - r : 21 + r] = True
    assert grown.dtype == bool and np.array_equal(grown, expected)


def test_dilate_noop() -> None:
    mask = np.zeros((5, 5), np.uint8)
    mask[2, 2] = 1
    for kernel, iterations in ((5, 0), (1, 3)):
        out = dilate(mask, kernel, iterations)
        assert out.dtype == bool and out.sum() == 1 and out[2, 2]


def test_negative_click_makes_its_whole_surface_background():
    import cv2

    from spin_nerfstudio.segmentation.grabcut import GrabCutSegmenter, depth_connected_region

    h, w = 60, 80
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    depth = np.full((h, w), 6.0, np.float32)  # a far wall
    table = yy >= 30
    depth[table] = 2.0 + (h - yy[table]) * 0.02  # a table top receding from the camera, touching the box at row 30
    box = (yy >= 12) & (yy < 31) & (xx >= 34) & (xx < 46)
    depth[box] = 2.6
    seg = GrabCutSegmenter()
    pos, neg = np.array([[40.0, 20.0]]), np.array([[40.0, 55.0]])
    alone = seg.seed_labels((h, w), pos, np.zeros((0, 2)), depth)
    both = seg.seed_labels((h, w), pos, neg, depth)
    fg = (cv2.GC_FGD, cv2.GC_PR_FGD)
    reached = np.isin(alone, fg)  # the box and the strip of table at its depth
    inner = (yy >= 13) & (yy < 31) & (xx >= 35) & (xx < 46)  # the box less its outline (a depth edge)
    assert reached[inner].all() and (reached & table).any()
    assert np.isin(both[inner], fg).all()  # the object is untouched
    assert np.isin(both[reached & table], fg).all()  # where both surfaces reach, GrabCut decides
    far_table = depth_connected_region(depth, neg, seg.depth_band, seg.depth_edge) & ~reached
    assert far_table.sum() > 0.5 * (table & ~reached).sum()
    assert (both[far_table] == cv2.GC_BGD).all() and not (alone[far_table] == cv2.GC_BGD).all()
