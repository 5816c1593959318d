"""The removal pipeline: reconstruct, segment, inpaint in 2D, fit the inpainted scene — in one ``ns-train`` run.

Stage boundaries are training steps. At each boundary the pipeline renders what the next stage needs, writes it
into the run folder (so a person can look at it and a resumed run reuses it) and attaches it to the training views
in the datamanager:

1. ``reconstruct`` (steps ``[0, reconstruct_steps)``): RGB on every pixel.
2. ``segment`` (``mask_steps`` steps): clicks → 3D points → initial masks in every view → the mask head is fitted
   to them; its thresholded render gives the final masks (``masks/``) and, dilated, the removal masks.
3. ``inpaint``: every view's colour and rendered depth is inpainted in 2D inside the removal mask; the field is
   re-initialised and fitted with MSE outside the mask, depth inside it, LPIPS patches inside it, and the reference
   view's inpainted colour.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import torch
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import track

from spin_nerfstudio.data.datamanager import SpinDataManager, SpinDataManagerConfig
from spin_nerfstudio.data.masks import load_mask_dir
from spin_nerfstudio.inpainting.base import InpainterConfig
from spin_nerfstudio.model.spin_model import (
    INITIAL_MASK,
    INITIAL_MASK_WEIGHT,
    INPAINTED_DEPTH,
    INPAINTED_RGB,
    OBJECT_MASK,
    REFERENCE_VIEW,
    REMOVAL_MASK,
    SpinModel,
    SpinModelConfig,
    Stage,
)
from spin_nerfstudio.prompts import PromptSet, SpinInputError, load_prompts, match_to_dataset
from spin_nerfstudio.render import render_views
from spin_nerfstudio.segmentation.base import SegmenterConfig
from spin_nerfstudio.segmentation.propagate import PinholeView, dilate, lift, splat_mask, visible_projection
from spin_nerfstudio.stage_io import load_views, save_views, write_json
from spin_nerfstudio.viewer.panel import RemovalPanel, RemovalPanelConfig

# Folders of the run directory, one per stage output.
DEPTH_DIR = "depth"
RENDERS_BEFORE_DIR = "renders_before"
INITIAL_MASK_DIR = "initial_masks"
MASK_DIR = "masks"
REMOVAL_MASK_DIR = "masks_dilated"
INPAINTED_DIR = "inpainted"
INPAINTED_DEPTH_DIR = "inpainted_depth"
PROMPT_FILE = "prompts.json"
STAGES_FILE = "stages.json"


def fail(message: str) -> None:
    """Stop the run with a one-line message (no traceback)."""
    CONSOLE.print(f"[bold red]spin-nerfstudio: {message}")
    raise SystemExit(f"spin-nerfstudio: {message}")


@dataclass
class SpinPipelineConfig(VanillaPipelineConfig):
    """Configuration of the removal pipeline."""

    _target: Type = field(default_factory=lambda: SpinPipeline)
    datamanager: SpinDataManagerConfig = field(
        default_factory=lambda: SpinDataManagerConfig(dataparser=NerfstudioDataParserConfig(eval_mode="all"))
    )
    """Datamanager; every view is a training view (the removal must hold in all of them)."""
    model: SpinModelConfig = field(default_factory=SpinModelConfig)
    """The model."""
    prompt_file: Optional[Path] = None
    """JSON file of clicks on the object ({"prompts": [{"image", "positive", "negative"}]}, pixels as stored)."""
    mask_dir: Optional[Path] = None
    """Folder of ready-made object masks named like the images (white = object); skips segmentation."""
    reconstruct_steps: int = 2000
    """Steps of the reconstruction stage (RGB on all pixels) before segmenting."""
    mask_steps: int = 500
    """Steps fitting the mask head to the initial masks."""
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    """2D segmenter for the initial masks."""
    inpainter: InpainterConfig = field(default_factory=InpainterConfig)
    """2D inpainter for colour and depth."""
    visibility_tolerance: float = 0.05
    """Relative depth slack when deciding whether a projected point is visible in another view."""
    dilate_kernel: int = 5
    """Side of the square dilation kernel applied to the final masks before inpainting (SPIn-NeRF: 5)."""
    dilate_iterations: Optional[int] = None
    """Dilation iterations; None scales SPIn-NeRF's 5 iterations at 1008 px to this image width (at least 1)."""
    reference_image: Optional[str] = None
    """Image whose inpainted colour is fitted directly inside the mask; None takes the first clicked image."""
    lpips_net: Literal["alex", "vgg"] = "alex"
    """Backbone of the perceptual loss (SPIn-NeRF uses vgg; alex is cheaper on a CPU)."""
    lpips_weights: Optional[Path] = None
    """Backbone weights file (torchvision format); None looks in torch's cache, else uses a random backbone."""
    lpips_loss_mult: float = 0.01
    """Weight of the mean LPIPS over patches (SPIn-NeRF: 0.01)."""
    lpips_views_per_step: int = 4
    """Views that contribute one patch each per LPIPS step (SPIn-NeRF: 4)."""
    lpips_patch_size: int = 32
    """Side of each rendered patch in pixels."""
    lpips_start_step: int = 300
    """Steps into the inpainting stage before the LPIPS loss starts (SPIn-NeRF: 300)."""
    lpips_every: int = 1
    """Apply the LPIPS loss every N steps (a CPU saving)."""
    lpips_updates: Literal["colour", "both"] = "colour"
    """What LPIPS may change: colour only (volume weights detached, as SPIn-NeRF) or colour and geometry."""
    viewer_panel: RemovalPanelConfig = field(default_factory=RemovalPanelConfig)
    """The viewer's "Object removal" panel (click-to-remove while training with the viewer on)."""


class SpinPipeline(VanillaPipeline):
    """Runs the removal stages inside nerfstudio's training loop."""

    config: SpinPipelineConfig
    datamanager: SpinDataManager

    def __init__(
        self,
        config: SpinPipelineConfig,
        device: str,
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        grad_scaler=None,
    ) -> None:
        super().__init__(config, device, test_mode, world_size, local_rank, grad_scaler)
        self.prompts: Optional[PromptSet] = None
        self.prompt_views: List[int] = []
        self.given_masks: Optional[List[np.ndarray]] = None
        self.run_dir: Optional[Path] = None
        self.resume_dir: Optional[Path] = None
        self._optimizers = None
        self._perceptual = None
        self._stage_start_step = 0
        self._waiting_note = False
        self._restored = False
        self.stage_times: Dict[str, float] = {}
        if test_mode == "val":
            try:
                self._check_inputs()
            except SpinInputError as err:
                fail(str(err))
        # With a prompt file or mask dir the run removes the object on its own; with viewer clicks it waits for
        # "Remove object". The panel and its control are public attributes so that nerfstudio's viewer finds them.
        self.removal_requested = self.prompts is not None or self.given_masks is not None
        self.object_removal = RemovalPanel(self, config.viewer_panel)
        self.object_removal_control = self.object_removal.control

    @property
    def spin_model(self) -> SpinModel:
        """The model, typed."""
        return self.model  # type: ignore[return-value]

    # ------------------------------------------------------------------ inputs
    def _check_inputs(self) -> None:
        names = self.datamanager.image_names
        sizes = self.datamanager.image_sizes()
        if self.config.prompt_file is not None:
            self.prompts = load_prompts(self.config.prompt_file)
            self.prompt_views = match_to_dataset(self.prompts, names, sizes)
        if self.config.mask_dir is not None:
            self.given_masks = load_mask_dir(self.config.mask_dir, names, sizes)
        if self.config.reference_image is not None and Path(self.config.reference_image).name not in names:
            raise SpinInputError(f"reference_image '{self.config.reference_image}' is not a training image")

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        """Keep the optimisers and the run folder; refuse to start with nothing to remove and no viewer."""
        self._optimizers = training_callback_attributes.optimizers
        trainer = training_callback_attributes.trainer
        if trainer is not None:
            self.run_dir = Path(trainer.base_dir)
            load_dir = trainer.config.load_dir
            if load_dir is not None:
                self.resume_dir = Path(load_dir).parent
            vis = str(trainer.config.vis)
            if self.prompts is None and self.given_masks is None and "viewer" not in vis:
                fail(
                    "nothing to remove: pass --pipeline.prompt-file FILE or --pipeline.mask-dir DIR "
                    f"(or train with the viewer on to click the object; --vis is '{vis}')"
                )
        if self.run_dir is not None and self.prompts is not None:
            self.prompts.save(self.run_dir / PROMPT_FILE)
        callbacks = super().get_training_callbacks(training_callback_attributes)
        return callbacks + [self.object_removal.training_callback()]

    # ------------------------------------------------------------------ training step
    def get_train_loss_dict(self, step: int):
        """One training step of the current stage; moves to the next stage at its boundary."""
        self._advance(step)
        ray_bundle, batch = self.datamanager.next_train(step)
        outputs = self.model(ray_bundle)
        metrics = self.model.get_metrics_dict(outputs, batch)
        losses = self.model.get_loss_dict(outputs, batch, metrics)
        if self._lpips_due(step):
            losses["lpips_loss"] = self._lpips_patch_loss()
        for name, value in losses.items():
            if not torch.isfinite(value).all():
                fail(f"step {step}: loss '{name}' is not finite ({value.item()}); stopping, last checkpoint kept")
        return outputs, losses, metrics

    def _advance(self, step: int) -> None:
        if not self._restored:
            self._restored = True
            self._restore_stage_outputs()
        stage = self.spin_model.stage
        cfg = self.config
        if self.object_removal.pending_segmentation and stage != Stage.INPAINT:  # "Segment" in the viewer
            self.object_removal.run_segmentation(step)
            stage = self.spin_model.stage
        if stage == Stage.RECONSTRUCT and step >= cfg.reconstruct_steps:
            if self.given_masks is not None:
                self._run_timed("render", lambda: self._render_reconstruction())
                self._finish_masks([m.astype(bool) for m in self.given_masks], step)
            elif self.prompts is not None:
                self._run_timed("render", lambda: self._render_reconstruction())
                self._run_timed("initial_masks", lambda: self._initial_masks(step))
            elif not self._waiting_note:
                self._waiting_note = True
                CONSOLE.print("spin-nerfstudio: reconstruction done; waiting for clicks on the object in the viewer")
        elif stage == Stage.SEGMENT and step >= self.mask_fit_end() and self.removal_requested:
            masks = self._run_timed("final_masks", lambda: self._render_final_masks())
            if self.object_removal.accept_final_masks(masks):
                self._finish_masks(masks, step)

    def mask_fit_end(self) -> int:
        """Step at which the mask head fit ends (counted from the viewer's last segmentation, if any)."""
        start = self.object_removal.segment_step
        return (self.config.reconstruct_steps if start is None else start) + self.config.mask_steps

    def _run_timed(self, name: str, fn):
        start = time.time()
        result = fn()
        self.stage_times[name] = self.stage_times.get(name, 0.0) + time.time() - start
        CONSOLE.print(f"spin-nerfstudio: stage '{name}' took {time.time() - start:.1f} s")
        if self.run_dir is not None:
            write_json(self.run_dir / STAGES_FILE, {"seconds": self.stage_times})
        return result

    # ------------------------------------------------------------------ stage: render the reconstruction
    def _render_reconstruction(self) -> None:
        names = self.datamanager.image_names
        cams = self.datamanager.train_dataset.cameras
        out = render_views(self.model, cams, keys=("rgb", "depth", "accumulation"), description="Rendering depth")
        self._depths = [d[..., 0] for d in out["depth"]]
        self._accumulations = [a[..., 0] for a in out["accumulation"]]
        if self.run_dir is not None:
            save_views(self.run_dir / DEPTH_DIR, names, self._depths, kind="npy")
            rgb8 = [(np.clip(r, 0, 1) * 255 + 0.5).astype(np.uint8) for r in out["rgb"]]
            save_views(self.run_dir / RENDERS_BEFORE_DIR, names, rgb8)

    # ------------------------------------------------------------------ stage: initial masks
    def _views(self) -> List[PinholeView]:
        cams = self.datamanager.train_dataset.cameras
        return [PinholeView.from_cameras(cams, i) for i in range(len(cams))]

    def _initial_masks(self, step: int) -> None:
        assert self.prompts is not None
        names = self.datamanager.image_names
        images = self.datamanager.images_uint8()
        views = self._views()
        segmenter = self.config.segmenter.setup()
        # Segment every clicked view, lift its mask to 3D and keep the points.
        points, neg_points = [], []
        ref_masks: Dict[int, np.ndarray] = {}
        for prompt, k in zip(self.prompts.prompts, self.prompt_views):
            depth, acc = self._depths[k], self._accumulations[k]
            pos = np.asarray(prompt.positive, dtype=np.float64).reshape(-1, 2)
            neg = np.asarray(prompt.negative, dtype=np.float64).reshape(-1, 2)
            for x, y in pos:
                if acc[int(y), int(x)] < 0.5 or not np.isfinite(depth[int(y), int(x)]):
                    fail(f"{self.prompts.source}: click ({x:g}, {y:g}) in {prompt.image} lands on no surface")
            mask = segmenter.segment(images[k], pos, neg, depth)
            if not mask.any():
                fail(f"{self.prompts.source}: the clicks in {prompt.image} select no object")
            ref_masks[k] = mask
            ys, xs = np.nonzero(_erode(mask))
            if len(xs) == 0:
                ys, xs = np.nonzero(mask)
            pts, _ = lift(views[k], np.stack([xs, ys], -1), depth)
            points.append(pts)
            if len(neg):
                neg_points.append(lift(views[k], neg, depth)[0])
        cloud = np.concatenate(points, axis=0)
        masks = []
        for j in track(range(len(views)), description="Propagating masks", transient=True):
            if j in ref_masks:
                masks.append(ref_masks[j])
                continue
            xs, ys, _ = visible_projection(views[j], cloud, self._depths[j], self.config.visibility_tolerance)
            prior = splat_mask(xs, ys, views[j].height, views[j].width, close=2)
            masks.append(segmenter.refine(images[j], prior, self._depths[j]) if prior.any() else prior)
        if self.run_dir is not None:
            save_views(self.run_dir / INITIAL_MASK_DIR, names, masks)
        self._attach_initial_masks(masks)
        self.spin_model.set_stage(Stage.SEGMENT)
        self._stage_start_step = step
        counts = sum(int(m.any()) for m in masks)
        CONSOLE.print(f"spin-nerfstudio: initial masks in {counts}/{len(masks)} views; fitting the mask head")

    def _attach_initial_masks(self, masks: List[np.ndarray]) -> None:
        t = torch.from_numpy(np.stack(masks)).float()[..., None]
        self.datamanager.set_view_data(INITIAL_MASK, t)
        self.datamanager.set_view_data(INITIAL_MASK_WEIGHT, torch.ones_like(t))

    # ------------------------------------------------------------------ stage: final masks
    def _render_final_masks(self) -> List[np.ndarray]:
        cams = self.datamanager.train_dataset.cameras
        out = render_views(self.model, cams, keys=("object_mask",), description="Rendering object masks")
        return [m[..., 0] > self.spin_model.config.mask_threshold for m in out["object_mask"]]

    def dilate_iterations(self, width: int) -> int:
        """Dilation iterations for this image width."""
        if self.config.dilate_iterations is not None:
            return self.config.dilate_iterations
        return max(1, int(round(5 * width / 1008)))

    def _finish_masks(self, masks: List[np.ndarray], step: int) -> None:
        names = self.datamanager.image_names
        if not any(m.any() for m in masks):
            fail("the final object mask is empty in every view; nothing to remove (check the clicks)")
        width = masks[0].shape[1]
        iters = self.dilate_iterations(width)
        removal = [dilate(m, self.config.dilate_kernel, iters) for m in masks]
        if self.run_dir is not None:
            save_views(self.run_dir / MASK_DIR, names, masks)
            save_views(self.run_dir / REMOVAL_MASK_DIR, names, removal)
        inpainted, inpainted_depth = self._run_timed("inpaint", lambda: self._inpaint(removal))
        self._attach_inpainting(masks, removal, inpainted, inpainted_depth)
        self._start_inpainted_fit(step)

    # ------------------------------------------------------------------ stage: 2D inpainting
    def _inpaint(self, removal: List[np.ndarray]) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        names = self.datamanager.image_names
        images = self.datamanager.images_uint8()
        inpainter = self.config.inpainter.setup()
        rgb_out, depth_out = [], []
        for k in track(range(len(names)), description="Inpainting views", transient=True):
            rgb_out.append(inpainter.inpaint_rgb(images[k], removal[k]))
            depth = self._depths[k]
            if not np.isfinite(depth).all():
                fail(f"rendered depth of {names[k]} has NaN or infinite values; cannot build a depth prior")
            depth_out.append(inpainter.inpaint_depth(depth, removal[k]))
        if self.run_dir is not None:
            save_views(self.run_dir / INPAINTED_DIR, names, rgb_out)
            save_views(self.run_dir / INPAINTED_DEPTH_DIR, names, depth_out, kind="npy")
        return rgb_out, depth_out

    def reference_index(self) -> int:
        """Index of the view whose inpainted colour is fitted directly."""
        names = self.datamanager.image_names
        if self.config.reference_image is not None:
            return names.index(Path(self.config.reference_image).name)
        if self.prompt_views:
            return self.prompt_views[0]
        return 0

    def _attach_inpainting(self, masks, removal, inpainted, inpainted_depth) -> None:
        dm = self.datamanager
        dm.set_view_data(OBJECT_MASK, torch.from_numpy(np.stack(masks)).float()[..., None])
        dm.set_view_data(REMOVAL_MASK, torch.from_numpy(np.stack(removal)).float()[..., None])
        dm.set_view_data(INPAINTED_RGB, torch.from_numpy(np.stack(inpainted)).float() / 255.0)
        dm.set_view_data(INPAINTED_DEPTH, torch.from_numpy(np.stack(inpainted_depth)).float()[..., None])
        ref = torch.zeros(len(masks), *masks[0].shape, 1)
        ref[self.reference_index()] = 1.0
        dm.set_view_data(REFERENCE_VIEW, ref)
        self._removal_masks = removal

    def _start_inpainted_fit(self, step: int) -> None:
        self.spin_model.reset_scene()
        if self._optimizers is not None:
            for opt in self._optimizers.optimizers.values():
                opt.state.clear()
        self.spin_model.set_stage(Stage.INPAINT)
        self._stage_start_step = step
        CONSOLE.print("spin-nerfstudio: fitting the inpainted scene from scratch")

    # ------------------------------------------------------------------ LPIPS patches
    def _lpips_due(self, step: int) -> bool:
        cfg = self.config
        if self.spin_model.stage != Stage.INPAINT or cfg.lpips_loss_mult <= 0 or cfg.lpips_views_per_step <= 0:
            return False
        since = step - self._stage_start_step
        return since >= cfg.lpips_start_step and since % max(1, cfg.lpips_every) == 0

    def _lpips_patch_loss(self) -> torch.Tensor:
        if self._perceptual is None:
            from spin_nerfstudio.model.perceptual import build_perceptual

            self._perceptual, description = build_perceptual(self.config.lpips_net, self.config.lpips_weights)
            self._perceptual.to(self.device)
            CONSOLE.print(f"spin-nerfstudio: perceptual loss uses {description}")
        batch = self.datamanager.view_batch
        removal = batch[REMOVAL_MASK]
        order = batch["image_idx"].tolist()
        candidates = [i for i in range(len(order)) if removal[i].any()]
        chosen = random.sample(candidates, min(len(candidates), self.config.lpips_views_per_step))
        _, h, w, _ = removal.shape
        p = min(self.config.lpips_patch_size, h, w)
        indices, targets = [], []
        for b in chosen:
            ys, xs = torch.nonzero(removal[b, ..., 0], as_tuple=True)
            y0 = int(np.clip(random.randint(int(ys.min()), int(ys.max())) - p // 2, 0, h - p))
            x0 = int(np.clip(random.randint(int(xs.min()), int(xs.max())) - p // 2, 0, w - p))
            yy, xx = torch.meshgrid(torch.arange(y0, y0 + p), torch.arange(x0, x0 + p), indexing="ij")
            cam = torch.full_like(yy, order[b])
            indices.append(torch.stack([cam, yy, xx], -1).view(-1, 3))
            targets.append(batch[INPAINTED_RGB][b, y0 : y0 + p, x0 : x0 + p])
        ray_bundle = self.datamanager.train_ray_generator(torch.cat(indices).to(self.device))
        outputs = self.model(ray_bundle)
        key = "rgb_colour_only" if self.config.lpips_updates == "colour" else "rgb"
        pred = outputs[key].view(len(chosen), p, p, 3).permute(0, 3, 1, 2)
        target = torch.stack(targets).to(pred).permute(0, 3, 1, 2)
        return self.config.lpips_loss_mult * self._perceptual(pred, target).mean()

    # ------------------------------------------------------------------ resume
    def _restore_stage_outputs(self) -> None:
        """After a resume, reload what the finished stages wrote instead of recomputing it."""
        stage = self.spin_model.stage
        if stage == Stage.RECONSTRUCT:
            return
        names = self.datamanager.image_names
        for folder in [d for d in (self.resume_dir, self.run_dir) if d is not None]:
            depths = load_views(folder / DEPTH_DIR, names)
            if depths is None:
                continue
            self._depths = list(depths)
            if stage == Stage.SEGMENT:
                initial = load_views(folder / INITIAL_MASK_DIR, names)
                if initial is not None:
                    self._attach_initial_masks([m > 0 for m in initial])
                    CONSOLE.print(f"spin-nerfstudio: resumed segmentation with the initial masks in {folder}")
                    return
            else:
                parts = [load_views(folder / d, names) for d in (MASK_DIR, REMOVAL_MASK_DIR, INPAINTED_DIR)]
                parts.append(load_views(folder / INPAINTED_DEPTH_DIR, names))
                if all(p is not None for p in parts):
                    masks, removal, rgb, depth = parts
                    self._attach_inpainting([m > 0 for m in masks], [m > 0 for m in removal], rgb, depth)
                    CONSOLE.print(f"spin-nerfstudio: resumed the inpainted fit with the stage outputs in {folder}")
                    return
        fail(f"cannot resume stage '{stage.name.lower()}': its outputs are missing from the run folder")


def _erode(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
