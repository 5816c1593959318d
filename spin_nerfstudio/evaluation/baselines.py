"""Baselines for ``spin-nerf evaluate --baselines``, scored on the same views, masks and metrics as the run.

- ``inpainted_2d``: each view inpainted in 2D on its own (the run's ``inpainted/`` images, which the 2D inpainter
  made from the original images inside the removal masks), compared with the ground truth directly.
- ``masked_nerf``: a field fitted to the same views that never sees a masked pixel: RGB loss outside the removal
  masks only; no depth, reference, perceptual or seen-elsewhere loss. It is trained here, from the run's own stage
  outputs (``--pipeline.reuse-stages RUN``), for as many steps as the run's inpainted fit and on the same stretch
  of the learning-rate schedule. It is kept in ``RUN/baselines/masked_nerf/`` and reused by later evaluations.

:func:`variant_config` builds such refits of a run with other loss settings (the ablations use it too).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from spin_nerfstudio.evaluation import metrics as M
from spin_nerfstudio.evaluation.perceptual_metrics import PERCEPTUAL_KEYS, PerceptualScorer
from spin_nerfstudio.prompts import SpinInputError

BASELINE_DIR = "baselines"
"""Subfolder of the run folder holding the baseline fits."""
DONE_MARKER = "_baseline_complete.json"
METRIC_KEYS = ("masked_psnr", "masked_ssim", "masked_lpips", "masked_st_lpips", "psnr", "ssim", "lpips", "st_lpips")


def continue_schedule(config, start: int, total: int) -> None:
    """Make exponential-decay schedules of a fresh fit of ``total - start`` steps follow the stretch
    ``[start, total)`` of the original ``total``-step schedule (learning rates at the same points)."""
    from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig

    for group in config.optimizers.values():
        sched = group.get("scheduler")
        opt = group["optimizer"]
        if isinstance(sched, ExponentialDecaySchedulerConfig) and sched.warmup_steps == 0:
            final = sched.lr_final if sched.lr_final is not None else opt.lr
            frac = min(1.0, start / max(sched.max_steps, 1))
            opt.lr = float(math.exp(math.log(opt.lr) * (1 - frac) + math.log(final) * frac))
            sched.lr_final = final
            sched.max_steps = max(1, sched.max_steps - start)


def variant_config(
    run_config: Path, out_dir: Path, name: str, change: Callable[[object], None], steps: Optional[int] = None
):
    """Config of a refit of the run at ``run_config`` that starts from its stage outputs, changed by ``change``.

    The refit trains for as many steps as the run's inpainted fit (or ``steps``) on the learning rates that fit had:
    the whole schedule again (``inpaint_schedule`` "restart") or the same stretch of the run's schedule
    ("continue", and runs from before that setting existed); it is written to ``out_dir/name/<method>/run``.
    """
    import yaml

    run_config = Path(run_config)
    config = yaml.load(run_config.read_text(), Loader=yaml.Loader)
    pipe = config.pipeline
    start = int(pipe.reconstruct_steps + pipe.mask_steps)
    total = int(config.max_num_iterations)
    fit = total - start if steps is None else int(steps)
    if fit <= 0:
        raise SpinInputError(f"{run_config}: the run has no inpainted-fit steps ({total} steps in all)")
    if getattr(pipe, "inpaint_schedule", "continue") == "continue":  # a restarted run's fit had the whole schedule
        continue_schedule(config, start, total)
    config.max_num_iterations = fit
    config.steps_per_save = fit
    config.output_dir = Path(out_dir)
    config.experiment_name = name
    config.timestamp = "run"
    config.vis = "tensorboard"
    config.load_dir = None
    config.load_checkpoint = None
    config.load_step = None
    pipe.reuse_stages = run_config.parent
    pipe.prompt_file = None
    pipe.mask_dir = None
    change(config)
    return config


def masked_nerf(config) -> None:
    """Loss settings of the masked NeRF: only RGB outside the removal masks."""
    config.pipeline.visibility.enabled = False
    config.pipeline.lpips_loss_mult = 0.0
    config.pipeline.st_lpips_loss_mult = 0.0
    config.pipeline.model.depth_loss_mult = 0.0
    config.pipeline.model.reference_loss_mult = 0.0


def train_variant(config, quiet: bool = True):
    """Train a variant config in this process (reusing a finished one); returns (pipeline, run folder, step)."""
    import contextlib
    import io

    from spin_nerfstudio.stage_io import write_json

    base = Path(config.get_base_dir())
    done = base / DONE_MARKER
    if done.is_file() and (base / "config.yml").is_file():
        from nerfstudio.utils.eval_utils import eval_setup

        from spin_nerfstudio import safe_load

        safe_load.allow_nerfstudio_checkpoints()
        _, pipeline, _, step = eval_setup(base / "config.yml", test_mode="test")
        return pipeline, base, int(step)
    from spin_nerfstudio.trainer import run_training as train

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        trainer = train(config)
    write_json(done, {"steps": int(config.max_num_iterations)})
    pipeline = trainer.pipeline  # type: ignore[attr-defined]
    pipeline.eval()
    return pipeline, base, int(config.max_num_iterations)


def score_views(
    images: List[np.ndarray], gts: List[np.ndarray], masks: Optional[List[np.ndarray]], scorer=None
) -> Dict[str, object]:
    """Per-view and mean metrics of float [0, 1] images against ground truth, as ``spin-nerf evaluate`` scores
    (``scorer``: a :class:`PerceptualScorer`; perceptual keys null without one)."""
    per_view = []
    for i, (pred, gt) in enumerate(zip(images, gts)):
        pred = np.clip(pred, 0.0, 1.0)
        pv: Dict[str, object] = {"psnr": M.psnr(pred, gt), "ssim": M.ssim(pred, gt)}
        m = masks[i] if masks is not None else None
        if m is not None:
            pv["masked_psnr"], pv["masked_ssim"] = M.psnr(pred, gt, m), M.ssim(pred, gt, m)
        pv.update(scorer.score(pred, gt, m) if scorer is not None else {k: None for k in PERCEPTUAL_KEYS})
        per_view.append(pv)
    out: Dict[str, object] = {k: _mean([pv.get(k) for pv in per_view]) for k in METRIC_KEYS}
    out["per_view"] = per_view
    return out


def _mean(values) -> Optional[float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean([min(v, 100.0) for v in vals])) if vals else None


def inpainted_2d_scores(
    run_dir: Path, names: List[str], gts: List[np.ndarray], masks: Optional[List[np.ndarray]]
) -> Dict[str, object]:
    """Scores of the run's ``inpainted/`` images (each view inpainted in 2D on its own) against ground truth."""
    from spin_nerfstudio.stage_io import load_views
    from spin_nerfstudio.stages.names import INPAINTED_DIR

    inpainted = load_views(Path(run_dir) / INPAINTED_DIR, names)
    if inpainted is None:
        raise SpinInputError(f"{run_dir / INPAINTED_DIR}: the run has no 2D inpainting (did it reach that stage?)")
    flat = score_views([np.asarray(v, np.float32) / 255.0 for v in inpainted], gts, masks, PerceptualScorer())
    flat["what"] = f"the run's {INPAINTED_DIR}/ images (each view inpainted in 2D on its own)"
    return flat


def add_baselines(
    result: Dict[str, object],
    run_config: Path,
    names: List[str],
    gts: List[np.ndarray],
    eval_masks: Optional[List[np.ndarray]],
    gt_masks: Optional[Path],
    gt_images: Path,
    score: Callable,
) -> None:
    """Score both baselines and add ``baselines`` and a ``comparison`` table (ours first) to ``result``.

    ``score`` is ``evaluate.evaluate_pipeline`` (passed in, so that this module does not import its caller).
    """
    run_dir = Path(run_config).parent
    flat = inpainted_2d_scores(run_dir, names, gts, eval_masks)

    config = variant_config(run_config, run_dir / BASELINE_DIR, "masked_nerf", masked_nerf)
    pipeline, base, step = train_variant(config)
    masked, _ = score(pipeline, base, step, gt_masks, gt_images)
    masked = {k: masked.get(k) for k in (*METRIC_KEYS, "per_view")}
    masked["what"] = f"field fitted without any masked pixel for {step} steps ({base})"
    result["baselines"] = {"inpainted_2d": flat, "masked_nerf": masked}
    result["comparison"] = [
        {"method": method, **{k: source.get(k) for k in METRIC_KEYS}}
        for method, source in (("ours", result), ("inpainted_2d", flat), ("masked_nerf", masked))
    ]


def comparison_table(rows: List[Dict[str, object]]) -> str:
    """Markdown table of the ``comparison`` rows."""
    keys = ("masked_psnr", "masked_ssim", "masked_lpips", "masked_st_lpips", "psnr", "ssim")
    lines = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for row in rows:
        cells = ["null" if row.get(k) is None else f"{row[k]:.3f}" for k in keys]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
