"""Sparse depth from the poses (data/sparse_depth.py) and its loss (model/spin_model.py ``sparse_depth_gap``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from spin_nerfstudio.data.sparse_depth import SparseDepth, sparse_depth
from spin_nerfstudio.model.spin_model import sparse_depth_gap


def _scene_cameras(scene: Path):
    """Images, OpenGL camera-to-world matrices and intrinsics of a generated scene (its transforms.json)."""
    from PIL import Image

    meta = json.loads((scene / "transforms.json").read_text())
    frames = meta["frames"]
    images = [np.asarray(Image.open(scene / f["file_path"]).convert("RGB")) for f in frames]
    c2w = np.stack([np.asarray(f["transform_matrix"], np.float64)[:3] for f in frames])
    n = len(frames)
    return images, c2w, [meta["fl_x"]] * n, [meta["fl_y"]] * n, [meta["cx"]] * n, [meta["cy"]] * n, meta


@pytest.fixture(scope="module")
def tiles_scene(tmp_path_factory) -> Path:
    from spin_nerfstudio.data.synthetic import SceneSpec, make_scene

    return make_scene(tmp_path_factory.mktemp("sparse") / "tiles", SceneSpec(num_views=16, texture="tiles"))


def test_triangulated_depths_match_the_true_depth(tiles_scene: Path) -> None:
    from spin_nerfstudio.data.synthetic import load_ground_truth

    images, c2w, fx, fy, cx, cy, meta = _scene_cameras(tiles_scene)
    result = sparse_depth(images, c2w, fx, fy, cx, cy)
    assert result.points >= 60 and result.pairs >= 16, result.as_dict()
    gt = load_ground_truth(tiles_scene)
    ratios = []
    for v, (xy, dist) in enumerate(zip(result.pixels, result.distances)):
        x, y = xy[:, 0] + 0.5, xy[:, 1] + 0.5
        stretch = np.sqrt(((x - meta["cx"]) / meta["fl_x"]) ** 2 + ((y - meta["cy"]) / meta["fl_y"]) ** 2 + 1)
        ratios.append(dist / (gt["depth"][v][xy[:, 1], xy[:, 0]] * stretch))  # z-depth to ray distance
    ratios = np.concatenate(ratios)
    assert abs(float(np.median(ratios)) - 1.0) < 0.02
    assert float(np.mean(np.abs(ratios - 1.0) < 0.1)) > 0.75


def test_shuffled_poses_triangulate_almost_nothing(tiles_scene: Path) -> None:
    images, c2w, fx, fy, cx, cy, _ = _scene_cameras(tiles_scene)
    right = sparse_depth(images, c2w, fx, fy, cx, cy)
    wrong = sparse_depth(images, c2w[np.random.default_rng(0).permutation(len(c2w))], fx, fy, cx, cy)
    # the repeated tiles give false matches, some of which reproject under wrong poses too (41 of 164 here)
    assert wrong.points < 0.3 * right.points, (wrong.points, right.points)


def test_fox_capture_gives_every_view_points() -> None:
    data = REPO / "captures" / "fox"
    if not data.is_dir():
        pytest.skip("capture absent")
    from spin_nerfstudio.data.llff import SpinLLFFDataParserConfig

    outputs = SpinLLFFDataParserConfig(data=data, downscale_factor=8).setup().get_dataparser_outputs("train")
    from PIL import Image

    cams = outputs.cameras
    images = [np.asarray(Image.open(p).convert("RGB")) for p in outputs.image_filenames]
    vals = [v.view(-1).numpy().astype(np.float64) for v in (cams.fx, cams.fy, cams.cx, cams.cy)]
    result = sparse_depth(images, cams.camera_to_worlds.numpy().astype(np.float64), *vals)
    assert result.as_dict()["views_without"] == 0 and result.as_dict()["per_view_median"] >= 50, result.as_dict()
    assert "pixels triangulated from SIFT matches with the poses" in result.line()


def test_maps_put_each_distance_at_its_pixel() -> None:
    result = SparseDepth(
        pixels=[np.array([[3, 1], [0, 2]]), np.zeros((0, 2), np.int64)], distances=[np.array([2.5, 4.0]), np.zeros(0)]
    )
    maps = result.maps([(5, 4), (5, 4)])
    assert maps.shape == (2, 4, 5, 1)
    assert maps[0, 1, 3, 0] == 2.5 and maps[0, 2, 0, 0] == 4.0
    assert int((maps > 0).sum()) == 2 and result.points == 2


def test_sparse_depth_gap_counts_only_targets_beyond_the_tolerance() -> None:
    depth = torch.tensor([[1.0], [2.0], [3.0], [5.0]], requires_grad=True)
    target = torch.tensor([[1.02], [0.0], [3.0 * np.e**0.25], [5.0]])  # within slack, none, 0.25 in log, exact
    gap = sparse_depth_gap(depth, target, tolerance=0.05)
    assert gap.item() == pytest.approx((0.25 - 0.05) / 3, abs=1e-5)  # three rays have a target
    gap.backward()
    assert depth.grad[1, 0] == 0 and depth.grad[0, 0] == 0 and depth.grad[2, 0] < 0  # only the far-off ray is pulled
    keep = torch.tensor([[1.0], [1.0], [0.0], [1.0]])  # the far-off ray lies in the removal mask
    assert sparse_depth_gap(depth, target, keep, 0.05).item() == 0.0
    assert sparse_depth_gap(depth, torch.zeros_like(target)).item() == 0.0
