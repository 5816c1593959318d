"""Resume and reuse: every stage comes back the same way, from its run-folder outputs under the lineage's tokens.

- :func:`resume_from`: after ``--load-dir`` loads a checkpoint, take its lineage and copy the stage folders over.
- :func:`restore_stage_outputs`: at the first step, reload what the finished stages wrote (initial masks in the
  segmentation stage; masks, removal masks, 2D inpainting and seen-elsewhere targets in the inpainted fit).
- :func:`reuse_stages` (``--pipeline.reuse-stages RUN``): start the inpainted fit at once from another run's outputs.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional

from nerfstudio.utils.rich_utils import CONSOLE

from spin_nerfstudio.evaluation.geometry_check import HELDOUT_BEFORE, HELDOUT_MASKS
from spin_nerfstudio.inpainting import field_prior as fp
from spin_nerfstudio.inpainting import visibility as vis
from spin_nerfstudio.model.names import Stage
from spin_nerfstudio.stage_io import copy_file, copy_stage_folder, folder_token, load_views
from spin_nerfstudio.stages.common import fail
from spin_nerfstudio.stages.initial_masks import attach_initial_masks
from spin_nerfstudio.stages.inpainted_fit import attach_inpainting, restart_fit_schedules, start_inpainted_fit
from spin_nerfstudio.stages.names import (
    DEPTH_DIR,
    INITIAL_MASK_DIR,
    INPAINTED_DEPTH_DIR,
    INPAINTED_DIR,
    MASK_DIR,
    RECONSTRUCTED,
    REMOVAL_MASK_DIR,
    SEGMENTED,
    STAGE_DIRS,
    STAGES_FILE,
)
from spin_nerfstudio.stages.seen_elsewhere import restore_targets

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline


def boundary_step(lineage: Optional[Dict[str, Dict]], name: str, default):
    """Step of a stage boundary in the lineage (``default`` when it is not there)."""
    entry = (lineage or {}).get(name)
    return int(entry["step"]) if entry is not None else default


def stage_token(lineage: Optional[Dict[str, Dict]]) -> str:
    """Token of the latest stage boundary this state descends from ("" when the lineage is unknown)."""
    entry = (lineage or {}).get(SEGMENTED) or (lineage or {}).get(RECONSTRUCTED)
    return str(entry["token"]) if entry is not None else ""


def _tokens(lineage: Optional[Dict[str, Dict]]) -> Optional[List[str]]:
    return None if lineage is None else [str(e["token"]) for e in lineage.values()]


def reuse_stages(pipe: SpinPipeline, step: int) -> None:
    """Take another run's stage outputs (copied into this run, lineage included) and start the inpainted fit."""
    src = Path(pipe.config.reuse_stages)  # type: ignore[arg-type]
    names = pipe.datamanager.image_names
    folders = (DEPTH_DIR, MASK_DIR, REMOVAL_MASK_DIR, INPAINTED_DIR, INPAINTED_DEPTH_DIR)
    parts = [load_views(src / d, names) for d in folders]
    missing = [d for d, part in zip(folders, parts) if part is None]
    if missing:
        fail(f"{src}: stage outputs {', '.join(missing)} missing or incomplete; cannot reuse them")
    pipe.lineage = {}
    for name, folder in ((RECONSTRUCTED, DEPTH_DIR), (SEGMENTED, MASK_DIR)):
        token = folder_token(src / folder)
        pipe.lineage[name] = {"token": token or uuid.uuid4().hex, "step": step}
    if pipe.run_dir is not None and pipe.run_dir.resolve() != src.resolve():
        extra = (vis.SEEN_DIR, vis.TARGETS_DIR, vis.DEPTH_DIR) if pipe.config.visibility.enabled else ()
        for name in (*folders, *extra):  # seen-elsewhere targets only where this fit uses them
            if (src / name).is_dir():
                copy_stage_folder(src / name, pipe.run_dir / name)
    depths, masks, removal, rgb, depth = parts
    pipe._depths = list(depths)  # type: ignore[arg-type]
    masks = [m > 0 for m in masks]  # type: ignore[union-attr]
    removal = [m > 0 for m in removal]  # type: ignore[union-attr]
    tokens = _tokens(pipe.lineage)
    targets = restore_targets(pipe, src, masks, removal, rgb, depth, tokens, stage_token(pipe.lineage))
    attach_inpainting(pipe, masks, removal, rgb, depth, targets)
    CONSOLE.print(f"spin-nerfstudio: reusing the stage outputs of {src}", soft_wrap=True)
    start_inpainted_fit(pipe, step)


def resume_from(pipe: SpinPipeline, state: Optional[Dict], source_run_dir: Path, run_dir: Path) -> None:
    """Take a loaded checkpoint's lineage and bring the stage outputs of its run folder over."""
    lineage = state.get("lineage") if isinstance(state, dict) else None
    pipe.lineage = {k: dict(v) for k, v in lineage.items()} if isinstance(lineage, dict) else None
    pipe._resumed = True
    pipe.resume_dir = Path(source_run_dir)
    pipe.run_dir = Path(run_dir)
    if pipe.resume_dir.resolve() != pipe.run_dir.resolve() and pipe.resume_dir.is_dir():
        copied = 0
        for name in STAGE_DIRS:
            if (pipe.resume_dir / name).is_dir():
                copied += copy_stage_folder(pipe.resume_dir / name, pipe.run_dir / name)
        for name in (STAGES_FILE, fp.PRIOR_FILE, HELDOUT_BEFORE, HELDOUT_MASKS):
            if (pipe.resume_dir / name).is_file():
                copied += copy_file(pipe.resume_dir / name, pipe.run_dir / name)
        if copied:
            CONSOLE.print(f"spin-nerfstudio: copied {copied} stage output files from {pipe.resume_dir}")
    try:
        previous = json.loads((pipe.run_dir / STAGES_FILE).read_text())["seconds"]
        pipe.stage_times.update({str(k): float(v) for k, v in previous.items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    stage = pipe.spin_model.stage
    CONSOLE.print(f"spin-nerfstudio: resuming in stage '{stage.name.lower()}'")


def restore_stage_outputs(pipe: SpinPipeline) -> None:
    """After a resume, reload what the finished stages wrote instead of recomputing it."""
    stage = pipe.spin_model.stage
    if stage == Stage.RECONSTRUCT:
        return
    cfg = pipe.config
    names = pipe.datamanager.image_names
    tokens = _tokens(pipe.lineage)
    for folder in [d for d in (pipe.run_dir, pipe.resume_dir) if d is not None]:
        depths = load_views(folder / DEPTH_DIR, names, tokens)
        if depths is None:
            continue
        pipe._depths = list(depths)
        if stage == Stage.SEGMENT:
            initial = load_views(folder / INITIAL_MASK_DIR, names, tokens)
            if initial is not None:
                pipe._initial = [m > 0 for m in initial]
                attach_initial_masks(pipe.datamanager, pipe._initial)
                pipe._stage_start_step = boundary_step(pipe.lineage, RECONSTRUCTED, cfg.reconstruct_steps)
                CONSOLE.print(f"spin-nerfstudio: resumed segmentation with the initial masks in {folder}")
                return
        else:
            parts = [load_views(folder / d, names, tokens) for d in (MASK_DIR, REMOVAL_MASK_DIR, INPAINTED_DIR)]
            parts.append(load_views(folder / INPAINTED_DEPTH_DIR, names, tokens))
            if all(p is not None for p in parts):
                masks, removal, rgb, depth = parts
                masks, removal = [m > 0 for m in masks], [m > 0 for m in removal]  # type: ignore[union-attr]
                targets = restore_targets(pipe, folder, masks, removal, rgb, depth, tokens, stage_token(pipe.lineage))
                attach_inpainting(pipe, masks, removal, rgb, depth, targets)
                default = cfg.reconstruct_steps + (0 if pipe.given_masks is not None else cfg.mask_steps)
                start = boundary_step(pipe.lineage, SEGMENTED, None)
                pipe._stage_start_step = (
                    start if start is not None else boundary_step(pipe.lineage, RECONSTRUCTED, default)
                )
                restart_fit_schedules(pipe)
                CONSOLE.print(f"spin-nerfstudio: resumed the inpainted fit with the stage outputs in {folder}")
                return
    fail(f"cannot resume stage '{stage.name.lower()}': its outputs are missing from the run folder")
