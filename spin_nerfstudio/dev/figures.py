"""``spin-nerf dev figures``: the inpainting figures on generated scenes, in one run, as one table.

For every seed a scene with ground truth is generated and

1. the 2D inpainters are compared on the ground-truth masks, dilated as the pipeline dilates them (masked PSNR and
   SSIM of each view against the object-free image): the offline default (select: biharmonic or Telea per view) against each of the two, and
   LaMa too when a checkpoint is found without downloading;
2. the removal runs (``spin-inpaint-small``) and is scored with ``spin-nerf evaluate``'s metrics inside the
   ground-truth masks, next to its baselines on the same views: each view inpainted in 2D on its own, and a masked
   NeRF (see ``baselines.py``). By default the run is given the ground-truth object masks (``--masks truth``, as
   SPIn-NeRF's benchmark gives its training masks), so the figures measure inpainting, not segmentation; the
   reconstruction then runs for the reconstruct + mask steps, so the inpainted fit has the same steps either way.
   ``--masks clicks`` segments from the scene's click instead;
3. an ablation refits the same run from the same stage outputs with plain 2D-inpainted targets (visibility-aware
   targets off). Ours, the ablation and the masked NeRF are each fitted ``--repeats`` times from the run's stage
   outputs with different random seeds, and averaged: one fit's masked PSNR varies by 1-3 dB with the seed;
4. the share of removal-mask pixels that were seen elsewhere is read from the run, and the seen colours are
   scored against the ground truth.

LPIPS is reported only when ImageNet backbone weights are cached (else null); ST-LPIPS (a different metric, see
``perceptual_metrics.py``) whenever the stlpips-pytorch wheel is installed. Everything lands in
``OUTPUT/figures.json``; the table is printed, and ``--table-only`` prints it again from that file.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

ROWS = (
    ("ours", "ours (seen-elsewhere + 2D targets)"),
    ("plain_targets", "ours without seen-elsewhere targets (ablation)"),
    ("no_perceptual", "ours without the perceptual loss (ablation)"),
    ("st_lpips", "ours with the ST-LPIPS perceptual loss"),
    ("depth_both", "ours with the two-sided depth loss everywhere (old default)"),
    ("no_prior", "ours without the field prior (ablation)"),
    ("field_prior", "ours with the field prior (0.67, object-colour gate)"),
    ("inpainted_2d", "each view inpainted in 2D on its own"),
    ("masked_nerf", "masked NeRF (never trained on masked pixels)"),
)


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else None


def inpainter_comparison(scene: Path, dilate_iterations: int, kernel: int = 5) -> Dict[str, Dict[str, float]]:
    """Masked PSNR/SSIM of the 2D inpainters on a generated scene's (dilated) ground-truth masks."""
    from spin_nerfstudio.data.synthetic import load_ground_truth
    from spin_nerfstudio.evaluation import metrics as M
    from spin_nerfstudio.inpainting import lama
    from spin_nerfstudio.inpainting.biharmonic import BiharmonicInpainter
    from spin_nerfstudio.inpainting.select import SelectingInpainter
    from spin_nerfstudio.inpainting.telea import TeleaInpainter
    from spin_nerfstudio.segmentation.propagate import dilate

    gt = load_ground_truth(scene)
    inpainters = {"select": SelectingInpainter(), "biharmonic": BiharmonicInpainter(), "telea": TeleaInpainter()}
    path, _ = lama.find_checkpoint(None)
    if path is not None:
        inpainters["lama"] = lama.LamaInpainter(path)
    out: Dict[str, Dict[str, float]] = {}
    for key, inp in inpainters.items():
        ps, ss = [], []
        for image, background, obj in zip(gt["images"], gt["background"], gt["masks"]):
            mask = dilate(obj, kernel, dilate_iterations)
            pred, truth = inp.inpaint_rgb(image, mask) / 255.0, background / 255.0
            ps.append(M.psnr(pred, truth, mask))
            ss.append(M.ssim(pred, truth, mask))
        out[key] = {"masked_psnr": float(np.mean(ps)), "masked_ssim": float(np.mean(ss))}
    return out


def seen_accuracy(run_dir: Path, scene: Path) -> Dict[str, Optional[float]]:
    """Share of removal-mask pixels seen elsewhere, and how close the seen colours and the targets are to truth."""
    from spin_nerfstudio.data.synthetic import load_ground_truth
    from spin_nerfstudio.evaluation import metrics as M
    from spin_nerfstudio.inpainting import visibility as vis

    summary = json.loads((run_dir / vis.SUMMARY_FILE).read_text())
    gt = load_ground_truth(scene)
    targets = vis.load_targets(run_dir, gt["names"])
    assert targets is not None
    seen_psnr, target_psnr = [], []
    for t, s, bg, obj in zip(targets.targets, targets.seen, gt["background"], gt["masks"]):
        if s.any():
            seen_psnr.append(M.psnr(t / 255.0, bg / 255.0, s))
        target_psnr.append(M.psnr(t / 255.0, bg / 255.0, obj))
    return {
        "seen_fraction": summary["seen_fraction"],
        "seen_colour_psnr": _mean(seen_psnr),
        "target_masked_psnr": _mean(target_psnr),
        **depth_prior_errors(run_dir, scene, gt),
    }


def depth_prior_errors(run_dir: Path, scene: Path, gt: Optional[Dict] = None) -> Dict[str, Optional[float]]:
    """Median relative error, inside the true object masks, of the run's 2D-inpainted depth prior and of the prior
    corrected by the seen-elsewhere sweep (None where the run has none) against the true background depth
    (``gt``: the scene's :func:`load_ground_truth`, read here when not given)."""
    from spin_nerfstudio.data.synthetic import load_ground_truth
    from spin_nerfstudio.inpainting import visibility as vis
    from spin_nerfstudio.stage_io import load_views

    gt = load_ground_truth(scene) if gt is None else gt
    intrinsics = json.loads((scene / "transforms.json").read_text())
    scale = float(json.loads((run_dir / "dataparser_transforms.json").read_text())["scale"])
    h, w = gt["masks"].shape[1:]
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    stretch = np.sqrt(
        ((u - intrinsics["cx"]) / intrinsics["fl_x"]) ** 2 + ((v - intrinsics["cy"]) / intrinsics["fl_y"]) ** 2 + 1
    )  # z-depth to ray distance
    out: Dict[str, Optional[float]] = {}
    for key, folder in (("inpainted_depth_error", "inpainted_depth"), ("seen_depth_error", vis.DEPTH_DIR)):
        priors = load_views(run_dir / folder, gt["names"])
        if priors is None:
            out[key] = None
            continue
        errors = [
            np.abs(p[m] / (scale * z[m] * stretch[m]) - 1.0)
            for p, z, m in zip(priors, gt["depth_background"], gt["masks"])
        ]
        out[key] = float(np.median(np.concatenate(errors)))
    return out


REFITS = ("ours", "plain_targets", "masked_nerf")
"""Methods fitted from the run's stage outputs by default, ``repeats`` times each with different random seeds
(``--refits`` may add ``no_perceptual``: ours with ``--pipeline.lpips-loss-mult 0 --pipeline.st-lpips-loss-mult 0``,
``st_lpips``: ours with ``--pipeline.perceptual-network st-lpips``, and ``depth_both``: ours with
``--pipeline.model.depth-loss-sides both``, SPIn-NeRF's two-sided depth loss and the default before 2026-12-07). (Older figures
have a ``field_prior`` row, ours with ``--pipeline.field-prior-fraction 0.67``, or, written while that prior was on
by default, a ``no_prior`` row; the table shows them when every seed has them.)"""
RUN_DONE = "_figures_run_complete.json"
"""Marker of a finished removal run in a seed's folder (a later call reuses it)."""


def _refit_change(method: str, repeat: int, st_lpips_mult: Optional[float] = None):
    """Config change of one refit: the method's loss settings and the repeat's random seed; ``st_lpips_mult``, when
    given, is the ST-LPIPS loss weight of the refits that keep the perceptual loss (ours and its ablations)."""
    from spin_nerfstudio.evaluation.baselines import masked_nerf

    def change(cfg) -> None:
        cfg.machine.seed = 42 + repeat
        if st_lpips_mult is not None:
            cfg.pipeline.st_lpips_loss_mult = st_lpips_mult
        if method == "plain_targets":
            cfg.pipeline.visibility.enabled = False
        elif method == "masked_nerf":
            masked_nerf(cfg)
        elif method == "no_perceptual":
            cfg.pipeline.lpips_loss_mult = 0.0
            cfg.pipeline.st_lpips_loss_mult = 0.0
        elif method == "st_lpips":
            cfg.pipeline.perceptual_network = "st-lpips"
        elif method == "depth_both":
            cfg.pipeline.model.depth_loss_sides = "both"

    return change


def run_seed(
    seed: int,
    output: Path,
    spec_kwargs: Dict[str, int],
    iterations: Dict[str, int],
    device: str,
    masks: str = "truth",
    repeats: int = 2,
    refits: Sequence[str] = REFITS,
    st_lpips_mult: Optional[float] = None,
) -> Dict[str, object]:
    """All figures of one generated scene.

    The removal run provides the stage outputs (depth, masks, 2D inpainting, seen-elsewhere targets). Ours, the
    ablation and the masked NeRF are then each fitted ``repeats`` times from those outputs, with the same steps and
    learning-rate stretch and different random seeds, because one fit's masked PSNR varies by 1-3 dB from seed to
    seed (what the field invents where no view saw the background). Each method's figure is the mean of its fits.
    ``st_lpips_mult`` (None: the run's config) is the ST-LPIPS loss weight of the refits that keep the loss.
    """
    from spin_nerfstudio.data.synthetic import SceneSpec, load_ground_truth, make_scene
    from spin_nerfstudio.demo import demo_config
    from spin_nerfstudio.evaluation.baselines import (
        BASELINE_DIR,
        METRIC_KEYS,
        inpainted_2d_scores,
        train_variant,
        variant_config,
    )
    from spin_nerfstudio.evaluation.evaluate import evaluate_pipeline
    from spin_nerfstudio.stage_io import write_json
    from spin_nerfstudio.trainer import run_training as train

    start = time.time()
    folder = output / f"seed{seed}"
    scene = folder / "scene"
    config = demo_config(scene, scene / "prompts.json", folder, device, iterations)
    config.experiment_name = "ours"
    if masks == "truth":
        config.pipeline.prompt_file = None
        config.pipeline.mask_dir = scene / "masks"
        config.pipeline.reconstruct_steps = iterations["reconstruct"] + iterations["mask"]
    run_dir = Path(config.get_base_dir())
    if not (run_dir / RUN_DONE).is_file():
        make_scene(scene, SceneSpec(seed=seed, **spec_kwargs))
        with contextlib.redirect_stdout(io.StringIO()):
            train(config)
        write_json(run_dir / RUN_DONE, {"steps": int(config.max_num_iterations)})
        gc.collect()
    gt = load_ground_truth(scene)
    gts = [np.asarray(b, np.float32) / 255.0 for b in gt["background"]]
    rows: Dict[str, Dict[str, object]] = {}
    flat = inpainted_2d_scores(run_dir, gt["names"], gts, gt["masks"])
    rows["inpainted_2d"] = {"method": "inpainted_2d", **{k: flat.get(k) for k in METRIC_KEYS}}
    mask_iou = None
    for method in refits:
        fits = []
        for r in range(repeats):
            cfg = variant_config(
                run_dir / "config.yml", run_dir / BASELINE_DIR, f"{method}_{r}", _refit_change(method, r, st_lpips_mult)
            )
            pipe, base, step = train_variant(cfg)
            res, _ = evaluate_pipeline(pipe, base, step, scene / "masks", scene / "background")
            fits.append({k: res.get(k) for k in METRIC_KEYS})
            mask_iou = res.get("mask_iou", mask_iou)
            del pipe
            gc.collect()
        row: Dict[str, object] = {"method": method, **{k: _mean([f[k] for f in fits]) for k in METRIC_KEYS}}
        row["fits"] = fits
        rows[method] = row
    return {
        "seed": seed,
        "masks": masks,
        "run": str(run_dir),
        "repeats": repeats,
        "mask_iou": mask_iou,
        "methods": rows,
        "inpainters_2d": inpainter_comparison(scene, _dilate_iterations(run_dir, spec_kwargs["width"])),
        "seen": seen_accuracy(run_dir, scene),
        "seconds": time.time() - start,
    }


def _dilate_iterations(run_dir: Path, width: int) -> int:
    """The removal masks' dilation iterations of the run at ``run_dir``."""
    import yaml

    from spin_nerfstudio.stages.names import removal_dilate_iterations

    config = yaml.load((run_dir / "config.yml").read_text(), Loader=yaml.Loader)
    return removal_dilate_iterations(config.pipeline.dilate_iterations, width)


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "null" if value is None else f"{value:.{digits}f}"


def _spread(row: Dict[str, object]) -> Optional[float]:
    """Best minus worst masked PSNR over a method's fits (None for a single fit or none)."""
    fits = [f.get("masked_psnr") for f in row.get("fits", [])]  # type: ignore[union-attr]
    vals = [float(v) for v in fits if v is not None]
    return max(vals) - min(vals) if len(vals) > 1 else None


def figures_table(figures: Dict[str, object]) -> str:
    """The printed tables (markdown) of a ``figures.json`` dictionary."""
    seeds: List[Dict[str, object]] = figures["seeds"]  # type: ignore[assignment]
    head = "seeds " + " / ".join(str(s["seed"]) for s in seeds)  # one cell: the per-seed values are joined by /
    lines = [
        f"Generated scenes: {figures['scene']}; schedule {figures['iterations']}; device {figures['device']}; "
        f"removal masks from {'the ground truth' if figures.get('masks') == 'truth' else 'the click'}.",
        "Masked metrics are inside the ground-truth object masks of every training view (mean over views). "
        f"Ours, the ablations and the masked NeRF are each the mean of {figures.get('repeats', 1)} fits with "
        "different random seeds from the same stage outputs; the spread column is the mean over seeds of "
        "(best - worst fit) masked PSNR.",
        "",
        "| method | masked PSNR (mean) | masked SSIM (mean) | masked LPIPS (mean) | masked ST-LPIPS (mean) | "
        f"masked PSNR: {head} | masked ST-LPIPS: {head} | spread |",
        "|---|---|---|---|---|---|---|---|",
    ]
    present = {key for key, _ in ROWS if all(key in s["methods"] for s in seeds)}  # type: ignore[operator]
    for key, label in ROWS:
        if key not in present:  # figures written before the row existed
            continue
        vals = [s["methods"][key] for s in seeds]  # type: ignore[index]
        per_seed = " / ".join(_fmt(v.get("masked_psnr")) for v in vals)
        spreads = [_spread(v) for v in vals]
        spread = "n/a" if any(x is None for x in spreads) else _fmt(_mean(spreads))
        lines.append(
            f"| {label} | {_fmt(_mean([v.get('masked_psnr') for v in vals]))} | "
            f"{_fmt(_mean([v.get('masked_ssim') for v in vals]), 3)} | "
            f"{_fmt(_mean([v.get('masked_lpips') for v in vals]), 3)} | "
            f"{_fmt(_mean([v.get('masked_st_lpips') for v in vals]), 3)} | {per_seed} | "
            f"{' / '.join(_fmt(v.get('masked_st_lpips'), 3) for v in vals)} | {spread} |"
        )
    ours = [s["methods"]["ours"]["masked_psnr"] for s in seeds]  # type: ignore[index]
    for key, label in (
        ("inpainted_2d", "2D inpainting"),
        ("masked_nerf", "masked NeRF"),
        ("plain_targets", "ablation without seen-elsewhere targets"),
        ("no_perceptual", "ablation without the perceptual loss"),
        ("st_lpips", "ours with the ST-LPIPS perceptual loss"),
        ("depth_both", "ours with the two-sided depth loss everywhere"),
        ("no_prior", "ablation without the field prior"),
        ("field_prior", "ours with the field prior"),
    ):
        if key not in present:
            continue
        other = [s["methods"][key]["masked_psnr"] for s in seeds]  # type: ignore[index]
        gains = [a - b for a, b in zip(ours, other) if a is not None and b is not None]
        lines.append(
            f"\nours - {label}: {_fmt(_mean(gains))} dB masked PSNR (per seed: {' / '.join(_fmt(g) for g in gains)})"
        )
    inpainters = sorted({k for s in seeds for k in s["inpainters_2d"]})  # type: ignore[union-attr]
    lines += ["", "2D inpainters on the dilated ground-truth masks (no NeRF):", ""]
    lines += [f"| inpainter | masked PSNR (mean) | masked SSIM (mean) | masked PSNR: {head} |", "|---|---|---|---|"]
    for name in inpainters:
        vals = [s["inpainters_2d"].get(name, {}) for s in seeds]  # type: ignore[union-attr]
        lines.append(
            f"| {name} | {_fmt(_mean([v.get('masked_psnr') for v in vals]))} | "
            f"{_fmt(_mean([v.get('masked_ssim') for v in vals]), 3)} | "
            + " / ".join(_fmt(v.get("masked_psnr")) for v in vals)
            + " |"
        )
    lines += ["", "Seen elsewhere (removal-mask pixels whose background another view observed):", ""]
    lines += [
        "| quantity | mean | " + " | ".join(f"seed {s['seed']}" for s in seeds) + " |",
        "|---|---|" + "---|" * len(seeds),
    ]
    for key, label, digits in (
        ("seen_fraction", "share of removal-mask pixels seen elsewhere", 3),
        ("seen_colour_psnr", "PSNR of the seen colours vs truth (seen pixels)", 2),
        ("target_masked_psnr", "masked PSNR of the colour targets (seen + 2D fill)", 2),
        ("inpainted_depth_error", "median relative error of the 2D-inpainted depth prior (object pixels)", 3),
        ("seen_depth_error", "the same, depth prior corrected by the sweep", 3),
    ):
        vals = [s["seen"].get(key) for s in seeds]  # type: ignore[union-attr]
        if all(v is None for v in vals):  # figures written before the quantity existed, or no correction
            continue
        lines.append(f"| {label} | {_fmt(_mean(vals), digits)} | " + " | ".join(_fmt(v, digits) for v in vals) + " |")
    mins = [s["seconds"] / 60 for s in seeds]  # type: ignore[operator]
    lines.append(f"\nMask IoU per seed: {' / '.join(_fmt(s.get('mask_iou'), 3) for s in seeds)}")  # type: ignore[union-attr]
    lines.append(f"Minutes per seed: {' / '.join(f'{m:.1f}' for m in mins)}")
    return "\n".join(lines)


def run_figures(
    output: Path,
    seeds: Sequence[int],
    spec_kwargs: Dict[str, int],
    iterations: Optional[Dict[str, int]],
    device: str = "cpu",
    masks: str = "truth",
    repeats: int = 2,
    refits: Sequence[str] = REFITS,
    st_lpips_mult: Optional[float] = None,
) -> Dict[str, object]:
    """Run every seed (reusing finished seeds in ``output``), write ``figures.json`` and return it."""
    from spin_nerfstudio.stage_io import write_json

    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    if iterations is None:
        from spin_nerfstudio.spin_config import spin_inpaint_small_config

        small = spin_inpaint_small_config()
        iterations = {
            "reconstruct": small.pipeline.reconstruct_steps,
            "mask": small.pipeline.mask_steps,
            "total": small.max_num_iterations,
        }
    results = []
    for seed in seeds:
        done = output / f"seed{seed}" / "figures.json"
        if done.is_file():
            results.append(json.loads(done.read_text()))
            continue
        res = run_seed(seed, output, spec_kwargs, iterations, device, masks, repeats, refits, st_lpips_mult)
        write_json(done, res)
        results.append(res)
        print(f"spin-nerf dev figures: seed {seed} done in {res['seconds'] / 60:.1f} min", flush=True)
    figures = {
        "scene": spec_kwargs,
        "iterations": iterations,
        "device": device,
        "masks": masks,
        "repeats": repeats,
        "refits": list(refits),
        "st_lpips_mult": st_lpips_mult,
        "seeds": results,
    }
    write_json(output / "figures.json", figures)
    return figures
