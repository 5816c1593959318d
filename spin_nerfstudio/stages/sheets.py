"""The run's two pictures: ``RUN/masks_sheet.png`` (initial and final masks over the images, when the final masks
exist) and ``RUN/before_after.png`` (input, NeRF before, removal mask, 2D inpainted target, NeRF after; last step)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import numpy as np
from nerfstudio.utils.rich_utils import CONSOLE

from spin_nerfstudio.model.names import Stage
from spin_nerfstudio.render import render_views
from spin_nerfstudio.stage_io import load_views
from spin_nerfstudio.stages.names import INPAINTED_DIR, MASK_SHEET, REMOVAL_MASK_DIR, RENDERS_BEFORE_DIR, RESULT_SHEET

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline


def write_mask_sheet(pipe: SpinPipeline, masks: List[np.ndarray], initial: Optional[List[np.ndarray]]) -> None:
    """RUN/masks_sheet.png."""
    from spin_nerfstudio.evaluation.mask_sheet import write_mask_sheet as write

    assert pipe.run_dir is not None
    path = write(
        pipe.run_dir / MASK_SHEET, pipe.datamanager.images_uint8(), masks, pipe.datamanager.image_names,
        initial=initial, num_views=pipe.config.mask_sheet_views,
    )  # fmt: skip
    CONSOLE.print(f"spin-nerfstudio: masks over the images: {path}")


def result_sheet_due(pipe: SpinPipeline, step: int) -> bool:
    """Whether ``step`` is the last step of a run that fitted the inpainted scene (and has a run folder)."""
    if step != pipe._last_step or pipe.spin_model.stage != Stage.INPAINT or pipe.run_dir is None:
        return False
    return step > pipe._stage_start_step  # else the inpainted fit has not trained yet (a run that stops after masks)


def write_result_sheet(pipe: SpinPipeline, step: int) -> None:
    """RUN/before_after.png, with the field after ``step`` steps (nothing when the stage outputs are missing)."""
    from spin_nerfstudio.evaluation.sheet import contact_sheet, overlay, pick_views, save_sheet

    assert pipe.run_dir is not None
    names = pipe.datamanager.image_names
    images = pipe.datamanager.images_uint8()
    before, removal, inpainted = (
        load_views(pipe.run_dir / d, names) for d in (RENDERS_BEFORE_DIR, REMOVAL_MASK_DIR, INPAINTED_DIR)
    )
    if removal is None or inpainted is None:
        return
    chosen = pick_views(len(names), max(1, pipe.config.mask_sheet_views))
    cams = pipe.datamanager.train_dataset.cameras
    after = render_views(pipe.model, cams, indices=chosen, keys=("rgb",), description="Rendering the result")
    blank = np.full_like(images[0], 255)
    rows = [
        [images[k], before[k] if before is not None else blank, overlay(images[k], removal[k] > 0),
         inpainted[k], after["rgb"][j]]
        for j, k in enumerate(chosen)
    ]  # fmt: skip
    sheet = contact_sheet(
        rows, ["input", "NeRF before", "removal mask", "2D inpainted", f"NeRF after (step {step})"],
        [Path(names[k]).stem for k in chosen], scale=max(1, int(np.ceil(160 / images[0].shape[1]))),
        title=f"{len(chosen)} of {len(names)} views before and after removal",
    )  # fmt: skip
    path = save_sheet(sheet, pipe.run_dir / RESULT_SHEET)
    CONSOLE.print(f"spin-nerfstudio: before and after removal: {path}", soft_wrap=True)
