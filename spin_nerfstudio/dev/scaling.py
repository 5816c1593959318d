"""``spin-nerf dev scaling``: every stage's time and memory as the scene grows in views and in pixels.

For each size (VIEWSxWIDTHxHEIGHT) a scene is generated and the whole removal (``spin-nerf demo``'s path: train
through every stage with a shortened schedule, then evaluate) runs in its own Python subprocess, one size after the
other. While it runs, this process samples the child's resident memory (``VmRSS``) and CPU time (user + system, all
threads, from ``/proc/PID/stat``) every :data:`SAMPLE_SECONDS`. The pipeline writes each stage's wall-clock
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
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from spin_nerfstudio.dev.report_io import write_report

RESULT_FILE = "scaling.json"
TABLE_FILE = "scaling.md"
SAMPLE_SECONDS = 0.05
"""Interval of the parent's memory and CPU-time samples of the child."""
DEFAULT_SIZES = ("12x64x48", "24x120x90", "48x240x180")
DEFAULT_STEPS = (200, 150, 400)
"""Shortened schedule (reconstruct, mask, total steps): the fits' cost per step does not depend on the scene size;
the reconstruction needs about 200 steps for a depth good enough for the click-to-mask segmentation, and the mask
head about 150 for a non-empty final mask on 16 views (with 50 it came out empty)."""

STAGE_ORDER = (
    "scene", "setup", "fit_reconstruct", "render", "initial_masks", "fit_segment", "mask_agreement", "final_masks",
    "inpaint", "seen_elsewhere", "field_prior", "fit_inpaint", "result_sheet", "removal_figures", "evaluate",
)  # fmt: skip
"""Rows of the table, in the order they run (``scene`` is the scene generation, not part of a removal)."""


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


# ---------------------------------------------------------------------------------------------------- sampling
def _read_sample(pid: int, ticks: float) -> Optional[Tuple[float, float, float]]:
    """(time, VmRSS MiB, CPU seconds) of process ``pid`` now; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as fh:
            rss = next((float(line.split()[1]) / 1024.0 for line in fh if line.startswith("VmRSS:")), 0.0)
    except (OSError, IndexError, ValueError):
        return None
    cpu = (float(fields[11]) + float(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    return time.time(), rss, cpu


class Sampler(threading.Thread):
    """Samples a child's resident memory and CPU time until it exits."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: List[Tuple[float, float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        ticks = float(os.sysconf("SC_CLK_TCK"))
        while not self._halt.is_set():
            sample = _read_sample(self.pid, ticks)
            if sample is not None:
                self.samples.append(sample)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def span_usage(
    samples: Sequence[Tuple[float, float, float]], start: float, end: float
) -> Tuple[Optional[float], Optional[float]]:
    """(CPU seconds, peak MiB) of the child between ``start`` and ``end`` from the samples (None: no sample)."""
    if not samples:
        return None, None
    t = np.array([s[0] for s in samples])
    cpu = np.array([s[2] for s in samples])
    rss = np.array([s[1] for s in samples])
    inside = (t >= start) & (t <= end)
    # the samples just outside the span bound it (a stage shorter than the interval still gets one)
    lo, hi = max(int(np.searchsorted(t, start)) - 1, 0), min(int(np.searchsorted(t, end)), len(t) - 1)
    inside[lo] = inside[hi] = True
    used = float(np.interp(end, t, cpu) - np.interp(start, t, cpu))
    return max(used, 0.0), float(rss[inside].max())


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
def stage_spans(worker: Dict[str, Any], stages_file: Dict[str, Any]) -> Dict[str, List[List[float]]]:
    """Every row's [start, end] spans: the pipeline's own plus scene, setup, fit_inpaint and evaluate (the demo's
    own wall-clock spans of scene generation, training and evaluation)."""
    spans: Dict[str, List[List[float]]] = {k: [list(s) for s in v] for k, v in stages_file.get("spans", {}).items()}
    demo = worker["spans"]
    train_start, train_end = demo["train"]
    spans["scene"] = [list(demo["scene"])]
    firsts = [s[0] for v in spans.values() for s in v if s[0] >= train_start]
    spans["setup"] = [[train_start, min(firsts) if firsts else train_end]]
    late = ("field_prior", "result_sheet", "removal_figures", "scene")  # inside the inpainted fit / at its last step
    boundary_ends = [s[1] for k, v in spans.items() if k not in late for s in v]
    spans["fit_inpaint"] = [[max(boundary_ends), train_end]]
    spans["evaluate"] = [list(demo["evaluate"])]
    return spans


def _inside(inner: List[float], outer: List[float]) -> bool:
    return inner is not outer and inner[0] >= outer[0] and inner[1] <= outer[1]


def stage_rows(
    spans: Dict[str, List[List[float]]], samples: Sequence[Tuple[float, float, float]]
) -> Dict[str, Dict[str, Optional[float]]]:
    """Per stage: wall seconds, CPU seconds (nested stages subtracted from the fits) and peak memory."""
    rows: Dict[str, Dict[str, Optional[float]]] = {}
    for name, runs in spans.items():
        wall, cpu, peak = 0.0, 0.0, None
        for span in runs:
            usage = span_usage(samples, span[0], span[1])
            wall += span[1] - span[0]
            cpu = None if (cpu is None or usage[0] is None) else cpu + usage[0]
            if usage[1] is not None:
                peak = usage[1] if peak is None else max(peak, usage[1])
            if name.startswith("fit_"):
                for other, others in spans.items():
                    for inner in others:
                        if not other.startswith("fit_") and _inside(inner, span):
                            wall -= inner[1] - inner[0]
                            nested = span_usage(samples, inner[0], inner[1])[0]
                            cpu = None if (cpu is None or nested is None) else cpu - nested
        rows[name] = {"seconds": wall, "cpu_seconds": cpu, "peak_rss_mb": peak}
    return rows


def growth_exponents(points: Sequence[Tuple[float, float, float]]) -> Dict[str, Optional[float]]:
    """Least-squares exponents b, c of ``y = a * views^b * pixels^c`` from (views, pixels, y) points (y > 0).

    An exponent is None when the points do not vary in that variable (or vary in views and pixels together)."""
    pts = [(v, p, y) for v, p, y in points if y is not None and y > 0]
    if len(pts) < 2:
        return {"views": None, "pixels": None}
    logv = np.log([p[0] for p in pts])
    logp = np.log([p[1] for p in pts])
    logy = np.log([p[2] for p in pts])
    vary_v, vary_p = np.ptp(logv) > 1e-9, np.ptp(logp) > 1e-9
    columns, names = [np.ones(len(pts))], []
    if vary_v:
        columns.append(logv)
        names.append("views")
    if vary_p:
        columns.append(logp)
        names.append("pixels")
    design = np.stack(columns, axis=1)
    if np.linalg.matrix_rank(design) < design.shape[1]:  # views and pixels grew together: not separable
        return {"views": None, "pixels": None}
    coef = np.linalg.lstsq(design, logy, rcond=None)[0]
    out: Dict[str, Optional[float]] = {"views": None, "pixels": None}
    for name, value in zip(names, coef[1:]):
        out[name] = float(value)
    return out


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


def stage_names(results: Sequence[Dict[str, Any]]) -> List[str]:
    """The stages present in any result: those of :data:`STAGE_ORDER` in its order, then any other."""
    present = {n for r in results for n in r["stages"]}
    return [n for n in STAGE_ORDER if n in present] + sorted(present - set(STAGE_ORDER))


def fit_exponents(results: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Optional[float]]]:
    """Per stage, the growth exponents of CPU seconds (and of wall seconds) over the sizes run."""
    names = stage_names(results)
    out: Dict[str, Dict[str, Optional[float]]] = {}
    for name in names:
        row: Dict[str, Optional[float]] = {}
        for key, label in (("cpu_seconds", "cpu"), ("seconds", "wall")):
            pts = [(r["views"], r["pixels"], r["stages"].get(name, {}).get(key)) for r in results]
            fit = growth_exponents(pts)
            row[f"{label}_views"], row[f"{label}_pixels"] = fit["views"], fit["pixels"]
        out[name] = row
    return out


def _num(x: Optional[float], fmt: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def format_table(report: Dict[str, Any]) -> str:
    """The Markdown tables of a scaling report."""
    results = report["results"]
    steps = report["steps"]
    gpu = any(r.get("cuda_peak_mb") is not None for r in results)
    sizes = ", ".join(r["size"] for r in results)
    lines = [
        f"spin-nerf dev scaling: sizes {sizes} (views x width x height), schedule {steps[0]}/{steps[1]}/{steps[2]} "
        f"steps (reconstruct/mask/total), seed {report['seed']}, device {report.get('device', 'cpu')}, "
        f"config {report.get('config', 'small')}, torch threads {report['threads']}, "
        f"config changes: {' '.join(report.get('settings', [])) or 'none'}, "
        f"load average at start {report['load_start']}",
        "",
        "Seconds per stage, CPU (user + system, all threads) / wall; peak resident MiB sampled inside the stage"
        + ("; peak GPU MiB (torch's allocator) of the stage:" if gpu else ":"),
        "",
        "| stage | " + " | ".join(r["size"] for r in results) + " | exponent in views (CPU) | in pixels (CPU) |",
        "|---|" + "---:|" * (len(results) + 2),
    ]
    exps = report["exponents"]
    for name in stage_names(results):
        cells = []
        for r in results:
            s = r["stages"].get(name)
            cells.append(
                "–" if s is None
                else f"{_num(s['cpu_seconds'], '.2f')} / {_num(s['seconds'], '.2f')} s, {_num(s['peak_rss_mb'], '.0f')} MiB"
                + (f", GPU {_num(s.get('cuda_peak_mb'), '.0f')} MiB" if gpu else "")
            )  # fmt: skip
        e = exps.get(name, {})
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {_num(e.get('cpu_views'), '.2f')} | {_num(e.get('cpu_pixels'), '.2f')} |"
        )
    lines.append(
        "| unattributed (checkpoints, sheets, imports) | "
        + " | ".join(f"{r['unattributed_seconds']:.2f} s" for r in results) + " | | |"
    )  # fmt: skip
    lines.append("| **whole child (wall)** | " + " | ".join(f"{r['child_seconds']:.1f} s" for r in results) + " | | |")
    lines.append("| **peak memory, VmHWM** | " + " | ".join(f"{r['peak_rss_mb']:.0f} MiB" for r in results) + " | | |")
    if gpu:
        lines.append(
            "| **peak GPU memory (torch)** | "
            + " | ".join(f"{_num(r.get('cuda_peak_mb'), '.0f')} MiB" for r in results) + " | | |"
        )  # fmt: skip
    lines += [
        "",
        "Exponents: least squares of log(CPU seconds) on log(views) and log(pixels per view) over "
        f"{sizes}; '–' where the sizes do not vary in that variable. Wall-second exponents are in scaling.json.",
    ]
    for fail in report.get("failed", []):
        lines.append(f"FAILED {fail['size']}: {fail['error']}")
    return "\n".join(lines)


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
