"""The ``spin-nerf dev bench`` report: the demo's stage times, the ratios and target verdicts, the printed table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from spin_nerfstudio.dev.bench_settings import (
    LABELS,
    TARGET_DEMO_MEMORY_MB,
    TARGET_DEMO_SECONDS,
    TARGET_SPEEDUP,
    BenchSettings,
)


def demo_breakdown(demo_dir: Path) -> Dict[str, Any]:
    """The demo's wall time by stage, from ``DIR/metrics.json`` (written by ``spin-nerf demo``)."""
    from spin_nerfstudio.prompts import SpinInputError

    path = Path(demo_dir) / "metrics.json"
    if not path.is_file():
        raise SpinInputError(f"{path}: not found (pass the --output folder of a finished spin-nerf demo)")
    try:
        metrics = json.loads(path.read_text())
        timing = dict(metrics["timing_seconds"])
    except (ValueError, KeyError, TypeError) as err:
        raise SpinInputError(f"{path}: no timing_seconds in it ({err})") from err
    boundary = {k[len("stage_") :]: float(v) for k, v in timing.items() if k.startswith("stage_")}
    fits = {k: v for k, v in boundary.items() if k.startswith("fit_")}
    work = {k: v for k, v in boundary.items() if not k.startswith("fit_")}
    train_total = float(timing.get("train_total", 0.0))
    rows: List[List[Any]] = [["scene generation", float(timing.get("scene", 0.0))]]
    if fits:
        for name in ("fit_reconstruct", "fit_segment"):
            if name in fits:
                rows.append([name.replace("fit_", "training: "), fits[name]])
        rest = train_total - sum(fits.values()) - sum(work.values())
        rows.append(["training: inpaint (+ setup, checkpoints)", rest])
    else:
        rows.append(["training steps, all stages (+ setup)", train_total - sum(work.values())])
    labels = {
        "render": "render views (depth, before)",
        "initial_masks": "initial masks (segment, propagate)",
        "final_masks": "render final masks",
        "inpaint": "2D inpainting",
    }
    for key, value in work.items():
        rows.append([labels.get(key, key), value])
    evaluate = float(timing.get("evaluate", 0.0))
    rows.append(["evaluate (render, score)", evaluate])
    wall = float(timing.get("wall", 0.0))
    rows.append(["contact sheet, other", wall - float(timing.get("scene", 0.0)) - train_total - evaluate])
    return {
        "source": str(path),
        "wall_seconds": wall,
        "cpu_seconds": timing.get("cpu"),
        "stages": rows,
        "peak_rss_mb": metrics.get("peak_rss_mb"),
        "device": metrics.get("device"),
        "encoding": metrics.get("encoding"),
    }


def _ratio(slow: float, fast: float) -> float:
    return slow / fast if fast > 0 else float("inf")


def summarise(results: Dict[str, Dict[str, Any]], settings: BenchSettings, demo: Optional[Dict[str, Any]]) -> Dict:
    """Ratios and target verdicts from the two workers' results."""
    ours, ref = results["spin"], results["nerfacto-torch"]
    summary: Dict[str, Any] = {
        "step_cpu_ratio": _ratio(ref["step_cpu_seconds_median"], ours["step_cpu_seconds_median"]),
        "render_cpu_ratio": _ratio(ref["render_cpu_seconds_median"], ours["render_cpu_seconds_median"]),
        "step_speedup": _ratio(ref["step_seconds_median"], ours["step_seconds_median"]),
        "render_speedup": _ratio(ref["render_seconds_median"], ours["render_seconds_median"]),
        "psnr_gain_db": ours["heldout_psnr"] - ref["heldout_psnr"],
        "memory_ratio": _ratio(ref["peak_rss_mb"], ours["peak_rss_mb"]),
    }
    # name -> [met (None: not measured), the measured value]
    targets: Dict[str, List[Any]] = {
        "train step >= 5x faster": [
            summary["step_speedup"] >= TARGET_SPEEDUP,
            f"{summary['step_speedup']:.1f}x",
        ],
        "render per view >= 5x faster": [
            summary["render_speedup"] >= TARGET_SPEEDUP,
            f"{summary['render_speedup']:.1f}x",
        ],
        "held-out PSNR >= nerfacto-torch's": [summary["psnr_gain_db"] >= 0.0, f"{summary['psnr_gain_db']:+.2f} dB"],
    }
    if demo is None:
        targets["demo <= 10 min"] = [None, "pass --demo-output DIR or --run-demo"]
        targets["demo peak memory < 4 GB"] = [None, "pass --demo-output DIR or --run-demo"]
    else:
        wall = float(demo["wall_seconds"])
        targets["demo <= 10 min"] = [wall <= TARGET_DEMO_SECONDS, f"{wall / 60.0:.1f} min"]
        rss = demo.get("peak_rss_mb")
        targets["demo peak memory < 4 GB"] = (
            [None, "not recorded by that demo run"]
            if rss is None
            else [float(rss) < TARGET_DEMO_MEMORY_MB, f"{float(rss):.0f} MB"]
        )
    summary["targets"] = targets
    return summary


def format_table(report: Dict[str, Any]) -> str:
    """The printed (Markdown) table of a bench report."""
    s = BenchSettings(**report["settings"])
    res = report["results"]
    a, b = res["spin"], res["nerfacto-torch"]
    summ = report["summary"]
    w, h = a["render_size"]
    lines = [
        f"spin-nerf dev bench: {s.num_views}-view {s.width}x{s.height} generated scene (seed {s.seed}), "
        f"{a['train_views']} training / {a['heldout_views']} held-out views, {s.rays} rays per step, "
        f"{s.budget_s:g} s training budget each, torch threads {a['torch_threads']}, "
        f"OMP_WAIT_POLICY={a['omp_wait_policy']}, "
        + ("one subprocess per method" if report.get("isolated", True) else "in one process (memory not per method)"),
        "",
        f"| measure | {LABELS['spin']} | {LABELS['nerfacto-torch']} | spin's advantage |",
        "|---|---:|---:|---:|",
        f"| train step, median (ms) | {a['step_seconds_median'] * 1e3:.1f} | {b['step_seconds_median'] * 1e3:.1f} "
        f"| {summ['step_speedup']:.1f}x faster |",
        f"| train step CPU time, median (ms) | {a['step_cpu_seconds_median'] * 1e3:.1f} | "
        f"{b['step_cpu_seconds_median'] * 1e3:.1f} | {summ['step_cpu_ratio']:.1f}x less |",
        f"| steps in {s.budget_s:g} s | {a['steps']} | {b['steps']} | |",
        f"| render one {w}x{h} view, median (s) | {a['render_seconds_median']:.3f} | "
        f"{b['render_seconds_median']:.3f} | {summ['render_speedup']:.1f}x faster |",
        f"| render CPU time, median (s) | {a['render_cpu_seconds_median']:.3f} | "
        f"{b['render_cpu_seconds_median']:.3f} | {summ['render_cpu_ratio']:.1f}x less |",
        f"| render chunk (rays) | {a['render_chunk']} | {b['render_chunk']} | |",
    ]
    if a.get("render_seconds_object_head") is not None:
        head = a["render_seconds_object_head"]
        lines.append(
            f"| render, object head on too (s) | {head:.3f} | | {b['render_seconds_median'] / head:.1f}x faster |"
        )
    lines += [
        f"| held-out PSNR after {s.budget_s:g} s (dB) | {a['heldout_psnr']:.2f} | {b['heldout_psnr']:.2f} "
        f"| {summ['psnr_gain_db']:+.2f} dB |",
        f"| peak resident memory, VmHWM (MB) | {a['peak_rss_mb']:.0f} | {b['peak_rss_mb']:.0f} | {summ['memory_ratio']:.2f}x less |",
        f"| RSS after imports (MB) | {a['rss_after_imports_mb']:.0f} | {b['rss_after_imports_mb']:.0f} | |",
        f"| parameters | {a['num_parameters']:,} | {b['num_parameters']:,} | |",
        f"| glibc keeps freed memory (mallopt) | {a['keep_freed_memory']} | {b['keep_freed_memory']} | |",
    ]
    demo = report.get("demo")
    if demo is not None:
        lines += ["", f"Demo wall time by stage ({demo['source']}):", "", "| stage | seconds |", "|---|---:|"]
        lines += [f"| {name} | {sec:.1f} |" for name, sec in demo["stages"]]
        lines.append(f"| **total (wall)** | **{demo['wall_seconds']:.1f}** |")
        if demo.get("cpu_seconds") is not None:
            lines.append(f"| CPU time, user + system, all threads | {float(demo['cpu_seconds']):.1f} |")
        if demo.get("peak_rss_mb") is not None:
            lines.append(f"| peak resident memory, VmHWM (MB) | {float(demo['peak_rss_mb']):.0f} |")
    lines += ["", "Targets:", ""]
    for name, (ok, value) in summ["targets"].items():
        verdict = "not measured" if ok is None else ("met" if ok else "MISSED")
        lines.append(f"- {name}: {verdict} ({value})")
    return "\n".join(lines)
