"""Stage ``inpaint``: every view's colour and rendered depth are inpainted in 2D inside its removal mask.

Inputs: the images, the rendered depths (``render`` stage) and the removal masks. Outputs: per-view inpainted
colour (``RUN/inpainted/``, png) and depth (``RUN/inpainted_depth/``, npy), from the configured 2D inpainter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Tuple

import numpy as np
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import track

from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.stages.common import fail, note_reuse, stage_folder
from spin_nerfstudio.stages.names import INPAINTED_DEPTH_DIR, INPAINTED_DIR

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline


def inpaint(
    pipe: SpinPipeline, depths: List[np.ndarray], removal: List[np.ndarray], token: str
) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Inpainted colour and depth of every view (reusing the views a resumed run wrote under ``token``)."""
    names = pipe.datamanager.image_names
    images = pipe.datamanager.images_uint8()
    rgb_dir = stage_folder(pipe, INPAINTED_DIR, "png", token)
    depth_dir = stage_folder(pipe, INPAINTED_DEPTH_DIR, "npy", token)
    rgb_done, depth_done = rgb_dir.existing(), depth_dir.existing()
    done = set(rgb_done) & set(depth_done)
    note_reuse(pipe, INPAINTED_DIR, len(done))
    inpainter = setup_inpainter(pipe) if len(done) < len(names) else None
    rgb_out, depth_out = [], []
    for k in track(range(len(names)), description="Inpainting views", transient=True):
        if k in done:
            rgb_out.append(rgb_done[k])
            depth_out.append(depth_done[k])
            continue
        assert inpainter is not None
        depth = depths[k]
        if not np.isfinite(depth).all():
            fail(f"rendered depth of {names[k]} has NaN or infinite values; cannot build a depth prior")
        try:
            rgb_out.append(inpainter.inpaint_rgb(images[k], removal[k]))
            depth_out.append(inpainter.inpaint_depth(depth, removal[k]))
        except (ValueError, SpinInputError) as err:
            fail(f"inpainting {names[k]}: {err}")
        rgb_dir.put(k, rgb_out[-1])
        depth_dir.put(k, depth_out[-1])
    rgb_dir.finish()
    depth_dir.finish()
    summary = inpainter.summary() if inpainter is not None else None
    if summary:
        CONSOLE.print(f"spin-nerfstudio: {summary}", soft_wrap=True)
    return rgb_out, depth_out


def setup_inpainter(pipe: SpinPipeline):
    """The configured 2D inpainter, built once per pipeline."""
    if getattr(pipe, "_inpainter", None) is None:
        try:
            pipe._inpainter = pipe.config.inpainter.setup()
        except SpinInputError as err:
            fail(str(err))
    return pipe._inpainter
