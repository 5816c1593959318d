"""``spin-nerf dev scaling``: every stage's time and memory as the scene grows in views and in pixels.

For each size (VIEWSxWIDTHxHEIGHT) a scene is generated and the whole removal (``spin-nerf demo``'s path: train
through every stage with a shortened schedule, then evaluate) runs in its own Python subprocess, one size after the
other. While it runs, this process samples the child's resident memory (``VmRSS``) and CPU time (user + system, all
threads, from ``/proc/PID/stat``) every :data:`.sampler.SAMPLE_SECONDS`. The pipeline writes each stage's wall-clock
[start, end] to ``RUN/stages.json``; each stage then gets:

- wall seconds (end - start) and CPU seconds (the child's CPU time between the samples around start and end): on a
  loaded machine the CPU seconds are the steadier measure of the work;
- peak resident memory: the largest sample inside the stage (a lower bound: a spike shorter than the sampling
  interval can be missed; the whole run's true peak, ``VmHWM``, is reported as well).

A training fit (``fit_*``) contains the boundary stages that run inside its span (the mask agreement check, the final
masks, the field prior); their time is subtracted from the fit's row. ``setup`` is from the start of training to the
first step (dataset loading and caching, model construction); ``fit_inpaint`` is from the last boundary stage to the
end of training; ``evaluate`` is the demo's scoring (renders of every view) after training.

Per stage, the growth exponents b (views) and c (pixels per view) of ``seconds ~ a * views^b * pixels^c`` are fitted
by least squares on log-log over the sizes run (an exponent is only fitted when the sizes vary in it).

This module runs the sizes (the parent) and one removal (the worker); the sampling is in :mod:`.sampler`, the
per-stage figures and exponents in :mod:`.scaling_stages`, the printed tables in :mod:`.scaling_table`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from spin_nerfstudio.dev.report_io import write_report
from spin_nerfstudio.dev.sampler import SAMPLE_SECONDS, Sampler
from spin_nerfstudio.dev.scaling_stages import fit_exponents, stage_rows, stage_spans
from spin_nerfstudio.dev.scaling_table import format_table

RESULT_FILE = "scaling.json"
TABLE_FILE = "scaling.md"
DEFAULT_SIZES = ("12x64x48", "24x120x90", "48x240x180")
DEFAULT_STEPS = (200, 150, 400)
"""Shortened schedule (reconstruct, mask, total steps): the fits' cost per step does not depend on the scene size;
the reconstruction needs about 200 steps for a depth good enough for the click-to-mask segmentation, and the mask
head about 150 for a non-empty final mask on 16 views (with 50 it came out empty)."""


@dataclass(frozen=True)
class Size:
    """One scene size."""

    views: int
    width: int
    height: int

    @property
    def pixels(self) -> int:
        """Pixels per view."""
        return self.width * self.height

    def __str__(self) -> str:
        return f"{self.views}x{self.width}x{self.height}"


def parse_size(text: str) -> Size:
    """``VIEWSxWIDTHxHEIGHT`` (e.g. ``24x120x90``) as a :class:`Size`."""
    from spin_nerfstudio.prompts import SpinInputError

    parts = text.lower().split("x")
    try:
        views, width, height = (int(p) for p in parts)
    except ValueError:
        raise SpinInputError(f"size '{text}': expected VIEWSxWIDTHxHEIGHT, e.g. 24x120x90") from None
    if views < 5 or width < 16 or height < 16:
        raise SpinInputError(f"size '{text}': needs at least 5 views of 16x16 pixels")
    return Size(views, width, height)


# ---------------------------------------------------------------------------------------------------- worker side
def apply_settings(config: Any, settings: Sequence[str]) -> None:
    """Set config fields from ``DOTTED.NAME=VALUE`` strings (VALUE a Python literal, e.g. ``0``, ``False``)."""
    import ast

    from spin_nerfstudio.prompts import SpinInputError

    for item in settings:
        name, sep, text = item.partition("=")
        *parents, leaf = name.replace("-", "_").split(".")
        target = config
        try:
            for part in parents:
                target = getattr(target, part)
            getattr(target, leaf)
            value = ast.literal_eval(text)
        except (AttributeError, ValueError, SyntaxError):
            raise SpinInputError(
                f"--set {item}: expected FIELD=VALUE with a config field and a Python literal"
            ) from None
        if not sep:
            raise SpinInputError(f"--set {item}: expected FIELD=VALUE")
        setattr(target, leaf, value)


def base_config(config: str) -> Any:
    """The trainer config a scaling run starts from: ``small`` (spin-inpaint-small, the CPU schedule) or ``full``
    (spin-inpaint: 4096 rays, mixed precision, the GPU-sized config)."""
    from spin_nerfstudio.spin_config import spin_inpaint_config, spin_inpaint_small_config

    return spin_inpaint_config() if config == "full" else spin_inpaint_small_config()


def run_worker(
    output: Path,
    size: Size,
    steps: Sequence[int],
    seed: int,
    settings: Sequence[str] = (),
    device: str = "cpu",
    config: str = "small",
) -> Dict[str, Any]:
    """One removal (the demo's path) on a generated scene of ``size`` on ``device``; writes ``worker.json``."""
    from spin_nerfstudio.data.synthetic import SceneSpec
    from spin_nerfstudio.demo import run_demo

    base = base_config(config)
    apply_settings(base, settings)

    iterations = {"reconstruct": int(steps[0]), "mask": int(steps[1]), "total": int(steps[2])}
    start = time.time()
    metrics = run_demo(output, spec=SceneSpec(size.views, size.width, size.height, seed), iterations=iterations,
                       device=device, base=base)  # fmt: skip
    result = {
        "start": start,
        "end": time.time(),
        "timing": metrics["timing_seconds"],
        "spans": metrics["spans"],
        "peak_rss_mb": metrics["peak_rss_mb"],
        "cuda_peak_mb": metrics.get("cuda_peak_mb"),
        "device": metrics.get("device", device),
    }
    (output / "worker.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


# ---------------------------------------------------------------------------------------------------- parent side
def _run_size(
    output: Path,
    size: Size,
    steps: Sequence[int],
    seed: int,
    settings: Sequence[str] = (),
    device: str = "cpu",
    config: str = "small",
) -> Dict:
    from spin_nerfstudio.prompts import SpinInputError
    from spin_nerfstudio.stages.names import STAGES_FILE

    folder = output / str(size)
    log = output / f"{size}.log"
    cmd = [sys.executable, "-W", "ignore", "-m", "spin_nerfstudio.dev.scaling", "--worker", str(size),
           "--output", str(folder), "--steps", *map(str, steps), "--seed", str(seed), "--device", device,
           "--config", config]  # fmt: skip
    for item in settings:
        cmd += ["--set", item]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    t0 = time.time()
    with open(log, "w") as fh:
        child = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        sampler = Sampler(child.pid)
        sampler.start()
        returncode = child.wait()
        sampler.stop()
    wall = time.time() - t0
    worker_file = folder / "worker.json"
    if returncode != 0 or not worker_file.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SpinInputError(f"size {size}: the removal failed (exit {returncode}), see {log}:\n{tail}")
    worker = json.loads(worker_file.read_text())
    (output / f"{size}.samples.json").write_text(json.dumps({"time_rss_mib_cpu_s": sampler.samples}) + "\n")
    stages_path = next((folder / "runs").rglob(STAGES_FILE), None)
    if stages_path is None:
        raise SpinInputError(f"size {size}: no {STAGES_FILE} under {folder / 'runs'}")
    stages_file = json.loads(stages_path.read_text())
    spans = stage_spans(worker, stages_file)
    rows = stage_rows(spans, sampler.samples)
    cuda = worker.get("cuda_peak_mb") or {}
    for name, row in rows.items():
        row["cuda_peak_mb"] = cuda.get("stages", {}).get(name)
    attributed = sum(r["seconds"] for r in rows.values() if r["seconds"] is not None)
    return {
        "size": str(size), "views": size.views, "width": size.width, "height": size.height, "pixels": size.pixels,
        "stages": rows, "spans": spans, "wall_seconds": wall, "child_seconds": worker["end"] - worker["start"],
        "unattributed_seconds": worker["end"] - worker["start"] - attributed,
        "peak_rss_mb": worker["peak_rss_mb"], "cuda_peak_mb": cuda.get("overall"), "samples": len(sampler.samples),
    }  # fmt: skip


def run_scaling(
    output: Path,
    sizes: Sequence[Size],
    steps: Sequence[int] = DEFAULT_STEPS,
    seed: int = 0,
    settings: Sequence[str] = (),
    device: str = "cpu",
    config: str = "small",
) -> Dict:
    """Run every size, write ``scaling.json`` and ``scaling.md`` into ``output``; returns the report.

    ``settings``: ``FIELD=VALUE`` changes to the config of every run (e.g. ``pipeline.visibility.max_witnesses=0``);
    ``device``: ``cpu`` or ``cuda``; ``config``: ``small`` (spin-inpaint-small) or ``full`` (spin-inpaint)."""
    import torch

    from spin_nerfstudio.prompts import SpinInputError

    if not (0 < steps[0] and 0 <= steps[1] and steps[2] > steps[0] + steps[1]):
        raise SpinInputError(
            f"--steps {' '.join(map(str, steps))}: need RECONSTRUCT > 0 and TOTAL > RECONSTRUCT + MASK"
        )
    if device not in ("cpu", "cuda") or config not in ("small", "full"):
        raise SpinInputError(f"device '{device}' / config '{config}': expected cpu or cuda / small or full")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpinInputError("--device cuda: torch sees no CUDA device here")
    apply_settings(base_config(config), settings)  # a bad FIELD=VALUE stops here, before any run
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results, failed = [], []
    for size in sizes:
        print(f"spin-nerf dev scaling: {size} (removal in a subprocess, log {output / f'{size}.log'})", flush=True)
        try:
            results.append(_run_size(output, size, steps, seed, settings, device, config))
        except SpinInputError as err:  # reported, and the other sizes still run
            print(f"spin-nerf dev scaling: {err}", flush=True)
            failed.append({"size": str(size), "error": str(err).splitlines()[0]})
            continue
        print(f"spin-nerf dev scaling: {size} took {results[-1]['wall_seconds']:.1f} s", flush=True)
    if not results:
        raise SpinInputError(f"every size failed; see the logs in {output}")
    report = {
        "sizes": [str(s) for s in sizes], "steps": list(steps), "seed": seed, "threads": torch.get_num_threads(),
        "load_start": round(load, 1), "results": results, "failed": failed, "exponents": fit_exponents(results),
        "sample_seconds": SAMPLE_SECONDS, "settings": list(settings), "device": device, "config": config,
    }  # fmt: skip
    return write_report(output, report, format_table, RESULT_FILE, TABLE_FILE)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``spin-nerf dev scaling`` options."""
    p.add_argument("sizes", nargs="*", default=list(DEFAULT_SIZES), metavar="VIEWSxWxH",
                   help=f"scene sizes (default {' '.join(DEFAULT_SIZES)})")  # fmt: skip
    p.add_argument("--output", type=Path, default=Path("scaling_output"), help="folder for scaling.json, .md, logs")
    p.add_argument("--steps", type=int, nargs=3, default=list(DEFAULT_STEPS), metavar=("RECONSTRUCT", "MASK", "TOTAL"),
                   help="shortened schedule (default %(default)s)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a spin-inpaint-small config field in every run, e.g. "
                   "pipeline.visibility.max_witnesses=0 (repeatable)")  # fmt: skip
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the removals run (default cpu)")
    p.add_argument("--config", choices=("small", "full"), default="small",
                   help="small: spin-inpaint-small (1024 rays); full: spin-inpaint (4096 rays, mixed precision)")  # fmt: skip


def main(argv: Optional[List[str]] = None) -> int:
    """Worker entry point (``python -m spin_nerfstudio.dev.scaling --worker SIZE ...``)."""
    p = argparse.ArgumentParser(description="spin-nerf dev scaling worker (one size, one process)")
    p.add_argument("--worker", required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--steps", type=int, nargs=3, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="settings", action="append", default=[])
    p.add_argument("--device", default="cpu")
    p.add_argument("--config", default="small")
    args = p.parse_args(argv)
    run_worker(args.output, parse_size(args.worker), args.steps, args.seed, args.settings, args.device, args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
