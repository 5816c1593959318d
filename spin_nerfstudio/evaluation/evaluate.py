"""``spin-nerf evaluate``: score a finished run's masks and its object-free renders against ground truth.

- ``--gt-masks DIR``: the run's final masks (``RUN/masks``, before dilation) of every training view against binary
  PNGs named like the images (white = object): ``mask_iou`` and ``mask_accuracy`` (means over views).
- ``--gt-images DIR``: the finished model is rendered at the training cameras (full resolution of the training
  images) and compared, in [0, 1] RGB, with images of the same views without the object: ``psnr`` and ``ssim``
  over the whole image, ``masked_psnr`` and ``masked_ssim`` over the pixels inside the ground-truth mask (when
  ``--gt-masks`` is given, else the run's mask), ``lpips`` over the whole image and ``masked_lpips`` over the
  mask's bounding-box crop (at least 16 px a side) — LPIPS only when ImageNet backbone weights are cached,
  otherwise ``null`` with a note — and ``st_lpips`` / ``masked_st_lpips`` likewise with ST-LPIPS (a different
  metric, weights from the stlpips-pytorch wheel; see :mod:`spin_nerfstudio.evaluation.perceptual_metrics`).
SPIn-NeRF-layout runs (``spin-llff`` with ``images_4/label/``) are scored on the dataset's own ground truth instead
(``--gt-masks`` / ``--gt-images`` are refused); code and full text in :mod:`spin_nerfstudio.evaluation.protocol`:

- views: the ``N_gt`` test views (object physically removed) at the trained image folder's resolution (``images_4``),
  rendered at their cameras; renders clipped to [0, 1] (float), ground truth = 8-bit file / 255, no resizing;
  mask = ``test_label/`` non-zero. Renders are saved to ``RUN/test_renders/``.
- ``psnr`` / ``ssim`` / ``lpips``: whole image, per view, mean over views (PSNR = 10 log10(1/MSE) over 3 channels,
  inf capped at 100 in means; SSIM = scikit-image Gaussian sigma 1.5; LPIPS v0.1 AlexNet, inputs in [-1, 1]).
- ``masked_*`` = pixels inside the mask: MSE over masked pixels; full-image SSIM map and spatial LPIPS map averaged
  over masked pixels. ``bbox_*`` = the metric on the crop to the mask's bounding box (grown to >= 16 px a side).
- ``fid`` / ``bbox_fid``: torchmetrics FID (Inception pool-2048, TF-FID weights from ``--inception-weights`` or
  torch's cache, never downloaded; null with a note otherwise), all renders vs all test views, 8-bit, one per scene.
- ``mask_accuracy`` / ``mask_iou``: ``RUN/masks`` of the training views against ``label/`` (non-zero), mean over
  views; trivially 1 when the run used ``label/`` as its masks (``masks_from`` says so).

``--baselines`` (with ``--gt-images``, not for the SPIn-NeRF layout): the same metrics for each view inpainted in 2D
on its own and for a "masked NeRF" trained here without masked pixels, plus a ``comparison`` table
(see :mod:`spin_nerfstudio.evaluation.baselines`).
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from spin_nerfstudio.data.masks import find_mask_file
from spin_nerfstudio.evaluation import metrics as M
from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.stage_io import load_views
from spin_nerfstudio.stages.names import MASK_DIR


def _read_gt_masks(folder: Path, names: List[str], shape) -> List[np.ndarray]:
    out = []
    for name in names:
        path = find_mask_file(folder, name)
        arr = np.array(Image.open(path))
        if arr.ndim == 3:
            arr = arr[..., :3].max(axis=-1)
        if arr.shape != shape:
            raise SpinInputError(
                f"{path}: mask is {arr.shape[1]}x{arr.shape[0]}, rendered views are {shape[1]}x{shape[0]}"
            )
        out.append(arr > 127)
    return out


def _read_gt_images(folder: Path, names: List[str], shape) -> List[np.ndarray]:
    out = []
    for name in names:
        path = folder / name
        if not path.is_file():
            cands = sorted(folder.glob(Path(name).stem + ".*"))
            if not cands:
                raise SpinInputError(f"{folder}: no ground-truth image for view '{name}'")
            path = cands[0]
        arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        if arr.shape[:2] != shape:
            raise SpinInputError(
                f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, rendered views are {shape[1]}x{shape[0]}"
            )
        out.append(arr)
    return out


def _mean(values: List[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean([min(v, 100.0) for v in vals])) if vals else None


def evaluate_run(
    load_config: Path,
    gt_masks: Optional[Path] = None,
    gt_images: Optional[Path] = None,
    inception_weights: Optional[Path] = None,
    lpips_weights: Optional[Path] = None,
    mask_folder: str = MASK_DIR,
    baselines: bool = False,
) -> Dict[str, object]:
    """Compute the metrics of one run; returns the JSON-ready dictionary."""
    from nerfstudio.utils.eval_utils import eval_setup

    from spin_nerfstudio import safe_load

    load_config = Path(load_config)
    if not load_config.is_file():
        raise SpinInputError(f"{load_config}: run config not found")
    if baselines and gt_images is None:
        raise SpinInputError("--baselines needs --gt-images (the baselines are scored against them)")
    safe_load.allow_nerfstudio_checkpoints()
    from spin_nerfstudio.evaluation import protocol

    if (gt_masks is not None or gt_images is not None) and protocol.config_uses_spin_layout(load_config):
        raise SpinInputError(
            f"{load_config}: the run's dataset has the SPIn-NeRF layout; its own ground truth (test views, "
            "test_label/, label/) is used, so --gt-masks and --gt-images must not be given"
        )
    try:
        _, pipeline, _, step = eval_setup(load_config, test_mode="test")
    except pickle.UnpicklingError as err:  # weights-only loading refused a global: say so in one line
        raise SpinInputError(safe_load.refusal_message(load_config.parent / "nerfstudio_models", err)) from None
    if protocol.is_spin_layout(pipeline):
        result, _ = protocol.evaluate_test_split(
            pipeline, load_config.parent, int(step), inception_weights, lpips_weights
        )
        return result
    base_cfg = load_config if baselines else None
    return evaluate_pipeline(pipeline, load_config.parent, int(step), gt_masks, gt_images, mask_folder, base_cfg)[0]


def evaluate_pipeline(
    pipeline,
    run_dir: Path,
    step: int,
    gt_masks: Optional[Path] = None,
    gt_images: Optional[Path] = None,
    mask_folder: str = MASK_DIR,
    baselines_of: Optional[Path] = None,
) -> Tuple[Dict[str, object], Optional[List[np.ndarray]]]:
    """Metrics of a loaded pipeline whose stage outputs are in ``run_dir``; also returns the renders, if made.

    ``mask_folder`` names the run's mask folder that ``--gt-masks`` scores: ``masks`` (final, the default) or
    ``initial_masks`` (the per-view propagated masks before the mask field). With ``baselines_of`` (the run's
    config.yml) the baselines are trained and scored too.
    """

    from spin_nerfstudio.render import render_views

    dm = pipeline.datamanager
    names = [Path(p).name for p in dm.train_dataset.image_filenames]
    cams = dm.train_dataset.cameras
    shape = (int(cams.height[0].item()), int(cams.width[0].item()))
    result: Dict[str, object] = {"run": str(run_dir), "step": step, "num_views": len(names), "notes": []}
    if mask_folder != MASK_DIR:
        result["mask_folder"] = mask_folder
    notes: List[str] = result["notes"]  # type: ignore[assignment]
    per_view: List[Dict[str, object]] = [{"image": n} for n in names]

    run_masks_raw = load_views(run_dir / mask_folder, names)
    run_masks = [m > 0 for m in run_masks_raw] if run_masks_raw is not None else None
    gt_mask_list = _read_gt_masks(Path(gt_masks), names, shape) if gt_masks is not None else None

    if gt_mask_list is not None:
        if run_masks is None:
            raise SpinInputError(
                f"{run_dir / mask_folder}: the run has no such masks (did it reach the inpainting stage?)"
            )
        for pv, pred, gt in zip(per_view, run_masks, gt_mask_list):
            pv["mask_iou"], pv["mask_accuracy"] = M.mask_scores(pred, gt)
        result["mask_iou"] = _mean([pv["mask_iou"] for pv in per_view])  # type: ignore[misc]
        result["mask_accuracy"] = _mean([pv["mask_accuracy"] for pv in per_view])  # type: ignore[misc]

    if gt_images is not None:
        gts = _read_gt_images(Path(gt_images), names, shape)
        eval_masks = gt_mask_list if gt_mask_list is not None else run_masks
        if eval_masks is None:
            notes.append("masked metrics skipped: no ground-truth masks and the run has no final masks")
        else:
            result["masked_region"] = "ground-truth masks" if gt_mask_list is not None else "the run's final masks"
        renders = render_views(pipeline.model, cams, keys=("rgb",), description="Rendering for evaluation")["rgb"]
        from spin_nerfstudio.evaluation.perceptual_metrics import PERCEPTUAL_KEYS, PerceptualScorer

        scorer = PerceptualScorer()
        notes.extend(scorer.notes)
        for i, (pv, pred, gt) in enumerate(zip(per_view, renders, gts)):
            pred = np.clip(pred, 0.0, 1.0)
            pv["psnr"], pv["ssim"] = M.psnr(pred, gt), M.ssim(pred, gt)
            m = eval_masks[i] if eval_masks is not None else None
            if m is not None:
                pv["masked_psnr"], pv["masked_ssim"] = M.psnr(pred, gt, m), M.ssim(pred, gt, m)
                pv["object_colour_fraction"] = M.object_colour_fraction(pred, m)
            pv.update(scorer.score(pred, gt, m))
        for key in ("psnr", "ssim", "masked_psnr", "masked_ssim", *PERCEPTUAL_KEYS, "object_colour_fraction"):
            result[key] = _mean([pv.get(key) for pv in per_view])  # type: ignore[misc]
        if baselines_of is not None:
            from spin_nerfstudio.evaluation.baselines import add_baselines

            add_baselines(result, baselines_of, names, gts, eval_masks, gt_masks, Path(gt_images), evaluate_pipeline)
    result["per_view"] = per_view
    return result, (renders if gt_images is not None else None)


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_metrics(result: Dict[str, object], output: Optional[Path]) -> str:
    """JSON text of the result (non-finite numbers as null), also written to ``output`` when given."""
    text = json.dumps(_finite(result), indent=2, allow_nan=False)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text + "\n")
    return text
