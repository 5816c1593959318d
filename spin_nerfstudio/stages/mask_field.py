"""Stages ``mask_agreement``, ``final_masks`` and the removal masks: the fitted mask head decides every view's mask.

Inputs: the model with its mask head fitted to the initial masks (``mask_steps`` steps) and the initial masks.
Outputs: the views whose initial mask disagrees with the field (``RUN/mask_agreement.json``; they get a new initial
mask from the field's render snapped to the image, or stop driving the mask loss), the final masks (``RUN/masks/``, probabilities in ``RUN/mask_probability.npy``) and the dilated removal
masks (``RUN/masks_dilated/``) that the inpainting stages fill; the per-view report of the final masks
(``RUN/mask_report.json``, ``.txt``) and the sheet of every view's final mask (``RUN/masks_all.png``).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import track

from spin_nerfstudio.model.names import INITIAL_MASK_WEIGHT
from spin_nerfstudio.render import render_views
from spin_nerfstudio.segmentation.multiview import agreement_ious, agreement_outliers, choose_final_mask, repair_views
from spin_nerfstudio.segmentation.propagate import dilate
from spin_nerfstudio.segmentation.report import write_mask_report
from spin_nerfstudio.stage_io import write_json
from spin_nerfstudio.stages.common import fail, note_reuse, pinhole_views, stage_folder
from spin_nerfstudio.stages.initial_masks import attach_initial_masks
from spin_nerfstudio.stages.names import AGREEMENT_FILE, MASK_DIR, PROBABILITY_FILE, REMOVAL_MASK_DIR

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline


def check_mask_agreement(pipe: SpinPipeline, initial: Optional[List[np.ndarray]]) -> List[int]:
    """Views whose initial mask disagrees with the mask field; they get weight 0 in the mask loss."""
    names = pipe.datamanager.image_names
    if initial is None or len(initial) != len(names):
        return []
    field_masks, small = _render_masks_for_check(pipe, initial)
    ious = agreement_ious(field_masks, small)
    threshold = pipe.config.mask_outlier_iou
    bad = agreement_outliers(ious, threshold, keep=pipe.prompt_views)
    repaired = repair_outliers(pipe, initial, bad, field_masks) if pipe.config.mask_outlier_repair and bad else {}
    bad = [i for i in bad if i not in repaired]
    weights = torch.ones(len(names), *initial[0].shape, 1)
    weights[bad] = 0.0
    pipe.datamanager.set_view_data(INITIAL_MASK_WEIGHT, weights)
    median = float(np.median(ious))
    if bad:
        listed = ", ".join(f"{names[i]} ({ious[i]:.2f})" for i in bad)
        CONSOLE.print(
            f"spin-nerfstudio: mask agreement: median IoU {median:.2f}; {len(bad)} view(s) below "
            f"{threshold:g} no longer drive the mask field: {listed}",
            soft_wrap=True,
        )
    else:
        CONSOLE.print(f"spin-nerfstudio: mask agreement: median IoU {median:.2f}; every view agrees with the field")
    if pipe.run_dir is not None:
        write_json(
            pipe.run_dir / AGREEMENT_FILE,
            {"threshold": threshold, "iou": dict(zip(names, ious)), "ignored": [names[i] for i in bad],
             "repaired": {names[i]: how for i, how in repaired.items()}},
        )  # fmt: skip
    return list(bad)


def repair_outliers(
    pipe: SpinPipeline, initial: List[np.ndarray], bad: List[int], field_masks: List[np.ndarray]
) -> Dict[int, str]:
    """Replace (in place) the initial masks of disagreeing views by the field's render snapped to the image
    (:func:`repair_views`) and attach them again; returns {view: how}. Views where the field renders nothing are
    left out (they stay dropped from the mask loss)."""
    images = pipe.datamanager.images_uint8()
    size = (images.shape[2], images.shape[1])
    full = {i: cv2.resize(field_masks[i].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 for i in bad}
    segmenter = pipe.config.segmenter.setup(device=str(pipe.device), resolved=pipe._segmenter_plan)
    fixed = repair_views(images, full, list(full), segmenter, pipe._depths)
    if pipe._initial_status is None:  # resumed mid-segmentation: the statuses were not kept
        pipe._initial_status = ["initial"] * len(initial)
    for i, (mask, how) in fixed.items():
        initial[i] = mask
        pipe._initial_status[i] = f"repaired ({how})"
    if fixed:
        attach_initial_masks(pipe.datamanager, initial)
        names = ", ".join(pipe.datamanager.image_names[i] for i in sorted(fixed))
        CONSOLE.print(
            f"spin-nerfstudio: mask agreement: new initial masks from the mask field for {len(fixed)} view(s): {names}",
            soft_wrap=True,
        )
    return {i: how for i, (_, how) in fixed.items()}


def _render_masks_for_check(pipe: SpinPipeline, initial: List[np.ndarray]) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """The field's masks at about half resolution (a quarter of the rays), with the initial masks resized."""
    cams = copy.deepcopy(pipe.datamanager.train_dataset.cameras)
    factor = 0.5 if int(cams.width[0].item()) >= 64 else 1.0
    cams.rescale_output_resolution(factor)
    out = render_views(pipe.model, cams, keys=("object_mask",), description="Checking mask agreement")
    field_masks = [m[..., 0] > pipe.spin_model.config.mask_threshold for m in out["object_mask"]]
    small = [
        cv2.resize(m.astype(np.float32), (f.shape[1], f.shape[0]), interpolation=cv2.INTER_AREA) >= 0.5
        for m, f in zip(initial, field_masks)
    ]
    return field_masks, small


def render_final_masks(
    pipe: SpinPipeline, token: str, initial: Optional[List[np.ndarray]], outliers: List[int]
) -> List[np.ndarray]:
    """Every view's final mask: the field's thresholded render, or the initial mask where the two agree."""
    cams = pipe.datamanager.train_dataset.cameras
    out_dir = stage_folder(pipe, MASK_DIR, "png", token)
    masks = {i: m > 0 for i, m in out_dir.existing().items()}
    note_reuse(pipe, MASK_DIR, len(masks))
    threshold = pipe.spin_model.config.mask_threshold
    keep_iou = pipe.config.mask_keep_initial_iou
    choose = initial is not None and keep_iou <= 1.0
    if choose and len(masks) < len(cams):
        masks = {}  # every view is rendered again, so RUN/mask_probability.npy holds them all
    todo = [i for i in range(len(cams)) if i not in masks]
    probability, kept, source = [], 0, {}
    for i in track(todo, description="Rendering object masks", transient=True):
        out = render_views(pipe.model, cams, indices=[i], keys=("object_mask",), progress=False)
        probability.append(out["object_mask"][0][..., 0])
        masks[i] = probability[-1] > threshold
        source[i] = "field"
        if choose and i not in outliers:
            clicked = i in pipe.prompt_views
            masks[i], keep = choose_final_mask(masks[i], initial[i], keep_iou, clicked)  # type: ignore[index]
            kept += keep
            source[i] = "initial" if keep else "field"
        out_dir.put(i, masks[i])
    out_dir.finish()
    if choose and todo:
        if pipe.run_dir is not None:
            np.save(pipe.run_dir / PROBABILITY_FILE, np.stack(probability).astype(np.float16))
        CONSOLE.print(
            f"spin-nerfstudio: final masks: {kept} of {len(cams)} views keep their initial mask (IoU with the "
            f"mask field >= {keep_iou:g}); the others take the mask field's",
            soft_wrap=True,
        )
        if pipe.run_dir is not None:
            _report(pipe, [masks[i] for i in range(len(cams))], [p > threshold for p in probability], initial, source)
    return [masks[i] for i in range(len(cams))]


def _report(pipe: SpinPipeline, final: List[np.ndarray], field: List[np.ndarray], initial, source: Dict) -> None:
    """Per-view mask report and the sheet of every view (segmentation/report.py), with the clicked view's centroid
    check; the summary goes to the log."""
    assert pipe.run_dir is not None
    centroid = None
    if pipe.prompt_views and len(pipe._depths) == len(final):
        centroid = (pinhole_views(pipe), pipe.prompt_views[0], pipe._depths[pipe.prompt_views[0]])
    names, images = pipe.datamanager.image_names, pipe.datamanager.images_uint8()
    sources = [source[i] for i in range(len(final))]
    for line in write_mask_report(pipe.run_dir, names, images, final, field, initial, pipe._initial_status, sources,
                                  centroid=centroid):  # fmt: skip
        CONSOLE.print(f"spin-nerfstudio: {line}", soft_wrap=True)


def removal_masks(pipe: SpinPipeline, masks: List[np.ndarray], token: str) -> List[np.ndarray]:
    """Write the final masks (ready-made ones included) and return them dilated: the regions to inpaint."""
    if not any(m.any() for m in masks):
        fail("the final object mask is empty in every view; nothing to remove (check the clicks)")
    cfg = pipe.config
    iters = pipe.dilate_iterations(masks[0].shape[1])
    mask_dir = stage_folder(pipe, MASK_DIR, "png", token)
    if not mask_dir.complete:  # ready-made masks (the rendered ones are written as they are made)
        for i, m in enumerate(masks):
            mask_dir.put(i, m)
        mask_dir.finish()
    removal_dir = stage_folder(pipe, REMOVAL_MASK_DIR, "png", token)
    removal = [dilate(m, cfg.dilate_kernel, iters) for m in masks]
    for name, r in zip(pipe.datamanager.image_names, removal):
        if r.mean() > cfg.max_mask_fraction:
            fail(
                f"{name}: the removal mask covers {r.mean():.1%} of the image (more than "
                f"--pipeline.max-mask-fraction {cfg.max_mask_fraction:g}); too little background is "
                "left to inpaint from"
            )
    if not removal_dir.complete:
        have = set(removal_dir.existing())
        for i, r in enumerate(removal):
            if i not in have:
                removal_dir.put(i, r)
        removal_dir.finish()
    return removal
