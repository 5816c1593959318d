"""Stage ``seen_elsewhere``: masked pixels that another view saw unmasked take the colour it saw.

Inputs: the cameras, images, final and removal masks, the 2D inpainting and the rendered depths. Outputs
(inpainting/visibility.py): per-view seen-elsewhere masks (``RUN/seen_elsewhere/``), colour targets
(``RUN/inpainted_targets/``), optionally a corrected depth prior (``RUN/seen_depth/``) and a summary
(``RUN/seen_elsewhere.json``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import numpy as np
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import track

from spin_nerfstudio.inpainting import field_prior as fp
from spin_nerfstudio.inpainting import visibility as vis
from spin_nerfstudio.stage_io import write_json
from spin_nerfstudio.stages.common import pinhole_views, stage_folder

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline


def seen_elsewhere(pipe: SpinPipeline, masks, removal, inpainted, inpainted_depth, token: str) -> vis.VisibilityTargets:
    """Seen-elsewhere masks and colour targets of every view, written to the run."""
    names = pipe.datamanager.image_names
    seen_dir = stage_folder(pipe, vis.SEEN_DIR, "png", token)
    target_dir = stage_folder(pipe, vis.TARGETS_DIR, "png", token)
    depth_dir = stage_folder(pipe, vis.DEPTH_DIR, "npy", token) if corrects_depth(pipe.config.visibility) else None
    if seen_dir.complete and target_dir.complete and (depth_dir is None or depth_dir.complete):
        seen, done = seen_dir.existing(), target_dir.existing()  # a resumed run: all views written already
        depth = depth_dir.existing() if depth_dir is not None else {}
        targets = vis.VisibilityTargets(
            seen=[seen[i] > 0 for i in range(len(names))],
            targets=[done[i] for i in range(len(names))],
            depth=[depth[i] for i in range(len(names))] if depth else [],
        )
    else:
        config = pipe.config.visibility
        targets = vis.seen_elsewhere_targets(
            pinhole_views(pipe), pipe.datamanager.images_uint8(), removal, inpainted, inpainted_depth, pipe._depths,
            config, lambda views: track(views, description="Finding background seen elsewhere", transient=True),
            object_colours(pipe, masks, removal) if config.reject_object_colours else None, pipe.device,
        )  # fmt: skip
        for i in range(len(names)):
            seen_dir.put(i, targets.seen[i])
            target_dir.put(i, targets.targets[i])
            if depth_dir is not None:
                depth_dir.put(i, targets.depth[i])
        seen_dir.finish()
        target_dir.finish()
        if depth_dir is not None:
            depth_dir.finish()
    summary = targets.summary(names, removal)
    if pipe.run_dir is not None:
        write_json(pipe.run_dir / vis.SUMMARY_FILE, summary)
    share = summary["seen_fraction"]
    CONSOLE.print(
        f"spin-nerfstudio: {summary['seen_pixels']}/{summary['masked_pixels']} masked pixels "
        f"({0.0 if share is None else share:.1%}) were seen unmasked in other views; "
        "they are supervised with that colour, the 2D inpainter fills the rest",
        soft_wrap=True,
    )
    if targets.rejected:
        CONSOLE.print(
            f"spin-nerfstudio: {targets.rejected} masked pixels stayed unseen: the colour other views saw there "
            "looks like the removed object's (a mask that misses part of the object?)",
            soft_wrap=True,
        )
    return targets


def corrects_depth(config: vis.VisibilityConfig) -> bool:
    """Whether the seen-elsewhere stage also corrects the depth prior (visibility.VisibilityConfig)."""
    return config.enabled and config.search == "sweep" and config.correct_depth


def object_colours(pipe: SpinPipeline, masks: List[np.ndarray], removal: List[np.ndarray]):
    """Probability that colours are the object's, from the pixels inside the final masks and outside the removal
    masks of every view (None when either set is empty)."""
    images = pipe.datamanager.images_uint8()
    obj = np.concatenate([img[m] for img, m in zip(images, masks)])
    background = np.concatenate([img[~r] for img, r in zip(images, removal)])
    if len(obj) == 0 or len(background) == 0:
        return None
    return fp.object_colour_model(obj[:, :3], background[:, :3])


def restore_targets(
    pipe: SpinPipeline, folder: Path, masks, removal, rgb, depth, tokens, token: str
) -> Optional[vis.VisibilityTargets]:
    """Seen-elsewhere targets of a resumed inpainted fit: reloaded, else computed again (they are cheap)."""
    config = pipe.config.visibility
    if not config.enabled:
        return None
    targets = vis.load_targets(folder, pipe.datamanager.image_names, tokens, with_depth=corrects_depth(config))
    if targets is not None:
        return targets
    return seen_elsewhere(pipe, masks, removal, rgb, depth, token or uuid.uuid4().hex)
