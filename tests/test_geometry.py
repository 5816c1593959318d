"""Reconstruction figures without ground truth (evaluation/geometry.py), the LLFF eval split offset and the
restarted learning-rate schedule of the inpainted fit, on generated scenes whose depth is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spin_nerfstudio.data.synthetic import SceneSpec, make_scene
from spin_nerfstudio.data.synthetic_render import pixel_rays
from spin_nerfstudio.evaluation import geometry as geo
from spin_nerfstudio.segmentation.propagate import PinholeView


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return make_scene(tmp_path_factory.mktemp("geom") / "scene", SceneSpec(num_views=10, width=64, height=48))


def _views_and_depths(scene: Path):
    meta = json.loads((scene / "transforms.json").read_text())
    views, depths = [], []
    for frame in meta["frames"]:
        c2w = np.asarray(frame["transform_matrix"], np.float64)
        views.append(PinholeView(c2w[:3], meta["fl_x"], meta["fl_y"], meta["cx"], meta["cy"], meta["w"], meta["h"]))
        stem = Path(frame["file_path"]).stem
        z = np.load(scene / "depth" / f"{stem}.npy")
        rays = pixel_rays(c2w, meta["fl_x"], meta["cx"], meta["cy"], meta["w"], meta["h"])
        depths.append(z * np.linalg.norm(rays, axis=-1))  # z-depth -> ray distance, as nerfstudio renders it
    return views, depths


def test_true_depth_reprojects(scene):
    views, depths = _views_and_depths(scene)
    c = geo.depth_consistency(views, depths)
    assert c.pixels > 0.5 * sum(d.size for d in depths)
    assert c.agreement > 0.93, c  # only occlusion between neighbours disagrees
    assert c.median_error < 0.005, c


def test_wrong_depth_and_shuffled_poses_do_not_reproject(scene):
    views, depths = _views_and_depths(scene)
    rng = np.random.default_rng(0)
    noisy = [d * rng.uniform(0.7, 1.3, size=d.shape) for d in depths]  # floaters everywhere
    assert geo.depth_consistency(views, noisy).agreement < 0.4
    order = np.random.default_rng(1).permutation(len(views))
    shuffled = [views[k] for k in order]
    c = geo.depth_consistency(shuffled, depths)
    assert c.agreement < 0.45, c  # exact depth, wrong poses: far below the > 93% of the right poses
    # figures of a fitted reconstruction of a generated scene whose pose rows were shuffled (docs/geometry.md)
    figures = geo.ReconstructionFigures(27.3, 26.9, 2, geo.DepthConsistency(0.233, 0.222, 0.05, 1000))
    message = geo.pose_problem(figures)
    assert message is not None and "poses do not seem to agree" in message and "reprojects" in message
    assert "\n" not in message
    good = geo.ReconstructionFigures(25.0, 24.0, 2, geo.depth_consistency(views, depths))
    assert geo.pose_problem(good) is None
    loose = geo.DepthConsistency(0.32, 0.118, 0.05, 1000)  # a short fit of a smooth generated scene, right poses
    assert geo.pose_problem(geo.ReconstructionFigures(35.0, None, 0, loose)) is None
    assert "held-out PSNR 24.00 dB on 2" in good.line()


def test_psnr_outside_mask():
    image = np.zeros((8, 8, 3))
    render = image.copy()
    render[:4] = 1.0  # wrong only in the top half
    keep = np.ones((8, 8), bool)
    keep[:4] = False
    assert geo.mean_psnr([render], [image], [keep]) == pytest.approx(100.0)
    assert geo.psnr(render, image) == pytest.approx(-10 * np.log10(0.5))


def test_llff_eval_offset(scene):
    from spin_nerfstudio.data.llff import SpinLLFFDataParserConfig

    cfg = SpinLLFFDataParserConfig(data=scene, downscale_factor=1, eval_mode="interval", eval_offset=3)
    parser = cfg.setup()
    train = [Path(p).name for p in parser.get_dataparser_outputs("train").image_filenames]
    held = [Path(p).name for p in parser.get_dataparser_outputs("val").image_filenames]
    assert held == ["003.png"] and len(train) == 9 and "003.png" not in train
    default = SpinLLFFDataParserConfig(data=scene, downscale_factor=1, eval_mode="interval").setup()
    assert [Path(p).name for p in default.get_dataparser_outputs("val").image_filenames] == ["000.png", "008.png"]
    with pytest.raises(ValueError, match="eval_offset must be in"):
        SpinLLFFDataParserConfig(
            data=scene, downscale_factor=1, eval_mode="interval", eval_offset=8
        ).setup()._split_indices("train", 10)


def test_restart_schedules_runs_the_whole_decay_again():
    from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig

    from spin_nerfstudio.model.schedule import restart_schedules

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=2e-2)
    sched = ExponentialDecaySchedulerConfig(lr_final=2e-3, max_steps=2400).setup().get_scheduler(opt, 2e-2)
    for _ in range(1200):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-2 * 0.1**0.5, rel=1e-3)  # the tail of the run's decay
    assert restart_schedules({"fields": sched}, 1200, 2400) == 1
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-2)
    for _ in range(600):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-2 * 0.1**0.5, rel=1e-2)  # halfway through the fit
    restart_schedules({"fields": sched}, 1200, 2400)  # again (a resume): same schedule, at the current step
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-2 * 0.1**0.5, rel=1e-2)
    for _ in range(600):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3, rel=1e-2)  # not compressed twice


# sha256 of images + depth of two small scenes, written by the generator before the texture option existed.
_SMOOTH_DIGESTS = (
    "a16b1f041275d8becd1313ffea57c35716b27d7c45c99afc83902957c627a9f0",
    "99c5c918bb5619b647f6d25f30fe96b300a2f77da44a0837481f55182cfd22b8",
)


def _digest(scene: Path) -> str:
    import hashlib

    from spin_nerfstudio.data.synthetic import load_ground_truth

    gt = load_ground_truth(scene)
    return hashlib.sha256(gt["images"].tobytes() + gt["depth"].tobytes()).hexdigest()


def test_sharp_textures_keep_smooth_seeds_and_add_high_frequencies(tmp_path):
    import dataclasses

    from spin_nerfstudio.data.synthetic import load_ground_truth
    from spin_nerfstudio.data.synthetic_scene import TEXTURES, varied_spec

    specs = (SceneSpec(num_views=6, width=64, height=48, seed=0), varied_spec(3, num_views=6, width=64, height=48))
    for k, (spec, digest) in enumerate(zip(specs, _SMOOTH_DIGESTS)):
        assert _digest(make_scene(tmp_path / f"smooth{k}", spec)) == digest

    def high_frequency(images: np.ndarray) -> float:  # mean absolute difference of horizontal neighbours
        g = images.astype(np.float64).mean(axis=-1)
        return float(np.abs(np.diff(g, axis=-1)).mean())

    smooth = load_ground_truth(tmp_path / "smooth0")
    for texture in TEXTURES[1:]:
        scene = make_scene(tmp_path / texture, dataclasses.replace(specs[0], texture=texture))
        gt = load_ground_truth(scene)
        assert np.array_equal(gt["masks"], smooth["masks"]) and np.array_equal(gt["depth"], smooth["depth"])
        assert high_frequency(gt["background"]) > 2.0 * high_frequency(smooth["background"]), texture
        assert json.loads((scene / "scene.json").read_text())["spec"]["texture"] == texture
    with pytest.raises(ValueError, match="unknown texture 'dots'"):
        make_scene(tmp_path / "bad", dataclasses.replace(specs[0], texture="dots"))


def test_run_writes_geometry_figures(tiny_run):
    """The tiny end-to-end run (correct poses) passes the pose check and reports its figures."""
    from conftest import run_cli

    data = json.loads((tiny_run / geo.GEOMETRY_FILE).read_text())
    rec = data["reconstruction"]
    assert rec["train_psnr"] > 22.0 and rec["heldout_psnr"] is None  # every view trains in this run
    # a short fit of a smooth scene leaves loosely placed depth (two runs: 32% within 5% with median 12%, 27% with
    # median 18%, close to shuffled poses' 23% / 22%), so by default the pose check only warns and the run goes on
    assert rec["depth"]["agreement"] > 0.2 and rec["depth"]["median_error"] < 0.3
    assert (tiny_run / "inpainted").is_dir() and any((tiny_run / "nerfstudio_models").glob("*.ckpt"))
    proc = run_cli(["spin-nerf", "dev", "geometry", tiny_run], cwd=tiny_run)
    assert proc.returncode == 0, proc.stderr
    assert f"training PSNR {rec['train_psnr']:.2f} dB" in proc.stdout and "depth agreement" in proc.stdout


def test_shuffled_poses_stop_after_reconstruction(tiny_scene, tmp_path):
    """An LLFF capture whose pose rows are shuffled stops before segmentation with one line saying so."""
    import shutil

    from conftest import TINY_STEPS, ns_train_args, run_cli

    scene = tmp_path / "shuffled"
    shutil.copytree(tiny_scene, scene)
    rows = np.load(scene / "poses_bounds.npy")
    np.save(scene / "poses_bounds.npy", rows[np.random.default_rng(0).permutation(len(rows))])
    args = ns_train_args(
        scene,
        tmp_path,
        "--pipeline.prompt-file",
        scene / "prompts.json",
        "--pipeline.check-poses",
        "stop",
        steps=TINY_STEPS,
    )
    args = [a for a in args if a not in ("--data", scene)]  # the LLFF parser takes the folder instead
    args += ["spin-llff", "--data", scene, "--downscale-factor", 1]
    proc = run_cli(args, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "the camera poses do not seem to agree with the images" in out, out[-3000:]
    run_dir = tmp_path / "tiny" / "spin-inpaint-small" / "run"
    assert (run_dir / geo.GEOMETRY_FILE).is_file() and not (run_dir / "inpainted").exists()


def test_restarted_schedule_checkpoints(tmp_path):
    """Schedulers with a restarted schedule still save (their functions stay out of the state, as nerfstudio's)."""
    from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig

    from spin_nerfstudio.model.schedule import restart_schedules

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    sched = ExponentialDecaySchedulerConfig(lr_final=1e-3, max_steps=100).setup().get_scheduler(opt, 1e-2)
    restart_schedules({"fields": sched}, 50, 100)
    torch.save({"schedulers": {"fields": sched.state_dict()}}, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["schedulers"]["fields"]["lr_lambdas"] == [None]


def test_a_refused_click_on_unreliable_depth_says_so(tmp_path) -> None:
    """A refused click's message gains a note naming the depth agreement when the reconstruction's depth is poor
    (buddha: 30%), and nothing when it is fine or was not measured."""
    from spin_nerfstudio.evaluation.geometry import GEOMETRY_FILE, stored_depth_agreement, write_figures
    from spin_nerfstudio.stages.initial_masks import depth_note

    assert stored_depth_agreement(tmp_path) is None and stored_depth_agreement(None) is None
    write_figures(tmp_path, "reconstruction", {"depth": {"agreement": 0.296}})
    assert stored_depth_agreement(tmp_path) == pytest.approx(0.296)
    note = depth_note(stored_depth_agreement(tmp_path))
    assert (
        "agrees between neighbouring views on only 30% of its pixels" in note
        and "--pipeline.segmenter.backend sam" in note
    )
    assert depth_note(0.766) == "" and depth_note(None) == ""
    (tmp_path / GEOMETRY_FILE).write_text("{not json")
    assert stored_depth_agreement(tmp_path) is None


def _held_out_pipeline(held_name: str, cameras, mask_dir, run_dir: Path):
    """A stand-in pipeline with one training view 'a.png' and one held-out view, for the held-out figures."""
    from types import SimpleNamespace

    return SimpleNamespace(
        datamanager=SimpleNamespace(
            train_dataset=SimpleNamespace(image_filenames=[Path("a.png")]),
            eval_dataset=SimpleNamespace(image_filenames=[Path("a.png"), Path(held_name)], cameras=cameras),
        ),
        model=SimpleNamespace(config=SimpleNamespace(mask_threshold=0.5)),
        config=SimpleNamespace(reuse_stages=None, dilate_kernel=1, mask_dir=mask_dir),
        dilate_iterations=lambda width: 0,
        run_dir=run_dir,
    )


def test_removal_figures_use_the_held_out_mask_from_when_the_segmentation_ended(tmp_path, monkeypatch):
    """After the fit the mask head marks the background behind the object; in a held-out view that can leave the
    object outside the mask. The figure must use the mask rendered while the object still stood in the field."""

    from spin_nerfstudio.evaluation import geometry_check as gc

    image = np.zeros((8, 8, 3), np.float32)
    image[:4] = 1.0  # the object fills the top half of the held-out view
    renders = {"object_mask": np.zeros((8, 8, 1), np.float32), "rgb": np.zeros((8, 8, 3), np.float32)}
    renders["object_mask"][:4] = 1.0  # while segmenting: on the object

    def fake_render(model, cameras, indices, keys, **kwargs):
        return {k: [renders[k].copy() for _ in indices] for k in keys}

    monkeypatch.setattr(gc, "render_views", fake_render)
    monkeypatch.setattr(gc, "_eval_images", lambda pipeline, indices: [image for _ in indices])
    pipe = _held_out_pipeline("held.png", None, None, tmp_path)
    gc.store_heldout_masks(pipe)
    stored = np.load(tmp_path / gc.HELDOUT_MASKS)
    assert stored.shape == (1, 8, 8) and stored[0, :4].min() == 1.0 and stored[0, 4:].max() == 0.0
    pipe._heldout_before = [image.copy()]  # the reconstruction rendered the held-out view exactly
    renders["object_mask"] = np.zeros((8, 8, 1), np.float32)
    renders["object_mask"][4:] = 1.0  # after the fit: the mask sits on the background below the object
    del pipe._heldout_masks  # as in a resumed run: read back from the run folder
    result = gc.removal_figures(pipe)
    assert result["mask_source"] == "segmentation"
    # the after render is the empty background: exact outside the object's mask, wrong on the object
    assert result["psnr_outside_mask_after"] == pytest.approx(100.0)
    assert result["psnr_outside_fit_mask_after"] == pytest.approx(0.0)
    written = json.loads((tmp_path / geo.GEOMETRY_FILE).read_text())["removal"]
    assert written["psnr_outside_mask_after"] == pytest.approx(100.0)
    # a run without the stored masks falls back to the mask rendered after the fit, and says so
    (tmp_path / gc.HELDOUT_MASKS).unlink()
    fallback = gc.removal_figures(pipe)
    assert fallback["mask_source"] == "after the fit" and fallback["psnr_outside_mask_after"] == pytest.approx(0.0)


def test_a_run_with_ready_made_masks_takes_the_held_out_masks_from_its_mask_folder(tmp_path, monkeypatch, capsys):
    """With --pipeline.mask-dir there is no segmentation to render held-out masks from: the folder's masks of the
    held-out views are used (resized to the view), and a folder without them falls back, saying so."""
    from types import SimpleNamespace

    from PIL import Image

    from spin_nerfstudio.evaluation import geometry_check as gc

    image = np.zeros((8, 8, 3), np.float32)
    image[:4] = 1.0  # the object fills the top half of the held-out view
    renders = {"object_mask": np.zeros((8, 8, 1), np.float32), "rgb": np.zeros((8, 8, 3), np.float32)}
    renders["object_mask"][4:] = 1.0  # after the fit: the mask sits on the background below the object
    monkeypatch.setattr(
        gc, "render_views", lambda m, c, indices, keys, **kw: {k: [renders[k]] * len(indices) for k in keys}
    )
    monkeypatch.setattr(gc, "_eval_images", lambda pipeline, indices: [image for _ in indices])
    masks = tmp_path / "masks"
    masks.mkdir()
    half = np.zeros((4, 4), np.uint8)
    half[:2] = 255  # stored at half the view's size: the top half
    Image.fromarray(half).save(masks / "held.png")
    run = tmp_path / "run"
    run.mkdir()
    cameras = SimpleNamespace(width=np.array([8, 8]), height=np.array([8, 8]))
    pipe = _held_out_pipeline("held.jpg", cameras, masks, run)
    pipe._heldout_before = [image.copy()]
    gc.store_given_heldout_masks(pipe)
    stored = np.load(run / gc.HELDOUT_MASKS)
    assert stored.shape == (1, 8, 8) and stored[0, :4].min() == 1.0 and stored[0, 4:].max() == 0.0
    result = gc.removal_figures(pipe)
    assert result["mask_source"] == "mask folder" and result["psnr_outside_mask_after"] == pytest.approx(100.0)
    assert "masks from the mask folder" in capsys.readouterr().out
    # an unreadable mask, then no mask for the held-out view: nothing stored, the figure falls back and says why
    (masks / "held.png").write_text("not a png")
    (run / gc.HELDOUT_MASKS).unlink()
    del pipe._heldout_masks
    gc.store_given_heldout_masks(pipe)
    assert not (run / gc.HELDOUT_MASKS).exists() and "cannot read" in capsys.readouterr().out
    (masks / "held.png").unlink()
    gc.store_given_heldout_masks(pipe)
    assert not (run / gc.HELDOUT_MASKS).exists()
    assert "has no mask for held-out view 'held.jpg'" in capsys.readouterr().out
    fallback = gc.removal_figures(pipe)
    assert fallback["mask_source"] == "after the fit" and fallback["psnr_outside_mask_after"] == pytest.approx(0.0)
