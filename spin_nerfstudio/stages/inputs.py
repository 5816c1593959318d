"""Before any step: the run's inputs are read and checked (prompts, ready-made masks, reference image, reuse, poses).

Outputs: the prompts and the views they match, or ready-made masks (``--pipeline.mask-dir``, or the ``label/``
masks a SPIn-NeRF-layout dataset brings) resized to the training images, and whether the camera poses agree with the
images (SIFT matches between neighbouring views on their epipolar lines; ``--pipeline.check-poses``), and the depths
of those matches triangulated with the poses, attached to the views for the sparse depth loss. Bad input
raises :class:`~spin_nerfstudio.prompts.SpinInputError` with a one-line message.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np
from nerfstudio.utils.rich_utils import CONSOLE

from spin_nerfstudio.data.masks import load_mask_dir, resize_mask
from spin_nerfstudio.data.pose_check import PoseAgreement, pose_agreement
from spin_nerfstudio.data.sparse_depth import SparseDepth, sparse_depth
from spin_nerfstudio.data.spin_layout import dataset_label_masks
from spin_nerfstudio.model.names import SPARSE_DEPTH
from spin_nerfstudio.prompts import SpinInputError, load_prompts, match_to_dataset
from spin_nerfstudio.stage_io import load_views
from spin_nerfstudio.stages.names import MASK_DIR
from spin_nerfstudio.validate import check_pipeline_values

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline


def check_inputs(pipe: SpinPipeline) -> None:
    """Read the prompts or ready-made masks into ``pipe`` and check every input value."""
    cfg = pipe.config
    check_pipeline_values(cfg)
    dm = pipe.datamanager
    names = dm.image_names
    sizes = getattr(dm, "disk_sizes", None) or dm.image_sizes()  # as stored on disk
    if cfg.prompt_file is not None:
        pipe.prompts = load_prompts(cfg.prompt_file)
        pipe.prompt_views = match_to_dataset(pipe.prompts, names, sizes)
        pipe._segmenter_plan = cfg.segmenter.resolve(str(pipe.device))
    if cfg.mask_dir is not None:
        masks = load_mask_dir(cfg.mask_dir, names, sizes)
        pipe.given_masks = [resize_mask(m, wh) for m, wh in zip(masks, dm.image_sizes())]
    elif pipe.prompts is None:  # a SPIn-NeRF-layout dataset brings its own masks (label/)
        masks = dataset_label_masks(dm.train_dataparser_outputs.metadata, names, sizes)
        if masks is not None:
            pipe.given_masks = [resize_mask(m, wh) for m, wh in zip(masks, dm.image_sizes())]
    if cfg.reference_image is not None and Path(cfg.reference_image).name not in names:
        raise SpinInputError(f"reference_image '{cfg.reference_image}' is not a training image")
    cfg.inpainter.check()
    if cfg.reuse_stages is not None:
        src = Path(cfg.reuse_stages)
        if load_views(src / MASK_DIR, names) is None:
            raise SpinInputError(f"{src}: no complete {MASK_DIR}/ for these images; not a finished run to reuse")
    if cfg.check_poses != "off":
        pipe.pose_agreement = check_pose_agreement(pipe)
    if cfg.model.sparse_depth_loss_mult > 0:
        pipe.sparse_depth = attach_sparse_depth(pipe)


def attach_sparse_depth(pipe: SpinPipeline) -> Optional[SparseDepth]:
    """Triangulate SIFT matches between neighbouring views with the poses and attach their depths to the training
    views (the model's sparse depth loss reads them); None for cameras other than pinhole ones."""
    dm = pipe.datamanager
    cameras = _pinhole_arrays(dm.train_dataset.cameras)
    if cameras is None:
        CONSOLE.print("spin-nerfstudio: no sparse depth: triangulation needs pinhole cameras")
        return None
    result = sparse_depth(list(dm.images_uint8()), *cameras)
    dm.set_view_data(SPARSE_DEPTH, result.maps(dm.image_sizes()))
    CONSOLE.print(
        f"spin-nerfstudio: {result.line()}; they supervise the field's depth "
        f"(--pipeline.model.sparse-depth-loss-mult {pipe.config.model.sparse_depth_loss_mult:g}, 0 = off)",
        soft_wrap=True,
    )
    return result


def _pinhole_arrays(cams) -> Optional[Tuple[np.ndarray, ...]]:
    """(c2w, fx, fy, cx, cy) of nerfstudio cameras as float64 arrays; None unless every camera is a pinhole one."""
    from nerfstudio.cameras.cameras import CameraType

    if bool((cams.camera_type.view(-1) != CameraType.PERSPECTIVE.value).any()):
        return None
    fx, fy, cx, cy = (v.view(-1).cpu().numpy().astype(np.float64) for v in (cams.fx, cams.fy, cams.cx, cams.cy))
    return cams.camera_to_worlds.cpu().numpy().astype(np.float64), fx, fy, cx, cy


def check_pose_agreement(pipe: SpinPipeline) -> Optional[PoseAgreement]:
    """Whether the training cameras' poses agree with their images; says so on the console, and with
    ``check_poses`` "stop" raises :class:`SpinInputError` when they do not ("warn" prints the diagnosis).
    Cameras other than pinhole ones (fisheye, equirectangular) are not judged (None)."""
    dm = pipe.datamanager
    cameras = _pinhole_arrays(dm.train_dataset.cameras)
    if cameras is None:
        CONSOLE.print("spin-nerfstudio: poses not judged: the check needs pinhole cameras")
        return None
    result = pose_agreement(list(dm.images_uint8()), *cameras)
    CONSOLE.print(f"spin-nerfstudio: {result.line()}", soft_wrap=True)
    problem = result.problem()
    if problem is not None:
        message = f"{dm.config.data or dm.config.dataparser.data}: {problem}"
        if pipe.config.check_poses == "stop":
            raise SpinInputError(message)
        CONSOLE.print(
            f"[yellow]spin-nerfstudio: warning: {message} (--pipeline.check-poses stop ends the run here)",
            soft_wrap=True,
        )
    return result


def write_pose_figures(pipe: SpinPipeline) -> None:
    """The pose agreement under "poses" and the sparse depth's counts under "sparse_depth" in RUN/geometry.json
    (other keys kept), when they were made."""
    from spin_nerfstudio.evaluation.geometry import write_figures

    result: Optional[PoseAgreement] = getattr(pipe, "pose_agreement", None)
    if result is not None and pipe.run_dir is not None:
        write_figures(pipe.run_dir, "poses", result.as_dict())
    sparse: Optional[SparseDepth] = getattr(pipe, "sparse_depth", None)
    if sparse is not None and pipe.run_dir is not None:
        write_figures(pipe.run_dir, "sparse_depth", sparse.as_dict())
