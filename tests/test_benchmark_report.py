"""``spin-nerf benchmark`` on a fake SPIn-NeRF-layout scene, and ``spin-nerf report`` on its run and on ``tiny_run``."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from spin_nerfstudio.data.spin_layout import make_spin_layout_scene

# 12 training + 6 ground-truth views at 48x36 and a very short schedule: every stage runs.
STEPS = ("--reconstruct-steps", 150, "--mask-steps", 50, "--max-num-iterations", 300)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("spin_dataset")
    make_spin_layout_scene(root / "fake", num_train=12, num_test=6, width=48, height=36, seed=0)
    out = root / "out"
    cmd = ["spin-nerf", "benchmark", root, "--scenes", "fake", "--output", out, "--device", "cpu", *STEPS]
    proc = run_cli(cmd, root, timeout=1800)
    if proc.returncode != 0:
        log = out / "logs" / "fake.log"
        pytest.fail(f"benchmark failed:\n{proc.stderr[-3000:]}\n{log.read_text()[-3000:] if log.exists() else ''}")
    return root, out, proc


def test_benchmark_table_matches_the_run_metrics(bench):
    root, out, proc = bench
    run = out / "runs" / "fake" / "spin-inpaint-small" / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_test_views"] == 6 and metrics["num_train_views"] == 12 and metrics["resolution"] == "48x36"
    assert [v["image"] for v in metrics["per_view"]] == sorted(p.name for p in (root / "fake/images_4").glob("*"))[:6]
    # A short run on a smooth synthetic scene: well above chance, and the masks came from label/ untouched.
    assert metrics["psnr"] > 22 and metrics["masked_psnr"] > 18 and 0 < metrics["masked_ssim"] <= 1
    assert metrics["masks_from"] == "dataset labels" and metrics["mask_iou"] == 1.0
    assert metrics["fid"] is None and any(n.startswith("fid: no Inception weights") for n in metrics["notes"])
    assert metrics["lpips"] is None and any(n.startswith("lpips:") for n in metrics["notes"])
    for name in (p.name for p in (root / "fake/images_4/label").glob("*.png")):
        a = np.array(Image.open(run / "masks" / name)) > 0
        b = np.array(Image.open(root / "fake/images_4/label" / name)) > 0
        assert (a == b).all(), name

    md = (out / "benchmark.md").read_text()
    assert md == proc.stdout[proc.stdout.index("| scene") :].split("spin-nerf benchmark: table")[0]
    lines = md.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| fake | 12/6 | ") and lines[3].startswith("| **mean** |")
    assert f"{metrics['psnr']:.2f}" in lines[2] and f"**{metrics['psnr']:.2f}**" in lines[3]
    rows = list(csv.DictReader(open(out / "benchmark.csv")))
    assert [r["scene"] for r in rows] == ["fake", "mean"]
    for key in ("psnr", "ssim", "masked_psnr", "masked_ssim", "mask_iou"):
        assert float(rows[0][key]) == pytest.approx(metrics[key]) == pytest.approx(float(rows[1][key]))
    assert rows[0]["fid"] == "" and rows[0]["lpips"] == ""


def test_benchmark_figure_is_truth_above_ours_below(bench):
    root, out, _ = bench
    run = out / "runs" / "fake" / "spin-inpaint-small" / "run"
    names = sorted(p.name for p in (root / "fake/images_4/test_label").glob("*.png"))
    fig = np.asarray(Image.open(out / "figures" / "fake.png").convert("RGB"))
    # contact_sheet geometry: scale 4 (36 px high -> 144), pad 4, title + header 34 px, row labels 60 px.
    s, pad, top, left, h, w = 4, 4, 34, 60, 36, 48
    for r, source in enumerate((root / "fake/images_4", run / "test_renders")):
        tile = fig[top + pad + r * (h * s + pad) :][: h * s, left + pad : left + pad + w * s]
        expected = np.asarray(Image.open(source / names[0]).convert("RGB")).repeat(s, 0).repeat(s, 1)
        np.testing.assert_array_equal(tile, expected)


def test_evaluate_uses_the_dataset_ground_truth_on_a_spin_run(bench, tmp_path):
    _, out, _ = bench
    config = out / "runs" / "fake" / "spin-inpaint-small" / "run" / "config.yml"
    proc = run_cli(["spin-nerf", "evaluate", "--load-config", config, "--gt-masks", tmp_path], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"spin-nerf: error: {config}: the run's dataset has the SPIn-NeRF layout; its own ground truth (test views, "
        "test_label/, label/) is used, so --gt-masks and --gt-images must not be given"
    )


def test_benchmark_refuses_a_folder_without_the_layout(tmp_path):
    (tmp_path / "scene" / "images_4").mkdir(parents=True)
    np.save(tmp_path / "scene" / "poses_bounds.npy", np.zeros((2, 17)))
    proc = run_cli(["spin-nerf", "benchmark", tmp_path, "--scenes", "scene", "--output", tmp_path / "o"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("images_4/label: training-view masks not found (expected the "
                                                         "SPIn-NeRF dataset layout)")  # fmt: skip
    assert not (tmp_path / "o").exists()


def _html_images(index: Path):
    text = index.read_text()
    return text, re.findall(r'<img src="([^"]+)"', text)


def test_report_of_a_spin_run(bench, tmp_path):
    root, out, _ = bench
    run = out / "runs" / "fake" / "spin-inpaint-small" / "run"
    proc = run_cli(["spin-nerf", "report", run, "--output", tmp_path / "report", "--views", 3], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = tmp_path / "report" / "index.html"
    text, srcs = _html_images(index)
    for section in ("run", "metrics", "training-views", "depth", "test-views", "loss-curves"):
        assert f'<h2 id="{section}">' in text, section
    assert all((index.parent / s).is_file() for s in srcs) and len(srcs) == len(set(srcs))
    # 3 training views x 6 columns (no initial masks: label/ was used), 3 x 2 depth maps, 3 x 3 test images, 3 plots.
    assert len(srcs) == 3 * 6 + 3 * 2 + 3 * 3 + 3, len(srcs)
    assert "<th>final render</th>" in text and "<th>initial mask</th>" not in text
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("psnr", "masked_psnr", "masked_ssim", "bbox_psnr"):
        assert f'<td>{key}</td><td class="num">{metrics[key]:.4g}</td>' in text, key
    assert '<td>fid</td><td class="num">null</td>' in text and "fid: no Inception weights" in text
    # The truth tile of the first test view is the dataset's file, scaled up without smoothing.
    first = sorted(p.name for p in (root / "fake/images_4/test_label").glob("*.png"))[0]
    tile = np.asarray(Image.open(tmp_path / "report/img" / f"test_truth_{first[:-4]}.png"))
    gt = np.asarray(Image.open(root / "fake/images_4" / first).convert("RGB"))
    np.testing.assert_array_equal(tile, gt.repeat(5, 0).repeat(5, 1))
    # Loss curves come from the tensorboard log: the table lists rgb_loss up to the last logged step.
    assert re.search(r"<td>Train Loss Dict/rgb_loss</td>.*?<td class=\"num\">29\d</td>", text)
    assert Image.open(tmp_path / "report/img/losses.png").size == (750, 360)


def test_report_of_tiny_run_embedded_without_model(tiny_run, tiny_scene, tmp_path):
    metrics_file = tmp_path / "metrics.json"
    proc = run_cli(
        ["spin-nerf", "evaluate", "--load-config", tiny_run / "config.yml", "--gt-masks", tiny_scene / "masks",
         "--gt-images", tiny_scene / "background", "--output", metrics_file],
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "page"
    proc = run_cli(["spin-nerf", "report", tiny_run, "--output", out, "--metrics", metrics_file, "--no-render",
                    "--embed"], tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    text, srcs = _html_images(out / "index.html")
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    first = Image.open(io.BytesIO(base64.b64decode(srcs[0].split(",", 1)[1])))
    assert first.size == (256, 192)  # a 64x48 input scaled x4
    assert '<h2 id="test-views">' not in text and "<th>final render</th>" not in text
    assert "<th>initial mask</th>" in text  # this run segmented from clicks
    metrics = json.loads(metrics_file.read_text())
    assert f'<td>mask_iou</td><td class="num">{metrics["mask_iou"]:.4g}</td>' in text
    assert "segmented from the clicks in" in text
    assert (out / "sheet.png").is_file()


def test_report_errors_are_one_line(tmp_path):
    proc = run_cli(["spin-nerf", "report", tmp_path], tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"spin-nerf: error: {tmp_path / 'config.yml'}: run config not found (is {tmp_path} a run folder?)"
    )
