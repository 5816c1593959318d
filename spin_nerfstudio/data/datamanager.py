"""Datamanager that serves, per ray, the original colour plus whatever per-view targets the stages produced.

It is a ``VanillaDataManager`` that caches every training image in this process (nerfacto's
``ParallelDataManager`` keeps them in a worker process, where later edits would never arrive). Stages add
H x W x C tensors with :meth:`SpinDataManager.set_view_data`; nerfstudio's pixel sampler then indexes every
tensor of the cached batch at the sampled pixels, so each new key arrives per ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple, Type

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from torch import Tensor


@dataclass
class SpinDataManagerConfig(VanillaDataManagerConfig):
    """Datamanager of spin-inpaint."""

    _target: Type = field(default_factory=lambda: SpinDataManager)


class SpinDataManager(VanillaDataManager[InputDataset]):
    """Caches all training views and lets the pipeline attach per-view targets to them."""

    config: SpinDataManagerConfig

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
        batch = self.view_batch
        order = torch.argsort(batch["image_idx"])
        img = batch["image"][order][..., :3].clamp(0, 1)
        return (img.cpu().numpy() * 255.0 + 0.5).astype(np.uint8)

    def set_view_data(self, key: str, values: Float[Tensor, "num_views H W C"]) -> None:
        """Attach a per-view tensor (in camera order) to every training view; sampled rays then carry it."""
        batch = self.view_batch
        if values.shape[0] != self.num_views:
            raise ValueError(f"{key}: expected {self.num_views} views, got {values.shape[0]}")
        batch[key] = values[batch["image_idx"].cpu()].to(batch["image"].device)

    def has_view_data(self, key: str) -> bool:
        """Whether a per-view tensor is attached under ``key``."""
        return key in self.view_batch
