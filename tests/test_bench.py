"""The benchmark machinery (`spin-nerf dev bench`) on a tiny budget: structure and sanity of the report, not timings."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from spin_nerfstudio.dev.bench import (
    METHODS,
    RESULT_FILE,
    TABLE_FILE,
    BenchSettings,
    _run_child,
    demo_breakdown,
    run_bench,
)
from spin_nerfstudio.prompts import SpinInputError

# 4 views of 32x24: view 0 held out, 3 training views; 64 rays per step.
TINY = BenchSettings(budget_s=0.3, rays=64, num_views=4, width=32, height=24, eval_interval=4, warmup_steps=0)


def _positive_finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _demo_dir(tmp_path: Path) -> Path:
    demo = tmp_path / "demo"
    demo.mkdir()
    timing = {
        "scene": 1.0, "train_total": 100.0, "evaluate": 5.0, "wall": 110.0, "stage_fit_reconstruct": 40.0,
        "stage_fit_segment": 10.0, "stage_render": 3.0, "stage_initial_masks": 1.0, "stage_final_masks": 4.0,
        "stage_inpaint": 0.5, "cpu": 150.0,
    }  # fmt: skip
    (demo / "metrics.json").write_text(json.dumps({"timing_seconds": timing, "peak_rss_mb": 1500.0}))
    return demo


def test_bench_report_structure(tmp_path):
    """Both methods train, render and score; ratios are positive and finite; the table names both methods."""
    report = run_bench(tmp_path / "out", TINY, demo_output=_demo_dir(tmp_path), isolate=False)
    results = report["results"]
    assert set(results) == set(METHODS)
    for method, res in results.items():
        assert res["steps"] >= 1, method
        assert res["heldout_views"] == 1 and res["train_views"] == 3, method
        assert res["render_size"] == [32, 24]
        assert len(res["render_seconds_all"]) == 1
        assert math.isfinite(res["heldout_psnr"]) and 3.0 < res["heldout_psnr"] < 60.0, (method, res)
        for key in ("step_seconds_median", "render_seconds_median", "peak_rss_mb", "train_seconds"):
            assert _positive_finite(res[key]), (method, key, res[key])
        assert res["peak_rss_mb"] >= res["rss_after_imports_mb"]
    assert results["nerfacto-torch"]["num_parameters"] > results["spin"]["num_parameters"]
    assert results["spin"]["keep_freed_memory"] is (sys.platform.startswith("linux"))
    summary = report["summary"]
    for key in ("step_speedup", "render_speedup", "memory_ratio", "step_cpu_ratio", "render_cpu_ratio"):
        assert _positive_finite(summary[key]), (key, summary[key])
    assert math.isfinite(summary["psnr_gain_db"])
    assert summary["targets"]["demo <= 10 min"] == [True, "1.8 min"]
    assert summary["targets"]["demo peak memory < 4 GB"] == [True, "1500 MB"]

    table = (tmp_path / "out" / TABLE_FILE).read_text()
    assert "spin (tri-plane)" in table and "nerfacto-torch" in table
    assert f"{summary['step_speedup']:.1f}x faster" in table
    assert "| **total (wall)** | **110.0** |" in table
    assert "| training: reconstruct | 40.0 |" in table
    assert "| CPU time, user + system, all threads | 150.0 |" in table
    # what is left of training after the two measured fits and the boundary work: 100 - 50 - 8.5
    assert "| training: inpaint (+ setup, checkpoints) | 41.5 |" in table
    saved = json.loads((tmp_path / "out" / RESULT_FILE).read_text())
    assert saved["table"] == table.rstrip("\n")
    assert saved["isolated"] is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_worker_peak_memory_is_its_own(tmp_path):
    """A worker process reports its own peak (about the 200 MB it touched), not the size of the process that
    started it (this test process is far bigger once torch is loaded)."""
    import torch  # noqa: F401  (makes this process big, as a bench parent that imported torch would be)

    code = (
        "from spin_nerfstudio.cpu import peak_rss_mb\n"
        "b = bytearray(200 * 1024 * 1024)\n"
        "b[::4096] = b'x' * len(b[::4096])\n"
        "print(peak_rss_mb())\n"
    )
    log = tmp_path / "child.log"
    child = _run_child([sys.executable, "-c", code], log)
    assert child["returncode"] == 0, log.read_text()
    assert 200.0 < float(log.read_text().split()[-1]) < 320.0, log.read_text()
    assert _run_child([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "fail.log")["returncode"] == 3


def test_demo_breakdown_names_missing_file(tmp_path):
    with pytest.raises(SpinInputError, match="metrics.json: not found"):
        demo_breakdown(tmp_path)
