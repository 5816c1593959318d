"""Before any step: the run's inputs are read and checked (prompts, ready-made masks, reference image, reuse).

Outputs: the prompts and the views they match, or ready-made masks (``--pipeline.mask-dir``, or the ``label/``
masks a SPIn-NeRF-layout dataset brings) resized to the training images. Bad input raises
:class:`~spin_nerfstudio.prompts.SpinInputError` with a one-line message.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Tuple

import numpy as np
from PIL import Image

from spin_nerfstudio.data.masks import load_mask_dir
from spin_nerfstudio.data.spin_layout import dataset_label_masks
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


def resize_mask(mask: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """A boolean mask at ``size`` (width, height), nearest neighbour."""
    if (mask.shape[1], mask.shape[0]) == tuple(size):
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize(tuple(size), resample=Image.Resampling.NEAREST)
    return np.asarray(img) > 127
