"""Render whole training views from a model, view by view, with a progress bar."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.models.base_model import Model
from rich.progress import track


def render_views(
    model: Model,
    cameras: Cameras,
    indices: Optional[Sequence[int]] = None,
    keys: Sequence[str] = ("rgb", "depth", "accumulation", "object_mask"),
    description: str = "Rendering views",
    progress: bool = True,
) -> Dict[str, List[np.ndarray]]:
    """Render the given cameras; returns, per key, a list of H x W x C float32 arrays."""
    indices = list(range(len(cameras))) if indices is None else list(indices)
    out: Dict[str, List[np.ndarray]] = {k: [] for k in keys}
    was_training = model.training
    model.eval()
    try:
        iterator = track(indices, description=description, transient=True) if progress else indices
        with torch.no_grad():
            for i in iterator:
                camera = cameras[i : i + 1].to(model.device)
                outputs = model.get_outputs_for_camera(camera)
                for k in keys:
                    out[k].append(outputs[k].detach().float().cpu().numpy())
    finally:
        model.train(was_training)
    return out
