"""Image and mask metrics, full-image and masked. Images are float arrays in [0, 1], H x W x 3.

Definitions (so others can compare):
- ``psnr``: 10 log10(1 / MSE) over all pixels and channels.
- ``masked_psnr``: the same MSE restricted to the pixels inside the mask (all channels).
- ``ssim``: mean of scikit-image's SSIM map (Gaussian window, sigma 1.5, data range 1, per channel averaged).
- ``masked_ssim``: mean of that same map over the pixels inside the mask.
- ``mask_iou``: |pred ∩ gt| / |pred ∪ gt| (1 when both are empty); ``mask_accuracy``: fraction of equal pixels.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
from jaxtyping import Bool, Float


def psnr(pred: Float[np.ndarray, "H W 3"], gt: Float[np.ndarray, "H W 3"], mask: Optional[np.ndarray] = None) -> float:
    """PSNR in dB, optionally inside a mask; inf when identical, nan when the mask is empty."""
    err = (pred.astype(np.float64) - gt.astype(np.float64)) ** 2
    if mask is not None:
        if not mask.any():
            return float("nan")
        err = err[mask.astype(bool)]
    mse = float(err.mean())
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def ssim_map(pred: Float[np.ndarray, "H W 3"], gt: Float[np.ndarray, "H W 3"]) -> Float[np.ndarray, "H W"]:
    """Per-pixel SSIM (channels averaged)."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(
        gt.astype(np.float64),
        pred.astype(np.float64),
        data_range=1.0,
        channel_axis=-1,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    return full.mean(axis=-1)


def ssim(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Mean SSIM, optionally inside a mask (nan when the mask is empty)."""
    smap = ssim_map(pred, gt)
    if mask is not None:
        if not mask.any():
            return float("nan")
        return float(smap[mask.astype(bool)].mean())
    return float(smap.mean())


def mask_scores(pred: Bool[np.ndarray, "H W"], gt: Bool[np.ndarray, "H W"]) -> Tuple[float, float]:
    """(IoU, pixel accuracy) of a predicted object mask."""
    pred, gt = pred.astype(bool), gt.astype(bool)
    union = np.logical_or(pred, gt).sum()
    iou = 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)
    return iou, float((pred == gt).mean())


def bbox_crop(mask: Bool[np.ndarray, "H W"], min_size: int = 16) -> Optional[Tuple[slice, slice]]:
    """Bounding box of a mask, grown to at least ``min_size`` pixels per side; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    h, w = mask.shape

    def span(lo: int, hi: int, n: int) -> slice:
        lo, hi = int(lo), int(hi) + 1
        grow = max(0, min_size - (hi - lo))
        lo = max(0, lo - grow // 2)
        hi = min(n, max(hi + (grow - grow // 2), lo + min(min_size, n)))
        return slice(lo, hi)

    return span(ys.min(), ys.max(), h), span(xs.min(), xs.max(), w)


def object_colour_fraction(image: Float[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]) -> float:
    """Fraction of masked pixels with the demo object's saturated red/orange/yellow colours (hue < 60°, sat > 0.5)."""
    if not mask.any():
        return 0.0
    px = image[mask.astype(bool)].astype(np.float64)
    mx, mn = px.max(axis=1), px.min(axis=1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-9), 0.0)
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    warm = (r >= g) & (g >= b) & (r > 0.35)
    return float(np.mean(warm & (sat > 0.5)))
