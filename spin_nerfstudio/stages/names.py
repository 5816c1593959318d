"""Names in a run folder: one folder per stage output, the files beside them, and the stage boundaries.

This module imports nothing from the pipeline, the stages or the viewer, so all of them (and the evaluation
commands that read finished runs) can use it.
"""

from __future__ import annotations

from typing import Optional

from spin_nerfstudio.inpainting import field_prior as fp
from spin_nerfstudio.inpainting import visibility as vis

# Folders of the run directory, one per stage output.
DEPTH_DIR = "depth"
RENDERS_BEFORE_DIR = "renders_before"
INITIAL_MASK_DIR = "initial_masks"
MASK_DIR = "masks"
REMOVAL_MASK_DIR = "masks_dilated"
INPAINTED_DIR = "inpainted"
INPAINTED_DEPTH_DIR = "inpainted_depth"
PROMPT_FILE = "prompts.json"
STAGES_FILE = "stages.json"
AGREEMENT_FILE = "mask_agreement.json"
PROBABILITY_FILE = "mask_probability.npy"
MASK_SHEET = "masks_sheet.png"
RESULT_SHEET = "before_after.png"
STAGE_DIRS = (
    DEPTH_DIR,
    RENDERS_BEFORE_DIR,
    INITIAL_MASK_DIR,
    MASK_DIR,
    REMOVAL_MASK_DIR,
    INPAINTED_DIR,
    INPAINTED_DEPTH_DIR,
    vis.SEEN_DIR,
    vis.TARGETS_DIR,
    vis.DEPTH_DIR,
    fp.PRIOR_DIR,
)
# Stage boundaries (keys of the lineage carried by checkpoints).
RECONSTRUCTED = "reconstructed"
SEGMENTED = "segmented"


def removal_dilate_iterations(fixed: Optional[int], width: int) -> int:
    """Dilation iterations of the removal masks: ``fixed`` if given, else SPIn-NeRF's 5 at 1008 px scaled to
    ``width`` (at least 1)."""
    return int(fixed) if fixed is not None else max(1, int(round(5 * width / 1008)))
