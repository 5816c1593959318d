"""The removal pipeline: reconstruct, segment, inpaint in 2D, fit the inpainted scene — in one ``ns-train`` run.

Stage boundaries are training steps. :class:`SpinPipeline` is the scheduler: at each boundary it runs the stages
in ``spin_nerfstudio/stages/`` (one module each, with its inputs, outputs and run-folder names), which write what
they make into the run folder (so a person can look at it and a resumed run reuses it) and attach it to the
training views in the datamanager:

1. ``reconstruct`` (steps ``[0, reconstruct_steps)``): RGB on every pixel; then ``render`` (stages/reconstruct.py)
   writes every view's depth.
2. ``segment`` (``mask_steps`` steps): clicks → 3D points → initial masks in every view (stages/initial_masks.py)
   → the mask head is fitted to them; its thresholded render gives the final masks and, dilated, the removal masks
   (stages/mask_field.py).
3. ``inpaint``: every view's colour and rendered depth is inpainted in 2D inside the removal mask
   (stages/inpaint.py), masked pixels other views saw take that colour (stages/seen_elsewhere.py); the field is
   re-initialised and fitted with MSE outside the mask, depth inside it, LPIPS patches inside it, and the reference
   view's inpainted colour (stages/inpainted_fit.py).

Resume (``--load-dir``): each stage boundary first saves a checkpoint and draws a token that the stage's output
folders and all later checkpoints carry (:class:`spin_nerfstudio.stage_io.StageFolder`). A run resumed from one of
those checkpoints reuses every view the same lineage already wrote and computes only the missing ones; mid-stage it
reloads the finished stages' outputs (stages/resume.py). See :mod:`spin_nerfstudio.trainer`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Type

import numpy as np
import torch
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE

from spin_nerfstudio.cuda_memory import CudaPeaks
from spin_nerfstudio.data.datamanager import SpinDataManager, SpinDataManagerConfig
from spin_nerfstudio.data.pose_check import PoseAgreement
from spin_nerfstudio.data.sparse_depth import SparseDepth
from spin_nerfstudio.evaluation import geometry_check
from spin_nerfstudio.guard import FiniteGuard, first_nonfinite_term
from spin_nerfstudio.inpainting import visibility as vis
from spin_nerfstudio.inpainting.config import InpainterConfig
from spin_nerfstudio.model.names import Stage
from spin_nerfstudio.model.spin_model import SpinModel, SpinModelConfig
from spin_nerfstudio.prompts import PromptSet, SpinInputError
from spin_nerfstudio.segmentation.config import SegmenterConfig
from spin_nerfstudio.segmentation.propagate import PinholeView
from spin_nerfstudio.stage_io import write_json
from spin_nerfstudio.stages import inpainted_fit, mask_field, resume, sheets
from spin_nerfstudio.stages.common import fail, pinhole_views
from spin_nerfstudio.stages.common import render_accumulations as _render_accumulations
from spin_nerfstudio.stages.initial_masks import initial_masks
from spin_nerfstudio.stages.inpaint import inpaint
from spin_nerfstudio.stages.inputs import check_inputs, write_pose_figures
from spin_nerfstudio.stages.names import PROMPT_FILE, RECONSTRUCTED, SEGMENTED, STAGES_FILE, removal_dilate_iterations
from spin_nerfstudio.stages.reconstruct import render_reconstruction
from spin_nerfstudio.stages.seen_elsewhere import seen_elsewhere
from spin_nerfstudio.trainer import SpinTrainer
from spin_nerfstudio.viewer.access import viewer_exposure_warning
from spin_nerfstudio.viewer.panel import RemovalPanel, RemovalPanelConfig


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
    mask_outlier_repair: bool = True
    """Views that the agreement check finds disagreeing get a new initial mask (the field's render snapped to the
    image's edges) and stay in the mask loss; False drops them from it instead."""
    masks_only: bool = False
    """Stop the removal after the final masks and their report (RUN/mask_report.json, RUN/masks_all.png): no
    inpainting, no inpainted fit. Pair with --max-num-iterations reconstruct-steps + mask-steps + 1."""
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
    inpaint_schedule: Literal["restart", "continue"] = "restart"
    """Learning rates of the inpainted fit, which starts from a fresh field: "restart" runs the whole schedule again
    over the fit's steps (model/schedule.py); "continue" goes on with the tail of the run's schedule (the earlier
    behaviour). On juicebox (same reconstruction, default settings) held-out PSNR outside the removal mask fell by
    0.35 dB after removal with restart and by 1.27 dB with continue; on one small generated scene restart was 0.3 dB
    below continue inside the mask (docs/figures.md)."""
    inpaint_init: Literal["fresh", "reconstruction"] = "fresh"
    """Where the inpainted fit starts: "fresh" re-initialises the field and proposal networks (SPIn-NeRF);
    "reconstruction" keeps the reconstruction's field, so what lies outside the masks starts out as fitted and the
    fit has to change only what the masks touch. On fox it lost 0.68 dB outside the mask (fresh: 4.43 dB) but left
    remnants of the head: the masked pixels no view saw get no colour loss except in the reference view and the
    perceptual patches, so the object's colour stays there (docs/segmentation-real-captures.md)."""
    check_poses: Literal["warn", "stop", "off"] = "warn"
    """Whether the camera poses agree with the images, checked twice. Before any step: the share of SIFT matches
    between neighbouring views that lie on the epipolar lines of their poses (data/pose_check.py; correct captures
    21-96%, shuffled poses 0-10%; below 15% the poses do not agree; captures with too little texture to match are
    not judged); the figure goes to the console and RUN/geometry.json ("poses"). After the reconstruction: its
    training PSNR and the agreement of its depth between neighbouring views (evaluation/geometry.py). "warn" prints
    the diagnosis and goes on, "stop" ends the run there, "off" skips the first and says nothing about the second
    (its figures are still written). The depth figures of a short fit of a correct capture can come close to those
    of shuffled poses (27% vs 23% agreeing on two small generated scenes), so the default only warns."""
    lpips_net: Literal["alex", "vgg"] = "vgg"
    """Trunk of the perceptual loss, LPIPS or ST-LPIPS (SPIn-NeRF: vgg; alex is cheaper on a CPU)."""
    lpips_weights: Optional[Path] = None
    """LPIPS backbone weights file (torchvision format); None looks in torch's cache (see ``perceptual_network``)."""
    perceptual_network: Literal["auto", "lpips", "st-lpips"] = "auto"
    """Perceptual loss network: ``auto`` (default) = LPIPS when its ImageNet backbone is found, else ST-LPIPS
    (trained, shift-tolerant, weights in the stlpips-pytorch wheel), so the loss runs offline; ``lpips`` = LPIPS
    only, skipped without its backbone unless ``lpips_random_backbone``; ``st-lpips`` = ST-LPIPS always. The log
    names the one that ran. ST-LPIPS runs at ``st_lpips_loss_mult`` (0.001): at 0.01 it cost masked PSNR, SSIM and
    ST-LPIPS on the generated scenes; at 0.001 it gained +0.81 +- 0.51 dB masked PSNR over no perceptual loss (3
    seeds x 2 fits, reduced schedule; docs/perceptual.md)."""
    lpips_loss_mult: float = 0.01
    """Weight of the mean perceptual distance over patches when LPIPS runs (SPIn-NeRF: 0.01)."""
    st_lpips_loss_mult: float = 0.001
    """Weight of the mean perceptual distance over patches when ST-LPIPS runs. ST-LPIPS distances are on a different
    scale from LPIPS': at 0.01 the loss cost masked PSNR, SSIM and ST-LPIPS on the generated scenes; at 0.001 masked
    PSNR rose by 0.81 +- 0.51 dB and SSIM by 0.007 over no perceptual loss (docs/perceptual.md)."""
    lpips_random_backbone: bool = False
    """With ``perceptual_network lpips`` and no ImageNet backbone weights, run LPIPS on a random backbone instead of
    skipping the loss (a random backbone is not a perceptual measure; on the generated scenes it cost masked PSNR)."""
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
    """Runs the removal stages inside nerfstudio's training loop (the scheduler; the stages are in ``stages/``)."""

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
        self.stage_spans: Dict[str, List[List[float]]] = {}
        """Wall-clock [start, end] (``time.time()``) of each run of each stage, in stages.json for the benchmarks."""
        self.cuda_peaks = CudaPeaks()
        """Peak CUDA MiB of each stage and each fit stretch between them (stages.json ``cuda_peak_mb``; GPU runs)."""
        self._segmenter_plan: Optional[tuple] = None
        self._agreement_checked = False
        self._depths: List[np.ndarray] = []  # rendered depth of every view (stage ``render``)
        self._initial: Optional[List[np.ndarray]] = None  # initial masks (stage ``initial_masks``)
        self._initial_status: Optional[List[str]] = None  # how each initial mask was made (for the mask report)
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
        self.pose_agreement: Optional[PoseAgreement] = None
        """SIFT matches between neighbouring views against the poses (checked with the inputs; None when not)."""
        self.sparse_depth: Optional[SparseDepth] = None
        """Those matches triangulated with the poses (the sparse depth loss's targets; None when off)."""
        if test_mode == "val":
            try:
                check_inputs(self)
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
        write_pose_figures(self)
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
        if sheets.result_sheet_due(self, step):
            self._run_timed("result_sheet", lambda: sheets.write_result_sheet(self, step))
            self._run_timed("removal_figures", lambda: geometry_check.removal_figures(self))

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
        return first_nonfinite_term(self.model, ray_bundle, batch, names, {"lpips_loss": self._lpips_patch_loss})

    # ------------------------------------------------------------------ the scheduler
    def _advance(self, step: int) -> None:
        """Run the stage whose boundary ``step`` reaches (the first step of a run restores finished stages)."""
        if not self._restored:
            self._restored = True
            self._fit_start = time.time()
            if self.spin_model.stage == Stage.RECONSTRUCT and self.config.reuse_stages is not None:
                resume.reuse_stages(self, step)
            else:
                resume.restore_stage_outputs(self)
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
                geometry_check.store_given_heldout_masks(self)
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
            masks = self._run_timed(
                "final_masks", lambda: mask_field.render_final_masks(self, token, self._initial, self._mask_outliers)
            )
            geometry_check.store_heldout_masks(self)
            if self.config.masks_only:
                self.removal_requested = False  # the masks and their report are written: nothing else to do
            elif self.object_removal.accept_final_masks(masks):
                self._fit_done(stage)
                self._finish_masks(masks, step, token)
        elif (
            stage == Stage.SEGMENT
            and not self._agreement_checked
            and cfg.mask_outlier_iou > 0
            and step >= cfg.reconstruct_steps + cfg.mask_steps // 2
        ):
            self._agreement_checked = True
            self._mask_outliers = self._run_timed(
                "mask_agreement", lambda: mask_field.check_mask_agreement(self, self._initial)
            )
        if self.spin_model.stage == Stage.INPAINT:
            inpainted_fit.update_field_prior(self, step)

    def _finish_masks(self, masks: List[np.ndarray], step: int, token: str) -> None:
        """From the final masks to the inpainted fit: removal masks, 2D inpainting, seen-elsewhere targets."""
        removal = mask_field.removal_masks(self, masks, token)
        if self.run_dir is not None:
            sheets.write_mask_sheet(self, masks, self._initial)
        rgb, depth = self._run_timed("inpaint", lambda: inpaint(self, self._depths, removal, token))
        targets = None
        if self.config.visibility.enabled:
            targets = self._run_timed("seen_elsewhere", lambda: seen_elsewhere(self, masks, removal, rgb, depth, token))
        inpainted_fit.attach_inpainting(self, masks, removal, rgb, depth, targets)
        inpainted_fit.start_inpainted_fit(self, step)

    def _render_reconstruction(self, token: str) -> None:
        self._depths = render_reconstruction(self, token)
        problem = geometry_check.check_reconstruction(self, self._depths)
        if problem and self.config.check_poses == "stop":
            fail(problem)
        if problem and self.config.check_poses == "warn":
            CONSOLE.print(
                f"[yellow]spin-nerfstudio: warning: {problem} (--pipeline.check-poses stop ends the run here)"
            )

    def _initial_masks(self, step: int, token: str) -> None:
        self._initial = initial_masks(self, token)
        self.spin_model.set_stage(Stage.SEGMENT)
        self._stage_start_step = step
        self._fit_start = time.time()

    def _fit_done(self, stage: Stage) -> None:
        """Record the training seconds of a finished stage (``fit_<stage>`` in stages.json)."""
        if self._fit_start is not None:
            self.stage_times[f"fit_{stage.name.lower()}"] = time.time() - self._fit_start
            self.stage_spans.setdefault(f"fit_{stage.name.lower()}", []).append([self._fit_start, time.time()])
            self.cuda_peaks.mark(f"fit_{stage.name.lower()}")
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

    def _run_timed(self, name: str, fn):
        self.cuda_peaks.mark(self._fit_name())  # the training stretch before this stage
        start = time.time()
        result = fn()
        self.stage_times[name] = self.stage_times.get(name, 0.0) + time.time() - start
        self.stage_spans.setdefault(name, []).append([start, time.time()])
        self.cuda_peaks.mark(name)
        CONSOLE.print(f"spin-nerfstudio: stage '{name}' took {time.time() - start:.1f} s")
        if self.run_dir is not None:
            stages = {"seconds": self.stage_times, "spans": self.stage_spans}
            if self.cuda_peaks.overall is not None:
                stages["cuda_peak_mb"] = self.cuda_peaks.as_json()
            write_json(self.run_dir / STAGES_FILE, stages)
        return result

    def _fit_name(self) -> str:
        """``fit_<stage>`` of the training stage now running (for the peak memory of the steps before a boundary)."""
        return f"fit_{self.spin_model.stage.name.lower()}"

    def mask_fit_end(self) -> int:
        """Step at which the mask head fit ends (counted from the viewer's last segmentation, if any)."""
        start = self.object_removal.segment_step
        return (self.config.reconstruct_steps if start is None else start) + self.config.mask_steps

    def dilate_iterations(self, width: int) -> int:
        """Dilation iterations for this image width."""
        return removal_dilate_iterations(self.config.dilate_iterations, width)

    # ------------------------------------------------------------------ what the viewer, tests and stages call
    def _views(self) -> List[PinholeView]:
        return pinhole_views(self)

    def render_accumulations(self, indices: Optional[List[int]] = None) -> Dict[int, np.ndarray]:
        """Rendered opacity (H x W) of the given training views (all when None), keyed by view index."""
        return _render_accumulations(self, indices)

    def reference_index(self) -> int:
        """Index of the view whose inpainted colour is fitted directly."""
        return inpainted_fit.reference_index(self)

    def field_prior_step(self) -> Optional[int]:
        """Step at which the reference view's unseen target is blended (None: no blend in this run)."""
        return inpainted_fit.field_prior_step(self)

    def _stage_token(self) -> str:
        return resume.stage_token(self.lineage)

    def _lpips_due(self, step: int) -> bool:
        return inpainted_fit.lpips_due(self, step)

    def _lpips_patch_loss(self) -> torch.Tensor:
        return inpainted_fit.lpips_patch_loss(self)

    # ------------------------------------------------------------------ resume
    def resume_state(self) -> Dict[str, object]:
        """What checkpoints carry besides the weights: the stage lineage (weights-only loadable: str and int)."""
        return {"lineage": dict(self.lineage) if self.lineage is not None else None, "version": 1}

    def resume_from(self, state: Optional[Dict], source_run_dir: Path, run_dir: Path) -> None:
        """Called by the trainer after loading a checkpoint: take its lineage, bring the stage outputs over."""
        resume.resume_from(self, state, source_run_dir, run_dir)
