"""The SPIn-NeRF evaluation protocol: score a run on a SPIn-NeRF-layout scene against its ground-truth test views.

SPIn-NeRF's own repository ships no evaluation script, and later papers compute "the same" metrics differently
(their FIDs for the same baseline range from 49.6 to 219.8). This is exactly what ``spin-nerf evaluate`` computes on
a run whose dataset has the SPIn-NeRF layout (see :mod:`spin_nerfstudio.data.spin_layout`):

Views, resolution, colour range
    The *test split* = the ``N_gt`` ground-truth views (object physically removed), at the resolution of the image
    folder the run trained on (``images_4/``: about 1008x567 for the distributed scenes), with the intrinsics of
    that folder. The finished model is rendered at each test camera (``rgb``, clipped to [0, 1], kept as float for
    PSNR / SSIM / LPIPS, rounded to 8 bit for FID). Ground truth = the test image file as 8-bit RGB / 255. No
    cropping, resizing, or colour correction of either. The test-view mask = ``test_label/`` non-zero.

Full-image metrics (``psnr``, ``ssim``, ``lpips``), one value per view, then the mean over the test views:
    - ``psnr``: ``10 log10(1 / MSE)`` with the MSE over all pixels and the 3 channels (inf capped at 100 in means).
    - ``ssim``: mean of scikit-image's SSIM map (Gaussian window sigma 1.5, data range 1, K1 0.01, K2 0.03,
      population covariance, channels averaged).
    - ``lpips``: LPIPS v0.1 with the AlexNet backbone (``lpips`` package), inputs mapped to [-1, 1]; images smaller
      than 64 px a side are bilinearly upsampled to 64 first. ``null`` (with a note) when the ImageNet AlexNet weights
      are neither at ``--lpips-weights`` nor in torch's cache: a random backbone would give incomparable numbers.

    - ``st_lpips``: ST-LPIPS (shift-tolerant LPIPS, Ghildyal and Liu, ECCV 2022) with its anti-aliased AlexNet
      trunk, weights from the ``stlpips-pytorch`` wheel, inputs as for ``lpips``. A *different metric*: not
      comparable with LPIPS or with published LPIPS figures. ``null`` (with a note) when the wheel is absent.

Masked metrics, variant 1 = *pixels inside the mask* (``masked_psnr``, ``masked_ssim``, ``masked_lpips``,
``masked_st_lpips``):
    - ``masked_psnr``: the MSE over the pixels inside the test-view mask only (all 3 channels).
    - ``masked_ssim``: the full-image SSIM map (as above), averaged over the pixels inside the mask.
    - ``masked_lpips``: the spatial LPIPS map (``lpips`` with ``spatial=True``: each layer's distance upsampled to
      the input size and summed), averaged over the pixels inside the mask; ``masked_st_lpips`` likewise with
      ST-LPIPS' spatial map.

Masked metrics, variant 2 = *bounding-box crop* (``bbox_psnr``, ``bbox_ssim``, ``bbox_lpips``, ``bbox_st_lpips``,
``bbox_fid``):
    the axis-aligned bounding box of the test-view mask, grown symmetrically to at least 16 px a side (clipped to
    the image), is cropped out of render and ground truth, and the full-image metric is computed on the crops.

FID (``fid``, ``bbox_fid``): one value per scene, not per view:
    torchmetrics' ``FrechetInceptionDistance(feature=2048)`` (torch-fidelity's port of the TF-FID Inception v3,
    weights ``weights-inception-2015-12-05-6726825d.pth``), between the set of the ``N_gt`` renders and the set of
    the ``N_gt`` ground-truth images (8-bit; each image resized to 299x299 by the Inception wrapper); ``bbox_fid``
    on the bounding-box crops. The weights come from ``--inception-weights`` or torch's cache
    (``$TORCH_HOME/hub/checkpoints/``), never from the network; without them FID is ``null`` with a note. With only
    40 images per set FID is a noisy, biased estimate: compare it only between methods evaluated the same way.

Training-view masks (``mask_accuracy``, ``mask_iou``):
    the run's final object masks (``RUN/masks/``, before dilation) of every training view against ``label/``
    (non-zero = object): pixel accuracy and IoU (1 when both are empty) per view, then the mean over views. When
    the run took ``label/`` itself as its masks (no prompt file, no mask folder) both are trivially 1 and
    ``masks_from`` says ``"dataset labels"``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from jaxtyping import Bool, Float, UInt8
from PIL import Image

from spin_nerfstudio.data.spin_layout import LAYOUT_KEY, OBJECT_MASK_FILES, read_label
from spin_nerfstudio.evaluation import metrics as M
from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.stage_io import load_views, save_views

TEST_RENDER_DIR = "test_renders"
"""Run sub-folder where the evaluation writes its renders of the test views (8-bit PNG, named like the images)."""
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
"""torch-fidelity's file name of the TF-FID Inception v3 weights (as saved in torch's hub cache)."""
PROTOCOL = "spin-nerf test split v1"
"""Name written into the metrics, so tables computed differently are not mixed up."""
SUMMARY_KEYS = (
    "psnr", "ssim", "lpips", "masked_psnr", "masked_ssim", "masked_lpips",
    "bbox_psnr", "bbox_ssim", "bbox_lpips", "st_lpips", "masked_st_lpips", "bbox_st_lpips",
)  # fmt: skip
"""Per-view metrics whose mean over the test views is reported."""


def is_spin_layout(pipeline) -> bool:
    """Whether a loaded pipeline's evaluation split comes from a SPIn-NeRF-layout dataset."""
    return bool(pipeline.datamanager.eval_dataset.metadata.get(LAYOUT_KEY))


def load_run_config(load_config: Path):
    """A run's ``config.yml`` (nerfstudio's TrainerConfig), with the dataparser pointed at the run's data."""
    import yaml

    config = yaml.load(Path(load_config).read_text(), Loader=yaml.Loader)
    dm = config.pipeline.datamanager
    if dm.data is not None:
        dm.dataparser.data = Path(dm.data)
    return config


def config_uses_spin_layout(load_config: Path) -> bool:
    """Whether a run's dataset has the SPIn-NeRF layout, from its config and dataparser alone (no model loaded)."""
    parser = load_run_config(load_config).pipeline.datamanager.dataparser.setup()
    return bool(parser.get_dataparser_outputs("train").metadata.get(LAYOUT_KEY))


def find_inception_weights(path: Optional[Path] = None) -> Optional[Path]:
    """The FID Inception weights: ``path`` (must exist), else torch's cache file, else None."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SpinInputError(f"{path}: Inception weights file not found")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    return cached if cached.is_file() else None


def _check_weights_file(path: Path) -> None:
    """Refuse anything but a plain tensor state dict (torch-fidelity later unpickles the file without restriction)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means the file is unusable
        raise SpinInputError(f"{path}: not a plain PyTorch state dict ({type(err).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpinInputError(f"{path}: not a state dict of tensors")


def fid(
    real: Sequence[UInt8[np.ndarray, "H W 3"]],
    fake: Sequence[UInt8[np.ndarray, "H W 3"]],
    weights: Path,
    feature: int = 2048,
) -> float:
    """FID between two sets of 8-bit images of any sizes, Inception weights from a file.

    ``feature`` picks the Inception layer (2048 = the final pool, the standard and the protocol's choice; 64, 192
    and 768 are earlier, cheaper layers).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    if len(real) < 2 or len(fake) < 2:
        raise SpinInputError(f"FID needs at least 2 images per set, got {len(real)} and {len(fake)}")
    _check_weights_file(Path(weights))
    metric = FrechetInceptionDistance(feature=feature, feature_extractor_weights_path=str(weights), normalize=False)
    with torch.no_grad():
        for images, is_real in ((real, True), (fake, False)):
            for image in images:
                metric.update(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None], real=is_real)
        return float(metric.compute())


def lpips_map(perceptual, pred: Float[np.ndarray, "H W 3"], gt: Float[np.ndarray, "H W 3"]) -> Float[np.ndarray, "H W"]:
    """Spatial LPIPS of one image pair (``lpips`` with ``spatial=True``), at the images' resolution."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    a, b = t(pred), t(gt)
    h, w = a.shape[-2:]
    size = (max(perceptual.min_size, h), max(perceptual.min_size, w))
    if size != (h, w):
        a = torch.nn.functional.interpolate(a, size=size, mode="bilinear", align_corners=False)
        b = torch.nn.functional.interpolate(b, size=size, mode="bilinear", align_corners=False)
    net = perceptual.lpips
    spatial = net.spatial
    net.spatial = True
    try:
        with torch.no_grad():
            dist = net(a * 2 - 1, b * 2 - 1)  # 1 x 1 x H' x W'
    finally:
        net.spatial = spatial
    if size != (h, w):
        dist = torch.nn.functional.interpolate(dist, size=(h, w), mode="bilinear", align_corners=False)
    return dist[0, 0].numpy()


def _perceptual(lpips_weights: Optional[Path], notes: List[str]):
    from spin_nerfstudio.model.perceptual import BACKBONE_FILES, PerceptualLoss, cached_backbone

    try:
        backbone = cached_backbone("alex", lpips_weights)
    except FileNotFoundError as err:
        raise SpinInputError(str(err)) from None
    if backbone is None:
        notes.append(
            f"lpips: no ImageNet AlexNet weights ({BACKBONE_FILES['alex']}) in torch's hub cache and no "
            "--lpips-weights; lpips values are null"
        )
        return None
    return PerceptualLoss("alex", weights=lpips_weights)


def _st_lpips(notes: List[str]):
    from spin_nerfstudio.model.perceptual import STLPIPS, stlpips_weights

    if stlpips_weights("alex") is None:
        notes.append("st_lpips: the stlpips-pytorch wheel is not installed; st_lpips values are null")
        return None
    notes.append("st_lpips: ST-LPIPS(alex) from the stlpips-pytorch wheel (a different metric from LPIPS)")
    return STLPIPS("alex")


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [min(float(v), 100.0) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.mean(vals)) if vals else None


def _read_rgb(path: Path) -> UInt8[np.ndarray, "H W 3"]:
    return np.asarray(Image.open(path).convert("RGB"))


def score_views(
    renders: Sequence[Float[np.ndarray, "H W 3"]],
    gts: Sequence[UInt8[np.ndarray, "H W 3"]],
    masks: Sequence[Bool[np.ndarray, "H W"]],
    perceptual=None,
    st_lpips=None,
) -> List[Dict[str, Optional[float]]]:
    """Per-view full, pixels-inside-mask and bounding-box metrics (see the module docstring); ``perceptual`` is the
    LPIPS module, ``st_lpips`` the ST-LPIPS one (their keys are null without them)."""
    out = []
    for pred, gt8, mask in zip(renders, gts, masks):
        pred = np.clip(pred.astype(np.float64), 0.0, 1.0)
        gt = gt8.astype(np.float64) / 255.0
        smap = M.ssim_map(pred, gt)
        row: Dict[str, Optional[float]] = {"psnr": M.psnr(pred, gt), "ssim": float(smap.mean())}
        inside = mask.any()
        row["masked_psnr"] = M.psnr(pred, gt, mask) if inside else None
        row["masked_ssim"] = float(smap[mask].mean()) if inside else None
        box = M.bbox_crop(mask)
        row["bbox_psnr"] = M.psnr(pred[box], gt[box]) if box is not None else None
        row["bbox_ssim"] = M.ssim(pred[box], gt[box]) if box is not None else None
        row["lpips"] = row["masked_lpips"] = row["bbox_lpips"] = None
        if perceptual is not None:
            lmap = lpips_map(perceptual, pred, gt)
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
            with torch.no_grad():
                row["lpips"] = float(perceptual(t(pred), t(gt)))
                if box is not None:
                    row["bbox_lpips"] = float(perceptual(t(pred[box]), t(gt[box])))
            row["masked_lpips"] = float(lmap[mask].mean()) if inside else None
        row["st_lpips"] = row["masked_st_lpips"] = row["bbox_st_lpips"] = None
        if st_lpips is not None:
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
            with torch.no_grad():
                smap_st = st_lpips.spatial(t(pred), t(gt))[0].numpy()
                row["st_lpips"] = float(st_lpips(t(pred), t(gt)))
                if box is not None:
                    row["bbox_st_lpips"] = float(st_lpips(t(pred[box]), t(gt[box])))
            row["masked_st_lpips"] = float(smap_st[mask].mean()) if inside else None
        out.append(row)
    return out


def masks_source(cfg) -> str:
    """Where a run's object masks came from (its pipeline config): clicks, a mask folder, or the dataset's labels."""
    if getattr(cfg, "prompt_file", None) is not None:
        return f"segmented from the clicks in {cfg.prompt_file}"
    if getattr(cfg, "mask_dir", None) is not None:
        return f"mask folder {cfg.mask_dir}"
    return "dataset labels"


def evaluate_test_split(
    pipeline,
    run_dir: Path,
    step: int,
    inception_weights: Optional[Path] = None,
    lpips_weights: Optional[Path] = None,
) -> Tuple[Dict[str, object], List[np.ndarray]]:
    """Score a loaded pipeline on its SPIn-NeRF test split; writes the renders to ``RUN/test_renders``.

    Returns the JSON-ready metrics and the float renders of the test views.
    """
    from spin_nerfstudio.render import render_views
    from spin_nerfstudio.stages.names import MASK_DIR

    dm = pipeline.datamanager
    test = dm.eval_dataset
    test_files = [Path(p) for p in test.image_filenames]
    test_names = [p.name for p in test_files]
    cams = test.cameras
    sizes = [(int(w), int(h)) for w, h in zip(cams.width.view(-1).tolist(), cams.height.view(-1).tolist())]
    notes: List[str] = []
    result: Dict[str, object] = {
        "run": str(run_dir),
        "step": step,
        "protocol": PROTOCOL,
        "split": "test (ground-truth views, object physically removed)",
        "num_test_views": len(test_names),
        "num_train_views": len(dm.train_dataset),
        "resolution": f"{sizes[0][0]}x{sizes[0][1]}",
        "image_folder": test_files[0].parent.name,
        "masked_variants": {
            "masked_*": "pixels inside the test-view mask",
            "bbox_*": "crop to the test-view mask's bounding box (>= 16 px a side)",
        },
        "notes": notes,
    }
    gts = [_read_rgb(p) for p in test_files]
    mask_files = test.metadata.get(OBJECT_MASK_FILES) or []
    masks = [read_label(Path(f), size) for f, size in zip(mask_files, sizes)]
    if len(masks) != len(test_names):
        raise SpinInputError(f"{test_files[0].parent}: the test split has no test_label masks")

    renders = render_views(pipeline.model, cams, keys=("rgb",), description="Rendering test views")["rgb"]
    save_views(
        Path(run_dir) / TEST_RENDER_DIR, test_names, [(np.clip(r, 0, 1) * 255 + 0.5).astype(np.uint8) for r in renders]
    )
    perceptual = _perceptual(lpips_weights, notes)
    per_view = score_views(renders, gts, masks, perceptual, _st_lpips(notes))
    for name, row in zip(test_names, per_view):
        row["image"] = name  # type: ignore[assignment]
    for key in SUMMARY_KEYS:
        result[key] = _mean([row[key] for row in per_view])

    result["fid"] = result["bbox_fid"] = None
    weights = find_inception_weights(inception_weights)
    if weights is None:
        notes.append(
            f"fid: no Inception weights ({INCEPTION_FILE}) in {Path(torch.hub.get_dir()) / 'checkpoints'} and no "
            "--inception-weights; fid values are null"
        )
    else:
        fake = [(np.clip(r, 0, 1) * 255 + 0.5).astype(np.uint8) for r in renders]
        result["fid"] = fid(gts, fake, weights)
        boxes = [M.bbox_crop(m) for m in masks]
        real_c = [g[b] for g, b in zip(gts, boxes) if b is not None]
        fake_c = [f[b] for f, b in zip(fake, boxes) if b is not None]
        result["bbox_fid"] = fid(real_c, fake_c, weights) if len(real_c) >= 2 else None
        result["fid_weights"] = str(weights)

    # Training views: the run's final masks against label/.
    train_names = (
        dm.image_names if hasattr(dm, "image_names") else [Path(p).name for p in dm.train_dataset.image_filenames]
    )
    result["masks_from"] = masks_source(pipeline.config)
    result["mask_accuracy"] = result["mask_iou"] = None
    train_label_files = dm.train_dataparser_outputs.metadata.get(OBJECT_MASK_FILES) or []
    run_masks = load_views(Path(run_dir) / MASK_DIR, train_names)
    per_train: List[Dict[str, object]] = []
    if run_masks is None:
        notes.append(f"mask metrics: {Path(run_dir) / MASK_DIR} is missing or incomplete; mask_accuracy/iou are null")
    elif len(train_label_files) != len(train_names):
        notes.append("mask metrics: the training split has no label masks; mask_accuracy/iou are null")
    else:
        for name, pred, label in zip(train_names, run_masks, train_label_files):
            iou, acc = M.mask_scores(pred > 0, read_label(Path(label), (pred.shape[1], pred.shape[0])))
            per_train.append({"image": name, "mask_iou": iou, "mask_accuracy": acc})
        result["mask_iou"] = _mean([r["mask_iou"] for r in per_train])  # type: ignore[misc]
        result["mask_accuracy"] = _mean([r["mask_accuracy"] for r in per_train])  # type: ignore[misc]
        if result["masks_from"] == "dataset labels":
            notes.append("mask metrics: the run used label/ as its masks, so mask_accuracy and mask_iou are 1")
    result["per_view"] = per_view
    result["per_train_view"] = per_train
    return result, renders


def load_test_renders(run_dir: Path, names: Sequence[str]) -> Optional[List[np.ndarray]]:
    """The 8-bit test renders written by :func:`evaluate_test_split`, or None when absent."""
    return load_views(Path(run_dir) / TEST_RENDER_DIR, names)
