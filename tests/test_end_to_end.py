"""A tiny but complete removal run through the real commands: ns-train, ns-render, spin-nerf evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_STEPS, ns_train_args, run_cli
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
        "seen_elsewhere",
        "inpainted_targets",
        "seen_depth",
    ):
        marker = json.loads((tiny_run / folder / "_complete.json").read_text())
        assert marker["views"] == [n[:-4] for n in names], folder
    assert json.loads((tiny_run / "prompts.json").read_text()) == json.loads((tiny_scene / "prompts.json").read_text())
    log = (tiny_run / "train.log").read_text()
    assert "segmenter backend 'grabcut'" in log and "inpainter backend 'select' (offline default" in " ".join(
        log.split()
    )
    assert "field encoding 'planes', implementation 'torch'" in log
    assert "perceptual loss uses ST-LPIPS(vgg) (shift-tolerant LPIPS, weights from" in " ".join(log.split())
    assert "; weight 0.001" in " ".join(log.split())  # ST-LPIPS runs at st_lpips_loss_mult, not LPIPS' 0.01


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
    # ST-LPIPS from the wheel: whole image and the mask's bounding-box crop, each a small positive distance
    assert 0 < metrics["st_lpips"] < 0.3 and 0 < metrics["masked_st_lpips"] < 0.3  # both measured about 0.06
    assert any(n.startswith("st_lpips: ST-LPIPS(alex)") for n in metrics["notes"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pipeline.prompt-file", "missing.json"], "missing.json: prompt file not found"),
        (["--pipeline.prompt-file", "bad.json"], "bad.json: not valid JSON"),
        (["--pipeline.prompt-file", "unknown.json"], "'nope.png' is not a training image"),
        (["--pipeline.prompt-file", "outside.json"], "(500, 3) is outside 000.png (64x48)"),
        ([], "nothing to remove: pass --pipeline.prompt-file FILE or --pipeline.mask-dir DIR"),
        (["--pipeline.mask-dir", "nomasks"], "nomasks: mask folder not found"),
        (["--pipeline.reuse-stages", "nowhere"], "nowhere: no complete masks/ for these images"),
        (
            [
                "--pipeline.prompt-file",
                "good.json",
                "--pipeline.inpainter.backend",
                "lama",
                "--pipeline.inpainter.checkpoint",
                "missing.pt",
            ],
            "missing.pt: LaMa checkpoint not found",
        ),
        (
            ["--pipeline.prompt-file", "good.json", "--pipeline.inpainter.checkpoint", "bad.json"],
            "bad.json: not a TorchScript file",
        ),
    ],
)
def test_bad_input_stops_before_training_with_one_line(tiny_scene, tmp_path, extra, message):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "good.json").write_text('{"prompts": [{"image": "000.png", "positive": [[30, 20]]}]}')
    (tmp_path / "unknown.json").write_text('{"prompts": [{"image": "nope.png", "positive": [[1, 1]]}]}')
    (tmp_path / "outside.json").write_text('{"prompts": [{"image": "000.png", "positive": [[500, 3]]}]}')
    proc = run_cli(ns_train_args(tiny_scene, tmp_path / "out", *extra), cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert message in last, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # no run folder written at all


def test_seen_elsewhere_outputs_are_consistent(tiny_run, tiny_scene):
    names = sorted(p.name for p in (tiny_scene / "images").glob("*.png"))
    removal = _load(tiny_run / "masks_dilated", names)
    seen = _load(tiny_run / "seen_elsewhere", names)
    targets = _load(tiny_run / "inpainted_targets", names, kind=None)
    inpainted = _load(tiny_run / "inpainted", names, kind=None)
    images = _load(tiny_scene / "images", names, kind=None)
    summary = json.loads((tiny_run / "seen_elsewhere.json").read_text())
    assert summary["masked_pixels"] == sum(int(r.sum()) for r in removal)
    assert summary["seen_pixels"] == sum(int(s.sum()) for s in seen)
    for r, s, t, i, img in zip(removal, seen, targets, inpainted, images):
        assert not (s & ~r).any()
        assert np.array_equal(t[~r], img[~r]) and np.array_equal(i[~r], img[~r])
    # the depth prior corrected by the sweep: the 2D-inpainted depth outside the masks, the swept depth where seen
    for n, r in zip(names, removal):
        prior = np.load(tiny_run / "inpainted_depth" / f"{n[:-4]}.npy")
        corrected = np.load(tiny_run / "seen_depth" / f"{n[:-4]}.npy")
        assert np.array_equal(corrected[~r], prior[~r]) and np.isfinite(corrected).all() and (corrected > 0).all()
    assert any(not np.allclose(np.load(tiny_run / "seen_depth" / f"{n[:-4]}.npy")[s],
                               np.load(tiny_run / "inpainted_depth" / f"{n[:-4]}.npy")[s]) for n, s in zip(names, seen))  # fmt: skip
    log = " ".join((tiny_run / "train.log").read_text().split())
    share = summary["seen_fraction"]
    assert f"({share:.1%}) were seen unmasked in other views" in log


def test_evaluate_baselines_side_by_side(tiny_run, tiny_scene, tmp_path):
    from spin_nerfstudio.evaluation.metrics import psnr

    out = tmp_path / "metrics.json"
    args = ["spin-nerf", "evaluate", "--load-config", tiny_run / "config.yml", "--gt-masks", tiny_scene / "masks",
            "--gt-images", tiny_scene / "background", "--baselines", "--output", out]  # fmt: skip
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(out.read_text())
    rows = {r["method"]: r for r in metrics["comparison"]}
    assert list(rows) == ["ours", "inpainted_2d", "masked_nerf"]
    assert rows["ours"]["masked_psnr"] == metrics["masked_psnr"]
    assert "| masked_nerf |" in proc.stderr
    # the 2D baseline is the run's inpainted/ images scored directly
    names = sorted(p.name for p in (tiny_scene / "images").glob("*.png"))
    flat = [
        psnr(
            np.asarray(Image.open(tiny_run / "inpainted" / n), np.float64) / 255,
            np.asarray(Image.open(tiny_scene / "background" / n).convert("RGB"), np.float64) / 255,
            np.array(Image.open(tiny_scene / "masks" / n)) > 0,
        )
        for n in names
    ]
    assert rows["inpainted_2d"]["masked_psnr"] == pytest.approx(np.mean(flat), abs=1e-6)
    # the masked NeRF was fitted from the run's stage outputs for the inpainted-fit steps, without masked-pixel losses
    base = tiny_run / "baselines" / "masked_nerf" / "spin-inpaint-small" / "run"
    import yaml

    cfg = yaml.load((base / "config.yml").read_text(), Loader=yaml.Loader)
    assert cfg.max_num_iterations == TINY_STEPS["total"] - TINY_STEPS["reconstruct"] - TINY_STEPS["mask"]
    assert cfg.pipeline.model.depth_loss_mult == 0 and cfg.pipeline.lpips_loss_mult == 0
    assert cfg.pipeline.st_lpips_loss_mult == 0
    assert cfg.pipeline.model.reference_loss_mult == 0 and not cfg.pipeline.visibility.enabled
    assert not (base / "seen_elsewhere").exists()
    masks = _load(base / "masks", names)
    assert all(np.array_equal(a, b) for a, b in zip(masks, _load(tiny_run / "masks", names)))
    assert 0 < rows["masked_nerf"]["masked_ssim"] <= 1 and rows["masked_nerf"]["masked_psnr"] > 5
    # a second evaluation reuses the trained baseline
    again = run_cli(args, cwd=tmp_path)
    assert again.returncode == 0 and json.loads(out.read_text())["comparison"] == metrics["comparison"]
