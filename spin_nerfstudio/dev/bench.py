"""``spin-nerf dev bench``: our CPU field against nerfacto's torch path, measured back to back on this machine.

Each method runs in its own Python subprocess (a "worker"), one after the other, on the same generated scene:

1. build a ``VanillaPipeline`` (same dataparser, same datamanager, same rays per batch) around the method's model;
2. train it exactly as nerfstudio's ``Trainer.train_iteration`` does (callbacks, losses summed, one backward,
   optimiser and scheduler steps) for a fixed wall-clock budget, timing every step;
3. render every held-out view (every ``eval_interval``-th view) through ``model.get_outputs_for_camera``, which is
   what ``ns-render`` and the viewer call, timing each view, and score its PSNR;
4. report its peak resident memory (``VmHWM``, the process's high-water mark, import of torch and nerfstudio
   included; the peak right after the imports is reported too). See :func:`peak_rss_mb`.

"spin" is the ``spin-inpaint-small`` model in its RECONSTRUCT stage (plain reconstruction, no removal).
"nerfacto-torch" is nerfstudio 1.1.5's ``nerfacto`` model config with ``implementation="torch"`` and its own
optimisers and ``eval_num_rays_per_chunk``; two deviations, both only in favour of nerfacto or neutral:
its camera optimiser is off (the generated poses are exact), and its torchmetrics LPIPS metric (only used by
``get_image_metrics_and_images``, which the bench never calls) is replaced by a stub while the model is built,
because constructing it downloads AlexNet weights and the bench must run offline.

Optionally the demo is run too (``--run-demo``, in its own subprocess, about 5 minutes on 2 cores) or an existing demo
output folder is read (``--demo-output DIR``) for the demo's wall time broken down by stage.

This module runs the workers and writes the report; the worker is :mod:`.bench_worker`, the report's figures and
table :mod:`.bench_report`, the settings and targets :mod:`.bench_settings`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from spin_nerfstudio.dev.bench_report import demo_breakdown, format_table, summarise
from spin_nerfstudio.dev.bench_settings import METHODS, BenchSettings
from spin_nerfstudio.dev.bench_worker import run_worker
from spin_nerfstudio.dev.report_io import write_report

RESULT_FILE = "bench.json"
TABLE_FILE = "bench.md"


# ---------------------------------------------------------------------------------------------------- parent side
def _worker_command(method: str, scene: Path, settings: BenchSettings, out: Path) -> List[str]:
    return [
        sys.executable, "-W", "ignore", "-m", "spin_nerfstudio.dev.bench", "--worker", method,
        "--scene", str(scene), "--result", str(out), "--settings", json.dumps(asdict(settings)),
    ]  # fmt: skip


def _run_child(cmd: Sequence[str], log: Path) -> Dict[str, float]:
    """Run a command with its output in ``log``; returns its wall time and exit code."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        returncode = subprocess.run(list(cmd), stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    return {"wall_seconds": time.perf_counter() - t0, "returncode": returncode}


def _tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_bench(
    output: Path,
    settings: Optional[BenchSettings] = None,
    demo_output: Optional[Path] = None,
    run_demo: bool = False,
    scene: Optional[Path] = None,
    isolate: bool = True,
) -> Dict[str, Any]:
    """Run both workers (and optionally the demo), write ``bench.json`` and ``bench.md`` into ``output``.

    ``isolate=False`` runs the workers in this process, one after the other (quick, for tests): their memory
    figures are then this process's peak, not each method's.
    """
    from spin_nerfstudio.data.synthetic import SceneSpec, make_scene
    from spin_nerfstudio.prompts import SpinInputError

    settings = settings or BenchSettings()
    if settings.budget_s <= 0 or settings.rays <= 0:
        raise SpinInputError(f"budget ({settings.budget_s}) and rays ({settings.rays}) must be positive")
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    demo = None
    if demo_output is not None:
        demo = demo_breakdown(demo_output)
    if scene is None:
        spec = SceneSpec(num_views=settings.num_views, width=settings.width, height=settings.height, seed=settings.seed)
        scene = make_scene(output / "scene", spec, llff=False)
    results: Dict[str, Dict[str, Any]] = {}
    children: Dict[str, Dict[str, float]] = {}
    for method in METHODS:
        out = output / f"{method}.json"
        out.unlink(missing_ok=True)
        log = output / f"{method}.log"
        print(
            f"spin-nerf dev bench: {method}: training {settings.budget_s:g} s, then rendering held-out views",
            flush=True,
        )
        if not isolate:
            results[method] = run_worker(method, scene, settings)
            continue
        child = _run_child(_worker_command(method, scene, settings, out), log)
        if child["returncode"] != 0 or not out.is_file():
            raise SpinInputError(f"{method} worker failed (exit {child['returncode']}), see {log}:\n{_tail(log)}")
        results[method] = json.loads(out.read_text())
        children[method] = child
    if run_demo:
        demo_dir = output / "demo"
        print("spin-nerf dev bench: running spin-nerf demo (about 5 minutes on 2 cores)", flush=True)
        cmd = [sys.executable, "-W", "ignore", "-m", "spin_nerfstudio.cli", "demo", "--output", str(demo_dir)]
        child = _run_child(cmd, output / "demo.log")
        if child["returncode"] != 0:
            raise SpinInputError(f"demo failed (exit {child['returncode']}), see {output / 'demo.log'}")
        demo = demo_breakdown(demo_dir)
    report: Dict[str, Any] = {
        "settings": asdict(settings),
        "scene": str(scene),
        "results": results,
        "children": children,
        "demo": demo,
        "isolated": isolate,
        "memory_measure": "peak resident set (VmHWM) of each worker process, imports included"
        if isolate
        else "peak resident set of the one shared process (not per method)",
    }
    report["summary"] = summarise(results, settings, demo)
    return write_report(output, report, format_table, RESULT_FILE, TABLE_FILE)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``spin-nerf dev bench`` options."""
    d = BenchSettings()
    p.add_argument("--output", type=Path, default=Path("bench_output"), help="folder for bench.json, bench.md, logs")
    p.add_argument("--budget", type=float, default=d.budget_s, help="training seconds per method")
    p.add_argument("--rays", type=int, default=d.rays, help="rays per training step (both methods)")
    p.add_argument("--num-views", type=int, default=d.num_views)
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--height", type=int, default=d.height)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--eval-interval", type=int, default=d.eval_interval, help="hold out every N-th view")
    p.add_argument("--demo-output", type=Path, default=None, help="read the stage timings of this finished demo")
    p.add_argument("--run-demo", action="store_true", help="also run spin-nerf demo (about 5 minutes on 2 cores)")


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    """BenchSettings from parsed ``spin-nerf dev bench`` options."""
    return BenchSettings(
        budget_s=args.budget,
        rays=args.rays,
        num_views=args.num_views,
        width=args.width,
        height=args.height,
        seed=args.seed,
        eval_interval=args.eval_interval,
    )


def main(argv: Optional[List[str]] = None) -> int:
    """Worker entry point (``python -m spin_nerfstudio.dev.bench --worker METHOD ...``)."""
    p = argparse.ArgumentParser(description="spin-nerf dev bench worker (one method, one process)")
    p.add_argument("--worker", choices=METHODS, required=True)
    p.add_argument("--scene", type=Path, required=True)
    p.add_argument("--result", type=Path, required=True)
    p.add_argument("--settings", default="{}", help="BenchSettings as JSON")
    args = p.parse_args(argv)
    settings = BenchSettings(**json.loads(args.settings))
    result = run_worker(args.worker, args.scene, settings)
    args.result.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
