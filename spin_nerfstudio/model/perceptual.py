"""Perceptual distances that never download: LPIPS when its ImageNet backbone is on disk, else ST-LPIPS.

LPIPS: the ``lpips`` package ships its calibration layers; only the ImageNet backbone (AlexNet or VGG16) is fetched
by torchvision. We look for it in ``$TORCH_HOME/hub/checkpoints`` or at an explicit path. Without it ``lpips`` would
run on a randomly initialised backbone (``PerceptualLoss`` says so in its description); metrics that report LPIPS
say ``null`` then instead of a number that would not be comparable.

ST-LPIPS (Ghildyal and Liu, "Shift-tolerant Perceptual Similarity Metric", ECCV 2022) is a different, trained
metric whose complete weights (anti-aliased AlexNet or VGG16 trunk and the linear heads) ship inside the
``stlpips-pytorch`` wheel. ``STLPIPS`` builds the shift-tolerant network here and loads the wheel's state dict with
``torch.load(weights_only=True)``, so the wheel is used as a data package: its modules import IPython and
torchsummary at top level without using them, and are never imported. ST-LPIPS values are not comparable with
LPIPS values and are always named ``st_lpips``.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import List, Literal, Optional, Tuple, Union

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


STLPIPS_FILES = {"alex": "alex_shift_tolerant.pth", "vgg": "vgg_shift_tolerant.pth"}
"""File names of the ST-LPIPS weights in the ``stlpips-pytorch`` wheel (``stlpips_pytorch/weights/vST0.0/``)."""


def stlpips_weights(net: Literal["alex", "vgg"]) -> Optional[Path]:
    """Path of the installed wheel's ST-LPIPS weights for ``net`` (found without importing the package); else None."""
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "vST0.0" / STLPIPS_FILES[net]
    return path if path.is_file() else None


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 subsampling: reflection padding of 2, then a fixed [1, 2, 1] x [1, 2, 1] / 16 blur per
    channel at stride 2 (ST-LPIPS' downsampling; its kernel is also stored in the weights as ``filt``)."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("filt", (torch.outer(k, k) / 16).expand(channels, 1, 3, 3).clone())
        self.pad = nn.ReflectionPad2d(2)

    def forward(self, x: Float[Tensor, "B C H W"]) -> Float[Tensor, "B C h w"]:
        """Blur and subsample each channel."""
        return nn.functional.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


def _stlpips_trunk(net: Literal["alex", "vgg"]) -> Tuple[nn.ModuleList, List[int]]:
    """The shift-tolerant trunk as five slices (layers keep the weight file's indices) and each slice's channels."""
    layers: List[nn.Module] = []
    cuts: List[int] = []
    if net == "vgg":  # VGG16 convolutions; each 2x2 max pool has stride 1 and is followed by the blurred subsampling
        c_in = 3
        for block, (c_out, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
            if block:
                layers += [nn.MaxPool2d(2, stride=1), BlurDownsample(c_in)]
            for _ in range(convs):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
                c_in = c_out
            cuts.append(len(layers))
        channels = [64, 128, 256, 512, 512]
    else:  # AlexNet with a stride-1 first convolution and blurred subsampling after it and after each max pool
        layers = [nn.Conv2d(3, 64, 11, stride=1, padding=2), BlurDownsample(64), nn.ReLU(inplace=True)]
        cuts.append(len(layers))
        layers += [nn.MaxPool2d(3, stride=1), BlurDownsample(64), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(True)]
        cuts.append(len(layers))
        layers += [nn.MaxPool2d(3, stride=1), BlurDownsample(192), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(True)]
        cuts.append(len(layers))
        layers += [nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(True)]
        cuts.append(len(layers))
        layers += [nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True)]
        cuts.append(len(layers))
        channels = [64, 192, 384, 256, 256]
    slices, start = nn.ModuleList(), 0
    for cut in cuts:
        slices.append(nn.Sequential(OrderedDict((str(i), layers[i]) for i in range(start, cut))))
        start = cut
    return slices, channels


def _stlpips_keys(key: str) -> str:
    """The wheel's state-dict key -> this module's (``net.slice1.0.weight`` -> ``slices.0.0.weight``, ...)."""
    if key.startswith("scaling_layer."):
        return key[len("scaling_layer.") :]
    if key.startswith("net.slice"):
        index, rest = key[len("net.slice") :].split(".", 1)
        return f"slices.{int(index) - 1}.{rest}"
    if key.startswith("lin") and ".model.1." in key:
        return f"heads.{key[3:].split('.', 1)[0]}.{key.rsplit('.', 1)[1]}"
    return key


class STLPIPS(nn.Module):
    """ST-LPIPS (shift-tolerant LPIPS v0.1) between images in [0, 1]; weights from the ``stlpips-pytorch`` wheel.

    Inputs are mapped to [-1, 1] and standardised, each trunk slice's features are unit-normalised over channels,
    their squared difference is weighted per channel by a learned 1x1 head and averaged over space (or upsampled to
    the input's size for the spatial map), and the five layers are summed. Inputs smaller than ``min_size`` a side
    are resized first.
    """

    def __init__(self, net: Literal["alex", "vgg"] = "alex", weights: Optional[Path] = None, min_size: int = 64):
        super().__init__()
        path = Path(weights) if weights is not None else stlpips_weights(net)
        if path is None:
            raise FileNotFoundError(
                f"ST-LPIPS: no {STLPIPS_FILES[net]} (install the stlpips-pytorch wheel: pip install stlpips-pytorch)"
            )
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ST-LPIPS weights not found")
        self.net_name = net
        self.min_size = min_size
        self.slices, channels = _stlpips_trunk(net)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        self.register_buffer("shift", torch.zeros(1, 3, 1, 1))
        self.register_buffer("scale", torch.ones(1, 3, 1, 1))
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.load_state_dict({_stlpips_keys(k): v for k, v in state.items()})
        except Exception as err:  # a wrong or damaged file: one line naming it
            raise ValueError(f"{path}: not ST-LPIPS({net}) weights ({str(err).splitlines()[0]})") from None
        self.pretrained = True
        self.description = f"ST-LPIPS({net}) (shift-tolerant LPIPS, weights from {path}); not comparable with LPIPS"
        self.requires_grad_(False)
        self.eval()

    def _layers(self, a: Float[Tensor, "B 3 H W"], b: Float[Tensor, "B 3 H W"]) -> List[Float[Tensor, "B 1 h w"]]:
        """Per layer: the head-weighted squared difference of the unit-normalised features."""
        if min(a.shape[-2:]) < self.min_size:
            size = (max(self.min_size, a.shape[-2]), max(self.min_size, a.shape[-1]))
            a = nn.functional.interpolate(a, size=size, mode="bilinear", align_corners=False)
            b = nn.functional.interpolate(b, size=size, mode="bilinear", align_corners=False)
        x = torch.cat([a, b]) * 2 - 1
        x = (x - self.shift) / self.scale
        out = []
        for layer, head in zip(self.slices, self.heads):
            x = layer(x)
            f = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            fa, fb = f.chunk(2)
            out.append(head((fa - fb) ** 2))
        return out

    def forward(self, a: Float[Tensor, "B 3 H W"], b: Float[Tensor, "B 3 H W"]) -> Float[Tensor, " B"]:
        """ST-LPIPS per image pair."""
        return sum(d.mean((1, 2, 3)) for d in self._layers(a, b))  # type: ignore[return-value]

    def spatial(self, a: Float[Tensor, "B 3 H W"], b: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B H W"]:
        """Spatial ST-LPIPS map: each layer's distance upsampled (bilinear) to the inputs' size, summed."""
        size = a.shape[-2:]
        maps = [
            nn.functional.interpolate(d, size=size, mode="bilinear", align_corners=False) for d in self._layers(a, b)
        ]
        return sum(maps)[:, 0]  # type: ignore[index]


PerceptualNetwork = Literal["auto", "lpips", "st-lpips"]
"""Which perceptual network a loss uses: ``auto`` = LPIPS when its ImageNet backbone is found, else ST-LPIPS."""


def perceptual_plan(
    net: Literal["alex", "vgg"] = "vgg",
    weights: Optional[Path] = None,
    network: PerceptualNetwork = "auto",
    random_backbone: bool = False,
) -> Tuple[Optional[str], str]:
    """What a perceptual loss will use, without building it: ("lpips" | "st-lpips" | None when skipped, one line
    saying why)."""
    backbone = cached_backbone(net, weights) if network != "st-lpips" else None
    if backbone is not None:
        return "lpips", f"LPIPS({net}) with ImageNet backbone from {backbone}"
    missing = f"no ImageNet backbone weights ({BACKBONE_FILES[net]}; give --pipeline.lpips-weights or put it in torch's cache)"
    if network == "lpips":
        if random_backbone:
            return "lpips", f"LPIPS({net}) with a RANDOM backbone ({missing})"
        return None, f"perceptual loss skipped: {missing}; --pipeline.perceptual-network st-lpips uses ST-LPIPS"
    if stlpips_weights(net) is None:
        return None, f"perceptual loss skipped: {missing} and no ST-LPIPS weights (pip install stlpips-pytorch)"
    reason = "asked for" if network == "st-lpips" else missing
    return "st-lpips", f"ST-LPIPS({net}) from the stlpips-pytorch wheel ({reason})"


def build_perceptual(
    net: Literal["alex", "vgg"] = "alex",
    weights: Optional[Path] = None,
    network: PerceptualNetwork = "lpips",
    random_backbone: bool = True,
) -> Tuple[Union[PerceptualLoss, STLPIPS], str]:
    """Build the perceptual module ``perceptual_plan`` chooses and a one-line description of what it is.

    The defaults keep the historical behaviour (LPIPS, random backbone when none is found); a skipped plan raises.
    """
    kind, line = perceptual_plan(net, weights, network, random_backbone)
    if kind is None:
        raise FileNotFoundError(line)
    loss: Union[PerceptualLoss, STLPIPS] = STLPIPS(net) if kind == "st-lpips" else PerceptualLoss(net, weights)
    return loss, loss.description
