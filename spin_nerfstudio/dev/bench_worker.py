"""The ``spin-nerf dev bench`` worker: one method trained for the budget in this process, then its held-out views
rendered and scored (the steps are listed in :mod:`.bench`)."""

from __future__ import annotations

import functools
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List

from spin_nerfstudio.cpu import peak_rss_mb
from spin_nerfstudio.dev.bench_settings import METHODS, BenchSettings


class _NoLPIPS:
    """Stands in for torchmetrics' LPIPS metric while nerfacto is built (its construction downloads AlexNet)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("spin-nerf dev bench: nerfacto's LPIPS metric is disabled in the benchmark (offline)")


def _model_and_optimizers(method: str, settings: BenchSettings):
    """The model config and optimiser config of a method."""
    from nerfstudio.engine.optimizers import AdamOptimizerConfig
    from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig

    if method == "spin":
        from spin_nerfstudio.spin_config import spin_inpaint_small_config

        trainer = spin_inpaint_small_config()
        return trainer.pipeline.model, trainer.optimizers
    if method == "nerfacto-torch":
        from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
        from nerfstudio.models.nerfacto import NerfactoModelConfig

        # nerfstudio 1.1.5's method_configs["nerfacto"] (importing method_configs costs ~10 s of plugin discovery),
        # with the torch implementation and the camera optimiser off.
        model = NerfactoModelConfig(
            eval_num_rays_per_chunk=1 << 15,
            average_init_density=0.01,
            camera_optimizer=CameraOptimizerConfig(mode="off"),
            implementation="torch",
        )

        def group() -> dict:
            return {
                "optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=0.0001, max_steps=200000),
            }

        return model, {"proposal_networks": group(), "fields": group()}
    raise ValueError(f"unknown method '{method}' (expected one of {', '.join(METHODS)})")


def build_pipeline(method: str, scene: Path, settings: BenchSettings):
    """A VanillaPipeline of ``method`` on ``scene`` with every ``eval_interval``-th view held out, and its optimisers."""
    import torch
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
    from nerfstudio.engine.optimizers import Optimizers
    from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

    model_config, optimizer_config = _model_and_optimizers(method, settings)
    config = VanillaPipelineConfig(
        datamanager=VanillaDataManagerConfig(
            data=scene,
            dataparser=NerfstudioDataParserConfig(eval_mode="interval", eval_interval=settings.eval_interval),
            train_num_rays_per_batch=settings.rays,
            eval_num_rays_per_batch=settings.rays,
        ),
        model=model_config,
    )
    torch.manual_seed(settings.seed)
    if method == "spin":
        pipeline = config.setup(device="cpu", test_mode="val", world_size=1, local_rank=0)
    else:
        import torchmetrics.image.lpip as lpip

        original = lpip.LearnedPerceptualImagePatchSimilarity
        lpip.LearnedPerceptualImagePatchSimilarity = _NoLPIPS  # type: ignore[misc,assignment]
        try:
            pipeline = config.setup(device="cpu", test_mode="val", world_size=1, local_rank=0)
        finally:
            lpip.LearnedPerceptualImagePatchSimilarity = original  # type: ignore[misc]
    optimizers = Optimizers(optimizer_config, pipeline.get_param_groups())
    return pipeline, optimizers


def _cpu_tuning_applied() -> bool:
    from spin_nerfstudio import cpu

    return cpu._applied


def _psnr(pred, gt) -> float:
    mse = float(((pred.clamp(0, 1) - gt) ** 2).mean())
    return -10.0 * math.log10(max(mse, 1e-10))


def run_worker(method: str, scene: Path, settings: BenchSettings) -> Dict[str, Any]:
    """Train ``method`` for the budget, render and score the held-out views; returns the measurements."""
    import torch
    from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation

    rss_imports = peak_rss_mb()
    t0 = time.perf_counter()
    pipeline, optimizers = build_pipeline(method, scene, settings)
    setup_s = time.perf_counter() - t0
    model = pipeline.model
    callbacks = pipeline.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=optimizers, grad_scaler=None, pipeline=pipeline, trainer=None)
    )
    pipeline.train()
    step_times: List[float] = []
    step_cpu: List[float] = []
    start = time.perf_counter()
    step = 0
    while time.perf_counter() - start < settings.budget_s or step < settings.warmup_steps + 1:
        s0, c0 = time.perf_counter(), time.process_time()
        for cb in callbacks:
            cb.run_callback_at_location(step, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        optimizers.zero_grad_all()
        _, loss_dict, _ = pipeline.get_train_loss_dict(step=step)
        loss = functools.reduce(torch.add, loss_dict.values())
        loss.backward()
        optimizers.optimizer_step_all()
        optimizers.scheduler_step_all(step)
        for cb in callbacks:
            cb.run_callback_at_location(step, location=TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
        step_times.append(time.perf_counter() - s0)
        step_cpu.append(time.process_time() - c0)
        step += 1
    train_s = time.perf_counter() - start
    final_loss = float(loss)

    pipeline.eval()
    dataset = pipeline.datamanager.eval_dataset
    cameras = dataset.cameras
    count = len(cameras) if settings.max_render_views <= 0 else min(len(cameras), settings.max_render_views)
    render_times, render_cpu, psnrs = [], [], []
    for i in range(count):
        gt = dataset[i]["image"][..., :3].float()
        camera = cameras[i : i + 1].to(model.device)
        r0, c0 = time.perf_counter(), time.process_time()
        outputs = model.get_outputs_for_camera(camera)
        render_times.append(time.perf_counter() - r0)
        render_cpu.append(time.process_time() - c0)
        psnrs.append(_psnr(outputs["rgb"].cpu(), gt))
    head_times: List[float] = []
    if method == "spin" and count > 0:
        # What a finished removal run renders (ns-render, viewer): the object-logit head on as well.
        from spin_nerfstudio.model.names import Stage

        model.set_stage(Stage.SEGMENT)  # type: ignore[attr-defined]
        for _ in range(2):
            r0 = time.perf_counter()
            model.get_outputs_for_camera(cameras[0:1].to(model.device))
            head_times.append(time.perf_counter() - r0)
    timed = step_times[settings.warmup_steps :] or step_times
    return {
        "method": method,
        "steps": step,
        "train_seconds": train_s,
        "setup_seconds": setup_s,
        "step_seconds_median": statistics.median(timed),
        "step_seconds_mean": statistics.fmean(timed),
        "step_seconds_first": step_times[0],
        "step_cpu_seconds_median": statistics.median(step_cpu[settings.warmup_steps :] or step_cpu),
        "final_loss": final_loss,
        "render_seconds_median": statistics.median(render_times),
        "render_seconds_all": render_times,
        "render_cpu_seconds_median": statistics.median(render_cpu),
        "render_seconds_object_head": min(head_times) if head_times else None,
        "render_size": [int(cameras.width[0]), int(cameras.height[0])],
        "render_chunk": int(model.config.eval_num_rays_per_chunk),
        "heldout_views": count,
        "train_views": len(pipeline.datamanager.train_dataset),
        "heldout_psnr": statistics.fmean(psnrs),
        "heldout_psnr_all": psnrs,
        "rss_after_imports_mb": rss_imports,
        "peak_rss_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "keep_freed_memory": _cpu_tuning_applied(),
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
