"""What every stage uses: the one-line stop, its run-folder writer, and the training views as cameras."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Union

import numpy as np
from nerfstudio.utils.rich_utils import CONSOLE

from spin_nerfstudio.guard import stop as fail  # noqa: F401  (the stages' one-line stop)
from spin_nerfstudio.render import render_views
from spin_nerfstudio.segmentation.propagate import PinholeView
from spin_nerfstudio.stage_io import StageFolder

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline


class NoFolder:
    """Stand-in for a stage folder when the pipeline runs without a run folder."""

    complete = False

    def existing(self) -> Dict[int, np.ndarray]:
        return {}

    def put(self, index: int, array: np.ndarray) -> None:
        pass

    def finish(self) -> None:
        pass


def stage_folder(pipe: SpinPipeline, name: str, kind: str, token: str) -> Union[StageFolder, NoFolder]:
    """Stage output folder ``RUN/name`` (a no-op writer when there is no run folder)."""
    if pipe.run_dir is None:
        return NoFolder()
    return StageFolder(pipe.run_dir / name, pipe.datamanager.image_names, kind, token)


def note_reuse(pipe: SpinPipeline, name: str, reused: int) -> None:
    """Say how many views of a stage folder a resumed run takes over."""
    if reused:
        n = len(pipe.datamanager.image_names)
        CONSOLE.print(f"spin-nerfstudio: {name}: reusing {reused}/{n} views written before the interruption")


def pinhole_views(pipe: SpinPipeline) -> List[PinholeView]:
    """The training cameras as pinhole views (for lifting and projecting pixels)."""
    cams = pipe.datamanager.train_dataset.cameras
    return [PinholeView.from_cameras(cams, i) for i in range(len(cams))]


def render_accumulations(pipe: SpinPipeline, indices: Optional[List[int]] = None) -> Dict[int, np.ndarray]:
    """Rendered opacity (H x W) of the given training views (all when None), keyed by view index."""
    cams = pipe.datamanager.train_dataset.cameras
    indices = list(range(len(cams))) if indices is None else indices
    acc = render_views(pipe.model, cams, indices=indices, keys=("accumulation",), progress=False)
    return {k: a[..., 0] for k, a in zip(indices, acc["accumulation"])}
