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
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from spin_nerfstudio.cpu import peak_rss_mb
from spin_nerfstudio.dev.report_io import write_report

METHODS = ("spin", "nerfacto-torch")
"""Methods compared, in the order they run."""

LABELS = {"spin": "spin (tri-plane)", "nerfacto-torch": "nerfacto-torch"}

RESULT_FILE = "bench.json"
TABLE_FILE = "bench.md"

TARGET_SPEEDUP = 5.0
"""Target: training step and per-view render at least this many times faster than nerfacto-torch."""
TARGET_DEMO_SECONDS = 600.0
"""Target: the demo finishes within 10 minutes on 2 CPU cores."""
TARGET_DEMO_MEMORY_MB = 4096.0
"""Target: the demo's peak memory stays under 4 GB."""


@dataclass
class BenchSettings:
    """What one bench run measures."""

    budget_s: float = 60.0
    """Training wall-clock budget of each method, in seconds (setup and evaluation not included)."""
    rays: int = 1024
    """Rays per training batch, the same for both methods."""
    num_views: int = 24
    """Views of the generated scene."""
    width: int = 96
    """Image width of the generated scene."""
    height: int = 72
    """Image height of the generated scene."""
    seed: int = 0
    """Seed of the generated scene and of torch."""
    eval_interval: int = 4
    """Every eval_interval-th view (0, 4, 8, ...) is held out of training and scored."""
    warmup_steps: int = 3
    """Steps excluded from the step-time statistics (first-call allocation, lazy initialisation)."""
    max_render_views: int = 0
    """Render (and score) at most this many held-out views; 0 renders all of them."""


# ---------------------------------------------------------------------------------------------------- worker side
class _NoLPIPS:
    """Stands in for torchmetrics' LPIPS metric while nerfacto is built (its construction downloads AlexNet)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("spin-nerf dev bench: nerfacto's LPIPS metric is disabled in the benchmark (offline)")


def _model_and_optimizers(method: str, settings: BenchSettings):
    """The model config and optimiser config of a method."""
    from nerfstudio.engine.optimizers import AdamOptimizerConfig
    from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig

    if method == "spin":
        from spin_nerfstudio.spin_config import spin_inpaint_small_config

        trainer = spin_inpaint_small_config()
        return trainer.pipeline.model, trainer.optimizers
    if method == "nerfacto-torch":
        from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
        from nerfstudio.models.nerfacto import NerfactoModelConfig

        # nerfstudio 1.1.5's method_configs["nerfacto"] (importing method_configs costs ~10 s of plugin discovery),
        # with the torch implementation and the camera optimiser off.
        model = NerfactoModelConfig(
            eval_num_rays_per_chunk=1 << 15,
            average_init_density=0.01,
            camera_optimizer=CameraOptimizerConfig(mode="off"),
            implementation="torch",
        )

        def group() -> dict:
            return {
                "optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=0.0001, max_steps=200000),
            }

        return model, {"proposal_networks": group(), "fields": group()}
    raise ValueError(f"unknown method '{method}' (expected one of {', '.join(METHODS)})")


def build_pipeline(method: str, scene: Path, settings: BenchSettings):
    """A VanillaPipeline of ``method`` on ``scene`` with every ``eval_interval``-th view held out, and its optimisers."""
    import torch
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
    from nerfstudio.engine.optimizers import Optimizers
    from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

    model_config, optimizer_config = _model_and_optimizers(method, settings)
    config = VanillaPipelineConfig(
        datamanager=VanillaDataManagerConfig(
            data=scene,
            dataparser=NerfstudioDataParserConfig(eval_mode="interval", eval_interval=settings.eval_interval),
            train_num_rays_per_batch=settings.rays,
            eval_num_rays_per_batch=settings.rays,
        ),
        model=model_config,
    )
    torch.manual_seed(settings.seed)
    if method == "spin":
        pipeline = config.setup(device="cpu", test_mode="val", world_size=1, local_rank=0)
    else:
        import torchmetrics.image.lpip as lpip

        original = lpip.LearnedPerceptualImagePatchSimilarity
        lpip.LearnedPerceptualImagePatchSimilarity = _NoLPIPS  # type: ignore[misc,assignment]
        try:
            pipeline = config.setup(device="cpu", test_mode="val", world_size=1, local_rank=0)
        finally:
            lpip.LearnedPerceptualImagePatchSimilarity = original  # type: ignore[misc]
    optimizers = Optimizers(optimizer_config, pipeline.get_param_groups())
    return pipeline, optimizers


def _cpu_tuning_applied() -> bool:
    from spin_nerfstudio import cpu

    return cpu._applied


def _psnr(pred, gt) -> float:
    mse = float(((pred.clamp(0, 1) - gt) ** 2).mean())
    return -10.0 * math.log10(max(mse, 1e-10))


def run_worker(method: str, scene: Path, settings: BenchSettings) -> Dict[str, Any]:
    """Train ``method`` for the budget, render and score the held-out views; returns the measurements."""
    import torch
    from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation

    rss_imports = peak_rss_mb()
    t0 = time.perf_counter()
    pipeline, optimizers = build_pipeline(method, scene, settings)
    setup_s = time.perf_counter() - t0
    model = pipeline.model
    callbacks = pipeline.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=optimizers, grad_scaler=None, pipeline=pipeline, trainer=None)
    )
    pipeline.train()
    step_times: List[float] = []
    step_cpu: List[float] = []
    start = time.perf_counter()
    step = 0
    while time.perf_counter() - start < settings.budget_s or step < settings.warmup_steps + 1:
        s0, c0 = time.perf_counter(), time.process_time()
        for cb in callbacks:
            cb.run_callback_at_location(step, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        optimizers.zero_grad_all()
        _, loss_dict, _ = pipeline.get_train_loss_dict(step=step)
        loss = functools.reduce(torch.add, loss_dict.values())
        loss.backward()
        optimizers.optimizer_step_all()
        optimizers.scheduler_step_all(step)
        for cb in callbacks:
            cb.run_callback_at_location(step, location=TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
        step_times.append(time.perf_counter() - s0)
        step_cpu.append(time.process_time() - c0)
        step += 1
    train_s = time.perf_counter() - start
    final_loss = float(loss)

    pipeline.eval()
    dataset = pipeline.datamanager.eval_dataset
    cameras = dataset.cameras
    count = len(cameras) if settings.max_render_views <= 0 else min(len(cameras), settings.max_render_views)
    render_times, render_cpu, psnrs = [], [], []
    for i in range(count):
        gt = dataset[i]["image"][..., :3].float()
        camera = cameras[i : i + 1].to(model.device)
        r0, c0 = time.perf_counter(), time.process_time()
        outputs = model.get_outputs_for_camera(camera)
        render_times.append(time.perf_counter() - r0)
        render_cpu.append(time.process_time() - c0)
        psnrs.append(_psnr(outputs["rgb"].cpu(), gt))
    head_times: List[float] = []
    if method == "spin" and count > 0:
        # What a finished removal run renders (ns-render, viewer): the object-logit head on as well.
        from spin_nerfstudio.model.spin_model import Stage

        model.set_stage(Stage.SEGMENT)  # type: ignore[attr-defined]
        for _ in range(2):
            r0 = time.perf_counter()
            model.get_outputs_for_camera(cameras[0:1].to(model.device))
            head_times.append(time.perf_counter() - r0)
    timed = step_times[settings.warmup_steps :] or step_times
    return {
        "method": method,
        "steps": step,
        "train_seconds": train_s,
        "setup_seconds": setup_s,
        "step_seconds_median": statistics.median(timed),
        "step_seconds_mean": statistics.fmean(timed),
        "step_seconds_first": step_times[0],
        "step_cpu_seconds_median": statistics.median(step_cpu[settings.warmup_steps :] or step_cpu),
        "final_loss": final_loss,
        "render_seconds_median": statistics.median(render_times),
        "render_seconds_all": render_times,
        "render_cpu_seconds_median": statistics.median(render_cpu),
        "render_seconds_object_head": min(head_times) if head_times else None,
        "render_size": [int(cameras.width[0]), int(cameras.height[0])],
        "render_chunk": int(model.config.eval_num_rays_per_chunk),
        "heldout_views": count,
        "train_views": len(pipeline.datamanager.train_dataset),
        "heldout_psnr": statistics.fmean(psnrs),
        "heldout_psnr_all": psnrs,
        "rss_after_imports_mb": rss_imports,
        "peak_rss_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "keep_freed_memory": _cpu_tuning_applied(),
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }


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
