"""LPIPS that never downloads: the backbone comes from a path or torch's cache, else it is random (and says so).

The ``lpips`` package ships its calibration layers; only the ImageNet backbone (AlexNet or VGG16) is fetched by
torchvision. We look for it in ``$TORCH_HOME/hub/checkpoints`` or at an explicit path. Without it this module uses a
randomly initialised backbone (random convolutional features still order distortions), the removal pipeline skips
its perceptual loss unless asked for the random one, and metrics that report LPIPS say ``null`` instead of a number
that would not be comparable.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal, Optional, Tuple

import torch
from jaxtyping import Float
from torch import Tensor, nn

BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
"""torchvision's cache file names of the ImageNet backbones."""


def cached_backbone(net: Literal["alex", "vgg"], weights: Optional[Path] = None) -> Optional[Path]:
    """Path of the backbone weights: the given file, else torchvision's cache file; None when absent."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: LPIPS backbone weights not found")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[net]
    return path if path.is_file() else None


class PerceptualLoss(nn.Module):
    """LPIPS between images in [0, 1]; small inputs are resized to ``min_size`` first."""

    def __init__(self, net: Literal["alex", "vgg"] = "alex", weights: Optional[Path] = None, min_size: int = 64):
        super().__init__()
        import lpips
        import torchvision

        backbone = cached_backbone(net, weights)
        self.pretrained = backbone is not None
        self.net_name = net
        self.min_size = min_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torchvision's deprecation notes on lpips' call
            self.lpips = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        if backbone is not None:
            tv = torchvision.models.alexnet() if net == "alex" else torchvision.models.vgg16()
            tv.load_state_dict(torch.load(backbone, map_location="cpu", weights_only=True))
            features = tv.features
            for i in range(1, 6):
                for name, layer in getattr(self.lpips.net, f"slice{i}").named_children():
                    layer.load_state_dict(features[int(name)].state_dict())
        self.description = (
            f"LPIPS({net}) with ImageNet backbone from {backbone}"
            if backbone is not None
            else f"LPIPS({net}) with a RANDOM backbone (no cached {BACKBONE_FILES[net]} in "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'}); scores are not comparable to published LPIPS"
        )
        self.requires_grad_(False)
        self.eval()

    def forward(self, a: Float[Tensor, "B 3 H W"], b: Float[Tensor, "B 3 H W"]) -> Float[Tensor, " B"]:
        """LPIPS per image pair."""
        if min(a.shape[-2:]) < self.min_size:
            size = (max(self.min_size, a.shape[-2]), max(self.min_size, a.shape[-1]))
            a = nn.functional.interpolate(a, size=size, mode="bilinear", align_corners=False)
            b = nn.functional.interpolate(b, size=size, mode="bilinear", align_corners=False)
        return self.lpips(a * 2 - 1, b * 2 - 1).view(-1)


def build_perceptual(
    net: Literal["alex", "vgg"] = "alex", weights: Optional[Path] = None
) -> Tuple[PerceptualLoss, str]:
    """Build the LPIPS module and a one-line description of the backbone it uses."""
    loss = PerceptualLoss(net=net, weights=weights)
    return loss, loss.description
