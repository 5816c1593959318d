"""The panel's texts: the status line (stage and step, clicks, mode, last notification) and what a wait is for."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Tuple

from spin_nerfstudio.model.names import Stage
from spin_nerfstudio.viewer.clicks import ClickPoint


def stage_line(
    stage: Stage,
    last_step: Optional[int],
    pending_segmentation: bool,
    removal_requested: bool,
    mask_fit_end: Callable[[], int],
) -> str:
    """The "**Stage:**" line: the stage, the step and what comes next."""
    step = "" if last_step is None else f" · step {last_step}"
    if stage == Stage.RECONSTRUCT:
        waiting = " · segmenting at the next step" if pending_segmentation else ""
        return f"**Stage:** reconstruct{step}{waiting}"
    if stage == Stage.SEGMENT:
        end = mask_fit_end()
        done = "" if last_step is None else f", mask head until step {end}"
        then = "; then removal" if removal_requested else "; press Remove object to inpaint"
        return f"**Stage:** segment{step}{done}{then}"
    return f"**Stage:** inpaint{step} · fitting the scene without the object"


def status_text(
    stage: str,
    points: Sequence[ClickPoint],
    segmented_note: str,
    interactive: bool,
    mode: str,
    messages: Sequence[str],
) -> str:
    """The panel's status markdown, from its :func:`stage_line` and its click state."""
    n_pos = sum(p.positive for p in points)
    n_neg = len(points) - n_pos
    lines = [stage, f"**Clicks:** {n_pos} positive, {n_neg} negative"]
    if segmented_note:
        lines.append(f"**Segmented:** {segmented_note}")
    if not interactive:
        lines.append("Clicks come from the prompt file or mask dir of this run.")
    elif mode != "Off":
        lines.append(f"**Mode:** {mode} (camera locked; pick Off to move it)")
    if messages:
        lines.append(f"_{messages[-1]}_")
    return "  \n".join(lines)


def busy_reason(pending_segmentation: bool, stage: Stage) -> str:
    """What keeps the trainer busy, for the notice of a click that waits."""
    if pending_segmentation:
        return "segmenting"
    if stage == Stage.INPAINT:
        return "preparing the removal"
    return "a training step or a render"


def training_state(viewer: Any) -> str:
    """The viewer's trainer's ``training_state`` ("training", "paused", "completed"), "none" without a trainer."""
    trainer = getattr(viewer, "trainer", None)
    if trainer is None:
        return "none"
    return str(getattr(trainer, "training_state", "training"))


def segment_notice(training_state: str, prompt_path: Optional[Path]) -> Tuple[str, str, bool]:
    """Title, body and error flag of the notification that says when a requested segmentation runs, given the
    trainer's ``training_state`` ("none" without a trainer) and where the clicks were saved."""
    if training_state == "paused":
        return "Segmentation queued", "training is paused; it runs when you resume training", False
    if training_state in ("completed", "none"):
        where = f" {prompt_path}" if prompt_path is not None else ""
        return (
            "Training is not running",
            f"segmentation runs between training steps; the clicks are saved in{where}: train with "
            "--pipeline.prompt-file on that file",
            True,
        )
    return "Segmenting", "at the next training step", False
