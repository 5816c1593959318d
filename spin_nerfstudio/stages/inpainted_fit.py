"""Stage ``inpaint`` (the fit): the field is re-initialised and fitted to the inpainted targets.

Inputs: final and removal masks, the 2D inpainted colour and depth and, when enabled, the seen-elsewhere targets.
They are attached to the datamanager (``OBJECT_MASK``, ``REMOVAL_MASK``, ``INPAINTED_RGB``, ``INPAINTED_DEPTH``,
``SEEN_MASK``/``SEEN_RGB``, ``REFERENCE_VIEW``); the model's losses read them. Two parts of the fit live here
because they need renders during training: the field prior (the reference view's unseen target blended with the
field's render, ``RUN/field_prior/``; inpainting/field_prior.py) and the LPIPS patches inside the masks.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import numpy as np
import torch
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import track

from spin_nerfstudio.inpainting import depth_agreement as da
from spin_nerfstudio.inpainting import field_prior as fp
from spin_nerfstudio.model.names import (
    DEPTH_AGREED,
    INPAINTED_DEPTH,
    INPAINTED_RGB,
    OBJECT_MASK,
    REFERENCE_VIEW,
    REMOVAL_MASK,
    RGB_FOR_UPDATES,
    SEEN_MASK,
    SEEN_RGB,
    Stage,
)
from spin_nerfstudio.model.schedule import restart_schedules
from spin_nerfstudio.render import render_views
from spin_nerfstudio.stages.common import fail, pinhole_views
from spin_nerfstudio.stages.seen_elsewhere import object_colours

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline


def reference_index(pipe: SpinPipeline) -> int:
    """Index of the view whose inpainted colour is fitted directly."""
    names = pipe.datamanager.image_names
    if pipe.config.reference_image is not None:
        return names.index(Path(pipe.config.reference_image).name)
    if pipe.prompt_views:
        return pipe.prompt_views[0]
    return 0


def attach_inpainting(pipe: SpinPipeline, masks, removal, inpainted, inpainted_depth, targets=None) -> None:
    """Hand the fit's targets to the datamanager (the seen-elsewhere colour and depth replace the 2D fill's)."""
    dm = pipe.datamanager
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
    if pipe.spin_model.config.depth_loss_sides == "agreed":
        seen = targets.seen if targets is not None else None
        agreed = depth_agreement(pipe, removal, inpainted_depth, seen)
        dm.set_view_data(DEPTH_AGREED, torch.from_numpy(np.stack(agreed)).float()[..., None])
    ref = torch.zeros(len(masks), *masks[0].shape, 1)
    ref[reference_index(pipe)] = 1.0
    dm.set_view_data(REFERENCE_VIEW, ref)
    pipe._removal_masks = removal
    pipe._prior_done, pipe._reference_weight = False, None


def depth_agreement(pipe: SpinPipeline, removal, depth, seen=None) -> List[np.ndarray]:
    """Per view, the removal-mask pixels whose depth prior is trusted on both sides: seen elsewhere, or agreeing
    with the other views' priors (inpainting/depth_agreement.py); says how many in the log."""
    cfg = pipe.spin_model.config
    shares = da.prior_agreement(
        pinhole_views(pipe), removal, depth, cfg.depth_agreement_tolerance,
        progress=lambda views: track(views, description="Comparing depth fills between views", transient=True),
    )  # fmt: skip
    agreed = da.agreed_pixels(shares, cfg.depth_agreement_min, seen)
    masks = [np.asarray(m, bool) for m in removal]
    unseen = masks if seen is None else [m & ~np.asarray(v, bool) for m, v in zip(masks, seen)]
    values = np.concatenate([share[u] for share, u in zip(shares, unseen)] + [np.zeros(0)])
    values = values[np.isfinite(values)]
    mean = float(values.mean()) if values.size else float("nan")
    masked = sum(int(m.sum()) for m in masks)
    two = sum(int(a.sum()) for a in agreed)
    CONSOLE.print(
        f"spin-nerfstudio: depth prior: {mean:.1%} of the other views agree within "
        f"{cfg.depth_agreement_tolerance:.0%} on the mean unseen masked pixel; the depth loss is two-sided on "
        f"{two}/{masked} masked pixels (seen elsewhere or agreed by at least {cfg.depth_agreement_min:.0%}), "
        "nearer-only on the rest",
        soft_wrap=True,
    )
    return agreed


def start_inpainted_fit(pipe: SpinPipeline, step: int) -> None:
    """Re-initialise the scene (unless ``inpaint_init`` is "reconstruction") and the optimiser state, and enter the
    inpainting stage at ``step``."""
    fresh = pipe.config.inpaint_init == "fresh"
    if fresh:
        pipe.spin_model.reset_scene()
    if pipe._optimizers is not None:
        for opt in pipe._optimizers.optimizers.values():
            opt.state.clear()
    pipe.spin_model.set_stage(Stage.INPAINT)
    pipe._stage_start_step = step
    restart_fit_schedules(pipe)
    start = "from scratch" if fresh else "starting from the reconstruction's field"
    CONSOLE.print(f"spin-nerfstudio: fitting the inpainted scene {start}")


def restart_fit_schedules(pipe: SpinPipeline) -> None:
    """With ``inpaint_schedule`` "restart", run the learning-rate schedules again over the fit's steps."""
    if pipe.config.inpaint_schedule == "restart" and pipe._optimizers is not None and pipe._max_steps:
        restart_schedules(pipe._optimizers.schedulers, pipe._stage_start_step, pipe._max_steps)


# ---------------------------------------------------------------------- field prior
def field_prior_step(pipe: SpinPipeline) -> Optional[int]:
    """Step at which the reference view's unseen target becomes the 2D fill blended with the field's render
    (None: no blend in this run)."""
    cfg = pipe.config
    if cfg.field_prior_fraction <= 0 or pipe.spin_model.config.reference_loss_mult <= 0 or pipe._max_steps is None:
        return None
    span = max(0, pipe._max_steps - pipe._stage_start_step)
    return pipe._stage_start_step + int(round(cfg.field_prior_fraction * span))


def update_field_prior(pipe: SpinPipeline, step: int) -> None:
    """Hold the reference view's colour back until :func:`field_prior_step`, then blend its unseen target."""
    at = field_prior_step(pipe)
    if at is None or pipe._prior_done or not pipe.datamanager.has_view_data(REFERENCE_VIEW):
        return
    dm = pipe.datamanager
    if step < at:
        if pipe._reference_weight is None:
            pipe._reference_weight = dm.view_data(REFERENCE_VIEW)
            dm.set_view_data(REFERENCE_VIEW, torch.zeros_like(pipe._reference_weight))
            CONSOLE.print(
                f"spin-nerfstudio: the reference view's 2D fill is held back until step {at}; the field fills "
                "the unseen pixels from the other views first, then its render is blended into that target",
                soft_wrap=True,
            )
        return
    pipe._run_timed("field_prior", lambda: _blend_reference_target(pipe, step))
    if pipe._reference_weight is not None:
        dm.set_view_data(REFERENCE_VIEW, pipe._reference_weight)
    pipe._prior_done, pipe._reference_weight = True, None


def _blend_reference_target(pipe: SpinPipeline, step: int) -> None:
    dm = pipe.datamanager
    ref = reference_index(pipe)
    name = dm.image_names[ref]
    token = pipe._stage_token()
    colour = dm.view_data(INPAINTED_RGB)
    fill = (colour[ref].cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    loaded = None
    for folder in (pipe.run_dir, pipe.resume_dir):
        if folder is not None and loaded is None:
            loaded = fp.load_prior(folder, name, token, fill.shape)
    if loaded is not None:
        target, made = loaded
        CONSOLE.print(f"spin-nerfstudio: field prior: reusing the blended target of {name} made at step {made}")
    else:
        unseen = dm.view_data(REMOVAL_MASK)[ref, ..., 0].cpu().numpy() > 0.5
        if dm.has_view_data(SEEN_MASK):
            unseen &= dm.view_data(SEEN_MASK)[ref, ..., 0].cpu().numpy() <= 0.5
        render = render_views(pipe.model, dm.train_dataset.cameras, [ref], keys=("rgb",), progress=False)
        cfg = pipe.config
        try:
            keep = _object_like(pipe, fill, render["rgb"][0], unseen) if cfg.field_prior_object_colours else None
            target = fp.blend_unseen(
                fill, render["rgb"][0], unseen, cfg.field_prior_weight, cfg.field_prior_max_difference, keep
            )
        except ValueError as err:
            fail(f"field prior at step {step} ({name}): {err}")
        if pipe.run_dir is not None:
            fp.save_prior(pipe.run_dir, name, target, step, token)
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


def _object_like(pipe: SpinPipeline, fill: np.ndarray, render: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """Unseen pixels of the reference view whose render looks like the removed object (they keep the fill)."""
    dm = pipe.datamanager
    obj = dm.view_data(OBJECT_MASK)[..., 0].cpu().numpy() > 0.5
    removal = dm.view_data(REMOVAL_MASK)[..., 0].cpu().numpy() > 0.5
    probability = object_colours(pipe, obj, removal) if unseen.any() else None
    if probability is None:
        return np.zeros_like(unseen)
    tolerance = pipe.config.field_prior_object_tolerance
    return fp.object_like_regions(fill, render, unseen, probability(render), tolerance)


# ---------------------------------------------------------------------- LPIPS patches
def perceptual_weight(cfg, kind: Optional[str]) -> float:
    """Weight of the perceptual patch loss for the network that loaded: ``lpips_loss_mult`` for LPIPS,
    ``st_lpips_loss_mult`` for ST-LPIPS (its distances are on a different scale), 0 when none loaded."""
    if kind == "lpips":
        return float(cfg.lpips_loss_mult)
    if kind == "st-lpips":
        return float(cfg.st_lpips_loss_mult)
    return 0.0


def lpips_due(pipe: SpinPipeline, step: int) -> bool:
    """Whether this step adds the perceptual patch loss (says once when it is skipped, and why)."""
    cfg = pipe.config
    if pipe.spin_model.stage != Stage.INPAINT or cfg.lpips_views_per_step <= 0:
        return False
    if cfg.lpips_loss_mult <= 0 and cfg.st_lpips_loss_mult <= 0:
        return False
    if pipe._lpips_skipped is None:
        from spin_nerfstudio.model.perceptual import perceptual_plan

        kind, line = perceptual_plan(
            cfg.lpips_net, cfg.lpips_weights, cfg.perceptual_network, cfg.lpips_random_backbone
        )
        if kind is not None and perceptual_weight(cfg, kind) <= 0:
            flag = "--pipeline.lpips-loss-mult" if kind == "lpips" else "--pipeline.st-lpips-loss-mult"
            line = f"perceptual loss skipped: {line}, but its weight ({flag}) is 0"
            kind = None
        pipe._lpips_skipped = kind is None
        if pipe._lpips_skipped:
            CONSOLE.print(f"[yellow]spin-nerfstudio: {line}", soft_wrap=True)
    if pipe._lpips_skipped:
        return False
    since = step - pipe._stage_start_step
    return since >= cfg.lpips_start_step and since % max(1, cfg.lpips_every) == 0


def lpips_patch_loss(pipe: SpinPipeline) -> torch.Tensor:
    """Perceptual distance (LPIPS or ST-LPIPS, see ``perceptual_plan``) between rendered patches and the inpainted
    colour, inside the masks no other view saw."""
    cfg = pipe.config
    from spin_nerfstudio.model.perceptual import STLPIPS, build_perceptual

    description = None
    if pipe._perceptual is None:
        pipe._perceptual, description = build_perceptual(
            cfg.lpips_net, cfg.lpips_weights, cfg.perceptual_network, cfg.lpips_random_backbone
        )
        pipe._perceptual.to(pipe.device)
    weight = perceptual_weight(cfg, "st-lpips" if isinstance(pipe._perceptual, STLPIPS) else "lpips")
    if description is not None:
        CONSOLE.print(f"spin-nerfstudio: perceptual loss uses {description}; weight {weight:g}")
    batch = pipe.datamanager.view_batch
    removal = batch[REMOVAL_MASK]
    if SEEN_MASK in batch:  # perceptual patches only where no view saw the background
        removal = removal * (1.0 - batch[SEEN_MASK])
    order = batch["image_idx"].tolist()
    candidates = [i for i in range(len(order)) if removal[i].any()]
    chosen = random.sample(candidates, min(len(candidates), cfg.lpips_views_per_step))
    if not chosen:  # every masked pixel was seen elsewhere (or no view has a mask)
        return torch.zeros((), device=pipe.device)
    _, h, w, _ = removal.shape
    p = min(cfg.lpips_patch_size, h, w)
    indices, targets = [], []
    for b in chosen:
        ys, xs = torch.nonzero(removal[b, ..., 0], as_tuple=True)
        y0 = int(np.clip(random.randint(int(ys.min()), int(ys.max())) - p // 2, 0, h - p))
        x0 = int(np.clip(random.randint(int(xs.min()), int(xs.max())) - p // 2, 0, w - p))
        yy, xx = torch.meshgrid(torch.arange(y0, y0 + p), torch.arange(x0, x0 + p), indexing="ij")
        cam = torch.full_like(yy, order[b])
        indices.append(torch.stack([cam, yy, xx], -1).view(-1, 3))
        targets.append(batch[INPAINTED_RGB][b, y0 : y0 + p, x0 : x0 + p])
    ray_bundle = pipe.datamanager.train_ray_generator(torch.cat(indices).to(pipe.device))
    outputs = pipe.model(ray_bundle)
    pred = outputs[RGB_FOR_UPDATES[cfg.lpips_updates]].view(len(chosen), p, p, 3).permute(0, 3, 1, 2)
    target = torch.stack(targets).to(pred).permute(0, 3, 1, 2)
    return weight * pipe._perceptual(pred, target).mean()
