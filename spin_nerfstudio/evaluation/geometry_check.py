"""The pipeline's geometry checks: figures after the reconstruction (and a stop on poses that do not agree with
the images), and held-out PSNR outside the removal mask after removal. Figures go to RUN/geometry.json."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from nerfstudio.utils.rich_utils import CONSOLE

from spin_nerfstudio.evaluation import geometry as geo
from spin_nerfstudio.render import render_views
from spin_nerfstudio.segmentation.propagate import PinholeView, dilate

HELDOUT_BEFORE = "heldout_before.npy"
"""Held-out views rendered after the reconstruction (N x H x W x 3 float16), for the comparison after removal."""
HELDOUT_MASKS = "heldout_masks.npy"
"""Held-out views' object-mask probability rendered when the segmentation ends (N x H x W float16): where the object
is in each held-out view, for the comparison after removal."""


def heldout_indices(pipeline) -> List[int]:
    """Indices into the eval dataset of views that are not training views (empty when every view trains)."""
    dm = pipeline.datamanager
    eval_ds = getattr(dm, "eval_dataset", None)
    if eval_ds is None:
        return []
    train = {Path(p).name for p in dm.train_dataset.image_filenames}
    return [k for k, p in enumerate(eval_ds.image_filenames) if Path(p).name not in train]


def _eval_images(pipeline, indices: List[int]) -> List[np.ndarray]:
    ds = pipeline.datamanager.eval_dataset
    return [ds.get_image_float32(k)[..., :3].numpy() for k in indices]


def reconstruction_figures(pipeline, depths: List[np.ndarray], renders: Optional[List[np.ndarray]]) -> Dict:
    """Figures of the reconstruction; ``depths``/``renders`` are the training views' renders (renders may be None:
    then the training PSNR is not computed). Stores the held-out renders on the pipeline for the removal check."""
    dm = pipeline.datamanager
    cams = dm.train_dataset.cameras
    views = [PinholeView.from_cameras(cams, i) for i in range(len(cams))]
    consistency = geo.depth_consistency(views, depths)
    images = dm.images_uint8().astype(np.float32) / 255.0
    if renders is not None:  # as written to renders_before/ (uint8)
        renders = [np.asarray(r, np.float32)[..., :3] / (255.0 if r.dtype == np.uint8 else 1.0) for r in renders]
    train_psnr = geo.mean_psnr(renders, images) if renders is not None else float("nan")
    held = heldout_indices(pipeline)
    heldout_psnr = None
    if held:
        out = render_views(pipeline.model, dm.eval_dataset.cameras, indices=held, keys=("rgb",), progress=False)
        pipeline._heldout_before = [np.clip(r, 0, 1) for r in out["rgb"]]
        heldout_psnr = geo.mean_psnr(pipeline._heldout_before, _eval_images(pipeline, held))
        if pipeline.run_dir is not None:
            np.save(Path(pipeline.run_dir) / HELDOUT_BEFORE, np.stack(pipeline._heldout_before).astype(np.float16))
    figures = geo.ReconstructionFigures(train_psnr, heldout_psnr, len(held), consistency)
    CONSOLE.print(f"spin-nerfstudio: reconstruction: {figures.line()}", soft_wrap=True)
    if pipeline.run_dir is not None:
        geo.write_figures(pipeline.run_dir, "reconstruction", geo.figures_dict(figures))
    return {"figures": figures, "problem": geo.pose_problem(figures) if renders is not None else None}


def check_reconstruction(pipeline, depths: List[np.ndarray]) -> Optional[str]:
    """Figures of the reconstruction from its depth and the colour renders in RUN/renders_before/; the one-line
    diagnosis of poses that do not match the images, or None."""
    from spin_nerfstudio.stage_io import load_views
    from spin_nerfstudio.stages.names import RENDERS_BEFORE_DIR

    names = pipeline.datamanager.image_names
    run_dir = pipeline.run_dir
    renders = load_views(Path(run_dir) / RENDERS_BEFORE_DIR, names) if run_dir is not None else None
    return reconstruction_figures(pipeline, depths, renders)["problem"]


def store_heldout_masks(pipeline) -> None:
    """Render the held-out views' object mask while the field still holds the object (when the segmentation ends)
    and keep it, on the pipeline and in ``RUN/heldout_masks.npy``, for :func:`removal_figures`."""
    held = heldout_indices(pipeline)
    if not held:
        return
    out = render_views(pipeline.model, pipeline.datamanager.eval_dataset.cameras, indices=held,
                       keys=("object_mask",), progress=False)  # fmt: skip
    pipeline._heldout_masks = [m[..., 0] for m in out["object_mask"]]
    if pipeline.run_dir is not None:
        np.save(Path(pipeline.run_dir) / HELDOUT_MASKS, np.stack(pipeline._heldout_masks).astype(np.float16))


def store_given_heldout_masks(pipeline) -> None:
    """For a run with ready-made masks (``--pipeline.mask-dir``), which has no segmentation to render the held-out
    masks from: the held-out views' masks from the same folder, kept as :func:`store_heldout_masks` keeps them,
    when it has one for every held-out view (else the figure after removal uses the mask rendered after the fit)."""
    from spin_nerfstudio.data.masks import find_mask_file, read_mask, resize_mask
    from spin_nerfstudio.prompts import SpinInputError

    held = heldout_indices(pipeline)
    mask_dir = pipeline.config.mask_dir
    if not held or mask_dir is None:
        return
    ds = pipeline.datamanager.eval_dataset
    masks = []
    for k in held:
        name = Path(ds.image_filenames[k]).name
        try:
            path = find_mask_file(Path(mask_dir), name)
        except SpinInputError:
            _say_fallback(f"{mask_dir} has no mask for held-out view '{name}'")
            return
        try:
            mask = read_mask(path)
        except SpinInputError as err:
            _say_fallback(str(err))
            return
        size = (int(ds.cameras.width[k]), int(ds.cameras.height[k]))
        masks.append(resize_mask(mask, size).astype(np.float32))
    pipeline._heldout_masks = masks
    if pipeline.run_dir is not None:
        np.save(Path(pipeline.run_dir) / HELDOUT_MASKS, np.stack(masks).astype(np.float16))


def _say_fallback(why: str) -> None:
    CONSOLE.print(f"spin-nerfstudio: {why}; the held-out figure after removal will use the object mask rendered "
                  "after the fit", soft_wrap=True)  # fmt: skip


def _stored(pipeline, attribute: str, file: str) -> Optional[List[np.ndarray]]:
    """Held-out renders kept on the pipeline, else read from the run folder or the run whose stages it reuses."""
    kept = getattr(pipeline, attribute, None)
    for folder in (pipeline.run_dir, pipeline.config.reuse_stages):  # a refit reads the source run's renders
        if kept is None and folder is not None and (Path(folder) / file).is_file():
            kept = list(np.load(Path(folder) / file).astype(np.float32))
    return kept


def removal_figures(pipeline) -> Optional[Dict]:
    """Held-out PSNR outside the dilated removal mask before and after removal; None when there are no held-out
    views or no stored render from before.

    The held-out removal mask is the mask field's render when the segmentation ended (:func:`store_heldout_masks`),
    where the object still stands in the field. Rendered after the fit instead, the mask head has been trained on
    the object-free scene: it marks the background behind the object as the training views saw it, which in a
    held-out view can leave part of the object outside the mask (fox: the snout and ear tips), so that the
    object's own pixels count against the removal. Runs with ready-made masks take the held-out masks from the same
    folder (:func:`store_given_heldout_masks`). The after-fit mask is still used for runs that kept no
    ``heldout_masks.npy``, and its figure is written beside the other (``*_fit_mask``)."""
    held = heldout_indices(pipeline)
    before = _stored(pipeline, "_heldout_before", HELDOUT_BEFORE)
    if not held or before is None or len(before) != len(held):
        return None
    model = pipeline.model
    out = render_views(model, pipeline.datamanager.eval_dataset.cameras, indices=held, keys=("rgb", "object_mask"))
    iters = pipeline.dilate_iterations(before[0].shape[1])

    def removal_masks(probabilities: List[np.ndarray]) -> List[np.ndarray]:
        return [dilate(p > model.config.mask_threshold, pipeline.config.dilate_kernel, iters) for p in probabilities]

    fit_removal = removal_masks([m[..., 0] for m in out["object_mask"]])
    stored = _stored(pipeline, "_heldout_masks", HELDOUT_MASKS)
    segmented = stored is not None and len(stored) == len(held)
    removal = removal_masks(stored) if stored is not None and segmented else fit_removal
    given = pipeline.config.mask_dir is not None
    images = _eval_images(pipeline, held)
    after = [np.clip(r, 0, 1) for r in out["rgb"]]
    keep, fit_keep = geo.outside_mask(removal), geo.outside_mask(fit_removal)
    result = {
        "views": len(held),
        "mask_source": ("mask folder" if given else "segmentation") if segmented else "after the fit",
        "psnr_outside_mask_before": geo.mean_psnr(before, images, keep),
        "psnr_outside_mask_after": geo.mean_psnr(after, images, keep),
        "psnr_before": geo.mean_psnr(before, images),
        "mask_fraction": float(np.mean([m.mean() for m in removal])),
        "psnr_outside_fit_mask_before": geo.mean_psnr(before, images, fit_keep),
        "psnr_outside_fit_mask_after": geo.mean_psnr(after, images, fit_keep),
    }
    line = geo.describe_removal(result["psnr_outside_mask_before"], result["psnr_outside_mask_after"], len(held))
    source = "from the mask folder" if given else "rendered when the segmentation ended"
    source = source if segmented else "rendered after the fit (no heldout_masks.npy)"
    CONSOLE.print(f"spin-nerfstudio: {line}; masks {source}", soft_wrap=True)
    if segmented:
        fit_line = (
            f"{result['psnr_outside_fit_mask_before']:.2f} -> {result['psnr_outside_fit_mask_after']:.2f} dB "
            f"({result['psnr_outside_fit_mask_after'] - result['psnr_outside_fit_mask_before']:+.2f} dB)"
        )
        CONSOLE.print(f"spin-nerfstudio: the same with the mask rendered after the fit: {fit_line}", soft_wrap=True)
    if pipeline.run_dir is not None:
        geo.write_figures(pipeline.run_dir, "removal", result)
    return result


def run_dir_figures(run_dir: Path) -> List[str]:
    """The geometry figures of a run folder, as lines: RUN/geometry.json when the run wrote it; else (runs from
    before it existed) the training PSNR and depth consistency computed from its ``renders_before/`` and ``depth/``
    folders with the cameras of its ``config.yml``."""
    import json

    import yaml

    from spin_nerfstudio.prompts import SpinInputError
    from spin_nerfstudio.stage_io import load_views

    run_dir = Path(run_dir)
    lines: List[str] = []
    stored = run_dir / geo.GEOMETRY_FILE
    data = json.loads(stored.read_text()) if stored.is_file() else {}
    if "reconstruction" not in data:
        config_path = run_dir / "config.yml"
        if not config_path.is_file():
            raise SpinInputError(f"{run_dir}: no {geo.GEOMETRY_FILE} and no config.yml; not a spin-inpaint run folder")
        config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
        parser = config.pipeline.datamanager.dataparser
        if config.pipeline.datamanager.data is not None:
            parser.data = config.pipeline.datamanager.data
        outputs = parser.setup().get_dataparser_outputs(split="train")
        names = [Path(p).name for p in outputs.image_filenames]
        depths = load_views(run_dir / "depth", names)
        renders = load_views(run_dir / "renders_before", names)
        if depths is None or renders is None:
            raise SpinInputError(f"{run_dir}: depth/ or renders_before/ missing or incomplete")
        cams = outputs.cameras
        h = int(cams.height[0].item())
        if depths[0].shape[0] != h:
            cams.rescale_output_resolution(depths[0].shape[0] / h)
        views = [PinholeView.from_cameras(cams, i) for i in range(len(cams))]
        images = []
        for p, r in zip(outputs.image_filenames, renders):
            from PIL import Image

            with Image.open(p) as im:
                images.append(np.asarray(im.convert("RGB").resize(r.shape[1::-1]), np.float32) / 255.0)
        renders_f = [np.asarray(r, np.float32)[..., :3] / 255.0 for r in renders]
        figures = geo.ReconstructionFigures(
            geo.mean_psnr(renders_f, images), None, 0, geo.depth_consistency(views, depths)
        )
        data["reconstruction"] = geo.figures_dict(figures)
        lines.append("(computed from the run's renders; the run wrote no geometry.json)")
    rec = data["reconstruction"]
    figures = geo.ReconstructionFigures(
        rec["train_psnr"], rec["heldout_psnr"], rec["heldout_views"], geo.DepthConsistency(**rec["depth"])
    )
    lines.append(f"reconstruction: {figures.line()}")
    if "removal" in data:
        r = data["removal"]
        lines.append(geo.describe_removal(r["psnr_outside_mask_before"], r["psnr_outside_mask_after"], r["views"]))
    return lines
