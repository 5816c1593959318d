"""Tests of the offline segmenter (GrabCut + depth) and inpainter (Telea) on a generated scene."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from spin_nerfstudio.data.synthetic import SceneSpec, interior_distance, load_ground_truth, make_scene
from spin_nerfstudio.inpainting.telea import TeleaInpainter
from spin_nerfstudio.segmentation.grabcut import GrabCutSegmenter, depth_connected_region, largest_component_under
from spin_nerfstudio.segmentation.propagate import PinholeView, dilate

SPEC = SceneSpec(num_views=4, width=120, height=90, seed=0)
# GrabCut initialises its colour models with k-means seeded from OpenCV's global RNG, so we pin that RNG and check
# several of its seeds rather than whatever state earlier OpenCV calls left behind.
CV_SEEDS = (0, 1, 2)


class Scene:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.gt = load_ground_truth(root)
        tf = json.loads((root / "transforms.json").read_text())
        self.views: List[PinholeView] = [
            PinholeView(
                c2w=np.asarray(f["transform_matrix"], dtype=np.float64)[:3],
                fx=tf["fl_x"],
                fy=tf["fl_y"],
                cx=tf["cx"],
                cy=tf["cy"],
                width=tf["w"],
                height=tf["h"],
            )
            for f in tf["frames"]
        ]
        self.depth = [ray_distance(v, z) for v, z in zip(self.views, self.gt["depth"])]
        self.depth_bg = [ray_distance(v, z) for v, z in zip(self.views, self.gt["depth_background"])]
        self.prompt = json.loads((root / "prompts.json").read_text())["prompts"][0]


def ray_distance(view: PinholeView, z_depth: np.ndarray) -> np.ndarray:
    """The generator writes z-depth; our functions take the distance along each unit ray."""
    ys, xs = np.mgrid[: view.height, : view.width]
    cos = view.rays(np.stack([xs.ravel(), ys.ravel()], axis=-1)) @ (-view.c2w[:, 2])
    return (z_depth.ravel() / cos).reshape(z_depth.shape).astype(np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def deepest_pixel(mask: np.ndarray) -> np.ndarray:
    row, col = np.unravel_index(int(np.argmax(interior_distance(mask))), mask.shape)
    return np.array([[col, row]], dtype=np.float64)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return Scene(make_scene(tmp_path_factory.mktemp("segment_scene"), SPEC, llff=False))


# --- segmentation -------------------------------------------------------------------------------------------------


def test_segment_generated_click(scene: Scene) -> None:
    seg = GrabCutSegmenter()
    image, truth = scene.gt["images"][0], scene.gt["masks"][0]
    positive = np.array(scene.prompt["positive"], dtype=np.float64)
    negative = np.array(scene.prompt["negative"], dtype=np.float64)
    for seed in CV_SEEDS:
        cv2.setRNGSeed(seed)
        mask = seg.segment(image, positive, negative, scene.depth[0])
        assert mask.dtype == bool and mask.shape == truth.shape
        precision = (mask & truth).sum() / mask.sum()
        recall = (mask & truth).sum() / truth.sum()
        assert precision > 0.97, f"cv seed {seed}: precision {precision:.3f}"
        assert recall > 0.75, f"cv seed {seed}: recall {recall:.3f}"
        assert mask[int(positive[0, 1]), int(positive[0, 0])]
        assert not mask[int(negative[0, 1]), int(negative[0, 0])]


def test_segment_every_view_iou(scene: Scene) -> None:
    # Colour GrabCut alone kept only the lit front and top faces of the box in view 0 (IoU 0.79, an xfail until
    # 2026-12-07); GrabCut with depth for lightness takes the shaded side too (0.99) and is chosen there.
    seg = GrabCutSegmenter()
    for view in range(SPEC.num_views):
        truth = scene.gt["masks"][view]
        for seed in CV_SEEDS:
            cv2.setRNGSeed(seed)
            mask = seg.segment(
                scene.gt["images"][view], deepest_pixel(truth), np.array([[10.0, 85.0]]), scene.depth[view]
            )
            assert iou(mask, truth) > 0.8, f"view {view}, cv seed {seed}: IoU {iou(mask, truth):.3f}"


def test_segment_is_deterministic(scene: Scene) -> None:
    seg = GrabCutSegmenter()
    positive = np.array(scene.prompt["positive"], dtype=np.float64)
    negative = np.array(scene.prompt["negative"], dtype=np.float64)
    masks = []
    for seed in (0, 1):
        cv2.setRNGSeed(seed)
        masks.append(seg.segment(scene.gt["images"][0], positive, negative, scene.depth[0]))
    assert np.array_equal(masks[0], masks[1])


def test_refine_recovers_eroded_mask(scene: Scene) -> None:
    seg = GrabCutSegmenter()
    for view in range(SPEC.num_views):
        truth = scene.gt["masks"][view]
        eroded = cv2.erode(truth.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # 2 px off every side
        assert iou(eroded, truth) < 0.8
        for seed in CV_SEEDS:
            cv2.setRNGSeed(seed)
            refined = seg.refine(scene.gt["images"][view], eroded, scene.depth[view])
            assert iou(refined, truth) > 0.85, f"view {view}, cv seed {seed}: IoU {iou(refined, truth):.3f}"


def test_refine_empty_prior_is_returned() -> None:
    prior = np.zeros((20, 30), bool)
    out = GrabCutSegmenter().refine(np.zeros((20, 30, 3), np.uint8), prior)
    assert out.shape == (20, 30) and not out.any()


def test_segment_without_depth_keeps_clicked_blob() -> None:
    image = np.full((60, 80, 3), (90, 110, 100), np.uint8)
    image[20:40, 30:50] = (220, 30, 20)
    image[5:15, 60:75] = (220, 30, 20)  # same colour, not clicked
    cv2.setRNGSeed(0)
    mask = GrabCutSegmenter().segment(image, np.array([[40.0, 30.0]]), np.array([[5.0, 55.0]]), None)
    expected = np.zeros((60, 80), bool)
    expected[20:40, 30:50] = True
    assert np.array_equal(mask, expected)


def _shaded_object_on_a_plaque(rng: np.random.Generator):
    """A round object on a dark plaque hung on a papered wall, its left half in shadow (the colour of the plaque)."""
    h, w = 96, 128
    image = np.zeros((h, w, 3), np.float32)
    image[:] = (235, 225, 205)
    for _ in range(40):
        cv2.circle(
            image, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(2, 5)), (200, 90, 110), -1
        )
    yy, xx = np.mgrid[:h, :w]
    plaque = ((xx - 64) / 34.0) ** 2 + ((yy - 52) / 40.0) ** 2 < 1
    obj = ((xx - 64) / 22.0) ** 2 + ((yy - 42) / 24.0) ** 2 < 1
    depth = np.full((h, w), 2.0, np.float32)
    depth[plaque], depth[obj] = 1.95, 1.2
    image[plaque] = (90, 55, 35)
    image[obj & (xx >= 64)] = (230, 150, 80)
    image[obj & (xx < 64)] = (110, 65, 40)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8), depth, obj


def test_shading_does_not_split_an_object_that_depth_outlines() -> None:
    """Colour GrabCut keeps only the lit half (the shaded half matches the plaque around it); GrabCut with depth in
    place of lightness keeps the whole object, and its outline follows the depth step, so it is chosen."""
    image, depth, obj = _shaded_object_on_a_plaque(np.random.default_rng(0))
    pos, neg = np.array([[70.0, 40.0]]), np.array([[118.0, 10.0], [10.0, 85.0]])

    def iou(m: np.ndarray) -> float:
        return float((m & obj).sum() / (m | obj).sum())

    colour_only = GrabCutSegmenter(depth_colour_margin=-1)
    assert iou(colour_only.segment(image, pos, neg, depth)) < 0.6  # the lit half
    assert colour_only.summary() == "clicked view: colour"
    seg = GrabCutSegmenter()
    assert iou(seg.segment(image, pos, neg, depth)) > 0.97
    assert seg.summary() is not None and seg.summary().startswith("clicked view: depth-lightness GrabCut")
    # with a flat depth map the depth version has no outline to win on: colour stays
    seg.segment(image, pos, neg, np.full(depth.shape, 2.0, np.float32))
    assert seg.summary() is not None and seg.summary().startswith("clicked view: colour GrabCut")
    # the config's field reaches the segmenter (--pipeline.segmenter.depth-colour-margin -1: colour only)
    from spin_nerfstudio.segmentation.config import SegmenterConfig

    built = SegmenterConfig(backend="grabcut", depth_colour_margin=-1).setup()
    assert isinstance(built, GrabCutSegmenter) and built.depth_colour_margin == -1
    assert iou(built.segment(image, pos, neg, depth)) < 0.6


def test_fox_head_is_segmented_whole_from_its_real_reconstruction() -> None:
    """The fox capture's clicked view with the depth its reconstruction rendered (tests/data/README.md): colour GrabCut
    cut the head down the middle (its left side is in shadow; 116 vs 1211 pixels left and right of x = 64 across
    the eyes), GrabCut with depth for lightness keeps both sides of the head and nothing of the wall."""
    repo = Path(__file__).resolve().parents[1]
    image = cv2.imread(str(repo / "captures" / "fox" / "images_8" / "0018.jpg"))[..., ::-1].copy()
    depth = np.load(repo / "tests" / "data" / "fox_0018_depth.npz")["depth"].astype(np.float32)
    prompt = json.loads((repo / "configs" / "fox_prompts.json").read_text())["prompts"][0]
    pos, neg = np.array(prompt["positive"], float), np.array(prompt["negative"], float)

    def sides(mask: np.ndarray) -> tuple:
        eyes = mask[60:100]  # rows across the eyes and muzzle; the head spans x 28-98 there
        return int(eyes[:, :64].sum()), int(eyes[:, 64:].sum()), int(mask[60:100, :20].sum() + mask[60:100, 105:].sum())

    left, right, _ = sides(GrabCutSegmenter(depth_colour_margin=-1).segment(image, pos, neg, depth))
    assert left < 0.3 * right
    seg = GrabCutSegmenter()
    mask = seg.segment(image, pos, neg, depth)
    left, right, wall = sides(mask)
    assert 0.7 < left / right < 1.4 and wall == 0
    assert 3500 < mask.sum() < 5500  # the head (the chest and plaque below it are not taken)
    assert seg.summary() is not None and "depth-lightness" in seg.summary()


def test_depth_connected_region_stays_in_band(scene: Scene) -> None:
    depth = scene.depth[0]
    x, y = scene.prompt["positive"][0]
    for band in (0.05, 0.12, 0.3):
        region = depth_connected_region(depth, np.array([[x, y]], float), band)
        assert region[y, x]
        rel = np.abs(np.log(depth[region]) - np.log(depth[y, x]))
        assert rel.max() < np.log1p(band) + 1e-6
        # nothing on the far wall, which is well outside the band
        wall = depth > depth[y, x] * (1 + band) * 1.01
        assert not (region & wall).any()


def test_depth_connected_region_stops_at_depth_edge() -> None:
    depth = np.full((20, 40), 2.0, np.float32)
    depth[:, 20:] = 2.25  # a 12.5% step (log step 0.118 > the 0.1 edge threshold), inside a 20% band
    region = depth_connected_region(depth, np.array([[5.0, 10.0]]), band=0.2)
    assert region[:, :20].all() and not region[:, 20:].any()
    smooth = np.tile(np.linspace(2.0, 2.25, 40, dtype=np.float32), (20, 1))  # the same rise spread out
    assert depth_connected_region(smooth, np.array([[5.0, 10.0]]), band=0.2).all()
    # seeds on both sides give both sides (the column just past the step is itself marked as the edge)
    both = depth_connected_region(depth, np.array([[5.0, 10.0], [30.0, 10.0]]), band=0.2)
    assert both[:, :20].all() and both[:, 21:].all()


def test_largest_component_under() -> None:
    mask = np.zeros((30, 30), bool)
    mask[2:8, 2:8] = True
    mask[15:25, 15:25] = True
    mask[2:5, 20:28] = True
    only = largest_component_under(mask, np.array([[4.0, 4.0]]))
    expected = np.zeros_like(mask)
    expected[2:8, 2:8] = True
    assert np.array_equal(only, expected)
    two = largest_component_under(mask, np.array([[4.0, 4.0], [20.0, 20.0], [0.0, 29.0]]))
    assert two.sum() == 36 + 100 and not two[2:5, 20:28].any()
    # no click on any blob: everything is kept; an empty mask stays empty
    assert np.array_equal(largest_component_under(mask, np.array([[0.0, 29.0]])), mask)
    assert not largest_component_under(np.zeros((5, 5), bool), np.array([[2.0, 2.0]])).any()


# --- inpainting ---------------------------------------------------------------------------------------------------


def is_red(pixels: np.ndarray) -> np.ndarray:
    return (pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)


def test_inpaint_rgb_keeps_unmasked_pixels() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    mask = np.zeros((40, 50), bool)
    mask[10:20, 15:35] = True
    mask[30, 5] = True
    out = TeleaInpainter().inpaint_rgb(image, mask)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~mask], image[~mask])
    assert not np.array_equal(out[mask], image[mask])
    empty = TeleaInpainter().inpaint_rgb(image, np.zeros((40, 50), bool))
    assert np.array_equal(empty, image) and empty is not image


def test_inpaint_rgb_removes_the_object(scene: Scene) -> None:
    inpainter = TeleaInpainter()
    for view in range(SPEC.num_views):
        image, background = scene.gt["images"][view], scene.gt["background"][view].astype(np.float64)
        assert is_red(image[scene.gt["masks"][view]]).sum() > 100  # the object is there to remove
        mask = dilate(scene.gt["masks"][view], 3, 2)
        out = inpainter.inpaint_rgb(image, mask)
        assert np.array_equal(out[~mask], image[~mask])
        err = np.abs(out[mask].astype(np.float64) - background[mask]).mean()
        baseline = np.abs(image.reshape(-1, 3).mean(axis=0) - background[mask]).mean()
        assert err < 0.75 * baseline, f"view {view}: {err:.2f} vs global-mean fill {baseline:.2f}"
        assert not is_red(out[mask]).any()


def test_inpaint_depth_keeps_unmasked_and_fills_nan_inside(scene: Scene) -> None:
    depth = scene.depth_bg[1].copy()
    mask = dilate(scene.gt["masks"][1], 3, 2)
    depth[mask] = np.nan  # unknown inside the hole is fine
    out = TeleaInpainter().inpaint_depth(depth, mask)
    assert out.dtype == np.float32
    assert np.array_equal(out[~mask], depth[~mask])
    assert np.isfinite(out).all()
    assert np.array_equal(TeleaInpainter().inpaint_depth(depth, np.zeros_like(mask)), depth, equal_nan=True)


def test_inpaint_depth_accuracy(scene: Scene) -> None:
    inpainter = TeleaInpainter()
    for view in range(SPEC.num_views):
        depth = scene.depth_bg[view]
        yy, xx = np.mgrid[: SPEC.height, : SPEC.width]
        hole = (xx - 0.3 * SPEC.width) ** 2 + (yy - 0.8 * SPEC.height) ** 2 <= (0.1 * SPEC.height) ** 2  # floor
        for mask in (hole, dilate(scene.gt["masks"][view], 3, 2)):
            out = inpainter.inpaint_depth(depth, mask)
            rel = np.abs(out[mask] - depth[mask]) / depth[mask]
            assert rel.mean() < 0.05, f"view {view}: mean relative error {rel.mean():.3f}"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_inpaint_depth_rejects_unknown_values_outside_mask(bad: float) -> None:
    depth = np.full((10, 12), 3.0, np.float32)
    depth[0, 0] = bad
    mask = np.zeros((10, 12), bool)
    mask[4:6, 4:6] = True
    with pytest.raises(ValueError, match="NaN or infinite values outside the mask"):
        TeleaInpainter().inpaint_depth(depth, mask)


def test_large_images_are_segmented_at_the_working_size(tmp_path) -> None:
    import json

    import cv2

    from spin_nerfstudio.data.synthetic import SceneSpec, load_ground_truth, make_scene
    from spin_nerfstudio.segmentation.grabcut import grow_mask, shrink_points, working_factor

    assert [working_factor(s, 320) for s in ((90, 120), (135, 240), (270, 480), (567, 1008))] == [1, 1, 2, 4]
    assert working_factor((567, 1008), 0) == 1
    pts = np.array([[0.0, 0.0], [479.0, 269.0], [258.5, 96.5]])
    assert np.allclose((shrink_points(pts, 2) + 0.5) * 2 - 0.5, pts)  # pixel centre to pixel centre
    root = make_scene(tmp_path / "s", SceneSpec(2, 120, 90, 0), llff=False)
    gt = load_ground_truth(root)
    clicks = json.loads((root / "prompts.json").read_text())["prompts"][0]
    pos, neg = np.array(clicks["positive"], float), np.array(clicks["negative"], float)
    f = 4  # the view at 480x360, its depth blurred as a rendered depth map is at its edges
    big = cv2.resize(gt["images"][0], (120 * f, 90 * f), interpolation=cv2.INTER_LINEAR)
    depth = cv2.GaussianBlur(cv2.resize(gt["depth"][0], (120 * f, 90 * f), interpolation=cv2.INTER_LINEAR), (0, 0), 6)
    truth = cv2.resize(gt["masks"][0].astype(np.uint8), (120 * f, 90 * f), interpolation=cv2.INTER_NEAREST) > 0
    seg = GrabCutSegmenter()  # work side 320: 480x360 is segmented at 240x180
    mask = seg.segment(big, (pos + 0.5) * f - 0.5, (neg + 0.5) * f - 0.5, depth)
    assert mask.shape == truth.shape and (mask & truth).sum() / (mask | truth).sum() > 0.9
    small = GrabCutSegmenter(work_side=0).segment(
        cv2.resize(big, (240, 180), interpolation=cv2.INTER_AREA), (pos + 0.5) * 2 - 0.5, (neg + 0.5) * 2 - 0.5,
        cv2.resize(depth, (240, 180), interpolation=cv2.INTER_NEAREST),
    )  # fmt: skip
    assert np.array_equal(mask, grow_mask(small, truth.shape))  # the same mask as segmenting the half-size view
    refined = seg.refine(big, truth, depth)
    assert refined.shape == truth.shape and (refined & truth).sum() / (refined | truth).sum() > 0.9
