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

Resume (``--load-dir``): each stage boundary first saves a checkpoint and draws a token that the stage's output
folders and all later checkpoints carry (:class:`spin_nerfstudio.stage_io.StageFolder`). A run resumed from one of
those checkpoints reuses every view the same lineage already wrote and computes only the missing ones; mid-stage it
reloads the finished stages' outputs. See :mod:`spin_nerfstudio.trainer`.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import torch
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE
from PIL import Image
from rich.progress import track

from spin_nerfstudio.data.datamanager import SpinDataManager, SpinDataManagerConfig
from spin_nerfstudio.data.masks import load_mask_dir
from spin_nerfstudio.data.spin_layout import dataset_label_masks
from spin_nerfstudio.guard import FiniteGuard
from spin_nerfstudio.inpainting import field_prior as fp
from spin_nerfstudio.inpainting import visibility as vis
from spin_nerfstudio.inpainting.base import InpainterConfig
from spin_nerfstudio.model.spin_model import (
    INITIAL_MASK,
    INITIAL_MASK_WEIGHT,
    INPAINTED_DEPTH,
    INPAINTED_RGB,
    OBJECT_MASK,
    REFERENCE_VIEW,
    REMOVAL_MASK,
    RGB_FOR_UPDATES,
    SEEN_MASK,
    SEEN_RGB,
    SpinModel,
    SpinModelConfig,
    Stage,
)
from spin_nerfstudio.prompts import PromptSet, SpinInputError, load_prompts, match_to_dataset
from spin_nerfstudio.render import render_views
from spin_nerfstudio.segmentation.base import SegmenterConfig
from spin_nerfstudio.segmentation.multiview import (
    agreement_ious,
    agreement_outliers,
    choose_final_mask,
    propagate_prompts,
)
from spin_nerfstudio.segmentation.propagate import PinholeView, dilate
from spin_nerfstudio.stage_io import StageFolder, copy_file, copy_stage_folder, folder_token, load_views, write_json
from spin_nerfstudio.trainer import SpinTrainer
from spin_nerfstudio.validate import check_pipeline_values
from spin_nerfstudio.viewer.access import viewer_exposure_warning
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
AGREEMENT_FILE = "mask_agreement.json"
PROBABILITY_FILE = "mask_probability.npy"
MASK_SHEET = "masks_sheet.png"
RESULT_SHEET = "before_after.png"
STAGE_DIRS = (
    DEPTH_DIR,
    RENDERS_BEFORE_DIR,
    INITIAL_MASK_DIR,
    MASK_DIR,
    REMOVAL_MASK_DIR,
    INPAINTED_DIR,
    INPAINTED_DEPTH_DIR,
    vis.SEEN_DIR,
    vis.TARGETS_DIR,
    vis.DEPTH_DIR,
    fp.PRIOR_DIR,
)
# Stage boundaries (keys of the lineage carried by checkpoints).
RECONSTRUCTED = "reconstructed"
SEGMENTED = "segmented"


def removal_dilate_iterations(fixed: Optional[int], width: int) -> int:
    """Dilation iterations of the removal masks: ``fixed`` if given, else SPIn-NeRF's 5 at 1008 px scaled to
    ``width`` (at least 1)."""
    return int(fixed) if fixed is not None else max(1, int(round(5 * width / 1008)))


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
    """Folder of ready-made object masks named like the images (white = object); skips segmentation. Without it and
    without a prompt file, the masks a SPIn-NeRF-layout dataset brings (``images_4/label/``) are used."""
    reconstruct_steps: int = 2000
    """Steps of the reconstruction stage (RGB on all pixels) before segmenting."""
    mask_steps: int = 500
    """Steps fitting the mask head to the initial masks."""
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    """2D segmenter for the initial masks."""
    inpainter: InpainterConfig = field(default_factory=InpainterConfig)
    """2D inpainter for colour and depth."""
    visibility: vis.VisibilityConfig = field(default_factory=vis.VisibilityConfig)
    """Visibility-aware targets: masked pixels another view saw are supervised with the colour it saw."""
    max_mask_fraction: float = 0.9
    """Stop with a message when a view's removal mask covers more than this share of the image."""
    reuse_stages: Optional[Path] = None
    """Finished run folder on the same data: start the inpainted fit at once from its depth, masks and 2D
    inpainting (no reconstruction or segmentation), e.g. to compare loss settings or train a baseline."""
    visibility_tolerance: float = 0.05
    """Relative depth slack when deciding whether a projected point is visible in another view."""
    mask_keep_initial_iou: float = 0.9
    """Final masks: a view whose initial mask agrees with the mask field's render (IoU at least this) keeps it (the
    field confirms it, and it follows the image's edges more sharply than the render); a view that disagrees takes
    the field's mask, which all views shaped. Above 1, every view takes the field's mask. The field's probabilities
    are written to RUN/mask_probability.npy."""
    mask_outlier_iou: float = 0.5
    """Halfway through the mask steps, views whose initial mask has IoU below this with the mask field's render
    stop contributing to the mask loss (clicked views are always kept; 0 disables the check)."""
    mask_sheet_views: int = 12
    """Views shown in RUN/masks_sheet.png (initial and final masks over the images) when the final masks exist, and
    in RUN/before_after.png (input, NeRF before, removal mask, 2D inpainted target, NeRF after) at the last step."""
    result_sheet: bool = True
    """Render the mask-sheet views with the final field at the last step and write RUN/before_after.png."""
    dilate_kernel: int = 5
    """Side of the square dilation kernel applied to the final masks before inpainting (SPIn-NeRF: 5)."""
    dilate_iterations: Optional[int] = None
    """Dilation iterations; None scales SPIn-NeRF's 5 iterations at 1008 px to this image width (at least 1)."""
    reference_image: Optional[str] = None
    """Image whose inpainted colour is fitted directly inside the mask; None takes the first clicked image."""
    field_prior_fraction: float = 0.0
    """Share of the inpainted fit trained without the reference view's 2D-inpainted colour (the field fills the
    unseen pixels from the other views alone); then the reference view's unseen masked pixels take a blend of the 2D
    fill and the field's render as their target (inpainting/field_prior.py; written to RUN/field_prior/). 0 (the
    default) fits the 2D fill from the start, 1 never fits it; 0.67 is the measured setting. Off by default: over
    twelve generated scenes it gained nothing on average (see README, "The field's fill as a second opinion")."""
    field_prior_weight: float = 0.5
    """Weight of the field's render in that blend (0: the 2D fill only, 1: the render only)."""
    field_prior_max_difference: float = 1.0
    """Unseen pixels where the render and the 2D fill differ by more than this (any channel, colours in [0, 1]) keep
    the 2D fill: there the render more likely shows a remnant of the object than the background. 1 blends all."""
    field_prior_object_colours: bool = True
    """Keep the 2D fill in every region where the render shows the removed object's colours (colour histograms of
    the object's and the background's pixels; inpainting/field_prior.py), so a sliver of the object that the masks
    missed in some views is not blended into the target."""
    field_prior_object_tolerance: float = 0.1
    """How far (any channel, colours in [0, 1]) the render must depart from the 2D fill for a pixel to join an
    object-coloured region that keeps the fill (the remnant's blurred edges)."""
    lpips_net: Literal["alex", "vgg"] = "alex"
    """Backbone of the perceptual loss (SPIn-NeRF uses vgg; alex is cheaper on a CPU)."""
    lpips_weights: Optional[Path] = None
    """Backbone weights file (torchvision format); None looks in torch's cache, else the perceptual loss is skipped
    (see ``lpips_random_backbone``)."""
    lpips_loss_mult: float = 0.01
    """Weight of the mean LPIPS over patches (SPIn-NeRF: 0.01)."""
    lpips_random_backbone: bool = False
    """Apply the perceptual loss even when no ImageNet backbone weights are found. A random backbone is not a
    perceptual measure (on the generated scenes it cost masked PSNR), so by default the loss is then skipped and
    the log says so."""
    lpips_views_per_step: int = 4
    """Views that contribute one patch each per LPIPS step (SPIn-NeRF: 4)."""
    lpips_patch_size: int = 32
    """Side of each rendered patch in pixels."""
    lpips_start_step: int = 300
    """Steps into the inpainting stage before the LPIPS loss starts (SPIn-NeRF: 300)."""
    lpips_every: int = 1
    """Apply the LPIPS loss every N steps (a CPU saving)."""
    lpips_updates: Literal["colour", "geometry", "both"] = "colour"
    """What LPIPS may change: colour only (volume weights detached, as SPIn-NeRF), geometry only, or both."""
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
        try:
            super().__init__(config, device, test_mode, world_size, local_rank, grad_scaler)
        except SpinInputError as err:
            fail(str(err))
        self.prompts: Optional[PromptSet] = None
        self.prompt_views: List[int] = []
        self.given_masks: Optional[List[np.ndarray]] = None
        self.run_dir: Optional[Path] = None
        self.resume_dir: Optional[Path] = None
        self._optimizers = None
        self._perceptual = None
        self._lpips_skipped: Optional[bool] = None
        self._stage_start_step = 0
        self._waiting_note = False
        self._restored = False
        self.stage_times: Dict[str, float] = {}
        self._segmenter_plan: Optional[tuple] = None
        self._agreement_checked = False
        self._mask_outliers: List[int] = []  # views the agreement check dropped from the mask loss
        self._last_step: Optional[int] = None  # the run's last step (set with the training callbacks)
        self._max_steps: Optional[int] = None  # the run's step count (set with the training callbacks)
        self._prior_done = False  # field prior: the reference view's target is blended
        self._reference_weight: Optional[torch.Tensor] = None  # field prior: held back (not None while waiting)
        self._fit_start: Optional[float] = None
        self.lineage: Optional[Dict[str, Dict]] = {}
        """Stage boundaries this training state descends from: name -> {"token", "step"} (None: unknown, an old
        checkpoint without lineage)."""
        self._trainer = None
        self._resumed = False
        self._last_inputs = None
        self.guard = FiniteGuard(attribute=self._attribute_nonfinite_gradient)
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
        check_pipeline_values(self.config)
        names = self.datamanager.image_names
        sizes = getattr(self.datamanager, "disk_sizes", None) or self.datamanager.image_sizes()  # as stored on disk
        if self.config.prompt_file is not None:
            self.prompts = load_prompts(self.config.prompt_file)
            self.prompt_views = match_to_dataset(self.prompts, names, sizes)
            self._segmenter_plan = self.config.segmenter.resolve(str(self.device))
        if self.config.mask_dir is not None:
            masks = load_mask_dir(self.config.mask_dir, names, sizes)
            self.given_masks = [_resize_mask(m, wh) for m, wh in zip(masks, self.datamanager.image_sizes())]
        elif self.prompts is None:  # a SPIn-NeRF-layout dataset brings its own masks (label/)
            masks = dataset_label_masks(self.datamanager.train_dataparser_outputs.metadata, names, sizes)
            if masks is not None:
                self.given_masks = [_resize_mask(m, wh) for m, wh in zip(masks, self.datamanager.image_sizes())]
        if self.config.reference_image is not None and Path(self.config.reference_image).name not in names:
            raise SpinInputError(f"reference_image '{self.config.reference_image}' is not a training image")
        self.config.inpainter.check()
        if self.config.reuse_stages is not None:
            src = Path(self.config.reuse_stages)
            if load_views(src / MASK_DIR, names) is None:
                raise SpinInputError(f"{src}: no complete {MASK_DIR}/ for these images; not a finished run to reuse")

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        """Keep the optimisers and the run folder; refuse to start with nothing to remove and no viewer."""
        self._optimizers = training_callback_attributes.optimizers
        trainer = training_callback_attributes.trainer
        if self._optimizers is not None:
            self.guard.install(self._optimizers.optimizers, self.model.named_parameters())
        if trainer is not None:
            self._trainer = trainer
            self.run_dir = Path(trainer.base_dir)
            self.guard.checkpoint_dir = Path(trainer.checkpoint_dir)
            viewer = getattr(trainer.config, "viewer", None)
            if "viewer" in str(trainer.config.vis) and viewer is not None:
                warning = viewer_exposure_warning(viewer.websocket_host, viewer.websocket_port)
                if warning:
                    CONSOLE.print(f"[yellow]spin-nerfstudio: {warning}")
            load_dir = trainer.config.load_dir
            if load_dir is not None:
                self.resume_dir = Path(load_dir).parent
                if not self._resumed:  # resumed by a trainer that does not carry the lineage: trust complete folders
                    self.lineage = None
            vis = str(trainer.config.vis)
            nothing = self.prompts is None and self.given_masks is None and self.config.reuse_stages is None
            if nothing and "viewer" not in vis:
                fail(
                    "nothing to remove: pass --pipeline.prompt-file FILE or --pipeline.mask-dir DIR "
                    f"(or train with the viewer on to click the object; --vis is '{vis}')"
                )
        if self.run_dir is not None and self.prompts is not None:
            self.prompts.save(self.run_dir / PROMPT_FILE)
        callbacks = super().get_training_callbacks(training_callback_attributes)
        if trainer is not None:
            self._max_steps = int(trainer.config.max_num_iterations)
        if trainer is not None and self.config.result_sheet:
            self._last_step = int(trainer.config.max_num_iterations) - 1
            callbacks.append(
                TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], self._maybe_write_result_sheet)
            )
        return callbacks + [self.object_removal.training_callback()]

    def _maybe_write_result_sheet(self, step: int) -> None:
        """At the last step of a run that fitted the inpainted scene, write RUN/before_after.png."""
        if step != self._last_step or self.spin_model.stage != Stage.INPAINT or self.run_dir is None:
            return
        if step <= self._stage_start_step:
            return  # the inpainted fit has not trained yet (e.g. a run that stops after the masks)
        self._run_timed("result_sheet", lambda: self._write_result_sheet(step))

    def _write_result_sheet(self, step: int) -> None:
        from spin_nerfstudio.evaluation.sheet import contact_sheet, overlay, pick_views, save_sheet

        assert self.run_dir is not None
        names = self.datamanager.image_names
        images = self.datamanager.images_uint8()
        before, removal, inpainted = (
            load_views(self.run_dir / d, names) for d in (RENDERS_BEFORE_DIR, REMOVAL_MASK_DIR, INPAINTED_DIR)
        )
        if removal is None or inpainted is None:
            return
        chosen = pick_views(len(names), max(1, self.config.mask_sheet_views))
        cams = self.datamanager.train_dataset.cameras
        after = render_views(self.model, cams, indices=chosen, keys=("rgb",), description="Rendering the result")
        blank = np.full_like(images[0], 255)
        rows = [
            [images[k], before[k] if before is not None else blank, overlay(images[k], removal[k] > 0),
             inpainted[k], after["rgb"][j]]
            for j, k in enumerate(chosen)
        ]  # fmt: skip
        sheet = contact_sheet(
            rows, ["input", "NeRF before", "removal mask", "2D inpainted", f"NeRF after (step {step})"],
            [Path(names[k]).stem for k in chosen], scale=max(1, int(np.ceil(160 / images[0].shape[1]))),
            title=f"{len(chosen)} of {len(names)} views before and after removal",
        )  # fmt: skip
        path = save_sheet(sheet, self.run_dir / RESULT_SHEET)
        CONSOLE.print(f"spin-nerfstudio: before and after removal: {path}", soft_wrap=True)

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
        self._last_inputs = (ray_bundle, batch, list(losses))
        self.guard.check_losses(step, losses)
        return outputs, losses, metrics

    def _attribute_nonfinite_gradient(self) -> Optional[str]:
        """Re-run the last step one loss term at a time; the first term whose gradient is not finite."""
        if self._last_inputs is None:
            return None
        ray_bundle, batch, names = self._last_inputs
        params = [p for p in self.model.parameters() if p.requires_grad]
        for name in names:
            self.model.zero_grad(set_to_none=True)
            if name == "lpips_loss":
                loss = self._lpips_patch_loss()
            else:
                outputs = self.model(ray_bundle)
                metrics = self.model.get_metrics_dict(outputs, batch)
                loss = self.model.get_loss_dict(outputs, batch, metrics)[name]
            if not loss.requires_grad:
                continue
            loss.backward()
            if any(p.grad is not None and not bool(torch.isfinite(p.grad).all()) for p in params):
                return name
        return None

    def _advance(self, step: int) -> None:
        if not self._restored:
            self._restored = True
            self._fit_start = time.time()
            if self.spin_model.stage == Stage.RECONSTRUCT and self.config.reuse_stages is not None:
                self._reuse_stages(step)
            else:
                self._restore_stage_outputs()
        stage = self.spin_model.stage
        cfg = self.config
        if self.object_removal.pending_segmentation and stage != Stage.INPAINT:  # "Segment" in the viewer
            self.object_removal.run_segmentation(step)
            stage = self.spin_model.stage
        if stage == Stage.RECONSTRUCT and step >= cfg.reconstruct_steps:
            if self.given_masks is not None or self.prompts is not None:
                self._fit_done(stage)
            if self.given_masks is not None:
                token = self._boundary(RECONSTRUCTED, step)
                self._run_timed("render", lambda: self._render_reconstruction(token))
                self._finish_masks([m.astype(bool) for m in self.given_masks], step, token)
            elif self.prompts is not None:
                token = self._boundary(RECONSTRUCTED, step)
                self._run_timed("render", lambda: self._render_reconstruction(token))
                self._run_timed("initial_masks", lambda: self._initial_masks(step, token))
            elif not self._waiting_note:
                self._waiting_note = True
                CONSOLE.print("spin-nerfstudio: reconstruction done; waiting for clicks on the object in the viewer")
        elif stage == Stage.SEGMENT and step >= self.mask_fit_end() and self.removal_requested:
            token = self._boundary(SEGMENTED, step)
            masks = self._run_timed("final_masks", lambda: self._render_final_masks(token))
            if self.object_removal.accept_final_masks(masks):
                self._fit_done(stage)
                self._finish_masks(masks, step, token)
        elif (
            stage == Stage.SEGMENT
            and not self._agreement_checked
            and cfg.mask_outlier_iou > 0
            and step >= cfg.reconstruct_steps + cfg.mask_steps // 2
        ):
            self._agreement_checked = True
            self._run_timed("mask_agreement", lambda: self._check_mask_agreement())
        if self.spin_model.stage == Stage.INPAINT:
            self._update_field_prior(step)

    def _fit_done(self, stage: Stage) -> None:
        """Record the training seconds of a finished stage (``fit_<stage>`` in stages.json)."""
        if self._fit_start is not None:
            self.stage_times[f"fit_{stage.name.lower()}"] = time.time() - self._fit_start
        self._fit_start = None

    def _boundary(self, name: str, step: int) -> str:
        """Enter a stage boundary: its token (kept from the resumed checkpoint, else new) and a checkpoint first.

        The checkpoint (the state after step ``step - 1``) lets a run killed during this boundary's work resume
        right here, with the same model, and keep the views already written under the token.
        """
        if self.lineage is None:
            self.lineage = {}
        entry = self.lineage.get(name)
        if entry is None or entry.get("step") != step:
            entry = {"token": uuid.uuid4().hex, "step": step}
            self.lineage[name] = entry
        trainer = self._trainer
        if isinstance(trainer, SpinTrainer) and step > 0:
            if not (Path(trainer.checkpoint_dir) / f"step-{step - 1:09d}.ckpt").is_file():
                trainer.save_checkpoint(step - 1)
        return entry["token"]

    def _folder(self, name: str, kind: str, token: str):
        """Stage output folder of the run (a no-op writer when there is no run folder)."""
        if self.run_dir is None:
            return _NoFolder()
        return StageFolder(self.run_dir / name, self.datamanager.image_names, kind, token)

    def _note_reuse(self, name: str, reused: int) -> None:
        if reused:
            n = len(self.datamanager.image_names)
            CONSOLE.print(f"spin-nerfstudio: {name}: reusing {reused}/{n} views written before the interruption")

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
    def _render_reconstruction(self, token: str) -> None:
        names = self.datamanager.image_names
        cams = self.datamanager.train_dataset.cameras
        depth_dir = self._folder(DEPTH_DIR, "npy", token)
        rgb_dir = self._folder(RENDERS_BEFORE_DIR, "png", token)
        depths = {i: d for i, d in depth_dir.existing().items()}
        have_rgb = set(rgb_dir.existing())
        todo = [i for i in range(len(names)) if i not in depths or i not in have_rgb]
        self._note_reuse(DEPTH_DIR, len(names) - len(todo))
        for i in track(todo, description="Rendering depth", transient=True):
            out = render_views(self.model, cams, indices=[i], keys=("rgb", "depth"), progress=False)
            depths[i] = out["depth"][0][..., 0]
            depth_dir.put(i, depths[i])
            rgb_dir.put(i, (np.clip(out["rgb"][0], 0, 1) * 255 + 0.5).astype(np.uint8))
        depth_dir.finish()
        rgb_dir.finish()
        self._depths = [depths[i] for i in range(len(names))]

    # ------------------------------------------------------------------ stage: initial masks
    def _views(self) -> List[PinholeView]:
        cams = self.datamanager.train_dataset.cameras
        return [PinholeView.from_cameras(cams, i) for i in range(len(cams))]

    def render_accumulations(self, indices: Optional[List[int]] = None) -> Dict[int, np.ndarray]:
        """Rendered opacity (H x W) of the given training views (all when None), keyed by view index."""
        cams = self.datamanager.train_dataset.cameras
        indices = list(range(len(cams))) if indices is None else indices
        acc = render_views(self.model, cams, indices=indices, keys=("accumulation",), progress=False)
        return {k: a[..., 0] for k, a in zip(indices, acc["accumulation"])}

    def _initial_masks(self, step: int, token: str) -> None:
        assert self.prompts is not None
        names = self.datamanager.image_names
        out_dir = self._folder(INITIAL_MASK_DIR, "png", token)
        done = {i: m > 0 for i, m in out_dir.existing().items()}
        self._note_reuse(INITIAL_MASK_DIR, len(done))
        if len(done) == len(names):
            masks = [done[i] for i in range(len(names))]
            status = [
                "clicked" if i in self.prompt_views else ("propagated" if m.any() else "empty")
                for i, m in enumerate(masks)
            ]
        else:
            segmenter = self.config.segmenter.setup(device=str(self.device), resolved=self._segmenter_plan)
            accumulations = self.render_accumulations(sorted(set(self.prompt_views)))  # only clicked views are read
            try:
                result = propagate_prompts(
                    _scaled_prompts(self.prompts, float(getattr(self.datamanager, "image_scale", 1.0)), self._views()),
                    self.prompt_views, self.datamanager.images_uint8(), self._depths,
                    accumulations, self._views(), segmenter, self.config.visibility_tolerance,
                    self.config.segmenter.max_object_fraction,
                    progress=lambda it: track(it, description="Propagating masks", transient=True),
                )  # fmt: skip
            except SpinInputError as err:
                fail(str(err))
            masks, status = result.masks, list(result.status)
            for i, m in enumerate(masks):
                if i not in done:
                    out_dir.put(i, m)
            out_dir.finish()
        self._initial = masks
        self._attach_initial_masks(masks)
        self.spin_model.set_stage(Stage.SEGMENT)
        self._stage_start_step = step
        self._fit_start = time.time()
        counts = sum(int(m.any()) for m in masks)
        hidden = [n for n, st in zip(names, status) if st != "clicked" and st != "propagated"]
        CONSOLE.print(f"spin-nerfstudio: initial masks in {counts}/{len(masks)} views; fitting the mask head")
        if hidden:
            CONSOLE.print(
                f"spin-nerfstudio: object out of frame or hidden (empty initial mask) in: {', '.join(hidden)}",
                soft_wrap=True,
            )

    def _attach_initial_masks(self, masks: List[np.ndarray]) -> None:
        t = torch.from_numpy(np.stack(masks)).float()[..., None]
        self.datamanager.set_view_data(INITIAL_MASK, t)
        self.datamanager.set_view_data(INITIAL_MASK_WEIGHT, torch.ones_like(t))

    def _check_mask_agreement(self) -> None:
        """Drop views whose initial mask disagrees with the mask field from the mask loss (weight 0)."""
        names = self.datamanager.image_names
        initial = getattr(self, "_initial", None)
        if initial is None or len(initial) != len(names):
            return
        field_masks, small = self._render_masks_for_check(initial)
        ious = agreement_ious(field_masks, small)
        bad = agreement_outliers(ious, self.config.mask_outlier_iou, keep=self.prompt_views)
        self._mask_outliers = list(bad)
        weights = torch.ones(len(names), *initial[0].shape, 1)
        weights[bad] = 0.0
        self.datamanager.set_view_data(INITIAL_MASK_WEIGHT, weights)
        median = float(np.median(ious))
        if bad:
            listed = ", ".join(f"{names[i]} ({ious[i]:.2f})" for i in bad)
            CONSOLE.print(
                f"spin-nerfstudio: mask agreement: median IoU {median:.2f}; {len(bad)} view(s) below "
                f"{self.config.mask_outlier_iou:g} no longer drive the mask field: {listed}",
                soft_wrap=True,
            )
        else:
            CONSOLE.print(f"spin-nerfstudio: mask agreement: median IoU {median:.2f}; every view agrees with the field")
        if self.run_dir is not None:
            write_json(
                self.run_dir / AGREEMENT_FILE,
                {"threshold": self.config.mask_outlier_iou, "iou": dict(zip(names, ious)),
                 "ignored": [names[i] for i in bad]},
            )  # fmt: skip

    def _render_masks_for_check(self, initial: List[np.ndarray]) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """The field's masks at about half resolution (a quarter of the rays), with the initial masks resized."""
        import copy

        import cv2

        cams = copy.deepcopy(self.datamanager.train_dataset.cameras)
        factor = 0.5 if int(cams.width[0].item()) >= 64 else 1.0
        cams.rescale_output_resolution(factor)
        out = render_views(self.model, cams, keys=("object_mask",), description="Checking mask agreement")
        field_masks = [m[..., 0] > self.spin_model.config.mask_threshold for m in out["object_mask"]]
        small = [
            cv2.resize(m.astype(np.float32), (f.shape[1], f.shape[0]), interpolation=cv2.INTER_AREA) >= 0.5
            for m, f in zip(initial, field_masks)
        ]
        return field_masks, small

    # ------------------------------------------------------------------ stage: final masks
    def _render_final_masks(self, token: str) -> List[np.ndarray]:
        cams = self.datamanager.train_dataset.cameras
        out_dir = self._folder(MASK_DIR, "png", token)
        masks = {i: m > 0 for i, m in out_dir.existing().items()}
        self._note_reuse(MASK_DIR, len(masks))
        threshold = self.spin_model.config.mask_threshold
        initial = getattr(self, "_initial", None)
        keep_iou = self.config.mask_keep_initial_iou
        choose = initial is not None and keep_iou <= 1.0
        if choose and len(masks) < len(cams):
            masks = {}  # every view is rendered again, so RUN/mask_probability.npy holds them all
        todo = [i for i in range(len(cams)) if i not in masks]
        probability, kept = [], 0
        for i in track(todo, description="Rendering object masks", transient=True):
            out = render_views(self.model, cams, indices=[i], keys=("object_mask",), progress=False)
            probability.append(out["object_mask"][0][..., 0])
            masks[i] = probability[-1] > threshold
            if choose and i not in self._mask_outliers:
                masks[i], keep = choose_final_mask(masks[i], initial[i], keep_iou)
                kept += keep
            out_dir.put(i, masks[i])
        out_dir.finish()
        if choose and todo:
            if self.run_dir is not None:
                np.save(self.run_dir / PROBABILITY_FILE, np.stack(probability).astype(np.float16))
            CONSOLE.print(
                f"spin-nerfstudio: final masks: {kept} of {len(cams)} views keep their initial mask (IoU with the "
                f"mask field >= {keep_iou:g}); the others take the mask field's",
                soft_wrap=True,
            )
        return [masks[i] for i in range(len(cams))]

    def dilate_iterations(self, width: int) -> int:
        """Dilation iterations for this image width."""
        return removal_dilate_iterations(self.config.dilate_iterations, width)

    def _finish_masks(self, masks: List[np.ndarray], step: int, token: str) -> None:
        if not any(m.any() for m in masks):
            fail("the final object mask is empty in every view; nothing to remove (check the clicks)")
        width = masks[0].shape[1]
        iters = self.dilate_iterations(width)
        mask_dir = self._folder(MASK_DIR, "png", token)
        if not mask_dir.complete:  # ready-made masks (the rendered ones are written as they are made)
            for i, m in enumerate(masks):
                mask_dir.put(i, m)
            mask_dir.finish()
        removal_dir = self._folder(REMOVAL_MASK_DIR, "png", token)
        removal = [dilate(m, self.config.dilate_kernel, iters) for m in masks]
        for name, r in zip(self.datamanager.image_names, removal):
            if r.mean() > self.config.max_mask_fraction:
                fail(
                    f"{name}: the removal mask covers {r.mean():.1%} of the image (more than "
                    f"--pipeline.max-mask-fraction {self.config.max_mask_fraction:g}); too little background is "
                    "left to inpaint from"
                )
        if not removal_dir.complete:
            have = set(removal_dir.existing())
            for i, r in enumerate(removal):
                if i not in have:
                    removal_dir.put(i, r)
            removal_dir.finish()
        if self.run_dir is not None:
            self._write_mask_sheet(masks)
        inpainted, inpainted_depth = self._run_timed("inpaint", lambda: self._inpaint(removal, token))
        targets = None
        if self.config.visibility.enabled:
            targets = self._run_timed(
                "seen_elsewhere", lambda: self._seen_elsewhere(masks, removal, inpainted, inpainted_depth, token)
            )
        self._attach_inpainting(masks, removal, inpainted, inpainted_depth, targets)
        self._start_inpainted_fit(step)

    def _write_mask_sheet(self, masks: List[np.ndarray]) -> None:
        from spin_nerfstudio.evaluation.mask_sheet import write_mask_sheet

        assert self.run_dir is not None
        initial = getattr(self, "_initial", None)
        path = write_mask_sheet(
            self.run_dir / MASK_SHEET, self.datamanager.images_uint8(), masks, self.datamanager.image_names,
            initial=initial, num_views=self.config.mask_sheet_views,
        )  # fmt: skip
        CONSOLE.print(f"spin-nerfstudio: masks over the images: {path}")

    # ------------------------------------------------------------------ stage: 2D inpainting
    def _inpaint(self, removal: List[np.ndarray], token: str) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        names = self.datamanager.image_names
        images = self.datamanager.images_uint8()
        rgb_dir = self._folder(INPAINTED_DIR, "png", token)
        depth_dir = self._folder(INPAINTED_DEPTH_DIR, "npy", token)
        rgb_done, depth_done = rgb_dir.existing(), depth_dir.existing()
        done = set(rgb_done) & set(depth_done)
        self._note_reuse(INPAINTED_DIR, len(done))
        inpainter = self._setup_inpainter() if len(done) < len(names) else None
        rgb_out, depth_out = [], []
        for k in track(range(len(names)), description="Inpainting views", transient=True):
            if k in done:
                rgb_out.append(rgb_done[k])
                depth_out.append(depth_done[k])
                continue
            assert inpainter is not None
            depth = self._depths[k]
            if not np.isfinite(depth).all():
                fail(f"rendered depth of {names[k]} has NaN or infinite values; cannot build a depth prior")
            try:
                rgb_out.append(inpainter.inpaint_rgb(images[k], removal[k]))
                depth_out.append(inpainter.inpaint_depth(depth, removal[k]))
            except (ValueError, SpinInputError) as err:
                fail(f"inpainting {names[k]}: {err}")
            rgb_dir.put(k, rgb_out[-1])
            depth_dir.put(k, depth_out[-1])
        rgb_dir.finish()
        depth_dir.finish()
        return rgb_out, depth_out

    def _setup_inpainter(self):
        if getattr(self, "_inpainter", None) is None:
            try:
                self._inpainter = self.config.inpainter.setup()
            except SpinInputError as err:
                fail(str(err))
        return self._inpainter

    def _seen_elsewhere(self, masks, removal, inpainted, inpainted_depth, token: str) -> vis.VisibilityTargets:
        """Seen-elsewhere masks and colour targets of every view (inpainting/visibility.py), written to the run."""
        names = self.datamanager.image_names
        seen_dir = self._folder(vis.SEEN_DIR, "png", token)
        target_dir = self._folder(vis.TARGETS_DIR, "png", token)
        depth_dir = self._folder(vis.DEPTH_DIR, "npy", token) if self._corrects_depth() else None
        if seen_dir.complete and target_dir.complete and (depth_dir is None or depth_dir.complete):
            seen, done = seen_dir.existing(), target_dir.existing()  # a resumed run: all views written already
            depth = depth_dir.existing() if depth_dir is not None else {}
            targets = vis.VisibilityTargets(
                seen=[seen[i] > 0 for i in range(len(names))],
                targets=[done[i] for i in range(len(names))],
                depth=[depth[i] for i in range(len(names))] if depth else [],
            )
        else:
            targets = vis.seen_elsewhere_targets(
                self._views(), self.datamanager.images_uint8(), removal, inpainted, inpainted_depth, self._depths,
                self.config.visibility,
                lambda views: track(views, description="Finding background seen elsewhere", transient=True),
                self._object_colours(masks, removal) if self.config.visibility.reject_object_colours else None,
            )  # fmt: skip
            for i in range(len(names)):
                seen_dir.put(i, targets.seen[i])
                target_dir.put(i, targets.targets[i])
                if depth_dir is not None:
                    depth_dir.put(i, targets.depth[i])
            seen_dir.finish()
            target_dir.finish()
            if depth_dir is not None:
                depth_dir.finish()
        summary = targets.summary(names, removal)
        if self.run_dir is not None:
            write_json(self.run_dir / vis.SUMMARY_FILE, summary)
        share = summary["seen_fraction"]
        CONSOLE.print(
            f"spin-nerfstudio: {summary['seen_pixels']}/{summary['masked_pixels']} masked pixels "
            f"({0.0 if share is None else share:.1%}) were seen unmasked in other views; "
            "they are supervised with that colour, the 2D inpainter fills the rest",
            soft_wrap=True,
        )
        if targets.rejected:
            CONSOLE.print(
                f"spin-nerfstudio: {targets.rejected} masked pixels stayed unseen: the colour other views saw there "
                "looks like the removed object's (a mask that misses part of the object?)",
                soft_wrap=True,
            )
        return targets

    def _corrects_depth(self) -> bool:
        """Whether the seen-elsewhere stage also corrects the depth prior (visibility.VisibilityConfig)."""
        v = self.config.visibility
        return v.enabled and v.search == "sweep" and v.correct_depth

    def _object_colours(self, masks, removal):
        """Probability that colours are the object's, from the pixels inside the final masks and outside the removal
        masks of every view (None when either set is empty)."""
        images = self.datamanager.images_uint8()
        obj = np.concatenate([img[m] for img, m in zip(images, masks)])
        background = np.concatenate([img[~r] for img, r in zip(images, removal)])
        if len(obj) == 0 or len(background) == 0:
            return None
        return fp.object_colour_model(obj[:, :3], background[:, :3])

    def _restore_targets(self, folder: Path, masks, removal, rgb, depth, tokens) -> Optional[vis.VisibilityTargets]:
        """Seen-elsewhere targets of a resumed inpainted fit: reloaded, else computed again (they are cheap)."""
        if not self.config.visibility.enabled:
            return None
        targets = vis.load_targets(folder, self.datamanager.image_names, tokens, with_depth=self._corrects_depth())
        if targets is not None:
            return targets
        return self._seen_elsewhere(masks, removal, rgb, depth, self._stage_token() or uuid.uuid4().hex)

    def reference_index(self) -> int:
        """Index of the view whose inpainted colour is fitted directly."""
        names = self.datamanager.image_names
        if self.config.reference_image is not None:
            return names.index(Path(self.config.reference_image).name)
        if self.prompt_views:
            return self.prompt_views[0]
        return 0

    def _attach_inpainting(self, masks, removal, inpainted, inpainted_depth, targets=None) -> None:
        dm = self.datamanager
        dm.set_view_data(OBJECT_MASK, torch.from_numpy(np.stack(masks)).float()[..., None])
        dm.set_view_data(REMOVAL_MASK, torch.from_numpy(np.stack(removal)).float()[..., None])
        colour = targets.targets if targets is not None else inpainted
        dm.set_view_data(INPAINTED_RGB, torch.from_numpy(np.stack(colour)).float() / 255.0)
        if targets is not None:
            dm.set_view_data(SEEN_MASK, torch.from_numpy(np.stack(targets.seen)).float()[..., None])
            dm.set_view_data(SEEN_RGB, torch.from_numpy(np.stack(targets.targets)).float() / 255.0)
        if targets is not None and targets.depth:  # the depth prior with what other views saw (visibility.py)
            inpainted_depth = targets.depth
        dm.set_view_data(INPAINTED_DEPTH, torch.from_numpy(np.stack(inpainted_depth)).float()[..., None])
        ref = torch.zeros(len(masks), *masks[0].shape, 1)
        ref[self.reference_index()] = 1.0
        dm.set_view_data(REFERENCE_VIEW, ref)
        self._removal_masks = removal
        self._prior_done, self._reference_weight = False, None

    def _start_inpainted_fit(self, step: int) -> None:
        self.spin_model.reset_scene()
        if self._optimizers is not None:
            for opt in self._optimizers.optimizers.values():
                opt.state.clear()
        self.spin_model.set_stage(Stage.INPAINT)
        self._stage_start_step = step
        CONSOLE.print("spin-nerfstudio: fitting the inpainted scene from scratch")

    # ------------------------------------------------------------------ field prior (inpainting/field_prior.py)
    def field_prior_step(self) -> Optional[int]:
        """Step at which the reference view's unseen target becomes the 2D fill blended with the field's render
        (None: no blend in this run)."""
        cfg = self.config
        if cfg.field_prior_fraction <= 0 or self.spin_model.config.reference_loss_mult <= 0 or self._max_steps is None:
            return None
        span = max(0, self._max_steps - self._stage_start_step)
        return self._stage_start_step + int(round(cfg.field_prior_fraction * span))

    def _stage_token(self) -> str:
        """Token of the latest stage boundary this state descends from ("" when the lineage is unknown)."""
        entry = (self.lineage or {}).get(SEGMENTED) or (self.lineage or {}).get(RECONSTRUCTED)
        return str(entry["token"]) if entry is not None else ""

    def _update_field_prior(self, step: int) -> None:
        """Hold the reference view's colour back until :meth:`field_prior_step`, then blend its unseen target."""
        at = self.field_prior_step()
        if at is None or self._prior_done or not self.datamanager.has_view_data(REFERENCE_VIEW):
            return
        dm = self.datamanager
        if step < at:
            if self._reference_weight is None:
                self._reference_weight = dm.view_data(REFERENCE_VIEW)
                dm.set_view_data(REFERENCE_VIEW, torch.zeros_like(self._reference_weight))
                CONSOLE.print(
                    f"spin-nerfstudio: the reference view's 2D fill is held back until step {at}; the field fills "
                    "the unseen pixels from the other views first, then its render is blended into that target",
                    soft_wrap=True,
                )
            return
        self._run_timed("field_prior", lambda: self._blend_reference_target(step))
        if self._reference_weight is not None:
            dm.set_view_data(REFERENCE_VIEW, self._reference_weight)
        self._prior_done, self._reference_weight = True, None

    def _blend_reference_target(self, step: int) -> None:
        dm = self.datamanager
        ref = self.reference_index()
        name = dm.image_names[ref]
        token = self._stage_token()
        colour = dm.view_data(INPAINTED_RGB)
        fill = (colour[ref].cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
        loaded = None
        for folder in (self.run_dir, self.resume_dir):
            if folder is not None and loaded is None:
                loaded = fp.load_prior(folder, name, token, fill.shape)
        if loaded is not None:
            target, made = loaded
            CONSOLE.print(f"spin-nerfstudio: field prior: reusing the blended target of {name} made at step {made}")
        else:
            unseen = dm.view_data(REMOVAL_MASK)[ref, ..., 0].cpu().numpy() > 0.5
            if dm.has_view_data(SEEN_MASK):
                unseen &= dm.view_data(SEEN_MASK)[ref, ..., 0].cpu().numpy() <= 0.5
            render = render_views(self.model, dm.train_dataset.cameras, [ref], keys=("rgb",), progress=False)
            cfg = self.config
            try:
                keep = self._object_like(fill, render["rgb"][0], unseen) if cfg.field_prior_object_colours else None
                target = fp.blend_unseen(
                    fill, render["rgb"][0], unseen, cfg.field_prior_weight, cfg.field_prior_max_difference, keep
                )
            except ValueError as err:
                fail(f"field prior at step {step} ({name}): {err}")
            if self.run_dir is not None:
                fp.save_prior(self.run_dir, name, target, step, token)
            gate = cfg.field_prior_max_difference
            where = f" where the two differ by at most {gate:g}" if gate < 1 else ""
            if keep is not None:
                where += f"; {int(keep.sum())} pixels where the render shows the object's colours keep the 2D fill"
            CONSOLE.print(
                f"spin-nerfstudio: field prior: {int(unseen.sum())} unseen masked pixels of {name} now target "
                f"{1 - cfg.field_prior_weight:g} x 2D fill + {cfg.field_prior_weight:g} x the field's render{where} "
                f"(step {step})",
                soft_wrap=True,
            )
        colour[ref] = torch.from_numpy(target).to(colour) / 255.0
        dm.set_view_data(INPAINTED_RGB, colour)

    def _object_like(self, fill: np.ndarray, render: np.ndarray, unseen: np.ndarray) -> np.ndarray:
        """Unseen pixels of the reference view whose render looks like the removed object (they keep the fill)."""
        dm = self.datamanager
        obj = dm.view_data(OBJECT_MASK)[..., 0].cpu().numpy() > 0.5
        removal = dm.view_data(REMOVAL_MASK)[..., 0].cpu().numpy() > 0.5
        probability = self._object_colours(obj, removal) if unseen.any() else None
        if probability is None:
            return np.zeros_like(unseen)
        tolerance = self.config.field_prior_object_tolerance
        return fp.object_like_regions(fill, render, unseen, probability(render), tolerance)

    # ------------------------------------------------------------------ LPIPS patches
    def _lpips_due(self, step: int) -> bool:
        cfg = self.config
        if self.spin_model.stage != Stage.INPAINT or cfg.lpips_loss_mult <= 0 or cfg.lpips_views_per_step <= 0:
            return False
        if self._lpips_skipped is None:
            from spin_nerfstudio.model.perceptual import BACKBONE_FILES, cached_backbone

            self._lpips_skipped = cached_backbone(cfg.lpips_net, cfg.lpips_weights) is None and not (
                cfg.lpips_random_backbone
            )
            if self._lpips_skipped:
                CONSOLE.print(
                    f"[yellow]spin-nerfstudio: perceptual loss skipped: no ImageNet backbone weights "
                    f"({BACKBONE_FILES[cfg.lpips_net]}; give --pipeline.lpips-weights or put it in torch's cache, "
                    "or --pipeline.lpips-random-backbone True to use a random one)"
                )
        if self._lpips_skipped:
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
        if SEEN_MASK in batch:  # perceptual patches only where no view saw the background
            removal = removal * (1.0 - batch[SEEN_MASK])
        order = batch["image_idx"].tolist()
        candidates = [i for i in range(len(order)) if removal[i].any()]
        chosen = random.sample(candidates, min(len(candidates), self.config.lpips_views_per_step))
        if not chosen:  # every masked pixel was seen elsewhere (or no view has a mask)
            return torch.zeros((), device=self.device)
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
        pred = outputs[RGB_FOR_UPDATES[self.config.lpips_updates]].view(len(chosen), p, p, 3).permute(0, 3, 1, 2)
        target = torch.stack(targets).to(pred).permute(0, 3, 1, 2)
        return self.config.lpips_loss_mult * self._perceptual(pred, target).mean()

    # ------------------------------------------------------------------ reuse another run's stages
    def _reuse_stages(self, step: int) -> None:
        """Take another run's stage outputs (copied into this run, lineage included) and start the inpainted fit."""
        src = Path(self.config.reuse_stages)  # type: ignore[arg-type]
        names = self.datamanager.image_names
        folders = (DEPTH_DIR, MASK_DIR, REMOVAL_MASK_DIR, INPAINTED_DIR, INPAINTED_DEPTH_DIR)
        parts = [load_views(src / d, names) for d in folders]
        missing = [d for d, part in zip(folders, parts) if part is None]
        if missing:
            fail(f"{src}: stage outputs {', '.join(missing)} missing or incomplete; cannot reuse them")
        self.lineage = {}
        for name, folder in ((RECONSTRUCTED, DEPTH_DIR), (SEGMENTED, MASK_DIR)):
            token = folder_token(src / folder)
            self.lineage[name] = {"token": token or uuid.uuid4().hex, "step": step}
        if self.run_dir is not None and self.run_dir.resolve() != src.resolve():
            extra = (vis.SEEN_DIR, vis.TARGETS_DIR, vis.DEPTH_DIR) if self.config.visibility.enabled else ()
            for name in (*folders, *extra):  # seen-elsewhere targets only where this fit uses them
                if (src / name).is_dir():
                    copy_stage_folder(src / name, self.run_dir / name)
        depths, masks, removal, rgb, depth = parts
        self._depths = list(depths)  # type: ignore[arg-type]
        masks = [m > 0 for m in masks]  # type: ignore[union-attr]
        removal = [m > 0 for m in removal]  # type: ignore[union-attr]
        tokens = [str(e["token"]) for e in self.lineage.values()]
        targets = self._restore_targets(src, masks, removal, rgb, depth, tokens)
        self._attach_inpainting(masks, removal, rgb, depth, targets)
        CONSOLE.print(f"spin-nerfstudio: reusing the stage outputs of {src}", soft_wrap=True)
        self._start_inpainted_fit(step)

    # ------------------------------------------------------------------ resume
    def resume_state(self) -> Dict[str, object]:
        """What checkpoints carry besides the weights: the stage lineage (weights-only loadable: str and int)."""
        return {"lineage": dict(self.lineage) if self.lineage is not None else None, "version": 1}

    def resume_from(self, state: Optional[Dict], source_run_dir: Path, run_dir: Path) -> None:
        """Called by the trainer after loading a checkpoint: take its lineage, bring the stage outputs over."""
        lineage = state.get("lineage") if isinstance(state, dict) else None
        self.lineage = {k: dict(v) for k, v in lineage.items()} if isinstance(lineage, dict) else None
        self._resumed = True
        self.resume_dir = Path(source_run_dir)
        self.run_dir = Path(run_dir)
        if self.resume_dir.resolve() != self.run_dir.resolve() and self.resume_dir.is_dir():
            copied = 0
            for name in STAGE_DIRS:
                if (self.resume_dir / name).is_dir():
                    copied += copy_stage_folder(self.resume_dir / name, self.run_dir / name)
            for name in (STAGES_FILE, fp.PRIOR_FILE):
                if (self.resume_dir / name).is_file():
                    copied += copy_file(self.resume_dir / name, self.run_dir / name)
            if copied:
                CONSOLE.print(f"spin-nerfstudio: copied {copied} stage output files from {self.resume_dir}")
        try:
            previous = json.loads((self.run_dir / STAGES_FILE).read_text())["seconds"]
            self.stage_times.update({str(k): float(v) for k, v in previous.items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        stage = self.spin_model.stage
        CONSOLE.print(f"spin-nerfstudio: resuming in stage '{stage.name.lower()}'")

    def _restore_stage_outputs(self) -> None:
        """After a resume, reload what the finished stages wrote instead of recomputing it."""
        stage = self.spin_model.stage
        if stage == Stage.RECONSTRUCT:
            return
        names = self.datamanager.image_names
        tokens = None if self.lineage is None else [str(e["token"]) for e in self.lineage.values()]
        folders = [d for d in (self.run_dir, self.resume_dir) if d is not None]
        for folder in folders:
            depths = load_views(folder / DEPTH_DIR, names, tokens)
            if depths is None:
                continue
            self._depths = list(depths)
            if stage == Stage.SEGMENT:
                initial = load_views(folder / INITIAL_MASK_DIR, names, tokens)
                if initial is not None:
                    self._initial = [m > 0 for m in initial]
                    self._attach_initial_masks(self._initial)
                    self._stage_start_step = self._boundary_step(RECONSTRUCTED, self.config.reconstruct_steps)
                    CONSOLE.print(f"spin-nerfstudio: resumed segmentation with the initial masks in {folder}")
                    return
            else:
                parts = [load_views(folder / d, names, tokens) for d in (MASK_DIR, REMOVAL_MASK_DIR, INPAINTED_DIR)]
                parts.append(load_views(folder / INPAINTED_DEPTH_DIR, names, tokens))
                if all(p is not None for p in parts):
                    masks, removal, rgb, depth = parts
                    masks, removal = [m > 0 for m in masks], [m > 0 for m in removal]
                    targets = self._restore_targets(folder, masks, removal, rgb, depth, tokens)
                    self._attach_inpainting(masks, removal, rgb, depth, targets)
                    default = self.config.reconstruct_steps + (
                        0 if self.given_masks is not None else self.config.mask_steps
                    )
                    start = self._boundary_step(SEGMENTED, None)
                    self._stage_start_step = start if start is not None else self._boundary_step(RECONSTRUCTED, default)
                    CONSOLE.print(f"spin-nerfstudio: resumed the inpainted fit with the stage outputs in {folder}")
                    return
        fail(f"cannot resume stage '{stage.name.lower()}': its outputs are missing from the run folder")

    def _boundary_step(self, name: str, default):
        entry = (self.lineage or {}).get(name)
        return int(entry["step"]) if entry is not None else default


class _NoFolder:
    """Stand-in for a stage folder when the pipeline runs without a run folder."""

    complete = False

    def existing(self) -> Dict[int, np.ndarray]:
        return {}

    def put(self, index: int, array: np.ndarray) -> None:
        pass

    def finish(self) -> None:
        pass


def _resize_mask(mask: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """A boolean mask at ``size`` (width, height), nearest neighbour."""
    if (mask.shape[1], mask.shape[0]) == tuple(size):
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize(tuple(size), resample=Image.Resampling.NEAREST)
    return np.asarray(img) > 127


def _scaled_prompts(prompts: PromptSet, scale: float, views: List[PinholeView]) -> PromptSet:
    """Clicks given on the images as stored, mapped to the (possibly downscaled) training images."""
    if scale == 1.0:
        return prompts
    import dataclasses

    out = []
    for p in prompts.prompts:
        out.append(dataclasses.replace(
            p,
            positive=[(x * scale, y * scale) for x, y in p.positive],
            negative=[(x * scale, y * scale) for x, y in p.negative],
        ))  # fmt: skip
    return PromptSet(prompts=out, source=prompts.source)
