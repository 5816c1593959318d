"""Check a whole run configuration before ``ns-train`` writes anything.

:func:`check_run_inputs` is called by :class:`spin_nerfstudio.trainer.SpinTrainerConfig` just before nerfstudio
writes ``config.yml``, so a bad prompt file, mask folder, dataset or config value stops ``ns-train`` with one line
naming the file or the flag, and no run folder is created. The pipeline repeats the dataset, prompt and mask checks
when it starts (with the same functions), for runs started some other way.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Optional

from nerfstudio.engine.trainer import TrainerConfig

from spin_nerfstudio.data.limits import check_parser_outputs, coincident_message
from spin_nerfstudio.data.masks import load_mask_dir
from spin_nerfstudio.prompts import SpinInputError, load_prompts, match_to_dataset


def _flag(prefix: str, name: str) -> str:
    return f"--{prefix}{name.replace('_', '-')}"


def _number(value: object, flag: str, low: Optional[float] = None, high: Optional[float] = None, integer=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if integer:
        ok = ok and float(value).is_integer()  # type: ignore[arg-type]
    if not ok or not math.isfinite(float(value)):  # type: ignore[arg-type]
        kind = "an integer" if integer else "a finite number"
        raise SpinInputError(f"{flag}: expected {kind}, got {value!r}")
    if low is not None and value < low:  # type: ignore[operator]
        raise SpinInputError(f"{flag}: must be at least {low:g}, got {value!r}")
    if high is not None and value > high:  # type: ignore[operator]
        raise SpinInputError(f"{flag}: must be at most {high:g}, got {value!r}")


def check_pipeline_values(pipeline) -> None:
    """Range checks of the pipeline, model and datamanager fields; one-line errors naming the flag."""
    p = "pipeline."
    _number(pipeline.reconstruct_steps, _flag(p, "reconstruct_steps"), 1, integer=True)
    _number(pipeline.mask_steps, _flag(p, "mask_steps"), 0, integer=True)
    _number(pipeline.dilate_kernel, _flag(p, "dilate_kernel"), 1, 255, integer=True)
    if pipeline.dilate_iterations is not None:
        _number(pipeline.dilate_iterations, _flag(p, "dilate_iterations"), 0, 1000, integer=True)
    _number(pipeline.visibility_tolerance, _flag(p, "visibility_tolerance"), 1e-6, 10)
    _number(pipeline.lpips_loss_mult, _flag(p, "lpips_loss_mult"), 0)
    _number(pipeline.st_lpips_loss_mult, _flag(p, "st_lpips_loss_mult"), 0)
    _number(pipeline.lpips_views_per_step, _flag(p, "lpips_views_per_step"), 0, 1024, integer=True)
    _number(pipeline.lpips_patch_size, _flag(p, "lpips_patch_size"), 4, 4096, integer=True)
    _number(pipeline.lpips_start_step, _flag(p, "lpips_start_step"), 0, integer=True)
    _number(pipeline.lpips_every, _flag(p, "lpips_every"), 1, integer=True)
    _number(pipeline.max_mask_fraction, _flag(p, "max_mask_fraction"), 1e-6, 1)
    _number(pipeline.field_prior_fraction, _flag(p, "field_prior_fraction"), 0, 1)
    _number(pipeline.field_prior_weight, _flag(p, "field_prior_weight"), 0, 1)
    _number(pipeline.field_prior_max_difference, _flag(p, "field_prior_max_difference"), 0, 1)
    _number(pipeline.field_prior_object_tolerance, _flag(p, "field_prior_object_tolerance"), 0, 1)
    _number(pipeline.visibility.depth_tolerance, _flag(p, "visibility.depth_tolerance"), 0, 10)
    _number(pipeline.visibility.min_views, _flag(p, "visibility.min_views"), 1, integer=True)
    _number(pipeline.visibility.sweep_samples, _flag(p, "visibility.sweep_samples"), 2, 4096, integer=True)
    if getattr(pipeline.visibility, "depth_median", 0) not in (0, 1, 3, 5):
        raise SpinInputError(
            f"{_flag(p, 'visibility.depth_median')}: expected 0 (off), 3 or 5, got {pipeline.visibility.depth_median!r}"
        )
    if pipeline.visibility.search not in ("sweep", "inpainted"):
        raise SpinInputError(
            f"{_flag(p, 'visibility.search')}: expected 'sweep' or 'inpainted', got {pipeline.visibility.search!r}"
        )
    m = "pipeline.model."
    model = pipeline.model
    for name in (
        "mask_loss_mult",
        "depth_loss_mult",
        "reference_loss_mult",
        "seen_loss_mult",
        "target_loss_mult",
        "interlevel_loss_mult",
    ):
        _number(getattr(model, name), _flag(m, name), 0)
    _number(model.distortion_loss_mult, _flag(m, "distortion_loss_mult"), 0)
    _number(model.depth_loss_tolerance, _flag(m, "depth_loss_tolerance"), 0, 10)
    _number(model.depth_agreement_tolerance, _flag(m, "depth_agreement_tolerance"), 0, 10)
    _number(model.depth_agreement_min, _flag(m, "depth_agreement_min"), 0, 1)
    _number(getattr(model, "sparse_depth_loss_mult", 0.0), _flag(m, "sparse_depth_loss_mult"), 0)
    _number(getattr(model, "sparse_depth_tolerance", 0.0), _flag(m, "sparse_depth_tolerance"), 0, 10)
    _number(model.mask_threshold, _flag(m, "mask_threshold"), 1e-6, 1 - 1e-6)
    _number(model.near_plane, _flag(m, "near_plane"), 0)
    _number(model.far_plane, _flag(m, "far_plane"), 0)
    if model.far_plane <= model.near_plane:
        raise SpinInputError(
            f"--pipeline.model.far-plane: must exceed near-plane {model.near_plane:g}, got {model.far_plane!r}"
        )
    d = "pipeline.datamanager."
    dm = pipeline.datamanager
    _number(dm.max_image_side, _flag(d, "max_image_side"), 16, integer=True)
    _number(dm.min_views, _flag(d, "min_views"), 2, integer=True)
    _number(dm.max_memory_gb, _flag(d, "max_memory_gb"))
    _number(dm.train_num_rays_per_batch, _flag(d, "train_num_rays_per_batch"), 1, integer=True)


def check_trainer_values(config: TrainerConfig) -> None:
    """Range checks of the trainer fields that the stages depend on."""
    _number(config.max_num_iterations, "--max-num-iterations", 1, integer=True)
    _number(config.steps_per_save, "--steps-per-save", 1, integer=True)
    pipe = config.pipeline
    first = int(pipe.reconstruct_steps) + int(pipe.mask_steps)
    if (pipe.prompt_file is not None or pipe.mask_dir is not None) and config.max_num_iterations <= first:
        raise SpinInputError(
            f"--max-num-iterations: {config.max_num_iterations} leaves no step for the inpainted fit (reconstruct "
            f"{pipe.reconstruct_steps} + mask {pipe.mask_steps} steps come first)"
        )


def check_run_inputs(config: TrainerConfig) -> None:
    """Every check that can run before training: config values, dataset limits, prompt file, mask folder.

    Raises:
        SpinInputError: one line naming the file or the flag and the problem.
    """
    pipe = config.pipeline
    check_pipeline_values(pipe)
    check_trainer_values(config)
    nothing = pipe.prompt_file is None and pipe.mask_dir is None and pipe.reuse_stages is None
    if nothing and "viewer" not in str(config.vis) and not _dataset_brings_masks(config):
        raise SpinInputError(
            "nothing to remove: pass --pipeline.prompt-file FILE or --pipeline.mask-dir DIR "
            f"(or train with the viewer on to click the object; --vis is '{config.vis}')"
        )
    prompts = load_prompts(pipe.prompt_file) if pipe.prompt_file is not None else None
    if config.load_dir is not None:
        load_dir = Path(config.load_dir)
        if not load_dir.is_dir() or not any(load_dir.glob("step-*.ckpt")):
            raise SpinInputError(f"{load_dir}: --load-dir holds no checkpoint (step-*.ckpt)")
    dm = pipe.datamanager
    data = Path(dm.data if dm.data is not None else dm.dataparser.data)
    parser_config = copy.deepcopy(dm.dataparser)
    parser_config.data = data
    try:
        outputs = parser_config.setup().get_dataparser_outputs(split="train")
    except ZeroDivisionError:
        raise SpinInputError(coincident_message(data)) from None
    except FileNotFoundError as err:
        raise SpinInputError(f"{data}: cannot read the dataset ({err.strerror or err}: {err.filename})") from None
    except (ValueError, KeyError, AssertionError, json.JSONDecodeError, IndexError) as err:
        text = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SpinInputError(f"{data}: cannot read the dataset ({type(err).__name__}: {text})") from None
    report = check_parser_outputs(outputs, data, dm.min_views, dm.max_image_side, max_memory_gb=dm.max_memory_gb)
    names = [Path(p).name for p in outputs.image_filenames]
    if prompts is not None:
        match_to_dataset(prompts, names, report.sizes)
    if pipe.mask_dir is not None:
        load_mask_dir(pipe.mask_dir, names, report.sizes)
    if pipe.reuse_stages is not None:
        from spin_nerfstudio.stage_io import load_views

        if load_views(Path(pipe.reuse_stages) / "masks", names) is None:
            raise SpinInputError(
                f"{pipe.reuse_stages}: no complete masks/ for these images; not a finished run to reuse"
            )
    if pipe.reference_image is not None and Path(pipe.reference_image).name not in names:
        raise SpinInputError(f"--pipeline.reference-image: '{pipe.reference_image}' is not a training image")


def _dataset_brings_masks(config: TrainerConfig) -> bool:
    """Whether the dataparser supplies object masks itself (a SPIn-NeRF-layout capture read by spin-llff)."""
    from spin_nerfstudio.data import spin_layout
    from spin_nerfstudio.data.llff import SpinLLFF, SpinLLFFDataParserConfig

    parser = config.pipeline.datamanager.dataparser
    if not isinstance(parser, SpinLLFFDataParserConfig) or parser.spin_layout is False:
        return False
    data = config.data or config.pipeline.datamanager.data or parser.data
    if data is None:
        return False
    try:
        image_dir = SpinLLFF(
            SpinLLFFDataParserConfig(data=Path(data), downscale_factor=parser.downscale_factor)
        )._image_dir()
    except (OSError, ValueError):
        return False
    return spin_layout.has_spin_layout(image_dir)
