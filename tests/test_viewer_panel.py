"""The viewer's "Object removal" panel, driven with synthetic ViewerClick events against a real trained model.

One in-process trainer (``spin-inpaint-small`` with the viewer on loopback, so nerfstudio's real Viewer installs the
panel) reconstructs the tiny generated scene; the tests then click through training cameras at known pixels and
compare the lifted points with the generator's ground truth, mapped into nerfstudio's world with the run's
``dataparser_transforms.json``.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import viser
from nerfstudio.engine.callbacks import TrainingCallbackLocation
from nerfstudio.viewer.viewer_elements import ViewerClick
from PIL import Image

from spin_nerfstudio.data.synthetic import load_ground_truth
from spin_nerfstudio.data.synthetic_render import pixel_rays
from spin_nerfstudio.evaluation.metrics import mask_scores
from spin_nerfstudio.model.names import Stage
from spin_nerfstudio.prompts import SpinInputError, load_prompts, match_to_dataset
from spin_nerfstudio.render import render_views
from spin_nerfstudio.segmentation.propagate import PinholeView
from spin_nerfstudio.viewer import clicks as clicks_mod
from spin_nerfstudio.viewer import panel as panel_mod
from spin_nerfstudio.viewer.clicks import ClickPoint, build_prompts, choose_views, lift_click, map_surface
from spin_nerfstudio.viewer.panel import RemovalPanel

RECONSTRUCT = 200  # steps of reconstruction before the clicks
MASK_STEPS = 60  # the mask head covers the object after about 40 steps here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    """A trainer built like ``ns-train`` does, stepped by hand (the same calls as ``Trainer.train``)."""

    def __init__(self, trainer) -> None:
        self.trainer = trainer
        self.pipe = trainer.pipeline
        self.panel: RemovalPanel = trainer.pipeline.object_removal
        self.step = 0

    def train(self, n: int) -> None:
        t = self.trainer
        for _ in range(n):
            step = self.step
            t.step = step
            with t.train_lock:
                t.pipeline.train()
                for cb in t.callbacks:
                    cb.run_callback_at_location(step, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
                t.train_iteration(step)
                for cb in t.callbacks:
                    cb.run_callback_at_location(step, location=TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
            self.step += 1

    @property
    def run_dir(self) -> Path:
        return Path(self.trainer.base_dir)

    def view(self, k: int) -> PinholeView:
        return PinholeView.from_cameras(self.pipe.datamanager.train_dataset.cameras, k)

    def click_pixel(self, k: int, x: int, y: int) -> ViewerClick:
        """The click a user makes looking through training view k at pixel (x, y)."""
        v = self.view(k)
        d = v.rays(np.array([[x, y]]))[0]
        return ViewerClick(origin=tuple(v.origin), direction=tuple(d), screen_pos=((x + 0.5) / v.width, 0.5))


@pytest.fixture(scope="module")
def run(tiny_scene, tmp_path_factory):
    from spin_nerfstudio.spin_config import spin_inpaint_small_config

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: one thread is several times faster than two under load
    cfg = spin_inpaint_small_config()
    cfg.data = tiny_scene
    cfg.pipeline.datamanager.data = tiny_scene
    cfg.output_dir = tmp_path_factory.mktemp("viewer_runs")
    cfg.experiment_name, cfg.timestamp = "panel", "run"
    cfg.vis = "viewer"
    cfg.viewer.websocket_host = "127.0.0.1"
    cfg.viewer.websocket_port = free_port()
    cfg.machine.device_type = "cpu"
    cfg.max_num_iterations = 100_000
    cfg.pipeline.reconstruct_steps = 100_000  # viewer mode: nothing happens until the panel asks
    cfg.pipeline.mask_steps = MASK_STEPS
    cfg.get_base_dir().mkdir(parents=True, exist_ok=True)
    random.seed(cfg.machine.seed)  # as ns-train does
    np.random.seed(cfg.machine.seed)
    torch.manual_seed(cfg.machine.seed)
    trainer = cfg.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.pipeline.datamanager.train_dataparser_outputs.save_dataparser_transform(
        trainer.base_dir / "dataparser_transforms.json"
    )
    r = Run(trainer)
    r.train(RECONSTRUCT)
    yield r
    trainer.shutdown()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def truth(tiny_scene, run):
    """Ground truth of the scene and the dataparser's map from the generator's world to nerfstudio's."""
    gt = load_ground_truth(tiny_scene)
    meta = json.loads((tiny_scene / "transforms.json").read_text())
    tf = json.loads((run.run_dir / "dataparser_transforms.json").read_text())
    T, s = np.array(tf["transform"]), float(tf["scale"])

    def generator_points(k: int) -> np.ndarray:
        """H x W x 3 surface points of view k in the generator's world."""
        c2w = np.array(meta["frames"][k]["transform_matrix"])
        rays = pixel_rays(c2w, meta["fl_x"], meta["cx"], meta["cy"], meta["w"], meta["h"])
        return c2w[:3, 3] + gt["depth"][k][..., None] * rays  # generator depth: z-depth, rays with unit z

    def surface_points(k: int) -> np.ndarray:
        """H x W x 3 surface points of view k in nerfstudio's world."""
        return s * (generator_points(k) @ T[:, :3].T + T[:, 3])

    def surface_point(k: int, x: int, y: int) -> np.ndarray:
        return surface_points(k)[y, x]

    def to_generator(p: np.ndarray) -> np.ndarray:
        return np.linalg.solve(T[:, :3], np.asarray(p) / s - T[:, 3])

    scene = json.loads((tiny_scene / "scene.json").read_text())
    return {
        "gt": gt,
        "generator_points": generator_points,
        "surface_points": surface_points,
        "surface_point": surface_point,
        "to_generator": to_generator,
        "scene": scene,
    }


def object_pixel(mask: np.ndarray) -> tuple:
    """The object pixel farthest from the mask border."""
    import cv2

    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    return int(x), int(y)


def reset(run: Run) -> None:
    run.panel.clear()
    run.panel.select_mode("Off")


# ---------------------------------------------------------------------------------------------- wiring
def test_viewer_installs_the_panel_and_its_control(run):
    viewer = run.trainer.viewer_state
    assert any(el is run.panel for _, el in viewer.viewer_elements)
    assert run.pipe.object_removal_control in viewer.viewer_controls
    assert run.panel.viewer is viewer and run.panel.server is viewer.viser_server
    assert isinstance(run.panel.gui_handle, viser.GuiFolderHandle)
    labels = [run.panel._widgets[k]._impl.label for k in ("mode", "undo", "clear", "segment", "remove", "view", "goto")]
    assert labels == [
        "Click mode",
        "Undo last",
        "Clear all",
        "Segment",
        "Remove object",
        "Training view",
        "Go to training view",
    ]
    assert run.panel.last_step == RECONSTRUCT - 1  # the panel's training callback saw every step


def test_pointer_callback_registered_only_in_a_click_mode(run):
    scene = run.trainer.viewer_state.viser_server.scene
    reset(run)
    assert scene._scene_pointer_cb is None
    run.panel.select_mode("Positive")
    assert scene._scene_pointer_cb is not None and run.panel._widgets["mode"].value == "Positive"
    run.panel.select_mode("Negative")
    assert scene._scene_pointer_cb is not None
    run.panel.select_mode("Off")
    assert scene._scene_pointer_cb is None and run.panel._widgets["mode"].value == "Off"
    # Another component taking the pointer (nerfstudio allows one) drops the panel back to Off.
    run.panel.select_mode("Positive")
    run.pipe.object_removal_control.register_pointer_cb("click", lambda click: None)
    assert run.panel.mode == "Off"
    run.pipe.object_removal_control.unregister_pointer_cb()
    with pytest.raises(ValueError, match="click mode must be one of"):
        run.panel.select_mode("Sideways")


def test_only_a_browser_changes_the_click_mode_through_the_dropdown(run):
    from types import SimpleNamespace

    reset(run)
    run.panel.select_mode("Positive")
    # viser echoes the panel's own assignments to the dropdown later, on a worker thread, without a client; a stale
    # echo ("Off" from an earlier reset) must not undo the newer mode
    run.panel._on_mode_widget(SimpleNamespace(client=None, target=SimpleNamespace(value="Off")))
    run.trainer.viewer_state.viser_server.gui._thread_executor.submit(lambda: None).result(timeout=10)
    assert run.panel.mode == "Positive"
    run.panel._on_mode_widget(SimpleNamespace(client=object(), target=SimpleNamespace(value="Negative")))
    assert run.panel.mode == "Negative"
    reset(run)


# ---------------------------------------------------------------------------------------------- clicks
@pytest.mark.parametrize("k", [0, 5, 9])
def test_click_on_the_object_lands_on_the_ground_truth_surface(run, truth, k):
    reset(run)
    x, y = object_pixel(truth["gt"]["masks"][k])
    run.panel.select_mode("Positive")
    run.panel.click(run.click_pixel(k, x, y))
    assert len(run.panel.points) == 1, run.panel.messages[-1]
    point = run.panel.points[0]
    # Exactly the model's rendered depth along the clicked ray...
    rendered = render_views(run.pipe.model, run.pipe.datamanager.train_dataset.cameras, [k], keys=("depth",))
    origin, ray = run.view(k).origin, run.view(k).rays(np.array([[x, y]]))[0]
    np.testing.assert_allclose(point.xyz, origin + ray * rendered["depth"][0][y, x, 0], atol=2e-3)
    # ... which is the ground-truth surface, up to the tiny reconstruction's depth error (a few percent).
    expected = truth["surface_point"](k, x, y)
    distance = np.linalg.norm(expected - origin)
    error = point.xyz - expected
    along = float(error @ ray)
    assert abs(along) < 0.08 * distance, (point.xyz, expected)
    assert np.linalg.norm(error - along * ray) < 0.005 * distance  # the ray itself is exact
    box = truth["scene"]["object_bounds"]
    p = truth["to_generator"](point.xyz)
    outside = np.maximum(np.maximum(np.array(box["min"]) - p, p - np.array(box["max"])), 0.0)
    assert np.linalg.norm(outside) < 0.08 * distance, p  # on the box, up to the same depth error
    assert point.positive and k in point.seen and np.abs(np.array(point.seen[k]) - [x, y]).max() <= 1
    # The green sphere is in the viewer's scene, at the point (viewer units are world x 10).
    sphere = run.panel._spheres[0]
    assert np.linalg.norm(np.asarray(sphere.position) / 10 - point.xyz) <= run.panel.config.sphere_radius * 1.01


def render(run: Run, k: int) -> dict:
    """The model's depth and accumulation in training view k (H x W)."""
    out = render_views(run.pipe.model, run.pipe.datamanager.train_dataset.cameras, [k], keys=("depth", "accumulation"))
    return {key: v[0][..., 0] for key, v in out.items()}


def background_pixel(run: Run, truth, k: int, opaque: bool) -> tuple:
    """A background pixel of view k (4 px inside the image, 3 px from the object) where the model renders a
    surface within the scene (opacity >= 0.7, within 0.8 x the panel's max_distance) or nothing (opacity
    <= 0.1); the one nearest the image centre."""
    import cv2

    model = render(run, k)
    acc, view = model["accumulation"], run.view(k)
    h, w = acc.shape
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2)
    points = (view.origin + view.rays(grid) * model["depth"].reshape(-1, 1)).reshape(h, w, 3)
    inside = np.abs(points).max(axis=-1) < 0.8 * run.panel.config.max_distance
    ok = (acc >= 0.7) & inside if opaque else (acc <= 0.1)
    ok &= cv2.dilate(truth["gt"]["masks"][k].astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
    ok[:4], ok[-4:], ok[:, :4], ok[:, -4:] = False, False, False, False
    ys, xs = np.nonzero(ok)
    assert len(xs), "no such pixel in this view"
    i = np.argmin((xs - w / 2) ** 2 + (ys - h / 2) ** 2)
    return int(xs[i]), int(ys[i])


def test_click_on_the_background_is_a_negative_point_there(run, truth):
    reset(run)
    k = 3
    x, y = background_pixel(run, truth, k, opaque=True)
    run.panel.select_mode("Negative")
    run.panel.click(run.click_pixel(k, x, y))
    assert len(run.panel.points) == 1 and not run.panel.points[0].positive, run.panel.messages[-1]
    # Lifted with the model's depth (the tiny model's background depth is rough, so no ground-truth check here).
    origin, ray = run.view(k).origin, run.view(k).rays(np.array([[x, y]]))[0]
    np.testing.assert_allclose(run.panel.points[0].xyz, origin + ray * render(run, k)["depth"][y, x], atol=2e-3)
    assert len(run.panel._spheres) == 1  # drawn (red)
    # Only negative clicks: no prompt file yet (the format needs a positive click).
    assert not (run.run_dir / "prompts.json").exists()


def test_clicks_without_a_surface_give_a_notification_not_a_point(run, truth):
    reset(run)
    run.panel.select_mode("Positive")
    # Background that the model explains with its far background colour (opacity ~0): no surface.
    k = 3
    run.panel.click(run.click_pixel(k, *background_pixel(run, truth, k, opaque=False)))
    assert run.panel.points == [] and run.panel._spheres == []
    assert run.panel.messages[-1].startswith("No point: no surface here (opacity 0."), run.panel.messages[-1]
    # Straight back from the first camera, away from everything the photos saw.
    v = run.view(0)
    away = -v.rays(np.array([[v.width / 2, v.height / 2]]))[0]
    run.panel.click(ViewerClick(tuple(v.origin), tuple(away), (0.5, 0.5)))
    assert run.panel.points == []
    assert run.panel.messages[-1].startswith("No point:"), run.panel.messages[-1]
    # Too early in training: no depth to lift with.
    real = run.panel.last_step
    run.panel.last_step = 3
    x, y = object_pixel(truth["gt"]["masks"][0])
    run.panel.click(run.click_pixel(0, x, y))
    run.panel.last_step = real
    assert run.panel.points == [] and run.panel.messages[-1].startswith("No depth yet")


def test_a_click_while_training_runs_is_taken_at_the_next_step(run, truth):
    """The training loop gives the lock back for a few bytecodes between steps and Python's lock is not fair: a click
    that only waited for the lock could wait for minutes. The panel's step callback takes it at the next step."""
    reset(run)
    run.panel.select_mode("Positive")
    stop, failed = threading.Event(), []

    def training() -> None:
        try:
            while not stop.is_set():
                run.train(1)
        except BaseException as err:  # noqa: BLE001 - reported below
            failed.append(err)

    trainer = threading.Thread(target=training)
    trainer.start()
    try:
        while run.step < RECONSTRUCT + 2 and not failed:  # the loop is running
            time.sleep(0.01)
        before = run.step
        run.panel.click(run.click_pixel(0, *object_pixel(truth["gt"]["masks"][0])))
        after = run.step
    finally:
        stop.set()
        trainer.join(120)
    assert not failed and not trainer.is_alive(), failed
    assert len(run.panel.points) == 1 and run.panel.messages[-1].startswith("Added a positive point")
    assert after - before <= 2, (before, after)  # taken in the step that was running, or the next one


def test_a_click_that_waits_for_the_trainer_says_so_and_is_taken_after(run, truth, monkeypatch):
    reset(run)
    monkeypatch.setattr(run.panel.config, "busy_notice", 0.2)
    run.panel.select_mode("Negative")
    clicker = threading.Thread(
        target=run.panel.click, args=(run.click_pixel(3, *background_pixel(run, truth, 3, opaque=True)),)
    )
    n = len(run.panel.messages)
    with run.trainer.train_lock:  # a long step (a segmentation) holds the lock
        clicker.start()
        end = time.time() + 30
        while not any(
            m.startswith("Click waits: the trainer is busy (a training step or a render)")
            for m in run.panel.messages[n:]
        ):
            assert time.time() < end, run.panel.messages[n:]
            time.sleep(0.02)
        assert run.panel.points == []
        run.panel.on_step(run.step - 1)  # the step ends: the panel's callback (under the lock) takes the click
    clicker.join(30)
    assert not clicker.is_alive() and len(run.panel.points) == 1 and not run.panel.points[0].positive
    assert run.panel.messages[-1].startswith("Added a negative point"), run.panel.messages[n:]


def test_a_click_that_cannot_be_taken_is_never_silent(run, truth, monkeypatch):
    reset(run)
    x, y = object_pixel(truth["gt"]["masks"][0])
    # Mode switched Off before the click ran (the pointer callback was swapped meanwhile).
    run.panel.click(run.click_pixel(0, x, y))
    assert run.panel.points == [] and run.panel.messages[-1].startswith("Click not taken: the click mode is Off")
    # An error while lifting the click: viser's worker thread would swallow it; the panel says it.
    run.panel.select_mode("Positive")

    def broken(*args, **kwargs):
        raise RuntimeError("render failed")

    monkeypatch.setattr(panel_mod, "lift_click", broken)
    run.panel.click(run.click_pixel(0, x, y))
    assert run.panel.points == [] and run.panel.messages[-1] == "Click not taken: RuntimeError: render failed"
    monkeypatch.undo()
    run.panel.click(run.click_pixel(0, x, y))
    assert len(run.panel.points) == 1
    reset(run)


def test_lift_click_thresholds(monkeypatch):
    """Opacity and distance decide between a point, 'no surface' and 'infinity' (model stubbed)."""
    answers = {}
    monkeypatch.setattr(clicks_mod, "render_rays", lambda model, o, d: answers["v"])
    answers["v"] = (np.array([2.0]), np.array([0.9]))
    res = lift_click(None, (0, 0, 0), (0, 0, -2), min_accumulation=0.5, max_distance=20)
    np.testing.assert_allclose(res.point, [0, 0, -2.0])
    answers["v"] = (np.array([2.0]), np.array([0.2]))
    assert lift_click(None, (0, 0, 0), (0, 0, -1)).point is None
    assert "no surface here (opacity 0.20 < 0.5)" in lift_click(None, (0, 0, 0), (0, 0, -1)).message
    answers["v"] = (np.array([300.0]), np.array([1.0]))
    res = lift_click(None, (0, 0, 0), (0, 1, 0), max_distance=20)
    assert res.point is None and "background at infinity (300.0 > 20" in res.message
    assert lift_click(None, (0, 0, 0), (0, 0, 0)).message == "the click has no valid ray"


# ---------------------------------------------------------------------------------------------- edits and file
def test_undo_clear_and_the_prompt_file(run, truth):
    reset(run)
    gt = truth["gt"]
    run.panel.select_mode("Positive")
    for k in (0, 6):
        run.panel.click(run.click_pixel(k, *object_pixel(gt["masks"][k])))
    run.panel.select_mode("Negative")
    run.panel.click(run.click_pixel(3, *background_pixel(run, truth, 3, opaque=True)))
    assert [p.positive for p in run.panel.points] == [True, True, False]
    assert len(run.panel._spheres) == 3
    path = run.run_dir / "prompts.json"
    saved = load_prompts(path)  # the same format a headless run reads with --pipeline.prompt-file
    names = run.pipe.datamanager.image_names
    views = match_to_dataset(saved, names, run.pipe.datamanager.image_sizes())
    assert saved.num_positive == 2
    all_3d = [xyz for p in saved.prompts for xyz in p.positive_3d]
    for point in run.panel.points[:2]:
        assert any(np.allclose(point.xyz, xyz) for xyz in all_3d)
    for prompt, k in zip(saved.prompts, views):
        assert len(prompt.positive) == len(prompt.positive_3d) and len(prompt.negative) == len(prompt.negative_3d)
        for (x, y), xyz in zip(prompt.positive, prompt.positive_3d):
            assert gt["masks"][k][int(y), int(x)], (prompt.image, x, y)  # the pixel is on the object there
            assert np.abs(clicks_mod.pixel_of(run.view(k), np.array(xyz)) - [x, y]).max() <= 1
    run.panel.undo()
    assert [p.positive for p in run.panel.points] == [True, True] and len(run.panel._spheres) == 2
    assert sum(len(p.negative) for p in load_prompts(path).prompts) == 0
    run.panel.undo()
    assert load_prompts(path).num_positive == 1
    run.panel.clear()
    assert run.panel.points == [] and run.panel._spheres == [] and not path.exists()
    run.panel.undo()
    assert run.panel.messages[-1] == "Nothing to undo: there are no clicks"


def test_segment_needs_a_positive_click(run):
    reset(run)
    run.panel.segment()
    assert not run.panel.pending_segmentation
    assert run.panel.messages[-1] == "Cannot segment: add a positive click on the object first"


def test_clicks_are_off_when_the_run_has_a_prompt_file(run, tiny_scene):
    reset(run)
    run.pipe.config.prompt_file = tiny_scene / "prompts.json"
    try:
        run.panel.select_mode("Positive")
        assert run.panel.mode == "Off" and run.panel.messages[-1].startswith("Clicks are off")
    finally:
        run.pipe.config.prompt_file = None


# ---------------------------------------------------------------------------------------------- segment, remove
def test_segment_then_remove_object(run, truth):
    reset(run)
    gt = truth["gt"]
    run.panel.select_mode("Positive")
    run.panel.click(run.click_pixel(0, *object_pixel(gt["masks"][0])))
    run.panel.select_mode("Negative")
    run.panel.click(run.click_pixel(3, *background_pixel(run, truth, 3, opaque=True)))
    run.panel.select_mode("Off")
    assert run.pipe.spin_model.stage == Stage.RECONSTRUCT and not run.pipe.removal_requested
    run.panel.segment()
    assert run.panel.pending_segmentation and run.panel.messages[-1] == "Segmenting: at the next training step"
    start = run.step
    run.train(1)
    assert run.pipe.spin_model.stage == Stage.SEGMENT and run.panel.segment_step == start
    assert run.panel.messages[-1].startswith("Segmented: clicks in ")
    names = run.pipe.datamanager.image_names
    initial = [np.array(Image.open(run.run_dir / "initial_masks" / n)) > 0 for n in names]
    ious = [mask_scores(p, g)[0] for p, g in zip(initial, gt["masks"])]
    assert np.mean(ious) > 0.6, ious
    assert run.pipe.prompts is not None and run.pipe.prompts.prompts[0].positive_3d
    # Segmented, but nobody pressed "Remove object": the mask head keeps training past its steps.
    run.train(MASK_STEPS + 2)
    assert run.pipe.spin_model.stage == Stage.SEGMENT
    assert "press Remove object" in run.panel._widgets["status"].content
    # An empty final mask does not end a viewer run: the panel says so and waits for another "Remove object".
    run.pipe.removal_requested = True
    assert not run.panel.accept_final_masks([np.zeros((4, 4), bool)] * 2)
    assert not run.pipe.removal_requested and run.panel.messages[-1].startswith("Not removing yet: the mask head")
    run.panel.remove()
    assert run.pipe.removal_requested and not run.panel.pending_segmentation  # clicks unchanged: no re-segmenting
    run.train(1)
    assert run.pipe.spin_model.stage == Stage.INPAINT
    final = [np.array(Image.open(run.run_dir / "masks" / n)) > 0 for n in names]
    assert np.mean([mask_scores(p, g)[0] for p, g in zip(final, gt["masks"])]) > 0.5
    assert (run.run_dir / "inpainted" / "_complete.json").is_file()
    # Removal is under way: the panel refuses clicks and further segmentation, and says so.
    run.panel.select_mode("Positive")
    assert run.panel.mode == "Off" and run.panel.messages[-1].startswith("Clicks are off")
    run.panel.segment()
    assert not run.panel.pending_segmentation
    assert run.panel._widgets["segment"].disabled and "inpaint" in run.panel._widgets["status"].content


# ---------------------------------------------------------------------------------------------- pure helpers
def _views():
    c2w = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    left, right = c2w.copy(), c2w.copy()
    left[0, 3], right[0, 3] = -1.0, 1.0
    return [PinholeView(c2w=m, fx=20.0, fy=20.0, cx=20.0, cy=15.0, width=40, height=30) for m in (left, right)]


def test_views_are_chosen_until_every_positive_point_is_covered():
    views = _views()
    # Both views look down -z at a wall z = -5 (rendered depth is the distance along each pixel's ray).
    grid = np.stack(np.meshgrid(np.arange(40), np.arange(30)), -1).reshape(-1, 2)
    depth = [(5.0 / -v.rays(grid)[:, 2]).reshape(30, 40) for v in views]
    surface = map_surface(depth, [np.ones((30, 40))] * 2)
    left_only, right_only, negative = np.array([-4.5, 0, -5.0]), np.array([4.5, 0, -5.0]), np.array([-1.0, 0.5, -5.0])
    seen = [clicks_mod.seen_in_views(p, views, surface) for p in (left_only, right_only, negative)]
    assert seen == [{0: (6, 15)}, {1: (34, 15)}, {0: (20, 13), 1: (12, 13)}]
    clicked = [ClickPoint(True, left_only, seen[0]), ClickPoint(True, right_only, seen[1])]
    clicked.append(ClickPoint(False, negative, seen[2]))
    assert choose_views(clicked, views) == [0, 1]
    prompts, idx = build_prompts(clicked, views, ["a.png", "b.png"])
    assert idx == [0, 1] and [p.image for p in prompts.prompts] == ["a.png", "b.png"]
    assert prompts.prompts[0].positive == [(6.0, 15.0)] and prompts.prompts[0].negative == [(20.0, 13.0)]
    assert prompts.prompts[1].positive == [(34.0, 15.0)] and prompts.prompts[1].negative == [(12.0, 13.0)]
    assert prompts.prompts[1].positive_3d == [(4.5, 0.0, -5.0)] and prompts.prompts[1].negative_3d == [
        (-1.0, 0.5, -5.0)
    ]
    # One view seeing both positive points is enough.
    both = [ClickPoint(True, left_only, {0: (6, 15)}), ClickPoint(True, right_only, {0: (30, 15), 1: (34, 15)})]
    assert choose_views(both, views) == [0]
    # Two views see one point: the one looking from where the user clicked wins over the more centred one.
    point = np.array([-0.5, 0.0, -5.0])
    seen_both = clicks_mod.seen_in_views(point, views, surface)
    assert seen_both == {0: (22, 15), 1: (14, 15)}
    assert choose_views([ClickPoint(True, point, seen_both)], views) == [0]  # no clicking camera: the centred view
    from_right = (views[1].c2w[:, 3] - point) / np.linalg.norm(views[1].c2w[:, 3] - point)
    assert choose_views([ClickPoint(True, point, seen_both, towards_camera=from_right)], views) == [1]
    from_left = (views[0].c2w[:, 3] - point) / np.linalg.norm(views[0].c2w[:, 3] - point)
    assert choose_views([ClickPoint(True, point, seen_both, towards_camera=from_left)], views) == [0]
    # A point behind the wall is hidden from both views; no view seeing a positive point is an error.
    assert clicks_mod.seen_in_views(np.array([-4.5, 0.0, -8.0]), views, surface) == {}
    with pytest.raises(SpinInputError, match="viewer: no training view sees a positive click"):
        build_prompts([ClickPoint(True, left_only, {})], views, ["a.png", "b.png"])
