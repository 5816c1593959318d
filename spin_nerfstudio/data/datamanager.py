"""Datamanager that serves, per ray, the original colour plus whatever per-view targets the stages produced.

It is a ``VanillaDataManager`` that caches every training image in this process (nerfacto's
``ParallelDataManager`` keeps them in a worker process, where later edits would never arrive). Stages add
H x W x C tensors with :meth:`SpinDataManager.set_view_data`; nerfstudio's pixel sampler then indexes every
tensor of the cached batch at the sampled pixels, so each new key arrives per ray.

Before any image is loaded the dataset is checked (:mod:`spin_nerfstudio.data.limits`): too few views, cameras at
one position or mixed image sizes stop the run; images larger than ``max_image_side`` are downscaled on load; a
dataset whose cache would exceed the memory budget (``max_memory_gb``) stops the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple, Type, Union

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from spin_nerfstudio.data.limits import check_parser_outputs, coincident_message
from spin_nerfstudio.prompts import SpinInputError


@dataclass
class SpinDataManagerConfig(VanillaDataManagerConfig):
    """Datamanager of spin-inpaint."""

    _target: Type = field(default_factory=lambda: SpinDataManager)
    max_image_side: int = 1600
    """Images whose longer side exceeds this many pixels are downscaled on load (a warning gives the memory the
    full size would have needed); clicks and ready-made masks are scaled to match."""
    min_views: int = 5
    """Fewer training views than this stop the run."""
    max_memory_gb: float = 0.0
    """Memory budget (GiB) of the cached images and per-view targets (76 bytes per pixel and view, at the size the
    images are loaded at); a larger dataset is refused before training. 0: three quarters of the memory available
    when the run starts; negative: no check."""


class SpinDataManager(VanillaDataManager[InputDataset]):
    """Caches all training views and lets the pipeline attach per-view targets to them."""

    config: SpinDataManagerConfig
    image_scale: float = 1.0
    """Factor applied to the images on load (below 1 when they were larger than ``max_image_side``)."""
    disk_sizes: List[Tuple[int, int]]
    """(width, height) of each training image as stored on disk."""

    def __init__(self, config: SpinDataManagerConfig, device: Union[torch.device, str] = "cpu", **kwargs) -> None:
        try:
            super().__init__(config, device, **kwargs)
        except ZeroDivisionError:  # nerfstudio's parser divides by the camera spread when scaling the poses
            raise SpinInputError(coincident_message(Path(config.data or config.dataparser.data))) from None

    def create_train_dataset(self) -> InputDataset:
        """Check the parsed dataset, then build the training dataset (downscaled when too large)."""
        outputs = self.train_dataparser_outputs
        report = check_parser_outputs(
            outputs,
            Path(self.config.data or self.config.dataparser.data),
            self.config.min_views,
            self.config.max_image_side,
            require_files=self.test_mode != "inference",
            max_memory_gb=self.config.max_memory_gb if self.test_mode != "inference" else -1.0,
        )
        self.image_scale = report.scale
        self.disk_sizes = report.sizes
        for warning in report.warnings:
            CONSOLE.print(f"[yellow]spin-nerfstudio: {warning}")
        return self.dataset_type(
            dataparser_outputs=outputs, scale_factor=self.config.camera_res_scale_factor * self.image_scale
        )

    def create_eval_dataset(self) -> InputDataset:
        """The evaluation dataset, at the training images' scale."""
        return self.dataset_type(
            dataparser_outputs=self.dataparser.get_dataparser_outputs(split=self.test_split),
            scale_factor=self.config.camera_res_scale_factor * self.image_scale,
        )

    @property
    def view_batch(self) -> Dict[str, Tensor]:
        """The cached batch of all training views (``image`` is N x H x W x C in [0, 1])."""
        batch = self.train_image_dataloader.cached_collated_batch
        assert batch is not None, "training images are not cached; train_num_images_to_sample_from must be -1"
        return batch

    @property
    def num_views(self) -> int:
        """Number of training views."""
        return len(self.train_dataset)

    @property
    def image_names(self) -> List[str]:
        """File names of the training images, in camera order."""
        return [Path(p).name for p in self.train_dataset.image_filenames]

    def image_sizes(self) -> List[Tuple[int, int]]:
        """(width, height) of each training image as loaded."""
        cams = self.train_dataset.cameras
        return [(int(w), int(h)) for w, h in zip(cams.width.view(-1).tolist(), cams.height.view(-1).tolist())]

    def images_uint8(self) -> np.ndarray:
        """All training images as N x H x W x 3 uint8, in camera order."""
        img = self.view_data("image")[..., :3].clamp(0, 1)
        return (img.cpu().numpy() * 255.0 + 0.5).astype(np.uint8)

    def view_data(self, key: str) -> Tensor:
        """A copy of the per-view tensor under ``key``, in camera order (the inverse of :meth:`set_view_data`)."""
        batch = self.view_batch
        return batch[key][torch.argsort(batch["image_idx"].cpu())].clone()

    def set_view_data(self, key: str, values: Float[Tensor, "num_views H W C"]) -> None:
        """Attach a per-view tensor (in camera order) to every training view; sampled rays then carry it."""
        batch = self.view_batch
        if values.shape[0] != self.num_views:
            raise ValueError(f"{key}: expected {self.num_views} views, got {values.shape[0]}")
        batch[key] = values[batch["image_idx"].cpu()].to(batch["image"].device)

    def has_view_data(self, key: str) -> bool:
        """Whether a per-view tensor is attached under ``key``."""
        return key in self.view_batch
