"""The radiance field with an object-logit head.

Two encodings share one field class:

- ``planes``: multi-resolution tri-planes sampled with ``grid_sample`` (fast on a CPU, the default there);
- ``hash``: nerfacto's multi-resolution hash grid (tinycudann on CUDA, torch elsewhere).

The object logit has its own small tri-plane encoding and MLP, so fitting the mask never changes the geometry or
the colour (SPIn-NeRF shares the trunk and only detaches the volume weights; we detach both).
"""

from __future__ import annotations

from typing import Dict, Literal, Optional, Sequence, Tuple

import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RaySamples
from nerfstudio.field_components.activations import trunc_exp
from nerfstudio.field_components.encodings import HashEncoding, KPlanesEncoding, SHEncoding
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.field_components.mlp import MLP
from nerfstudio.field_components.spatial_distortions import SceneContraction, SpatialDistortion
from nerfstudio.fields.base_field import Field, get_normalized_directions
from torch import Tensor, nn

OBJECT_LOGIT = "object_logit"
"""Key of the per-sample object logit in the field's outputs."""
OBJECT_LOGIT_BOUND = 1.0e4
"""Object logits are clamped to [-1e4, 1e4] in float32. The head runs in float32 even under mixed precision: in
float16 (CUDA autocast) a well-fitted mask's logits, pushed outwards by Adam, overflowed to inf and the mask loss
became NaN (step 4256 of the full ``spin-inpaint`` config on an H200). The clamp only keeps inf out; it is far
beyond any logit that changes a mask (a tight bound such as 15 lets rays of low accumulation, whose rendered logit is
the weighted sum, drift towards 0.5)."""


def bound_logit(raw: Float[Tensor, "*bs 1"]) -> Float[Tensor, "*bs 1"]:
    """The logit in float32, clamped to ``[-OBJECT_LOGIT_BOUND, OBJECT_LOGIT_BOUND]`` (infinities included)."""
    return raw.float().clamp(-OBJECT_LOGIT_BOUND, OBJECT_LOGIT_BOUND)


class TriPlaneEncoding(nn.Module):
    """Tri-planes at several resolutions; the three planes of a level are multiplied, levels are concatenated.

    Inputs are expected in [-1, 1].
    """

    def __init__(self, resolutions: Sequence[int] = (64, 128), num_components: int = 16) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            [
                KPlanesEncoding(resolution=(r, r, r), num_components=num_components, reduce="product")
                for r in resolutions
            ]
        )
        self.out_dim = num_components * len(resolutions)

    def get_out_dim(self) -> int:
        """Number of output features."""
        return self.out_dim

    def forward(self, x: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs features"]:
        """Sample the planes at ``x``."""
        return torch.cat([level(x) for level in self.levels], dim=-1)


class BoxContraction(SceneContraction):
    """nerfstudio's ``SceneContraction(order=inf)``, computed with ``abs().amax()`` and one multiply.

    Same map (identity inside the unit cube, ``(2 - 1/|x|_inf) x / |x|_inf`` outside), but
    ``torch.linalg.norm(ord=inf)`` is about 25x slower than ``abs().amax()`` on a CPU, which made it 15% of a
    rendered view. Gaussian inputs go through nerfstudio's code.
    """

    def __init__(self) -> None:
        super().__init__(order=float("inf"))

    def forward(self, positions):  # type: ignore[override]
        """Contract positions into the cube of side 4 centred on the origin."""
        if not isinstance(positions, Tensor):
            return super().forward(positions)
        mag = positions.abs().amax(dim=-1, keepdim=True).clamp(min=1.0)
        return positions * ((2.0 - 1.0 / mag) / mag)


def normalise_positions(
    positions: Float[Tensor, "*bs 3"], aabb: Float[Tensor, "2 3"], spatial_distortion: Optional[SpatialDistortion]
) -> Tuple[Float[Tensor, "*bs 3"], Float[Tensor, "*bs"]]:
    """Map world positions to [0, 1]^3 (contracted or box-normalised) and flag those inside."""
    if spatial_distortion is not None:
        unit = (spatial_distortion(positions) + 2.0) / 4.0
    else:
        unit = (positions - aabb[0]) / (aabb[1] - aabb[0])
    inside = ((unit > 0.0) & (unit < 1.0)).all(dim=-1)
    return unit, inside


class SpinField(Field):
    """Density, view-dependent colour and an object logit per sample."""

    aabb: Tensor

    def __init__(
        self,
        aabb: Tensor,
        encoding: Literal["planes", "hash"] = "planes",
        implementation: Literal["tcnn", "torch"] = "torch",
        spatial_distortion: Optional[SpatialDistortion] = None,
        plane_resolutions: Sequence[int] = (64, 128),
        plane_components: int = 16,
        hash_levels: int = 16,
        hash_max_res: int = 2048,
        hash_log2_size: int = 19,
        hidden_dim: int = 64,
        geo_feat_dim: int = 15,
        sh_levels: int = 3,
        mask_plane_resolutions: Sequence[int] = (32, 64),
        mask_plane_components: int = 8,
    ) -> None:
        super().__init__()
        self.register_buffer("aabb", aabb)
        self.spatial_distortion = spatial_distortion
        self.encoding_kind = encoding
        self.geo_feat_dim = geo_feat_dim
        if encoding == "planes":
            self.encoding: nn.Module = TriPlaneEncoding(plane_resolutions, plane_components)
            enc_dim = self.encoding.get_out_dim()
        else:
            self.encoding = HashEncoding(
                num_levels=hash_levels,
                max_res=hash_max_res,
                log2_hashmap_size=hash_log2_size,
                implementation=implementation,
            )
            enc_dim = self.encoding.get_out_dim()
        self.mlp_base = MLP(
            in_dim=enc_dim,
            num_layers=2,
            layer_width=hidden_dim,
            out_dim=1 + geo_feat_dim,
            activation=nn.ReLU(),
            out_activation=None,
            implementation=implementation,
        )
        self.direction_encoding = SHEncoding(levels=sh_levels, implementation=implementation)
        self.mlp_head = MLP(
            in_dim=self.direction_encoding.get_out_dim() + geo_feat_dim,
            num_layers=2,
            layer_width=hidden_dim,
            out_dim=3,
            activation=nn.ReLU(),
            out_activation=nn.Sigmoid(),
            implementation=implementation,
        )
        self.mask_encoding = TriPlaneEncoding(mask_plane_resolutions, mask_plane_components)
        self.mask_head = nn.Sequential(nn.Linear(self.mask_encoding.get_out_dim(), 32), nn.ReLU(), nn.Linear(32, 1))
        self.object_logit_enabled = True
        """Whether get_outputs evaluates the object-logit head (the model turns it off in renders before segmentation)."""

    def _encode(self, unit: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs features"]:
        if self.encoding_kind == "planes":
            return self.encoding(unit * 2.0 - 1.0)
        return self.encoding(unit)

    def get_density(self, ray_samples: RaySamples) -> Tuple[Tensor, Tensor]:
        """Density and the geometry features passed to the colour head."""
        positions = ray_samples.frustums.get_positions()
        unit, inside = normalise_positions(positions, self.aabb, self.spatial_distortion)
        self._sample_unit_positions = unit
        flat = unit.view(-1, 3)
        h = self.mlp_base(self._encode(flat)).view(*positions.shape[:-1], -1)
        density_raw, geo = torch.split(h, [1, self.geo_feat_dim], dim=-1)
        density = trunc_exp(density_raw.to(positions) - 1.0) * inside[..., None].to(positions)
        return density, geo

    def get_outputs(self, ray_samples: RaySamples, density_embedding: Optional[Tensor] = None) -> Dict:
        """Colour and (when ``object_logit_enabled``) object logit per sample."""
        assert density_embedding is not None
        directions = get_normalized_directions(ray_samples.frustums.directions)
        outer = directions.shape[:-1]
        d = self.direction_encoding(directions.reshape(-1, 3))
        rgb = self.mlp_head(torch.cat([d, density_embedding.reshape(-1, self.geo_feat_dim)], dim=-1))
        outputs: Dict = {FieldHeadNames.RGB: rgb.view(*outer, 3).to(directions)}
        if self.object_logit_enabled:
            unit = self._sample_unit_positions.detach().reshape(-1, 3).float()
            with torch.autocast(device_type=unit.device.type, enabled=False):  # the small head runs in float32
                logit = bound_logit(self.mask_head(self.mask_encoding(unit * 2.0 - 1.0)))
            outputs[OBJECT_LOGIT] = logit.view(*outer, 1)
        return outputs


class PlaneDensityField(Field):
    """A small density-only field for the proposal sampler (one tri-plane level and a tiny MLP)."""

    aabb: Tensor

    def __init__(
        self,
        aabb: Tensor,
        spatial_distortion: Optional[SpatialDistortion] = None,
        resolution: int = 64,
        num_components: int = 8,
    ) -> None:
        super().__init__()
        self.register_buffer("aabb", aabb)
        self.spatial_distortion = spatial_distortion
        self.encoding = TriPlaneEncoding((resolution,), num_components)
        self.head = nn.Sequential(nn.Linear(num_components, 16), nn.ReLU(), nn.Linear(16, 1))

    def density_at(self, positions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 1"]:
        """Density at world positions."""
        unit, inside = normalise_positions(positions, self.aabb, self.spatial_distortion)
        raw = self.head(self.encoding(unit.view(-1, 3) * 2.0 - 1.0)).view(*positions.shape[:-1], 1)
        return trunc_exp(raw - 1.0) * inside[..., None].to(positions)

    def get_density(self, ray_samples: RaySamples) -> Tuple[Tensor, None]:
        """Density of the samples."""
        return self.density_at(ray_samples.frustums.get_positions()), None

    def get_outputs(self, ray_samples: RaySamples, density_embedding: Optional[Tensor] = None) -> Dict:
        """No outputs besides density."""
        return {}
