"""A tiny but complete removal run through the real commands: ns-train, ns-render, spin-nerf evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ns_train_args, run_cli
from PIL import Image

from spin_nerfstudio.evaluation.metrics import mask_scores, object_colour_fraction


def _load(folder, names, kind=bool):
    return [np.array(Image.open(folder / n)) > 0 if kind is bool else np.array(Image.open(folder / n)) for n in names]


def test_every_stage_wrote_its_outputs(tiny_run, tiny_scene):
    names = sorted(p.name for p in (tiny_scene / "images").glob("*.png"))
    for folder in (
        "depth",
        "renders_before",
        "initial_masks",
        "masks",
        "masks_dilated",
        "inpainted",
        "inpainted_depth",
    ):
        marker = json.loads((tiny_run / folder / "_complete.json").read_text())
        assert marker["views"] == [n[:-4] for n in names], folder
    assert json.loads((tiny_run / "prompts.json").read_text()) == json.loads((tiny_scene / "prompts.json").read_text())
    log = (tiny_run / "train.log").read_text()
    assert "segmenter backend 'grabcut'" in log and "inpainter backend 'telea'" in log
    assert "field encoding 'planes', implementation 'torch'" in log
    assert "perceptual loss uses LPIPS(alex)" in log


def test_masks_agree_with_ground_truth(tiny_run, tiny_scene):
    names = sorted(p.name for p in (tiny_scene / "masks").glob("*.png"))
    gt = _load(tiny_scene / "masks", names)
    pred = _load(tiny_run / "masks", names)
    ious = [mask_scores(p, g)[0] for p, g in zip(pred, gt)]
    chance = np.mean([g.mean() for g in gt])  # IoU of a mask covering everything
    assert np.mean(ious) > 0.75, ious
    assert np.mean(ious) > 5 * chance
    dilated = _load(tiny_run / "masks_dilated", names)
    assert all(d.sum() > p.sum() and (d | p).sum() == d.sum() for d, p in zip(dilated, pred))


def test_object_colour_is_gone_after_the_inpainted_fit(tiny_run, tiny_scene):
    out = tiny_run / "render"
    proc = run_cli(
        ["ns-render", "dataset", "--load-config", tiny_run / "config.yml", "--output-path", out,
         "--split", "train", "--rendered-output-names", "rgb", "depth", "object_mask"],
        cwd=tiny_run,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = sorted(p.name for p in (tiny_scene / "masks").glob("*.png"))
    rendered = sorted((out / "train" / "rgb").glob("*"))
    assert len(rendered) == len(names)
    assert len(list((out / "train" / "object_mask").glob("*"))) == len(names)
    before_frac, after_frac = [], []
    for name, path in zip(names, rendered):
        m = np.array(Image.open(tiny_scene / "masks" / name)) > 0
        after = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        before = np.asarray(Image.open(tiny_run / "renders_before" / name).convert("RGB"), dtype=np.float32) / 255
        after_frac.append(object_colour_fraction(after, m))
        before_frac.append(object_colour_fraction(before, m))
    assert np.mean(before_frac) > 0.5  # the reconstruction did show the object
    assert np.mean(after_frac) < 0.05, after_frac


def test_evaluate_command_scores_the_run(tiny_run, tiny_scene, tmp_path):
    out = tmp_path / "metrics.json"
    proc = run_cli(
        ["spin-nerf", "evaluate", "--load-config", tiny_run / "config.yml", "--gt-masks", tiny_scene / "masks",
         "--gt-images", tiny_scene / "background", "--output", out],
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads(out.read_text())
    assert json.loads(proc.stdout[proc.stdout.index("{") :]) == metrics
    assert metrics["num_views"] == 12 and len(metrics["per_view"]) == 12
    assert metrics["mask_iou"] > 0.75 and metrics["mask_accuracy"] > 0.97
    assert metrics["psnr"] > 22 and metrics["masked_psnr"] > 18 and 0 < metrics["masked_ssim"] <= 1
    assert metrics["lpips"] is None and any("lpips" in n for n in metrics["notes"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pipeline.prompt-file", "missing.json"], "missing.json: prompt file not found"),
        (["--pipeline.prompt-file", "bad.json"], "bad.json: not valid JSON"),
        (["--pipeline.prompt-file", "unknown.json"], "'nope.png' is not a training image"),
        (["--pipeline.prompt-file", "outside.json"], "(500, 3) is outside 000.png (64x48)"),
        ([], "nothing to remove: pass --pipeline.prompt-file FILE or --pipeline.mask-dir DIR"),
        (["--pipeline.mask-dir", "nomasks"], "nomasks: mask folder not found"),
    ],
)
def test_bad_input_stops_before_training_with_one_line(tiny_scene, tmp_path, extra, message):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "unknown.json").write_text('{"prompts": [{"image": "nope.png", "positive": [[1, 1]]}]}')
    (tmp_path / "outside.json").write_text('{"prompts": [{"image": "000.png", "positive": [[500, 3]]}]}')
    proc = run_cli(ns_train_args(tiny_scene, tmp_path / "out", *extra), cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert message in last, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # no run folder written at all
