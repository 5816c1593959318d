"""Stage ``render`` (after the reconstruction): every view's depth and colour from the reconstructed field.

Input: the model after ``reconstruct_steps`` steps. Output: per-view depth (H x W), written to ``RUN/depth/`` (npy)
with the colour renders in ``RUN/renders_before/`` (png), both under the ``reconstructed`` boundary's token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List

import numpy as np
from rich.progress import track

from spin_nerfstudio.render import render_views
from spin_nerfstudio.stages.common import note_reuse, stage_folder
from spin_nerfstudio.stages.names import DEPTH_DIR, RENDERS_BEFORE_DIR

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline


def render_reconstruction(pipe: SpinPipeline, token: str) -> List[np.ndarray]:
    """Depth of every training view (reusing the views a resumed run already wrote under ``token``)."""
    names = pipe.datamanager.image_names
    cams = pipe.datamanager.train_dataset.cameras
    depth_dir = stage_folder(pipe, DEPTH_DIR, "npy", token)
    rgb_dir = stage_folder(pipe, RENDERS_BEFORE_DIR, "png", token)
    depths = {i: d for i, d in depth_dir.existing().items()}
    have_rgb = set(rgb_dir.existing())
    todo = [i for i in range(len(names)) if i not in depths or i not in have_rgb]
    note_reuse(pipe, DEPTH_DIR, len(names) - len(todo))
    for i in track(todo, description="Rendering depth", transient=True):
        out = render_views(pipe.model, cams, indices=[i], keys=("rgb", "depth"), progress=False)
        depths[i] = out["depth"][0][..., 0]
        depth_dir.put(i, depths[i])
        rgb_dir.put(i, (np.clip(out["rgb"][0], 0, 1) * 255 + 0.5).astype(np.uint8))
    depth_dir.finish()
    rgb_dir.finish()
    return [depths[i] for i in range(len(names))]
