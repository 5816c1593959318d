"""``spin-nerf benchmark DATASET_ROOT --scenes ...``: train and evaluate every scene of a SPIn-NeRF-layout dataset.

For each scene folder ``DATASET_ROOT/SCENE`` (``poses_bounds.npy``, ``images_4/`` with ``label/`` and
``test_label/``) it runs ``ns-train METHOD ... spin-llff --spin-layout True`` (as a subprocess, log in
``OUTPUT/logs/SCENE.log``), then scores the run with :func:`spin_nerfstudio.evaluation.protocol.evaluate_test_split`
(metrics in ``RUN/metrics.json``), and finally writes:

- ``OUTPUT/benchmark.md`` and ``OUTPUT/benchmark.csv``: one row per scene and a mean row (mean over the scenes with
  a value; FID is averaged per scene, not pooled over scenes);
- ``OUTPUT/benchmark.json``: every scene's full metrics;
- ``OUTPUT/figures/SCENE.png``: a strip of test views, ground truth above and our render below.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from spin_nerfstudio.prompts import SpinInputError

COLUMNS = (
    ("psnr", "PSNR", 2), ("ssim", "SSIM", 3), ("lpips", "LPIPS", 3),
    ("masked_psnr", "PSNR-in", 2), ("masked_ssim", "SSIM-in", 3), ("masked_lpips", "LPIPS-in", 3),
    ("bbox_lpips", "LPIPS-box", 3), ("st_lpips", "ST-LPIPS", 3), ("masked_st_lpips", "ST-LPIPS-in", 3),
    ("bbox_st_lpips", "ST-LPIPS-box", 3), ("fid", "FID", 1), ("bbox_fid", "FID-box", 1),
    ("mask_accuracy", "mask acc", 4), ("mask_iou", "mask IoU", 4),
)  # fmt: skip
"""(metrics key, table header, decimals) of the table's metric columns."""


@dataclass
class BenchmarkConfig:
    """What ``spin-nerf benchmark`` runs."""

    root: Path
    """Dataset root holding one folder per scene."""
    scenes: List[str]
    """Scene folder names."""
    output: Path = Path("benchmark_output")
    """Output folder (runs, logs, figures, table)."""
    method: str = "spin-inpaint-small"
    """nerfstudio method to train."""
    reconstruct_steps: Optional[int] = None
    """Override of the method's reconstruction steps."""
    mask_steps: Optional[int] = None
    """Override of the method's mask-head steps."""
    max_num_iterations: Optional[int] = None
    """Override of the method's total steps."""
    device: str = "auto"
    """cpu, cuda or auto."""
    downscale_factor: int = 4
    """Image folder ``images_{N}`` to train and evaluate on (SPIn-NeRF's masks are in ``images_4``)."""
    num_gt_views: Optional[int] = None
    """Leading ground-truth views; None counts ``test_label/``."""
    masks: str = "labels"
    """``labels``: train with the dataset's label masks; ``prompts``: segment from ``SCENE/prompts.json``."""
    inception_weights: Optional[Path] = None
    """FID Inception weights file (else torch's cache; FID null without)."""
    lpips_weights: Optional[Path] = None
    """LPIPS AlexNet backbone weights file (else torch's cache; LPIPS null without)."""
    reuse: bool = False
    """Skip training a scene whose run folder already holds a final checkpoint."""
    figure_views: int = 6
    """Test views in each scene's figure strip."""
    ns_train_args: List[str] = field(default_factory=list)
    """Extra arguments passed to ns-train before the dataparser subcommand."""


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else (shutil.which(name) or name)


def run_dir_of(cfg: BenchmarkConfig, scene: str) -> Path:
    """Run folder of one scene."""
    return cfg.output / "runs" / scene / cfg.method / "run"


def ns_train_command(cfg: BenchmarkConfig, scene: str, device: str) -> List[str]:
    """The ns-train command line of one scene."""
    data = cfg.root / scene
    cmd = [
        _bin("ns-train"), cfg.method,
        "--data", str(data),
        "--output-dir", str(cfg.output / "runs"),
        "--experiment-name", scene,
        "--timestamp", "run",
        "--vis", "tensorboard",
        "--machine.device-type", device,
    ]  # fmt: skip
    if device == "cpu":
        cmd += ["--mixed-precision", "False"]
    if cfg.max_num_iterations is not None:
        cmd += ["--max-num-iterations", str(cfg.max_num_iterations), "--steps-per-save", str(cfg.max_num_iterations)]
    if cfg.reconstruct_steps is not None:
        cmd += ["--pipeline.reconstruct-steps", str(cfg.reconstruct_steps)]
    if cfg.mask_steps is not None:
        cmd += ["--pipeline.mask-steps", str(cfg.mask_steps)]
    if cfg.masks == "prompts":
        cmd += ["--pipeline.prompt-file", str(data / "prompts.json")]
    cmd += list(cfg.ns_train_args)
    cmd += ["spin-llff", "--spin-layout", "True", "--downscale-factor", str(cfg.downscale_factor)]
    if cfg.num_gt_views is not None:
        cmd += ["--num-gt-views", str(cfg.num_gt_views)]
    return cmd


def _check_scene(cfg: BenchmarkConfig, scene: str) -> None:
    data = cfg.root / scene
    folder = data / ("images" if cfg.downscale_factor == 1 else f"images_{cfg.downscale_factor}")
    for path, what in (
        (data, "scene folder"),
        (data / "poses_bounds.npy", "LLFF pose file"),
        (folder / "label", "training-view masks"),
        (folder / "test_label", "test-view masks"),
    ):
        if not path.exists():
            raise SpinInputError(f"{path}: {what} not found (expected the SPIn-NeRF dataset layout)")
    if cfg.masks == "prompts" and not (data / "prompts.json").is_file():
        raise SpinInputError(f"{data / 'prompts.json'}: prompt file not found (needed by --masks prompts)")


def _has_final_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "config.yml").is_file() and any((run_dir / "nerfstudio_models").glob("*.ckpt"))


def train_scene(cfg: BenchmarkConfig, scene: str, device: str) -> float:
    """Train one scene (unless reused); returns the training wall time in seconds (0 when reused)."""
    run_dir = run_dir_of(cfg, scene)
    if cfg.reuse and _has_final_checkpoint(run_dir):
        print(f"spin-nerf benchmark: {scene}: reusing {run_dir}")
        return 0.0
    log = cfg.output / "logs" / f"{scene}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = ns_train_command(cfg, scene, device)
    print(f"spin-nerf benchmark: {scene}: training ({shlex.join(cmd[1:3])} ...; log {log})", flush=True)
    start = time.time()
    with open(log, "w") as f:
        f.write(shlex.join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    seconds = time.time() - start
    if proc.returncode != 0 or not _has_final_checkpoint(run_dir):
        tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-1:]
        raise SpinInputError(f"{scene}: ns-train failed (exit {proc.returncode}; see {log}): {' '.join(tail)[:300]}")
    return seconds


def scene_figure(
    gts: Sequence[np.ndarray], renders: Sequence[np.ndarray], names: Sequence[str], title: str, num_views: int
):
    """Strip of test views: ground truth above, our render below."""
    from spin_nerfstudio.evaluation.sheet import contact_sheet, pick_views

    idx = pick_views(len(names), num_views)
    scale = max(1, min(4, 200 // max(1, gts[0].shape[0])))
    rows = [[gts[i] for i in idx], [renders[i] for i in idx]]
    columns = [Path(names[i]).stem[-6:] for i in idx]
    return contact_sheet(rows, columns, ["truth", "ours"], scale=scale, title=title)


def _fmt(value: object, decimals: int) -> str:
    return "n/a" if value is None else f"{float(value):.{decimals}f}"  # type: ignore[arg-type]


def write_table(rows: List[Dict[str, object]], output: Path) -> str:
    """Write ``benchmark.md`` and ``benchmark.csv`` (per-scene rows and a mean row); returns the Markdown."""
    keys = [k for k, _, _ in COLUMNS]
    mean: Dict[str, object] = {"scene": "mean", "train_views": None, "test_views": None, "train_s": None}
    ok = [r for r in rows if not r.get("error")]
    for k in keys + ["train_s"]:
        vals = [float(r[k]) for r in ok if r.get(k) is not None]  # type: ignore[arg-type]
        mean[k] = float(np.mean(vals)) if vals else None
    header = ["scene", "train/test views"] + [h for _, h, _ in COLUMNS] + ["train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|"]
    for r in rows + [mean]:
        if r.get("error"):
            lines.append(f"| {r['scene']} | failed: {r['error']} |" + " |" * (len(header) - 2))
            continue
        views = "" if r["train_views"] is None else f"{r['train_views']}/{r['test_views']}"
        cells = [str(r["scene"]), views] + [_fmt(r.get(k), d) for k, _, d in COLUMNS] + [_fmt(r.get("train_s"), 0)]
        if r is mean:
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    markdown = "\n".join(lines) + "\n"
    output.mkdir(parents=True, exist_ok=True)
    (output / "benchmark.md").write_text(markdown)
    with open(output / "benchmark.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["scene", "train_views", "test_views"] + keys + ["train_s", "error"])
        for r in rows + [mean]:
            writer.writerow(
                [r["scene"], r.get("train_views"), r.get("test_views")]
                + ["" if r.get(k) is None else repr(float(r[k])) for k in keys + ["train_s"]]  # type: ignore[arg-type]
                + [r.get("error") or ""]
            )
    return markdown


def run_benchmark(cfg: BenchmarkConfig) -> int:
    """Train, evaluate and tabulate every scene; returns the number of scenes that failed."""
    import torch
    from PIL import Image

    from spin_nerfstudio.evaluation.evaluate import evaluate_run, write_metrics
    from spin_nerfstudio.evaluation.protocol import load_test_renders
    from spin_nerfstudio.evaluation.sheet import save_sheet

    cfg.root, cfg.output = Path(cfg.root), Path(cfg.output)
    if not cfg.root.is_dir():
        raise SpinInputError(f"{cfg.root}: dataset root not found")
    if not cfg.scenes:
        raise SpinInputError("no scenes given (--scenes 1 2 3 4 7 9 10 12 book trash)")
    for scene in cfg.scenes:
        _check_scene(cfg, scene)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    rows: List[Dict[str, object]] = []
    everything: Dict[str, object] = {}
    for scene in cfg.scenes:
        row: Dict[str, object] = {"scene": scene}
        try:
            train_s = train_scene(cfg, scene, device)
            run_dir = run_dir_of(cfg, scene)
            print(f"spin-nerf benchmark: {scene}: evaluating", flush=True)
            metrics = evaluate_run(
                run_dir / "config.yml", inception_weights=cfg.inception_weights, lpips_weights=cfg.lpips_weights
            )
            metrics["train_seconds"] = train_s if train_s > 0 else None
            metrics = json.loads(write_metrics(metrics, run_dir / "metrics.json"))  # non-finite numbers -> null
            everything[scene] = metrics
            row.update({k: metrics.get(k) for k, _, _ in COLUMNS})
            row.update(
                train_views=metrics["num_train_views"], test_views=metrics["num_test_views"], train_s=train_s or None
            )
            names = [v["image"] for v in metrics["per_view"]]  # type: ignore[index]
            folder = cfg.root / scene / str(metrics["image_folder"])
            gts = [np.asarray(Image.open(folder / n).convert("RGB")) for n in names]
            renders = load_test_renders(run_dir, names)
            title = (
                f"scene {scene}: test views, truth above, ours below (PSNR {_fmt(metrics['psnr'], 2)}, "
                f"PSNR-in {_fmt(metrics['masked_psnr'], 2)}, LPIPS {_fmt(metrics['lpips'], 3)}, "
                f"ST-LPIPS {_fmt(metrics.get('st_lpips'), 3)})"
            )
            fig = scene_figure(gts, renders, names, title, cfg.figure_views)  # type: ignore[arg-type]
            row["figure"] = str(save_sheet(fig, cfg.output / "figures" / f"{scene}.png"))
        except SpinInputError as err:
            row["error"] = str(err)
            print(f"spin-nerf benchmark: {scene}: {err}", file=sys.stderr)
        rows.append(row)
    markdown = write_table(rows, cfg.output)
    (cfg.output / "benchmark.json").write_text(json.dumps({"rows": rows, "metrics": everything}, indent=2) + "\n")
    print(markdown, end="")
    print(f"spin-nerf benchmark: table {cfg.output / 'benchmark.md'} and {cfg.output / 'benchmark.csv'}")
    return sum(1 for r in rows if r.get("error"))


def add_command(sub, add_weight_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``spin-nerf benchmark`` on the CLI's sub-parsers."""
    b = sub.add_parser("benchmark", help="train and evaluate scenes of a SPIn-NeRF-layout dataset; write a table")
    b.add_argument("root", type=Path, help="dataset root with one folder per scene")
    b.add_argument("--scenes", nargs="+", required=True, help="scene folder names, e.g. 1 2 3 4 7 9 10 12 book trash")
    b.add_argument("--output", type=Path, default=Path("benchmark_output"), help="runs, logs, figures and tables")
    b.add_argument("--method", default="spin-inpaint-small", help="nerfstudio method to train")
    b.add_argument("--reconstruct-steps", type=int, default=None, help="override the method's reconstruction steps")
    b.add_argument("--mask-steps", type=int, default=None, help="override the method's mask-head steps")
    b.add_argument("--max-num-iterations", type=int, default=None, help="override the method's total steps")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    b.add_argument("--downscale-factor", type=int, default=4, help="train and evaluate on images_N/")
    b.add_argument("--num-gt-views", type=int, default=None, help="leading ground-truth views (default: test_label/)")
    b.add_argument("--masks", default="labels", choices=["labels", "prompts"], help="label/ or SCENE/prompts.json")
    b.add_argument("--reuse", action="store_true", help="skip training scenes that already have a checkpoint")
    b.add_argument("--figure-views", type=int, default=6, help="test views per figure strip")
    b.add_argument("--ns-train-args", default="", help="extra ns-train arguments, as one quoted string")
    add_weight_args(b)
    b.set_defaults(run_command=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    cfg = BenchmarkConfig(
        root=args.root, scenes=args.scenes, output=args.output.resolve(), method=args.method,
        reconstruct_steps=args.reconstruct_steps, mask_steps=args.mask_steps,
        max_num_iterations=args.max_num_iterations, device=args.device, downscale_factor=args.downscale_factor,
        num_gt_views=args.num_gt_views, masks=args.masks, inception_weights=args.inception_weights,
        lpips_weights=args.lpips_weights, reuse=args.reuse, figure_views=args.figure_views,
        ns_train_args=shlex.split(args.ns_train_args),
    )  # fmt: skip
    return 1 if run_benchmark(cfg) else 0
