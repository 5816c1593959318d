"""Segmentation with the noisy depth of a real reconstruction: confident lifting, visibility against the object's
depth range with floaters, repair of disagreeing views from the mask field, the per-view report and its sheet."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from spin_nerfstudio.segmentation.base import Segmenter
from spin_nerfstudio.segmentation.multiview import repair_views
from spin_nerfstudio.segmentation.propagate import (
    PinholeView,
    confident_pixels,
    lift,
    object_visible_projection,
    visible_projection,
)
from spin_nerfstudio.segmentation.report import centroid_hits, mask_report, suspicious, write_mask_report


def _view(x: float = 0.0, w: int = 40, h: int = 30) -> PinholeView:
    c2w = np.eye(4)[:3].copy()
    c2w[0, 3] = x
    return PinholeView(c2w=c2w, fx=40.0, fy=40.0, cx=w / 2, cy=h / 2, width=w, height=h)


def test_confident_pixels_skip_floaters_outline_and_transparent_pixels() -> None:
    mask = np.zeros((30, 40), bool)
    mask[8:22, 10:30] = True
    depth = np.full(mask.shape, 5.0, np.float32)
    depth[mask] = 2.0 + 0.05 * np.random.default_rng(0).standard_normal(mask.sum())
    depth[12:14, 14:16] = 0.6  # a floater in front of the object
    acc = np.ones_like(depth)
    acc[18:21, 20:28] = 0.2  # the field is not opaque there
    keep = confident_pixels(mask, depth, acc)
    assert not keep[12:14, 14:16].any() and not keep[18:21, 20:28].any()
    assert not keep[8].any() and not keep[:, 10].any()  # the outline (eroded by one pixel)
    assert keep.sum() > 0.8 * (12 * 18 - 4 - 24)
    # Depth too noisy to tell the object's range: the eroded mask is kept whole rather than a few pixels.
    wild = np.where(mask, np.random.default_rng(1).uniform(0.5, 8.0, mask.shape), 5.0).astype(np.float32)
    assert confident_pixels(mask, wild).sum() >= 0.3 * (12 * 18)


def test_object_visibility_tolerates_floaters_and_self_occlusion_but_not_occluders() -> None:
    view = _view()
    ys, xs = np.mgrid[10:20, 15:25]
    xy = np.stack([xs.ravel(), ys.ravel()], -1)
    depth = np.full((30, 40), 6.0, np.float32)
    front, _ = lift(view, xy, np.full((30, 40), 3.0))
    back, _ = lift(view, xy, np.full((30, 40), 3.3))  # the object's far side, behind its front surface
    points = np.concatenate([front, back])
    depth[10:20, 15:25] = 3.0
    per_point = visible_projection(view, points, depth)[2]
    assert per_point[: len(front)].all() and not per_point[len(front) :].any()
    assert object_visible_projection(view, points, depth)[2].all()  # the silhouette is what the mask wants
    noisy = depth.copy()
    noisy[10:20, 15:25] = 2.7  # the object's depth rendered 10% too close
    noisy[12:14, 17:19] = 0.5  # and a floater in front of it
    assert not visible_projection(view, points, noisy)[2].any()
    assert object_visible_projection(view, points, noisy)[2].mean() > 0.95
    occluded = depth.copy()
    occluded[5:25, 5:20] = 1.5  # a wide object in front hides the left half (its edge eroded by the floater filter)
    sel = object_visible_projection(view, points, occluded)[2]
    column = np.concatenate([xy[:, 0]] * 2)
    assert not sel[column < 18].any() and sel[column >= 20].all()


class ShiftSegmenter(Segmenter):
    """'Snaps' a prior by shifting it ``dx`` pixels (a stand-in for an edge snap that drifts)."""

    def __init__(self, dx: int) -> None:
        self.dx = dx

    def refine(self, image, prior, depth=None):
        return np.roll(prior, self.dx, axis=1)


def test_repair_views_snaps_the_field_mask_or_keeps_it() -> None:
    field = np.zeros((3, 30, 40), bool)
    field[0, 10:20, 10:20] = True
    field[1, 10:20, 12:22] = True
    images = np.zeros((3, 30, 40, 3), np.uint8)
    fixed = repair_views(images, field, [0, 1, 2], ShiftSegmenter(1))
    assert set(fixed) == {0, 1}  # the field renders nothing in view 2: left alone
    assert fixed[0][1] == "snapped" and np.array_equal(fixed[0][0], np.roll(field[0], 1, axis=1))
    far = repair_views(images, field, [0], ShiftSegmenter(8))
    assert far[0][1] == "field" and np.array_equal(far[0][0], field[0])


def test_mask_report_flags_and_centroid_hits(tmp_path) -> None:
    views = [_view(x) for x in (0.0, 0.2, -0.2, 3.0)]
    depth = np.full((30, 40), 4.0, np.float32)
    masks = []
    for v in views:
        ys, xs = np.mgrid[:30, :40]
        px, _, _ = v.project(np.array([[0.0, 0.0, -4.0]]))
        masks.append((np.abs(xs - px[0, 0]) <= 4) & (np.abs(ys - px[0, 1]) <= 4))
    masks[3] = np.zeros((30, 40), bool)
    masks[3][:4, :4] = True  # a small mask in the wrong place
    assert centroid_hits(views, masks, 0, depth) == [True, True, True, False]
    field = [m.copy() for m in masks]
    initial = [m.copy() for m in masks]
    initial[1] = np.zeros_like(masks[1])
    rows = mask_report(["a.png", "b.png", "c.png", "d.png"], masks, field, initial, ["clicked"] + ["propagated"] * 3)
    assert [r["area"] for r in rows] == [64, 64, 64, 16]
    assert rows[1]["initial_field_iou"] == 0.0 and rows[0]["final_field_iou"] == 1.0
    assert suspicious(rows[0]) == [] and suspicious(rows[1]) == ["initial mask IoU 0.00 with the field"]
    assert suspicious(rows[3]) == ["area x0.25 of the median"]
    images = np.full((4, 30, 40, 3), 128, np.uint8)
    lines = write_mask_report(tmp_path, ["a.png", "b.png", "c.png", "d.png"], images, masks, field, initial,
                              centroid=(views, 0, depth))  # fmt: skip
    data = json.loads((tmp_path / "mask_report.json").read_text())
    assert [r["centroid_inside"] for r in data["views"]] == [True, True, True, False]
    assert any("lands inside the final mask of 3/4 views (not: d.png)" in line for line in lines)
    assert "4/4 views non-empty" in lines[0] and "3/4 within x2" in lines[0]
    sheet = np.asarray(Image.open(tmp_path / "masks_all.png"))
    assert sheet.shape[1] > 8 * 160 and (tmp_path / "mask_report.txt").read_text().count(".png") == 4
