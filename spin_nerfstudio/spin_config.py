"""Method registrations: ``spin-inpaint`` (full size) and ``spin-inpaint-small`` (a laptop or CI without a GPU)."""

from __future__ import annotations

import torch
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.plugins.types import MethodSpecification

from spin_nerfstudio import safe_load
from spin_nerfstudio.data.datamanager import SpinDataManagerConfig
from spin_nerfstudio.model.spin_model import SpinModelConfig
from spin_nerfstudio.pipeline import SpinPipelineConfig
from spin_nerfstudio.trainer import SpinTrainerConfig

safe_load.allow_nerfstudio_checkpoints()


def _optimizers(lr: float, max_steps: int) -> dict:
    def group() -> dict:
        return {
            "optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15),
            "scheduler": ExponentialDecaySchedulerConfig(lr_final=lr * 0.1, max_steps=max_steps),
        }

    return {"proposal_networks": group(), "fields": group()}


def default_machine() -> MachineConfig:
    """CUDA when torch sees a GPU, else the CPU (nerfstudio's own default is CUDA, which fails without one);
    ``--machine.device-type`` overrides it."""
    return MachineConfig(device_type="cuda" if torch.cuda.is_available() else "cpu")


def spin_inpaint_config() -> SpinTrainerConfig:
    """SPIn-NeRF's schedule: 2000 reconstruction + 500 mask + 10000 inpainted-fit steps at 4096 rays."""
    steps = 12500
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    return SpinTrainerConfig(
        method_name="spin-inpaint",
        machine=default_machine(),
        steps_per_eval_batch=500,
        steps_per_eval_image=2000,
        steps_per_eval_all_images=1_000_000,
        steps_per_save=2000,
        max_num_iterations=steps,
        mixed_precision=True,
        pipeline=SpinPipelineConfig(
            datamanager=SpinDataManagerConfig(
                dataparser=NerfstudioDataParserConfig(eval_mode="all"),
                train_num_rays_per_batch=4096,
                eval_num_rays_per_batch=4096,
            ),
            model=SpinModelConfig(eval_num_rays_per_chunk=1 << 15),
            reconstruct_steps=2000,
            mask_steps=500,
        ),
        optimizers=_optimizers(1e-2, steps),
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="viewer",
    )


def spin_inpaint_small_config() -> SpinTrainerConfig:
    """CPU-sized defaults: tri-plane field, 1024 rays, short stages, cheap LPIPS patches."""
    steps = 2400
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    return SpinTrainerConfig(
        method_name="spin-inpaint-small",
        machine=default_machine(),
        steps_per_eval_batch=1_000_000,
        steps_per_eval_image=1_000_000,
        steps_per_eval_all_images=1_000_000,
        steps_per_save=500,
        max_num_iterations=steps,
        mixed_precision=False,
        pipeline=SpinPipelineConfig(
            datamanager=SpinDataManagerConfig(
                dataparser=NerfstudioDataParserConfig(eval_mode="all"),
                train_num_rays_per_batch=1024,
                eval_num_rays_per_batch=1024,
                max_image_side=1024,
            ),
            model=SpinModelConfig(
                encoding="auto",
                plane_resolutions=(32, 96),
                plane_components=12,
                num_proposal_samples_per_ray=(48,),
                num_nerf_samples_per_ray=24,
                proposal_resolution=48,
                proposal_warmup=200,
                eval_num_rays_per_chunk=2048,
            ),
            reconstruct_steps=900,
            mask_steps=300,
            lpips_views_per_step=2,
            lpips_patch_size=24,
            lpips_start_step=200,
            lpips_every=2,
        ),
        optimizers=_optimizers(2e-2, steps),
        viewer=ViewerConfig(num_rays_per_chunk=2048),
        vis="viewer",
    )


spin_inpaint = MethodSpecification(
    config=spin_inpaint_config(),
    description="SPIn-NeRF object removal: click an object, get the scene without it (GPU-sized).",
)
spin_inpaint_small = MethodSpecification(
    config=spin_inpaint_small_config(),
    description="spin-inpaint with CPU-sized defaults (tri-plane field, short stages).",
)
