"""Perceptual metrics of rendered views: LPIPS when its ImageNet backbone is cached, ST-LPIPS when its wheel is.

- ``lpips`` / ``masked_lpips``: LPIPS v0.1 with the AlexNet backbone (``lpips`` package, inputs in [-1, 1]) over
  the whole image / over the crop to the mask's bounding box (:func:`metrics.bbox_crop`, at least 16 px a side).
  Null unless torchvision's ImageNet AlexNet weights are in torch's hub cache (or given): never downloaded.
- ``st_lpips`` / ``masked_st_lpips``: ST-LPIPS (shift-tolerant LPIPS, Ghildyal and Liu, ECCV 2022) with its
  anti-aliased AlexNet trunk, weights from the ``stlpips-pytorch`` wheel, on the same image / crop. A different
  metric from LPIPS: its values are not comparable with published LPIPS figures. Null when the wheel is absent.

The removal fit's perceptual loss uses the VGG trunk, so neither metric here is the network the fit optimised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from jaxtyping import Bool, Float

from spin_nerfstudio.evaluation import metrics as M

PERCEPTUAL_KEYS = ("lpips", "masked_lpips", "st_lpips", "masked_st_lpips")
"""Keys :meth:`PerceptualScorer.score` fills (None where its network is unavailable or there is no mask)."""


class PerceptualScorer:
    """Builds the available perceptual networks once (AlexNet trunks) and scores image pairs with them."""

    def __init__(self, lpips_weights: Optional[Path] = None):
        from spin_nerfstudio.model.perceptual import (
            BACKBONE_FILES,
            STLPIPS,
            PerceptualLoss,
            cached_backbone,
            stlpips_weights,
        )

        self.notes: List[str] = []
        self.lpips: Optional[PerceptualLoss] = None
        self.st_lpips: Optional[STLPIPS] = None
        if cached_backbone("alex", lpips_weights) is not None:
            self.lpips = PerceptualLoss("alex", weights=lpips_weights)
        else:
            self.notes.append(
                f"lpips: no ImageNet AlexNet weights ({BACKBONE_FILES['alex']}) in torch's hub cache; lpips is null"
            )
        if stlpips_weights("alex") is not None:
            self.st_lpips = STLPIPS("alex")
            self.notes.append("st_lpips: ST-LPIPS(alex) from the stlpips-pytorch wheel (not comparable with LPIPS)")
        else:
            self.notes.append("st_lpips: the stlpips-pytorch wheel is not installed; st_lpips is null")

    def score(
        self,
        pred: Float[np.ndarray, "H W 3"],
        gt: Float[np.ndarray, "H W 3"],
        mask: Optional[Bool[np.ndarray, "H W"]] = None,
    ) -> Dict[str, Optional[float]]:
        """The perceptual keys of one view: whole image, and the mask's bounding-box crop when a mask is given."""

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None]

        out: Dict[str, Optional[float]] = {k: None for k in PERCEPTUAL_KEYS}
        box = M.bbox_crop(mask) if mask is not None else None
        with torch.no_grad():
            for name, net in (("lpips", self.lpips), ("st_lpips", self.st_lpips)):
                if net is None:
                    continue
                out[name] = float(net(t(pred), t(gt)))
                if box is not None:
                    out[f"masked_{name}"] = float(net(t(pred[box]), t(gt[box])))
        return out
