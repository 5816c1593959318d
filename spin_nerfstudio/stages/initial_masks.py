"""Stage ``initial_masks``: the clicks become a mask in every view (segmentation/multiview.py).

Inputs: the prompts and the views they were given on, the images, the rendered depths (``render`` stage) and the
clicked views' opacity. Output: one boolean mask per view, written to ``RUN/initial_masks/`` and attached to the
datamanager as the mask head's target (``INITIAL_MASK``, every view weighted 1).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, List, Optional

import numpy as np
import torch
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import track

from spin_nerfstudio.evaluation.geometry import stored_depth_agreement
from spin_nerfstudio.model.names import INITIAL_MASK, INITIAL_MASK_WEIGHT
from spin_nerfstudio.prompts import PromptSet, SpinInputError
from spin_nerfstudio.segmentation.base import Segmenter
from spin_nerfstudio.segmentation.multiview import propagate_prompts
from spin_nerfstudio.segmentation.propagate import PinholeView
from spin_nerfstudio.stages.common import fail, note_reuse, pinhole_views, render_accumulations, stage_folder
from spin_nerfstudio.stages.names import INITIAL_MASK_DIR

if TYPE_CHECKING:
    from spin_nerfstudio.data.datamanager import SpinDataManager
    from spin_nerfstudio.pipeline import SpinPipeline


def initial_masks(pipe: SpinPipeline, token: str) -> List[np.ndarray]:
    """Every view's initial mask (reusing the views a resumed run wrote under ``token``), attached as targets."""
    assert pipe.prompts is not None
    names = pipe.datamanager.image_names
    out_dir = stage_folder(pipe, INITIAL_MASK_DIR, "png", token)
    done = {i: m > 0 for i, m in out_dir.existing().items()}
    note_reuse(pipe, INITIAL_MASK_DIR, len(done))
    if len(done) == len(names):
        masks = [done[i] for i in range(len(names))]
        status = [
            "clicked" if i in pipe.prompt_views else ("propagated" if m.any() else "empty") for i, m in enumerate(masks)
        ]
    else:
        cfg = pipe.config
        segmenter = cfg.segmenter.setup(device=str(pipe.device), resolved=pipe._segmenter_plan)
        accumulations = render_accumulations(pipe, sorted(set(pipe.prompt_views)))  # only clicked views are read
        scale = float(getattr(pipe.datamanager, "image_scale", 1.0))
        try:
            result = propagate_prompts(
                scaled_prompts(pipe.prompts, scale, pinhole_views(pipe)),
                pipe.prompt_views, pipe.datamanager.images_uint8(), pipe._depths,
                accumulations, pinhole_views(pipe), segmenter, cfg.visibility_tolerance,
                cfg.segmenter.max_object_fraction,
                progress=lambda it: track(it, description="Propagating masks", transient=True),
                grow=cfg.segmenter.grow,
            )  # fmt: skip
        except SpinInputError as err:
            _note_segmenter(segmenter)
            fail(str(err) + depth_note(stored_depth_agreement(pipe.run_dir)))
        _note_segmenter(segmenter)
        masks, status = result.masks, list(result.status)
        for i, m in enumerate(masks):
            if i not in done:
                out_dir.put(i, m)
        out_dir.finish()
    attach_initial_masks(pipe.datamanager, masks)
    pipe._initial_status = list(status)
    counts = sum(int(m.any()) for m in masks)
    hidden = [n for n, st, m in zip(names, status, masks) if st not in ("clicked", "propagated") and not m.any()]
    CONSOLE.print(f"spin-nerfstudio: initial masks in {counts}/{len(masks)} views; fitting the mask head")
    if hidden:
        CONSOLE.print(
            f"spin-nerfstudio: object out of frame or hidden (empty initial mask) in: {', '.join(hidden)}",
            soft_wrap=True,
        )
    return masks


UNRELIABLE_DEPTH = 0.5
"""Below this share of rendered depth agreeing between neighbouring views (juicebox 77%, fox 65%, kermit 16%, buddha
30% at 900 steps), a refused click may be the depth's fault rather than the click's."""


def depth_note(agreement: Optional[float]) -> str:
    """What to add to a refused click's message when the reconstruction's depth is unreliable ('' otherwise)."""
    if agreement is None or agreement >= UNRELIABLE_DEPTH:
        return ""
    return (
        f" (the reconstruction's depth agrees between neighbouring views on only {agreement:.0%} of its pixels, so "
        "the depth these checks and the offline segmenter read is unreliable here: SAM, --pipeline.segmenter.backend "
        "sam with its checkpoint, does not need it)"
    )


def _note_segmenter(segmenter: Segmenter) -> None:
    note = segmenter.summary()
    if note is not None:
        CONSOLE.print(f"spin-nerfstudio: segmenter: {note}", soft_wrap=True)


def attach_initial_masks(datamanager: SpinDataManager, masks: List[np.ndarray]) -> None:
    """The initial masks become the mask head's targets, every view with weight 1."""
    t = torch.from_numpy(np.stack(masks)).float()[..., None]
    datamanager.set_view_data(INITIAL_MASK, t)
    datamanager.set_view_data(INITIAL_MASK_WEIGHT, torch.ones_like(t))


def scaled_prompts(prompts: PromptSet, scale: float, views: List[PinholeView]) -> PromptSet:
    """Clicks given on the images as stored, mapped to the (possibly downscaled) training images."""
    if scale == 1.0:
        return prompts
    out = []
    for p in prompts.prompts:
        out.append(dataclasses.replace(
            p,
            positive=[(x * scale, y * scale) for x, y in p.positive],
            negative=[(x * scale, y * scale) for x, y in p.negative],
        ))  # fmt: skip
    return PromptSet(prompts=out, source=prompts.source)
