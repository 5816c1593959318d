"""``spin-nerf demo``: generate a scene, remove its object with ``spin-inpaint-small``, show and score the result."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional

import numpy as np
import torch

from spin_nerfstudio.data.synthetic import SceneSpec, make_scene
from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.trainer import run_training

if TYPE_CHECKING:
    from spin_nerfstudio.trainer import SpinTrainerConfig

MARKER = ".spin-demo"
REPO_PROMPTS = Path(__file__).resolve().parents[1] / "configs" / "demo_prompts.json"


def _prepare_output(output: Path) -> None:
    if output.exists() and any(output.iterdir()):
        if not (output / MARKER).exists():
            raise SpinInputError(f"{output}: folder exists and is not a demo output; choose another --output")
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).write_text("written by spin-nerf demo; the next demo run may delete this folder\n")


def demo_config(
    scene: Path,
    prompt_file: Path,
    output: Path,
    device: str,
    iterations: Optional[Dict[str, int]] = None,
    base: Optional[SpinTrainerConfig] = None,
) -> SpinTrainerConfig:
    """``base`` (default: the spin-inpaint-small config) for a generated scene, logging to tensorboard (no viewer)."""
    from spin_nerfstudio.spin_config import spin_inpaint_small_config

    config = base if base is not None else spin_inpaint_small_config()
    config.data = scene
    config.pipeline.datamanager.data = scene
    config.output_dir = output / "runs"
    config.experiment_name = "demo"
    config.timestamp = "run"
    config.vis = "tensorboard"
    config.machine.device_type = device  # type: ignore[assignment]
    config.pipeline.prompt_file = prompt_file
    if iterations:
        config.pipeline.reconstruct_steps = iterations["reconstruct"]
        config.pipeline.mask_steps = iterations["mask"]
        config.max_num_iterations = iterations["total"]
        config.steps_per_save = iterations["total"]
    return config


def run_demo(
    output: Path = Path("demo_output"),
    seed: int = 0,
    spec: Optional[SceneSpec] = None,
    iterations: Optional[Dict[str, int]] = None,
    device: str = "auto",
    base: Optional[SpinTrainerConfig] = None,
) -> Dict[str, object]:
    """Generate, remove, render, score. Returns the metrics and writes everything under ``output``.

    ``base``: the trainer config to start from (default: spin-inpaint-small's)."""
    from spin_nerfstudio.evaluation.evaluate import evaluate_pipeline, write_metrics
    from spin_nerfstudio.evaluation.sheet import contact_sheet, overlay, pick_views, save_sheet
    from spin_nerfstudio.stage_io import load_views
    from spin_nerfstudio.stages.names import INPAINTED_DIR, MASK_DIR, RENDERS_BEFORE_DIR, STAGES_FILE

    start = time.time()
    output = Path(output).resolve()
    _prepare_output(output)
    spec = spec or SceneSpec(seed=seed)
    scene = make_scene(output / "scene", spec)
    default = SceneSpec()
    same_as_shipped = (spec.seed, spec.num_views, spec.width, spec.height) == (
        default.seed, default.num_views, default.width, default.height,
    )  # fmt: skip
    prompt_file = REPO_PROMPTS if (same_as_shipped and REPO_PROMPTS.is_file()) else scene / "prompts.json"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    t_scene = time.time() - start
    config = demo_config(scene, prompt_file, output, device, iterations, base)
    t0 = time.time()
    trainer = run_training(config)
    t_train = time.time() - t0
    train_span = [t0, t0 + t_train]
    run_dir = Path(config.get_base_dir())
    pipeline = trainer.pipeline  # type: ignore[attr-defined]

    t0 = time.time()
    metrics, renders = evaluate_pipeline(
        pipeline, run_dir, int(config.max_num_iterations), scene / "masks", scene / "background"
    )
    t_eval = time.time() - t0
    evaluate_span = [t0, t0 + t_eval]
    names = pipeline.datamanager.image_names
    images = pipeline.datamanager.images_uint8()
    before = load_views(run_dir / RENDERS_BEFORE_DIR, names)
    masks = load_views(run_dir / MASK_DIR, names)
    inpainted = load_views(run_dir / INPAINTED_DIR, names)
    from PIL import Image

    rows, labels = [], []
    for i in pick_views(len(names), 6):
        gt = np.asarray(Image.open(scene / "background" / names[i]).convert("RGB"))
        rows.append([images[i], before[i], overlay(images[i], masks[i] > 0), inpainted[i], renders[i], gt])
        labels.append(names[i])
    columns = ["input", "NeRF before", "mask", "2D inpainted", "NeRF after", "truth"]
    title = f"spin-inpaint-small demo: mask IoU {metrics['mask_iou']:.3f}, masked PSNR {metrics['masked_psnr']:.2f} dB"
    sheet = save_sheet(contact_sheet(rows, columns, labels, title=title), output / "contact_sheet.png")
    shutil.copytree(run_dir / MASK_DIR, output / "masks", dirs_exist_ok=True)
    stages = json.loads((run_dir / STAGES_FILE).read_text())["seconds"] if (run_dir / STAGES_FILE).exists() else {}
    wall = time.time() - start
    metrics["timing_seconds"] = {
        "scene": t_scene, "train_total": t_train, "evaluate": t_eval, "wall": wall, **{f"stage_{k}": v for k, v in stages.items()},
    }  # fmt: skip
    from spin_nerfstudio.cpu import peak_rss_mb

    metrics["peak_rss_mb"] = peak_rss_mb()
    metrics["timing_seconds"]["cpu"] = time.process_time()  # user + system, all threads: less load-dependent
    metrics["device"] = device
    pipeline.cuda_peaks.mark("evaluate")
    if pipeline.cuda_peaks.overall is not None:
        metrics["cuda_peak_mb"] = pipeline.cuda_peaks.as_json()
    metrics["spans"] = {"scene": [start, start + t_scene], "train": train_span, "evaluate": evaluate_span}
    metrics["encoding"] = getattr(pipeline.model, "encoding_kind", None)
    write_metrics(metrics, output / "metrics.json")
    print(f"spin-nerf demo: contact sheet {sheet}")
    print(f"spin-nerf demo: metrics {output / 'metrics.json'}")
    for key in ("mask_iou", "mask_accuracy", "psnr", "masked_psnr", "ssim", "masked_ssim", "object_colour_fraction"):
        print(f"  {key:24s} {metrics.get(key)}")
    print(f"spin-nerf demo: wall time {wall:.1f} s (training {t_train:.1f} s, evaluation {t_eval:.1f} s)")
    print(f"spin-nerf demo: peak memory {metrics['peak_rss_mb']:.0f} MB")
    return metrics
