"""Tests of the visibility-aware targets on a generated scene with exact depth, and of the model's use of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from test_segment_inpaint import ray_distance

from spin_nerfstudio.data.synthetic import SceneSpec, load_ground_truth, make_scene
from spin_nerfstudio.evaluation.metrics import psnr
from spin_nerfstudio.inpainting import visibility as vis
from spin_nerfstudio.inpainting import witnesses as wit
from spin_nerfstudio.inpainting.biharmonic import BiharmonicInpainter
from spin_nerfstudio.segmentation.propagate import PinholeView, dilate

SPEC = SceneSpec(num_views=8, width=80, height=60, seed=3)


class Scene:
    def __init__(self, root: Path) -> None:
        self.gt = load_ground_truth(root)
        tf = json.loads((root / "transforms.json").read_text())
        self.views: List[PinholeView] = [
            PinholeView(
                np.asarray(f["transform_matrix"])[:3], tf["fl_x"], tf["fl_y"], tf["cx"], tf["cy"], tf["w"], tf["h"]
            )
            for f in tf["frames"]
        ]
        self.depth = [ray_distance(v, z) for v, z in zip(self.views, self.gt["depth"])]
        self.depth_bg = [ray_distance(v, z) for v, z in zip(self.views, self.gt["depth_background"])]
        self.removal = [dilate(m, 5, 1) for m in self.gt["masks"]]
        inp = BiharmonicInpainter()
        self.rgb2d = [inp.inpaint_rgb(i, m) for i, m in zip(self.gt["images"], self.removal)]
        self.depth2d = [inp.inpaint_depth(d, m) for d, m in zip(self.depth, self.removal)]

    def targets(self, **kw) -> vis.VisibilityTargets:
        args = dict(
            views=self.views, images=self.gt["images"], removal=self.removal, inpainted_rgb=self.rgb2d,
            inpainted_depth=self.depth2d, rendered_depth=self.depth,
            config=vis.VisibilityConfig(),
        )  # fmt: skip
        args.update(kw)
        return vis.seen_elsewhere_targets(**args)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return Scene(make_scene(tmp_path_factory.mktemp("vis_scene"), SPEC, llff=False))


def is_object_colour(pixels: np.ndarray) -> np.ndarray:
    return (pixels[..., 0] > 150) & (pixels[..., 2] < 90)


def test_seen_pixels_get_the_true_background(scene: Scene) -> None:
    t = scene.targets()
    share = sum(s.sum() for s in t.seen) / sum(m.sum() for m in scene.removal)
    assert share > 0.3, share
    for seen, removal, target, bg, count in zip(t.seen, scene.removal, t.targets, scene.gt["background"], t.witnesses):
        assert not (seen & ~removal).any()  # only removal-mask pixels are ever "seen elsewhere"
        assert ((count >= 2) == seen).all()  # two witnesses by default (min_views)
        if seen.any():
            assert psnr(target / 255.0, bg / 255.0, seen) > 38.0
        assert not is_object_colour(target[removal]).any()
    # observed colour where seen, 2D fill for the rest: the targets beat the plain 2D inpainting inside the object
    gain = [
        psnr(tt / 255.0, bg / 255.0, m) - psnr(r / 255.0, bg / 255.0, m)
        for tt, r, bg, m in zip(t.targets, scene.rgb2d, scene.gt["background"], scene.gt["masks"])
    ]
    assert np.mean(gain) > 3.0, gain


LIFT = vis.VisibilityConfig(search="inpainted")


def test_depth_check_rejects_occluded_witnesses(scene: Scene) -> None:
    # lifting with the inpainted depth: every other view "sees" a surface at half the distance, so no lifted point
    # is visible there
    nearer = [d * 0.5 for d in scene.depth]
    t = scene.targets(rendered_depth=nearer, config=LIFT)
    assert sum(s.sum() for s in t.seen) == 0 and not t.depth
    assert all(np.array_equal(tt, r) for tt, r in zip(t.targets, scene.rgb2d))
    # the tolerance matters: an 8% depth error is rejected at the default 5% slack and accepted at 15%
    off = [d * 1.08 for d in scene.depth]
    strict = scene.targets(rendered_depth=off, config=LIFT)
    loose = scene.targets(rendered_depth=off, config=vis.VisibilityConfig(search="inpainted", depth_tolerance=0.15))
    assert sum(s.sum() for s in strict.seen) == 0 < sum(s.sum() for s in loose.seen)


def test_sweep_needs_no_inpainted_depth_and_corrects_it(scene: Scene) -> None:
    # a 2D-inpainted depth 15% too far: lifting with it finds (almost) nothing, the sweep is not misled
    far = [np.where(m, d * 1.15, d) for d, m in zip(scene.depth2d, scene.removal)]
    lifted = scene.targets(inpainted_depth=far, config=LIFT)
    swept = scene.targets(inpainted_depth=far)
    total = sum(m.sum() for m in scene.removal)
    share_lift = sum(s.sum() for s in lifted.seen) / total
    share_sweep = sum(s.sum() for s in swept.seen) / total
    assert share_lift < 0.02 and share_sweep > 0.3, (share_lift, share_sweep)
    errors = []
    for i, (seen, removal) in enumerate(zip(swept.seen, scene.removal)):
        if seen.any():
            assert psnr(swept.targets[i] / 255.0, scene.gt["background"][i] / 255.0, seen) > 38.0
            errors.append(np.abs(swept.depth[i][seen] / scene.depth_bg[i][seen] - 1))
        assert np.array_equal(swept.depth[i][~removal], far[i][~removal])  # outside the masks: untouched
    assert np.median(np.concatenate(errors)) < 0.01  # seen pixels get the swept depth: the true background's
    no_correction = scene.targets(inpainted_depth=far, config=vis.VisibilityConfig(correct_depth=False))
    assert not no_correction.depth and all(np.array_equal(a, b) for a, b in zip(no_correction.seen, swept.seen))


def test_corrected_depth_refills_the_unseen_rest_from_the_rim_and_the_seen_pixels() -> None:
    # a plane whose disparity falls linearly from left to right; the 2D fill of the hole got it 20% too near
    truth = 1.0 / np.tile(np.linspace(0.5, 0.2, 20, dtype=np.float32), (20, 1))
    hole = np.zeros((20, 20), bool)
    hole[4:16, 4:16] = True
    prior = np.where(hole, truth * 0.8, truth)
    ys, xs = np.nonzero(hole & (np.arange(20)[None, :] >= 12))  # the other views saw the hole's right part
    depth = vis._corrected_depth(prior, hole, ys, xs, truth[ys, xs])
    assert np.array_equal(depth[~hole], prior[~hole]) and np.allclose(depth[ys, xs], truth[ys, xs])
    rest = hole.copy()
    rest[ys, xs] = False
    # the unseen rest is filled again in disparity from the rim and the seen pixels: exact on a plane
    assert np.abs(depth[rest] / truth[rest] - 1).max() < 1e-3 < np.abs(prior[rest] / truth[rest] - 1).min()
    # nothing seen: the prior stays as it was
    assert np.array_equal(vis._corrected_depth(prior, hole, ys[:0], xs[:0], truth[ys[:0], xs[:0]]), prior)


def test_missed_object_sliver_is_not_seen_background(scene: Scene) -> None:
    from spin_nerfstudio.inpainting.field_prior import object_colour_model

    # every mask misses the object's top 40%: the views then "see" that sliver behind the rest of the object
    missed = []
    for m in scene.removal:
        ys, _ = np.nonzero(m)
        cut = ys.min() + int(0.4 * (ys.max() - ys.min()))
        missed.append(m & (np.arange(m.shape[0]) >= cut)[:, None])
    images = scene.gt["images"]
    obj = np.concatenate([i[m] for i, m in zip(images, missed)])
    background = np.concatenate([i[~m] for i, m in zip(images, missed)])

    probability = object_colour_model(obj, background)

    def object_coloured_seen(t: vis.VisibilityTargets) -> int:
        return sum(int(is_object_colour(tt[s]).sum()) for tt, s in zip(t.targets, t.seen))

    plain = scene.targets(removal=missed)
    checked = scene.targets(removal=missed, object_probability=probability)
    assert object_coloured_seen(plain) > 10 and object_coloured_seen(checked) == 0
    assert plain.rejected == 0 and checked.rejected >= object_coloured_seen(plain)
    assert sum(s.sum() for s in checked.seen) > 0.8 * sum(s.sum() for s in plain.seen)  # the background stays seen


def _plane_depth(view: PinholeView, z: float) -> np.ndarray:
    """Ray distance from a camera looking down -z (no rotation) to the plane at height z, per pixel."""
    u, v = np.meshgrid(np.arange(view.width) + 0.5, np.arange(view.height) + 0.5)
    d = np.stack([(u - view.cx) / view.fx, -(v - view.cy) / view.fy, -np.ones_like(u)], axis=-1)
    return (view.origin[2] - z) * np.linalg.norm(d, axis=-1)


def test_sweep_stops_at_a_surface_no_view_saw() -> None:
    # The source looks straight down at an object 1 unit away; a table top lies 2 units away, a floor 3.
    # Witness A sees the table, except where the source's ray meets it (masked in A: the object hides it there);
    # witness B sees only the floor. Behind the object the ray meets the table, which nobody saw there.
    def view(x: float) -> PinholeView:
        return PinholeView(np.array([[1.0, 0, 0, x], [0, 1, 0, 0], [0, 0, 1, 0]]), 20.0, 20.0, 20.5, 20.5, 41, 41)

    source, a, b = view(0.0), view(1.0), view(-1.0)
    depth = [np.ones((41, 41)), _plane_depth(a, -2.0), _plane_depth(b, -3.0)]
    hidden = np.zeros((41, 41), bool)
    hidden[:, 8:12] = True  # where A's view of the table along the source's ray (t in 1.7 .. 2.3) is hidden
    removal = [np.ones((41, 41), bool), hidden, np.zeros((41, 41), bool)]
    centre = np.array([[20.0, 20.0]])
    # without A's evidence that the ray went behind the table, B's floor would pass for the background (t = 3)
    only_b = wit.sweep_background_depth([source, b], [removal[0], removal[2]], [depth[0], depth[2]], 0, centre, 0.05)
    assert only_b[0] == pytest.approx(3.0, rel=0.02)
    assert np.isnan(wit.sweep_background_depth([source, a, b], removal, depth, 0, centre, 0.05)).all()
    # where A does see the table along the ray, the table is the background (B's floor lies behind it)
    seen = wit.sweep_background_depth(
        [source, a, b], [removal[0], np.zeros((41, 41), bool), removal[2]], depth, 0, centre, 0.05
    )
    assert seen[0] == pytest.approx(2.0, rel=0.02)


def test_sweep_depth_of_rays_no_view_can_check(scene: Scene) -> None:
    ys, xs = np.nonzero(scene.gt["masks"][0])
    xy = np.stack([xs, ys], -1).astype(float)
    found = wit.sweep_background_depth(scene.views, scene.removal, scene.depth, 0, xy, 0.05, 2)
    truth = scene.depth_bg[0][ys, xs]
    hit = np.isfinite(found)
    assert hit.mean() > 0.3 and np.median(np.abs(found[hit] / truth[hit] - 1)) < 0.01
    # every other view entirely masked: no witness, no depth
    blind = [scene.removal[0]] + [np.ones_like(m) for m in scene.removal[1:]]
    assert np.isnan(wit.sweep_background_depth(scene.views, blind, scene.depth, 0, xy, 0.05, 2)).all()
    # no finite rendered depth under the pixels: no near end for the sweep
    bad = [np.full_like(scene.depth[0], np.nan)] + list(scene.depth[1:])
    assert np.isnan(wit.sweep_background_depth(scene.views, scene.removal, bad, 0, xy, 0.05, 2)).all()


def test_view_without_mask_is_a_witness(scene: Scene) -> None:
    # view 1 shows no object (say it is out of frame): no mask, and its pixels are background everywhere
    images = [i.copy() for i in scene.gt["images"]]
    images[1] = scene.gt["background"][1].copy()
    removal = [m.copy() for m in scene.removal]
    removal[1][:] = False
    rendered = list(scene.depth)
    rendered[1] = scene.depth_bg[1]
    base = scene.targets(images=images, rendered_depth=rendered)
    t = scene.targets(images=images, removal=removal, rendered_depth=rendered)
    assert not t.seen[1].any() and np.array_equal(t.targets[1], scene.rgb2d[1])
    assert t.witnesses[0].sum() > base.witnesses[0].sum()  # view 1 now witnesses what view 0's object hides
    bg0 = scene.gt["background"][0] / 255.0
    assert psnr(t.targets[0] / 255.0, bg0, t.seen[0]) > 38.0


def test_unknown_depths_are_never_seen(scene: Scene) -> None:
    bad_inpainted = [d.copy() for d in scene.depth2d]
    bad_inpainted[0][scene.removal[0]] = np.nan
    bad_rendered = [d.copy() for d in scene.depth]
    for d in bad_rendered[1:]:
        d[:] = np.inf
    for config in (vis.VisibilityConfig(), LIFT):
        t = scene.targets(inpainted_depth=bad_inpainted, config=config)
        assert not t.seen[0].any() and t.seen[2].any()
    t = scene.targets(rendered_depth=bad_rendered, config=LIFT)  # only view 0 can witness anything
    assert not t.seen[0].any() and max(int(c.max()) for c in t.witnesses) == 1
    t = scene.targets(rendered_depth=bad_rendered)  # the sweep needs the source's rendered depth too: nothing
    assert max(int(c.max()) for c in t.witnesses) == 0


def test_min_views(scene: Scene) -> None:
    one = scene.targets(config=vis.VisibilityConfig(min_views=1))
    two = scene.targets()
    three = scene.targets(config=vis.VisibilityConfig(min_views=3))
    assert sum(int(((c == 1) & s).sum()) for c, s in zip(one.witnesses, one.seen)) > 0  # single witnesses exist
    for a, b, c, count in zip(one.seen, two.seen, three.seen, one.witnesses):
        assert np.array_equal(a, count >= 1) and np.array_equal(b, count >= 2) and np.array_equal(c, count >= 3)


def test_targets_round_trip_and_summary(scene: Scene, tmp_path: Path) -> None:
    from spin_nerfstudio.stage_io import save_views

    t = scene.targets()
    names = [f"{i:03d}.png" for i in range(len(t.seen))]
    save_views(tmp_path / vis.SEEN_DIR, names, t.seen, token="lineage-a")
    save_views(tmp_path / vis.TARGETS_DIR, names, t.targets, token="lineage-a")
    back = vis.load_targets(tmp_path, names, ["lineage-a"])
    assert back is not None and not back.depth
    assert all(np.array_equal(a, b) for a, b in zip(back.seen, t.seen))
    assert all(np.array_equal(a, b) for a, b in zip(back.targets, t.targets))
    assert vis.load_targets(tmp_path, names, ["lineage-a"], with_depth=True) is None  # no corrected depth written
    save_views(tmp_path / vis.DEPTH_DIR, names, t.depth, kind="npy", token="lineage-a")
    back = vis.load_targets(tmp_path, names, ["lineage-a"], with_depth=True)
    assert back is not None and all(np.array_equal(a, b) for a, b in zip(back.depth, t.depth))
    assert vis.load_targets(tmp_path, names, ["another-lineage"]) is None
    assert vis.load_targets(tmp_path / "nowhere", names) is None
    summary = t.summary(names, scene.removal)
    assert summary["masked_pixels"] == sum(int(m.sum()) for m in scene.removal)
    assert summary["seen_pixels"] == sum(int(s.sum()) for s in t.seen)
    assert summary["seen_fraction"] == pytest.approx(summary["seen_pixels"] / summary["masked_pixels"])
    assert [v["image"] for v in summary["per_view"]] == names


# --- the model's losses -------------------------------------------------------------------------------------------


def _tiny_model():
    """A SpinModel small enough to build in a test (tri-planes of side 8, one training view, CPU)."""
    from nerfstudio.data.scene_box import SceneBox

    from spin_nerfstudio.model.spin_model import SpinModelConfig

    return SpinModelConfig(plane_resolutions=(8,), plane_components=2, hidden_dim=8, proposal_resolution=8).setup(
        scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]])), num_train_data=1, device="cpu"
    )


@pytest.fixture(scope="module")
def model():
    from spin_nerfstudio.model.names import Stage

    m = _tiny_model()
    m.set_stage(Stage.INPAINT)
    m.eval()  # no proposal/distortion terms: only the removal losses
    return m


def test_seen_pixels_are_supervised_like_observations(model) -> None:
    from spin_nerfstudio.model import spin_model as S

    n = 8
    removal = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1.0])[:, None]
    seen = torch.tensor([0, 0, 0, 0, 1, 1, 0, 0.0])[:, None]
    gt = torch.full((n, 3), 0.5)
    seen_rgb = torch.full((n, 3), 0.2)
    outputs = {k: torch.full((n, 3), 0.4, requires_grad=True) for k in S.RGB_FOR_UPDATES.values()}
    outputs["depth"] = torch.ones(n, 1)
    batch = {
        "image": gt, S.REMOVAL_MASK: removal, S.SEEN_MASK: seen, S.SEEN_RGB: seen_rgb,
        S.INPAINTED_DEPTH: torch.ones(n, 1), S.INPAINTED_RGB: torch.full((n, 3), 0.9),
        S.REFERENCE_VIEW: torch.ones(n, 1),
    }  # fmt: skip
    losses = model.get_loss_dict(outputs, batch, {})
    count = (4 + 2) * 3  # observed + seen pixels, 3 channels
    assert losses["rgb_loss"].item() == pytest.approx(4 * 3 * 0.1**2 / count)
    cfg = model.config
    assert losses["seen_loss"].item() == pytest.approx(cfg.seen_loss_mult * 2 * 3 * 0.2**2 / count)
    # the reference colour loss covers only the masked pixels nobody saw (2 of them)
    assert losses["reference_loss"].item() == pytest.approx(cfg.reference_loss_mult * 0.5**2)
    # default routing: seen loss reaches colour and geometry ("rgb"), reference loss colour only
    losses["seen_loss"].backward(retain_graph=True)
    assert outputs["rgb"].grad is not None and outputs["rgb"].grad[4:6].abs().sum() > 0
    assert outputs["rgb"].grad[6:].abs().sum() == 0
    assert outputs["rgb_colour_only"].grad is None
    losses["reference_loss"].backward()
    assert outputs["rgb_colour_only"].grad is not None and outputs["rgb_colour_only"].grad[6:].abs().sum() > 0
    assert outputs["rgb_colour_only"].grad[:6].abs().sum() == 0


def _masked_depth_batch(depth: torch.Tensor, target: torch.Tensor):
    """Model outputs with this rendered depth and a batch of masked pixels with this depth target (no colour)."""
    from spin_nerfstudio.model import spin_model as S

    n = len(depth)
    outputs = {k: torch.zeros(n, 3) for k in S.RGB_FOR_UPDATES.values()}
    outputs["depth"] = depth
    batch = {
        "image": torch.zeros(n, 3), S.REMOVAL_MASK: torch.ones(n, 1), S.INPAINTED_DEPTH: target,
        S.INPAINTED_RGB: torch.zeros(n, 3), S.REFERENCE_VIEW: torch.zeros(n, 1),
    }  # fmt: skip
    return outputs, batch


@pytest.mark.parametrize("space", ["distance", "disparity"])
def test_depth_loss_counts_only_the_gap_beyond_the_tolerance(model, space: str) -> None:
    old = (model.config.depth_loss_tolerance, model.config.depth_loss_space, model.config.depth_loss_mult)
    sides = model.config.depth_loss_sides
    try:
        model.config.depth_loss_space, model.config.depth_loss_mult = space, 1.0
        model.config.depth_loss_sides = "both"  # renders behind the target count too
        target = torch.full((4, 1), 2.0)
        # rendered depths: within 10% of the target (two pixels), then 50% and 100% beyond it
        depth = torch.tensor([2.0, 2.1, 3.0, 4.0])[:, None]
        outputs, batch = _masked_depth_batch(depth, target)
        a, b = (depth, target) if space == "distance" else (1 / depth, 1 / target)
        model.config.depth_loss_tolerance = 0.0
        plain = model.get_loss_dict(outputs, batch, {})["depth_loss"].item()
        assert plain == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-5)
        model.config.depth_loss_tolerance = 0.1
        slack = model.get_loss_dict(outputs, batch, {})["depth_loss"].item()
        excess = torch.relu((a - b).abs() - 0.1 * b)
        assert excess[:2].sum() == 0 and excess[2:].min() > 0  # the 5% gap is free, the large ones still count
        assert slack == pytest.approx((excess**2).mean().item(), rel=1e-5) and 0 < slack < plain
    finally:
        model.config.depth_loss_tolerance, model.config.depth_loss_space, model.config.depth_loss_mult = old
        model.config.depth_loss_sides = sides


@pytest.mark.parametrize("space", ["distance", "disparity"])
def test_nearer_depth_loss_counts_only_renders_in_front_of_the_target(model, space: str) -> None:
    from spin_nerfstudio.model.names import DEPTH_AGREED, SEEN_MASK, SEEN_RGB

    cfg = model.config
    old = (cfg.depth_loss_tolerance, cfg.depth_loss_space, cfg.depth_loss_mult, cfg.depth_loss_sides)
    try:
        cfg.depth_loss_space, cfg.depth_loss_mult, cfg.depth_loss_tolerance = space, 1.0, 0.0
        target = torch.full((4, 1), 2.0)
        depth = torch.tensor([1.0, 1.5, 3.0, 4.0])[:, None]  # two renders in front of the target, two behind it
        outputs, batch = _masked_depth_batch(depth, target)
        a, b = (depth, target) if space == "distance" else (1 / depth, 1 / target)
        cfg.depth_loss_sides = "both"
        both = model.get_loss_dict(outputs, batch, {})["depth_loss"].item()
        cfg.depth_loss_sides = "nearer"
        nearer = model.get_loss_dict(outputs, batch, {})["depth_loss"].item()
        # the mean runs over all four masked pixels; only the two in front of the target add to it
        assert nearer == pytest.approx(((a - b)[:2] ** 2).sum().item() / 4, rel=1e-5)
        assert 0 < nearer < both
        outputs, _ = _masked_depth_batch(torch.tensor([2.5, 3.0, 4.0, 8.0])[:, None], target)  # all behind
        assert model.get_loss_dict(outputs, batch, {})["depth_loss"].item() == 0.0
        # "seen": both sides where other views saw the depth (pixel 2, behind the target), nearer elsewhere
        outputs, _ = _masked_depth_batch(depth, target)
        batch[SEEN_MASK], batch[SEEN_RGB] = torch.tensor([0.0, 0.0, 1.0, 0.0])[:, None], torch.zeros(4, 3)
        cfg.depth_loss_sides = "seen"
        seen = model.get_loss_dict(outputs, batch, {})["depth_loss"].item()
        assert seen == pytest.approx(((a - b)[:3] ** 2).sum().item() / 4, rel=1e-5)
        # "agreed": both sides also where the priors agree between views (pixel 3, behind the target)
        batch[DEPTH_AGREED] = torch.tensor([0.0, 0.0, 0.0, 1.0])[:, None]
        cfg.depth_loss_sides = "agreed"
        agreed = model.get_loss_dict(outputs, batch, {})["depth_loss"].item()
        assert agreed == pytest.approx(((a - b) ** 2).sum().item() / 4, rel=1e-5) and agreed == pytest.approx(both)
        batch[DEPTH_AGREED] = torch.zeros(4, 1)
        assert model.get_loss_dict(outputs, batch, {})["depth_loss"].item() == pytest.approx(seen, rel=1e-6)
    finally:
        cfg.depth_loss_tolerance, cfg.depth_loss_space, cfg.depth_loss_mult, cfg.depth_loss_sides = old


def test_update_routing_is_configurable(model) -> None:
    from spin_nerfstudio.model import spin_model as S

    old = (model.config.seen_loss_updates, model.config.reference_loss_updates)
    try:
        model.config.seen_loss_updates, model.config.reference_loss_updates = "geometry", "both"
        n = 4
        outputs = {k: torch.full((n, 3), 0.4, requires_grad=True) for k in S.RGB_FOR_UPDATES.values()}
        outputs["depth"] = torch.ones(n, 1)
        batch = {
            "image": torch.zeros(n, 3), S.REMOVAL_MASK: torch.ones(n, 1),
            S.SEEN_MASK: torch.tensor([1.0, 1, 0, 0])[:, None], S.SEEN_RGB: torch.zeros(n, 3),
            S.INPAINTED_DEPTH: torch.ones(n, 1), S.INPAINTED_RGB: torch.zeros(n, 3), S.REFERENCE_VIEW: torch.ones(n, 1),
        }  # fmt: skip
        losses = model.get_loss_dict(outputs, batch, {})
        (losses["seen_loss"] + losses["reference_loss"]).backward()
        assert outputs["rgb_geometry_only"].grad[:2].abs().sum() > 0 and outputs["rgb_colour_only"].grad is None
        assert outputs["rgb"].grad[2:].abs().sum() > 0 and outputs["rgb"].grad[:2].abs().sum() == 0
    finally:
        model.config.seen_loss_updates, model.config.reference_loss_updates = old


def test_geometry_only_render_detaches_colour(model) -> None:
    from nerfstudio.cameras.rays import RayBundle

    model.train()
    try:
        bundle = RayBundle(
            origins=torch.zeros(16, 3), directions=torch.nn.functional.normalize(torch.randn(16, 3), dim=-1),
            pixel_area=torch.ones(16, 1), camera_indices=torch.zeros(16, 1, dtype=torch.long),
            nears=torch.full((16, 1), 0.05), fars=torch.full((16, 1), 2.0),
        )  # fmt: skip
        out = model.get_outputs(bundle)
        colour_params = [p for n, p in model.field.named_parameters() if n.startswith("mlp_head")]
        assert colour_params, [n for n, _ in model.field.named_parameters()]
        grads = torch.autograd.grad(out["rgb_geometry_only"].sum(), colour_params, allow_unused=True)
        assert all(g is None or g.abs().sum() == 0 for g in grads)
        assert torch.allclose(out["rgb_geometry_only"], out["rgb"]) and torch.allclose(
            out["rgb_colour_only"], out["rgb"]
        )
    finally:
        model.eval()


def test_nanmedian_matches_numpy_on_even_odd_and_empty_columns() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, 500))
    values[rng.random(values.shape) < 0.45] = np.nan
    values[:, :5] = np.nan  # columns no witness crossed
    values[:, 5:10] = np.inf  # an infinite value is no crossing either (the sweep never produces one)
    expected = np.nanmedian(np.where(np.isfinite(values), values, np.nan), axis=0)
    got = wit._nanmedian(torch.as_tensor(values)).numpy()
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.allclose(got[np.isfinite(got)], expected[np.isfinite(expected)], rtol=0, atol=1e-15)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sweep_on_the_gpu_gives_the_cpu_figures(scene: Scene) -> None:
    ys, xs = np.nonzero(scene.removal[0])
    xy = np.stack([xs, ys], -1)
    cpu = wit.sweep_background_depth(scene.views, scene.removal, scene.depth, 0, xy, 0.05, 2)
    grown = [dilate(m, 5, 1) for m in scene.removal]
    stack = wit.WitnessStack(scene.views, grown, scene.depth, scene.gt["images"], "cuda")
    gpu = wit.sweep_background_depth(scene.views, grown, scene.depth, 0, xy, 0.05, 0, stack=stack)
    assert np.array_equal(np.isnan(cpu), np.isnan(gpu)) and np.nanmax(np.abs(cpu - gpu)) < 1e-9
    a = scene.targets()
    b = scene.targets(device="cuda")
    assert all(np.array_equal(x, y) for x, y in zip(a.seen, b.seen))
    assert all(np.abs(x.astype(int) - y.astype(int)).max() <= 1 for x, y in zip(a.targets, b.targets))


def test_median_depth_removes_speckle_and_keeps_unknown_pixels() -> None:
    depth = np.full((20, 30), 2.0, np.float32)
    depth[:, 15:] = 4.0  # a depth edge
    depth[5, 5] = 0.3  # a one-pixel floater
    depth[10, 20] = np.nan  # no surface rendered
    out = vis.median_depth(depth, 5)
    assert out[5, 5] == 2.0 and np.isnan(out[10, 20])
    assert np.all(out[:, :14] == 2.0) and np.all(out[:, 16:][np.isfinite(out[:, 16:])] == 4.0)  # the edge stays
    assert vis.median_depth(depth, 0) is depth


def test_speckled_rendered_depth_loses_witnesses_the_median_recovers(scene: Scene) -> None:
    rng = np.random.default_rng(0)
    speckled = []
    for d in scene.depth:
        s = d.copy()
        s[rng.random(s.shape) < 0.05] *= 0.5  # one-pixel floaters on 5% of the pixels, as a short fit renders
        speckled.append(s)
    clean = scene.targets(config=vis.VisibilityConfig(depth_median=0))
    raw = scene.targets(rendered_depth=speckled, config=vis.VisibilityConfig(depth_median=0))
    filtered = scene.targets(rendered_depth=speckled, config=vis.VisibilityConfig(depth_median=5))
    share = [sum(int(s.sum()) for s in t.seen) for t in (clean, raw, filtered)]
    assert share[1] < 0.8 * share[0] and share[2] > 0.9 * share[0], share
    print("seen pixels clean, speckled, speckled + median:", share)
    bg = scene.gt["background"]
    err = [
        np.abs(t.targets[i][t.seen[i]].astype(float) - bg[i][t.seen[i]]).mean()
        for i in range(len(bg))
        for t in [filtered]
        if t.seen[i].any()
    ]
    assert float(np.mean(err)) < 8.0  # the colours the recovered witnesses saw are the background's (0-255)


@pytest.mark.parametrize("init", ["fresh", "reconstruction"])
def test_inpainted_fit_starts_from_a_fresh_field_or_the_reconstruction(init: str) -> None:
    from types import SimpleNamespace

    from spin_nerfstudio.model.names import Stage
    from spin_nerfstudio.stages.inpainted_fit import start_inpainted_fit

    m = _tiny_model()
    fresh = {k: v.clone() for k, v in m.field.state_dict().items()}
    with torch.no_grad():
        for p in m.field.parameters():
            p.add_(0.5)  # what the reconstruction learnt
    fitted = {k: v.clone() for k, v in m.field.state_dict().items()}
    optimiser = torch.optim.Adam(m.field.parameters())
    optimiser.state[next(m.field.parameters())]["step"] = torch.tensor(3.0)
    pipe = SimpleNamespace(
        spin_model=m, config=SimpleNamespace(inpaint_init=init, inpaint_schedule="continue"),
        _optimizers=SimpleNamespace(optimizers={"fields": optimiser}), _max_steps=None,
    )  # fmt: skip
    start_inpainted_fit(pipe, 40)
    start = fresh if init == "fresh" else fitted
    for key, value in m.field.state_dict().items():
        assert torch.equal(value, start[key]), key
    assert m.stage == Stage.INPAINT and pipe._stage_start_step == 40
    assert len(optimiser.state) == 0  # Adam's moments of the reconstruction do not carry over either way
