"""Poses that do not agree with the images are caught before the reconstruction (data/pose_check.py).

The figure is the share of ratio-test SIFT matches between neighbouring views that lie on the epipolar lines of
their poses: high for a real capture with its own poses, near 0 with the poses shuffled among the views, and not
judged on a scene with too little texture to match. Each check takes well under a second at these sizes.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO, SHARED

from spin_nerfstudio.data.pose_check import AGREEMENT_MIN, neighbour_pairs
from spin_nerfstudio.dev.poses import capture_agreement
from spin_nerfstudio.prompts import SpinInputError

KERMIT = REPO / "captures" / "kermit"
JUICEBOX = SHARED / "data" / "juicebox"


@pytest.mark.parametrize("data,factor", [(KERMIT, 4), (REPO / "captures" / "fox", 8), (JUICEBOX, 8)])
def test_true_poses_agree_and_shuffled_poses_do_not(data: Path, factor: int) -> None:
    if not data.is_dir():
        pytest.skip(f"capture absent: {data}")
    right = capture_agreement(data, factor)
    assert right.agrees is True and right.share > 0.7 and right.judged >= 8, right
    for seed in (0, 1):
        wrong = capture_agreement(data, factor, shuffle=seed)
        assert wrong.agrees is False and wrong.share < 0.1, (seed, wrong)
        assert "poses do not agree with the images: only" in wrong.problem()
    assert right.problem() is None


def test_tiny_smooth_scene_is_not_judged(tiny_scene: Path) -> None:
    """12 views of 64 x 48 with smooth colours give too few SIFT matches to say anything."""
    result = capture_agreement(tiny_scene)
    assert result.share is None and result.agrees is None and result.problem() is None
    assert result.judged < 3 and "poses not judged" in result.line()


def test_neighbour_pairs_are_nearest_centres_and_capped() -> None:
    line = np.stack([np.arange(6.0), np.zeros(6), np.zeros(6)], axis=1)
    assert neighbour_pairs(line) == [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (3, 5), (4, 5)]
    grid = np.random.default_rng(0).normal(size=(100, 3))
    pairs = neighbour_pairs(grid, max_pairs=32)
    assert len(pairs) == 32 and len(set(pairs)) == 32 and all(i < j for i, j in pairs)


def _pipe(data: Path, factor: int, mode: str, shuffle=None, run_dir=None):
    """A stand-in pipeline holding the capture's training cameras and images (poses permuted with ``shuffle``)."""
    from PIL import Image

    from spin_nerfstudio.data.llff import SpinLLFFDataParserConfig

    outputs = SpinLLFFDataParserConfig(data=data, downscale_factor=factor).setup().get_dataparser_outputs("train")
    cams = outputs.cameras
    if shuffle is not None:
        cams.camera_to_worlds = cams.camera_to_worlds[np.random.default_rng(shuffle).permutation(len(cams))]
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in outputs.image_filenames])
    dm = SimpleNamespace(
        train_dataset=SimpleNamespace(cameras=cams),
        images_uint8=lambda: images,
        config=SimpleNamespace(data=data, dataparser=SimpleNamespace(data=data)),
    )
    return SimpleNamespace(datamanager=dm, config=SimpleNamespace(check_poses=mode), run_dir=run_dir)


def test_stop_mode_raises_one_line_naming_the_data() -> None:
    from spin_nerfstudio.stages.inputs import check_pose_agreement

    with pytest.raises(SpinInputError) as info:
        check_pose_agreement(_pipe(KERMIT, 4, "stop", shuffle=0))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{KERMIT}: poses do not agree with the images: only ")
    assert "check the poses file's row order" in message


def test_warn_mode_says_so_and_goes_on(capsys, tmp_path) -> None:
    from spin_nerfstudio.evaluation.geometry import GEOMETRY_FILE
    from spin_nerfstudio.stages.inputs import check_pose_agreement, write_pose_figures

    pipe = _pipe(KERMIT, 4, "warn", shuffle=0, run_dir=tmp_path)
    pipe.pose_agreement = check_pose_agreement(pipe)
    out = capsys.readouterr().out.replace("\n", " ")
    assert pipe.pose_agreement.agrees is False
    assert "poses: 0% of SIFT matches" in out or "poses: " in out
    assert "warning:" in out and "poses do not agree with the images" in out and "check-poses stop" in out
    (tmp_path / GEOMETRY_FILE).write_text(json.dumps({"reconstruction": {"train_psnr": 30.0}}))
    write_pose_figures(pipe)
    data = json.loads((tmp_path / GEOMETRY_FILE).read_text())
    assert data["reconstruction"] == {"train_psnr": 30.0}  # earlier keys kept
    assert data["poses"]["agrees"] is False and data["poses"]["share"] < AGREEMENT_MIN


def test_correct_poses_print_the_figure_without_a_warning(capsys) -> None:
    from spin_nerfstudio.stages.inputs import check_pose_agreement

    result = check_pose_agreement(_pipe(KERMIT, 4, "stop"))
    out = capsys.readouterr().out.replace("\n", " ")
    assert result.agrees is True
    assert f"poses: {100 * result.share:.0f}% of SIFT matches" in out and "warning" not in out


def test_non_pinhole_cameras_are_not_judged(capsys) -> None:
    import torch
    from nerfstudio.cameras.cameras import CameraType

    from spin_nerfstudio.stages.inputs import check_pose_agreement

    pipe = _pipe(KERMIT, 4, "stop", shuffle=0)
    cams = pipe.datamanager.train_dataset.cameras
    cams.camera_type = torch.full_like(cams.camera_type, CameraType.FISHEYE.value)
    assert check_pose_agreement(pipe) is None
    assert "poses not judged: the check needs pinhole cameras" in capsys.readouterr().out


def test_ns_train_stops_on_shuffled_poses_before_training(tmp_path) -> None:
    """The installed command stops on a shuffled copy of a real capture before its first step, with one line."""
    import shutil

    from conftest import run_cli

    scene = tmp_path / "kermit"
    shutil.copytree(KERMIT, scene)
    rows = np.load(scene / "poses_bounds.npy")
    np.save(scene / "poses_bounds.npy", rows[np.random.default_rng(0).permutation(len(rows))])
    args = [
        "ns-train", "spin-inpaint-small", "--output-dir", tmp_path / "runs", "--vis", "tensorboard",
        "--timestamp", "run", "--machine.device-type", "cpu", "--max-num-iterations", 40,
        "--pipeline.reconstruct-steps", 10, "--pipeline.mask-steps", 10,
        "--pipeline.prompt-file", REPO / "configs" / "kermit_prompts.json", "--pipeline.check-poses", "stop",
        "spin-llff", "--data", scene, "--downscale-factor", 4,
    ]  # fmt: skip
    proc = run_cli(args, cwd=tmp_path, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert f"spin-nerfstudio: {scene}: poses do not agree with the images" in out.replace("\n", " "), out[-3000:]
    assert not list((tmp_path / "runs").rglob("*.ckpt"))
