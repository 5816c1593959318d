"""The spin-inpaint model: a proposal-sampled radiance field with an object-mask head and the removal losses.

The model knows three stages (kept in the ``stage_index`` buffer, so checkpoints carry it):

- ``RECONSTRUCT``: RGB on every pixel;
- ``SEGMENT``: as above, plus binary cross-entropy of the rendered object logit against the initial masks;
- ``INPAINT``: RGB only outside the removal mask, a depth loss inside it against the inpainted depth, the
  reference view's inpainted colour inside it (colour only), and the mask head kept on the final masks.

The perceptual (LPIPS) patch loss needs whole patches, so the pipeline adds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.fields.density_fields import HashMLPDensityField
from nerfstudio.model_components.losses import distortion_loss, interlevel_loss
from nerfstudio.model_components.ray_samplers import ProposalNetworkSampler
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, RGBRenderer
from nerfstudio.model_components.scene_colliders import NearFarCollider
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor
from torch.nn import Parameter

from spin_nerfstudio.model.backend import select_implementation
from spin_nerfstudio.model.field import OBJECT_LOGIT, BoxContraction, PlaneDensityField, SpinField
from spin_nerfstudio.model.names import (
    DEPTH_AGREED,
    INITIAL_MASK,
    INITIAL_MASK_WEIGHT,
    INPAINTED_DEPTH,
    INPAINTED_RGB,
    OBJECT_MASK,
    OBJECT_OVERLAY,
    OVERLAY_OPACITY,
    OVERLAY_TINT,
    REFERENCE_VIEW,
    REMOVAL_MASK,
    RGB_FOR_UPDATES,
    SEEN_MASK,
    SEEN_RGB,
    SPARSE_DEPTH,
    Stage,
)


@dataclass
class SpinModelConfig(ModelConfig):
    """Configuration of the spin-inpaint model."""

    _target: Type = field(default_factory=lambda: SpinModel)
    near_plane: float = 0.05
    """Distance along each ray where sampling starts."""
    near_from_bounds: float = 0.8
    """When the dataparser gives the capture's depth bounds (``metadata["near"]``, e.g. ``spin-llff``'s nearest
    bound over all views, in scene units), sampling starts at this share of it if that is beyond ``near_plane``:
    nothing was observed nearer, and density there is a floater in front of the cameras. 0 keeps ``near_plane``."""
    far_plane: float = 1000.0
    """Distance along each ray where sampling stops (the scene is contracted beyond the unit box)."""
    background_color: Literal["random", "last_sample", "black", "white"] = "last_sample"
    """Colour behind the last sample."""
    encoding: Literal["auto", "planes", "hash"] = "auto"
    """Spatial encoding: tri-planes (fast on CPU), hash grid (nerfacto's), or auto: hash on CUDA, planes elsewhere."""
    implementation: Literal["auto", "tcnn", "torch"] = "auto"
    """MLP/encoding backend: auto takes tinycudann when it imports and the device is CUDA."""
    plane_resolutions: Tuple[int, ...] = (64, 128)
    """Resolutions of the tri-plane levels."""
    plane_components: int = 16
    """Feature channels per tri-plane level."""
    hidden_dim: int = 64
    """Width of the density and colour MLPs."""
    num_proposal_samples_per_ray: Tuple[int, ...] = (64,)
    """Samples per ray of each proposal round."""
    num_nerf_samples_per_ray: int = 32
    """Samples per ray evaluated by the main field."""
    proposal_resolution: int = 64
    """Tri-plane resolution of the proposal density field (planes encoding)."""
    proposal_update_every: int = 5
    """Steps between proposal updates after warm-up."""
    proposal_warmup: int = 500
    """Steps over which proposal updates go from every step to every proposal_update_every steps."""
    use_single_jitter: bool = True
    """One jitter per ray for the stratified samples."""
    interlevel_loss_mult: float = 1.0
    """Weight of the proposal (interlevel) loss."""
    distortion_loss_mult: float = 0.002
    """Weight of the distortion loss."""
    mask_loss_mult: float = 0.01
    """Weight of the object-mask binary cross-entropy (SPIn-NeRF uses 0.01)."""
    depth_loss_mult: float = 0.1
    """Weight of the depth loss inside the removal mask, in the inpainting stage (SPIn-NeRF: 1; the 2D-inpainted
    depth of the generated scenes is about 9% off the truth in the median, and at full weight it bent surfaces)."""
    reference_loss_mult: float = 0.1
    """Weight of the MSE to the reference view's inpainted colour on the masked pixels no view saw (colour only;
    SPIn-NeRF: 1). Lower, because a 2D fill is a guess and the field's colours are shared across the scene. The
    pipeline can hold it back for part of the fit and then blend the field's render into that target
    (``--pipeline.field-prior-fraction``, off by default)."""
    depth_loss_space: Literal["disparity", "distance"] = "disparity"
    """Where the depth loss compares render and target: disparity (1 / ray distance, as SPIn-NeRF; stays bounded
    where the reconstruction put far-away floaters) or ray distance."""
    depth_loss_tolerance: float = 0.15
    """Relative slack of the depth loss: only the part of the gap beyond this share of the target counts (0: plain
    L2, as SPIn-NeRF; in disparity space a share of the target disparity). The 2D-inpainted depth is a smooth guess;
    a slack keeps it from bending a surface the other views already fix, while still removing floaters and remnants
    of the object."""
    depth_loss_sides: Literal["both", "nearer", "seen", "agreed"] = "agreed"
    """Which gaps the depth loss counts: "agreed", both on the pixels whose depth other views saw and where the
    prior agrees with the other views' priors in 3D (``depth_agreement_*``, inpainting/depth_agreement.py), and
    only a render nearer than the target on the rest; "both" (SPIn-NeRF) everywhere; "nearer" (a remnant of the
    object or a floater in front of the filled background) everywhere, so a render farther than a 2D fill's guess
    is left to the other views; "seen", both on the seen pixels (the sweep's depth, see
    ``VisibilityConfig.correct_depth``) and nearer on the rest. Held-out PSNR outside the mask after removal,
    agreed / both, mean over seeds: fox -0.02 / -0.64 dB (3 seeds), juicebox -0.02 / -0.07 (2), buddha +0.33 /
    +0.12 (1); docs/segmentation-real-captures.md."""
    depth_agreement_tolerance: float = 0.1
    """With ``depth_loss_sides`` "agreed": relative slack within which another view's depth prior agrees with a
    pixel's lifted prior."""
    depth_agreement_min: float = 0.5
    """With ``depth_loss_sides`` "agreed": share of the compared views that must agree for the two-sided loss."""
    depth_loss_updates: Literal["geometry", "both"] = "both"
    """What the depth loss may change: the geometry only (colour detached) or both; depth depends only on geometry."""
    reference_loss_updates: Literal["colour", "geometry", "both"] = "colour"
    """What the reference view's colour loss may change (SPIn-NeRF: colour only, volume weights detached)."""
    seen_loss_mult: float = 0.1
    """Weight of the colour loss on seen-elsewhere pixels (1: the per-pixel weight of an ordinary observation). The
    views that saw them already supervise those surfaces; the seen colours are resampled (blurred) copies, so they
    only nudge."""
    seen_loss_updates: Literal["colour", "geometry", "both"] = "both"
    """What the seen-elsewhere colour loss may change (both: it is an observation of the background)."""
    target_loss_mult: float = 0.0
    """Weight of an MSE to every view's colour target on the masked pixels no view saw (0: SPIn-NeRF, which fits
    only the reference view's; its "NeRF + LaMa" baseline fits all of them)."""
    target_loss_updates: Literal["colour", "geometry", "both"] = "colour"
    """What that all-view target loss may change."""
    sparse_depth_loss_mult: float = 0.0
    """Weight of the depth loss at the pixels whose depth was triangulated from SIFT matches with the poses
    (data/sparse_depth.py), in every stage (in the inpainted fit only outside the removal mask). A field fitted to
    colour alone can render the right images from the wrong geometry, and every stage that lifts pixels to 3D
    inherits it. 0 (the default) turns it off and skips the matching. On the fox capture (44 training views, 900
    steps) 0.005 raised the depth agreement between neighbouring views from 65.4% to 79.2% within 5% with held-out
    PSNR unchanged (24.73 / 24.67 dB); 0.05 cost 2.9 dB of held-out PSNR (docs/geometry.md)."""
    sparse_depth_tolerance: float = 0.05
    """Relative slack of that loss: only the part of the log-depth gap beyond this counts (triangulations of
    low-resolution images are a few percent off)."""
    mask_threshold: float = 0.5
    """Probability above which a rendered pixel belongs to the object."""
    keep_freed_memory: bool = True
    """On a CPU, let glibc keep freed memory for reuse instead of re-faulting every large tensor's pages (mallopt)."""


def sparse_depth_gap(
    depth: Float[Tensor, "rays 1"],
    target: Float[Tensor, "rays 1"],
    keep: Optional[Float[Tensor, "rays 1"]] = None,
    tolerance: float = 0.05,
) -> Float[Tensor, ""]:
    """Mean over the rays with a target (> 0, and ``keep`` where given) of the log-depth gap beyond ``tolerance``
    (an L1: a triangulation that went wrong pulls no harder than one that is a little off); 0 without such rays."""
    valid = (target > 0).float() if keep is None else (target > 0).float() * keep
    safe = torch.where(valid > 0, target, depth.detach()).clamp(min=1e-4)
    gap = F.relu((torch.log(depth.clamp(min=1e-4)) - torch.log(safe)).abs() - tolerance)
    return (gap * valid).sum() / valid.sum().clamp(min=1.0)


class SpinModel(Model):
    """Radiance field with an object-mask head, trained in the stages of :class:`Stage`."""

    config: SpinModelConfig

    def populate_modules(self) -> None:
        """Build the field, the proposal sampler and the renderers."""
        super().populate_modules()
        device = str(self.kwargs.get("device", "cpu"))
        if self.config.keep_freed_memory and not device.startswith("cuda"):
            from spin_nerfstudio.cpu import keep_freed_memory

            keep_freed_memory()
        self.implementation = select_implementation(self.config.implementation, device)
        encoding = self.config.encoding
        if encoding == "auto":
            encoding = "hash" if self.implementation == "tcnn" else "planes"
        self.encoding_kind = encoding
        CONSOLE.print(
            f"spin-nerfstudio: field encoding '{encoding}', implementation '{self.implementation}' on device '{device}', "
            f"near plane {self.near_plane():.3g}"
        )
        contraction = BoxContraction()
        aabb = self.scene_box.aabb
        self.field = SpinField(
            aabb,
            encoding=encoding,
            implementation=self.implementation,
            spatial_distortion=contraction,
            plane_resolutions=self.config.plane_resolutions,
            plane_components=self.config.plane_components,
            hidden_dim=self.config.hidden_dim,
        )
        self.proposal_networks = torch.nn.ModuleList()
        for _ in self.config.num_proposal_samples_per_ray:
            if encoding == "planes":
                net = PlaneDensityField(aabb, contraction, resolution=self.config.proposal_resolution)
            else:
                net = HashMLPDensityField(
                    aabb, spatial_distortion=contraction, num_levels=5, max_res=256, log2_hashmap_size=17,
                    hidden_dim=16, use_linear=False, implementation=self.implementation,
                )  # fmt: skip
            self.proposal_networks.append(net)
        self.density_fns = [net.density_fn for net in self.proposal_networks]
        self._fresh_state = {k: v.detach().clone() for k, v in self.state_dict().items()}

        warmup, every = self.config.proposal_warmup, self.config.proposal_update_every

        def update_schedule(step: int) -> float:
            return float(np.clip(np.interp(step, [0, warmup], [0, every]), 1, every))

        self.proposal_sampler = ProposalNetworkSampler(
            num_nerf_samples_per_ray=self.config.num_nerf_samples_per_ray,
            num_proposal_samples_per_ray=self.config.num_proposal_samples_per_ray,
            num_proposal_network_iterations=len(self.config.num_proposal_samples_per_ray),
            single_jitter=self.config.use_single_jitter,
            update_sched=update_schedule,
        )
        self.collider = NearFarCollider(near_plane=self.near_plane(), far_plane=self.config.far_plane)
        self.renderer_rgb = RGBRenderer(background_color=self.config.background_color)
        self.renderer_accumulation = AccumulationRenderer()
        self.renderer_depth = DepthRenderer(method="expected")
        self.register_buffer("stage_index", torch.tensor(int(Stage.RECONSTRUCT)))

    def near_plane(self) -> float:
        """Where sampling starts: ``near_plane``, or ``near_from_bounds`` x the capture's near bound if beyond."""
        bound = (self.kwargs.get("metadata") or {}).get("near")
        near = float(self.config.near_plane)
        if self.config.near_from_bounds > 0 and isinstance(bound, (int, float)) and np.isfinite(bound) and bound > 0:
            near = max(near, self.config.near_from_bounds * float(bound))
        return near

    @property
    def stage(self) -> Stage:
        """The current training stage."""
        return Stage(int(self.stage_index.item()))

    def set_stage(self, stage: Stage) -> None:
        """Move to another stage."""
        self.stage_index.fill_(int(stage))

    def reset_scene(self) -> None:
        """Re-initialise the field and proposal networks (the inpainting fit starts from scratch, as SPIn-NeRF's)."""
        own = self.state_dict()
        with torch.no_grad():
            for key, fresh in self._fresh_state.items():
                if key in own and key != "stage_index" and own[key].shape == fresh.shape:
                    own[key].copy_(fresh.to(own[key].device))

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        """Proposal networks and field have separate optimisers."""
        return {
            "proposal_networks": list(self.proposal_networks.parameters()),
            "fields": list(self.field.parameters()),
        }

    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> List:
        """Advance the proposal sampler's update schedule."""
        return [
            TrainingCallback(
                where_to_run=[TrainingCallbackLocation.AFTER_TRAIN_ITERATION],
                update_every_num_iters=1,
                func=self.proposal_sampler.step_cb,
            )
        ]

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, torch.Tensor]:
        """Render colour, depth, accumulation and the object mask for a bundle of rays.

        Renders before segmentation (RECONSTRUCT, not training) skip the object-logit head, ~30% of a CPU render:
        the object mask is zero there (nothing is segmented yet). Training evaluates it in every stage, as before.
        """
        self.field.object_logit_enabled = self.training or self.stage != Stage.RECONSTRUCT
        ray_samples, weights_list, ray_samples_list = self.proposal_sampler(ray_bundle, density_fns=self.density_fns)
        field_outputs = self.field.forward(ray_samples)
        weights = ray_samples.get_weights(field_outputs[FieldHeadNames.DENSITY])
        weights_list.append(weights)
        ray_samples_list.append(ray_samples)
        rgb = self.renderer_rgb(rgb=field_outputs[FieldHeadNames.RGB], weights=weights)
        depth = self.renderer_depth(weights=weights, ray_samples=ray_samples)
        accumulation = self.renderer_accumulation(weights=weights)
        outputs = {"rgb": rgb, "depth": depth, "accumulation": accumulation}
        if OBJECT_LOGIT in field_outputs:
            logit = torch.sum(weights.detach() * field_outputs[OBJECT_LOGIT], dim=-2)
            outputs["object_mask"] = torch.sigmoid(logit)
            if self.training:
                outputs["object_logit"] = logit
        else:
            outputs["object_mask"] = torch.zeros_like(accumulation)
        if not self.training:
            shown = outputs["object_mask"] * (OVERLAY_OPACITY if self.stage != Stage.RECONSTRUCT else 0.0)
            tint = torch.tensor(OVERLAY_TINT, dtype=rgb.dtype, device=rgb.device)
            outputs[OBJECT_OVERLAY] = rgb * (1.0 - shown) + tint * shown
        if self.training:
            outputs["rgb_colour_only"] = self.renderer_rgb(
                rgb=field_outputs[FieldHeadNames.RGB], weights=weights.detach()
            )
            outputs["rgb_geometry_only"] = self.renderer_rgb(
                rgb=field_outputs[FieldHeadNames.RGB].detach(), weights=weights
            )
            outputs["weights_list"] = weights_list
            outputs["ray_samples_list"] = ray_samples_list
        return outputs

    def get_metrics_dict(self, outputs: Dict, batch: Dict) -> Dict[str, torch.Tensor]:
        """PSNR on the batch (outside the removal mask once it exists) and the distortion term."""
        gt = batch["image"][..., :3].to(self.device)
        err = (outputs["rgb"] - gt) ** 2
        if REMOVAL_MASK in batch and self.stage == Stage.INPAINT:
            keep = 1.0 - batch[REMOVAL_MASK].to(self.device)
            mse = (err * keep).sum() / (keep.sum() * 3).clamp(min=1.0)
        else:
            mse = err.mean()
        metrics = {"psnr": -10.0 * torch.log10(mse.clamp(min=1e-10))}
        if self.training:
            metrics["distortion"] = distortion_loss(outputs["weights_list"], outputs["ray_samples_list"])
        return metrics

    def get_loss_dict(self, outputs: Dict, batch: Dict, metrics_dict: Dict | None = None) -> Dict[str, torch.Tensor]:
        """The losses of the current stage."""
        gt = batch["image"][..., :3].to(self.device)
        stage = self.stage
        losses: Dict[str, torch.Tensor] = {}
        if stage == Stage.INPAINT and REMOVAL_MASK in batch:
            m = batch[REMOVAL_MASK].to(self.device)
            keep = 1.0 - m
            seen = batch[SEEN_MASK].to(self.device) * m if SEEN_MASK in batch else torch.zeros_like(m)
            # Seen-elsewhere pixels count as observations: one mean over the observed and the seen pixels.
            count = ((keep.sum() + seen.sum()) * 3).clamp(min=1.0)
            losses["rgb_loss"] = (((outputs["rgb"] - gt) ** 2) * keep).sum() / count
            if SEEN_MASK in batch and self.config.seen_loss_mult > 0:
                pred = outputs[RGB_FOR_UPDATES[self.config.seen_loss_updates]]
                diff = (pred - batch[SEEN_RGB].to(self.device)) ** 2
                losses["seen_loss"] = self.config.seen_loss_mult * (diff * seen).sum() / count
            depth = outputs["depth"]
            target = batch[INPAINTED_DEPTH].to(self.device)
            # A non-positive depth means "no prior here". A NaN or infinite prior is corrupt input (the inpainters
            # never write one): it is left to reach the loss so the divergence guard stops the run and names it.
            valid = m * ((target > 0) | ~torch.isfinite(target)).float()
            target = torch.where(valid > 0, target, depth.detach())
            if self.config.depth_loss_space == "disparity":
                depth, target = 1.0 / depth.clamp(min=1e-3), 1.0 / target.clamp(min=1e-3)
            gap = depth - target
            sides = self.config.depth_loss_sides
            if sides != "both":  # nearer: a larger disparity, a smaller distance
                nearer = F.relu(gap) if self.config.depth_loss_space == "disparity" else -F.relu(-gap)
                if sides == "nearer":
                    gap = nearer
                else:
                    trusted = seen > 0
                    if sides == "agreed" and DEPTH_AGREED in batch:
                        trusted = trusted | (batch[DEPTH_AGREED].to(self.device) > 0)
                    gap = torch.where(trusted, gap, nearer)
            if self.config.depth_loss_tolerance > 0:
                gap = F.relu(gap.abs() - self.config.depth_loss_tolerance * target.abs())
            losses["depth_loss"] = self.config.depth_loss_mult * (gap**2 * valid).sum() / valid.sum().clamp(min=1.0)
            if self.config.target_loss_mult > 0:
                unseen = m * (1.0 - seen)
                pred = outputs[RGB_FOR_UPDATES[self.config.target_loss_updates]]
                diff = (pred - batch[INPAINTED_RGB].to(self.device)) ** 2
                losses["target_loss"] = (
                    self.config.target_loss_mult * (diff * unseen).sum() / (unseen.sum() * 3).clamp(min=1.0)
                )
            ref = m * (1.0 - seen) * batch[REFERENCE_VIEW].to(self.device)
            if self.config.reference_loss_mult > 0:
                pred = outputs[RGB_FOR_UPDATES[self.config.reference_loss_updates]]
                diff = (pred - batch[INPAINTED_RGB].to(self.device)) ** 2
                losses["reference_loss"] = (
                    self.config.reference_loss_mult * (diff * ref).sum() / (ref.sum() * 3).clamp(min=1.0)
                )
            if OBJECT_MASK in batch:
                losses["mask_loss"] = self.config.mask_loss_mult * F.binary_cross_entropy_with_logits(
                    outputs["object_logit"], batch[OBJECT_MASK].to(self.device)
                )
        else:
            losses["rgb_loss"] = F.mse_loss(outputs["rgb"], gt)
            if stage == Stage.SEGMENT and INITIAL_MASK in batch:
                w = batch[INITIAL_MASK_WEIGHT].to(self.device)
                bce = F.binary_cross_entropy_with_logits(
                    outputs["object_logit"], batch[INITIAL_MASK].to(self.device), reduction="none"
                )
                losses["mask_loss"] = self.config.mask_loss_mult * (bce * w).sum() / w.sum().clamp(min=1.0)
        if SPARSE_DEPTH in batch and self.config.sparse_depth_loss_mult > 0:
            losses["sparse_depth_loss"] = self._sparse_depth_loss(outputs["depth"], batch, stage)
        if self.training:
            losses["interlevel_loss"] = self.config.interlevel_loss_mult * interlevel_loss(
                outputs["weights_list"], outputs["ray_samples_list"]
            )
            assert metrics_dict is not None
            losses["distortion_loss"] = self.config.distortion_loss_mult * metrics_dict["distortion"]
        return losses

    def _sparse_depth_loss(self, depth: torch.Tensor, batch: Dict, stage: Stage) -> torch.Tensor:
        """The sparse depth loss on the batch (outside the removal mask in the inpainted fit: the triangulated
        points there may lie on the removed object)."""
        keep = None
        if stage == Stage.INPAINT and REMOVAL_MASK in batch:
            keep = 1.0 - batch[REMOVAL_MASK].to(self.device)
        gap = sparse_depth_gap(depth, batch[SPARSE_DEPTH].to(self.device), keep, self.config.sparse_depth_tolerance)
        return self.config.sparse_depth_loss_mult * gap

    def get_image_metrics_and_images(
        self, outputs: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, torch.Tensor]]:
        """PSNR/SSIM of a full view and images for the logs (no LPIPS: it would need downloaded weights)."""
        from torchmetrics.functional import structural_similarity_index_measure

        gt = batch["image"][..., :3].to(self.device)
        pred = outputs["rgb"]
        mse = F.mse_loss(pred, gt)
        a = torch.moveaxis(gt, -1, 0)[None]
        b = torch.moveaxis(pred, -1, 0)[None]
        metrics = {
            "psnr": float(-10.0 * torch.log10(mse.clamp(min=1e-10))),
            "ssim": float(structural_similarity_index_measure(b, a, data_range=1.0)),  # type: ignore[arg-type]
        }
        depth = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
        images = {
            "img": torch.cat([gt, pred], dim=1),
            "depth": depth,
            "object_mask": outputs["object_mask"].repeat(1, 1, 3),
        }
        return metrics, images
