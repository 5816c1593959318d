"""The field's own fill as a second opinion on the reference view's 2D inpainting.

Inside the removal mask, the pixels that no other view saw get their colour from one 2D-inpainted view (the
reference view). A 2D inpainter sees one image; the radiance field, fitted to every view's unmasked pixels and to
the seen-elsewhere colours, extrapolates the hidden surface from all of them at once. Neither is reliably better:
on the generated scenes the field's extrapolation beats the biharmonic fill on some scenes and loses on others,
and from one random initialisation to the next it varies by several dB, while the 2D fill is stable but smooth.

So the inpainted fit runs its first part without the reference view's colour loss (the field fills the hole from
the other views alone), then renders the reference view and replaces the target of its unseen masked pixels with
a blend of the 2D fill and that render. The blend averages two independent estimates (lower variance than either)
and the rest of the fit makes the field consistent with it. The blended target is written to the run folder
(``field_prior/<image>.png`` with ``field_prior.json``) so a resumed run keeps the same target.

Where the masks missed a sliver of the object in some views, the field reconstructs that sliver and its render
shows a remnant of the object inside the hole; blending it in would teach it to every view. So before the blend,
each render pixel gets the probability that its colour belongs to the object (colour histograms of the object's
pixels and of the background's, over all views: :func:`object_colour_model`), and every region where the
render departs from the 2D fill and that holds an object-coloured pixel keeps the 2D fill
(:func:`object_like_regions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.stage_io import save_png, stem, write_json

PRIOR_DIR = "field_prior"
PRIOR_FILE = "field_prior.json"
COLOUR_BINS = 16
"""Histogram bins per colour channel of the object/background colour models."""
COLOUR_SMOOTHING = 1.0
"""Standard deviation (in bins) of the Gaussian that smooths both histograms: colours near an object colour count
as object colours too (a render mixes the remnant with the background at its edges)."""
MAX_COLOUR_SAMPLES = 500_000
"""Pixels kept (evenly spaced) from each of the object and background sets."""


def _prior_png(run_dir: Path, image_name: str) -> Path:
    return Path(run_dir) / PRIOR_DIR / f"{stem(image_name)}.png"


def _difference(fill: UInt8[np.ndarray, "H W 3"], render: Float[np.ndarray, "H W 3"]) -> Float[np.ndarray, "H W"]:
    """Largest per-channel difference between the render (clipped to [0, 1]) and the uint8 fill, on a [0, 1] scale."""
    return np.abs(np.clip(render, 0.0, 1.0) - fill / 255.0).max(axis=-1)


def _histogram(pixels: UInt8[np.ndarray, "N 3"]) -> Float[np.ndarray, "B B B"]:
    from scipy import ndimage

    if len(pixels) > MAX_COLOUR_SAMPLES:
        pixels = pixels[np.linspace(0, len(pixels) - 1, MAX_COLOUR_SAMPLES).astype(np.int64)]
    idx = pixels.astype(np.int64) * COLOUR_BINS // 256
    hist = np.zeros((COLOUR_BINS,) * 3, np.float64)
    np.add.at(hist, (idx[:, 0], idx[:, 1], idx[:, 2]), 1.0)
    hist = ndimage.gaussian_filter(hist, COLOUR_SMOOTHING, mode="constant")
    return hist / hist.sum()


def object_colour_model(
    object_pixels: UInt8[np.ndarray, "N 3"], background_pixels: UInt8[np.ndarray, "M 3"]
) -> Callable[[np.ndarray], np.ndarray]:
    """Probability that a colour (in [0, 1]) is the object's rather than the background's, with equal priors, as a
    function of the colours alone (both histograms built once).

    Both classes are smoothed colour histograms (:data:`COLOUR_BINS` per channel) of the given uint8 pixels; a
    colour that neither class has gets 0.5.
    """
    if len(object_pixels) == 0 or len(background_pixels) == 0:
        raise ValueError(f"no object or background pixels ({len(object_pixels)} / {len(background_pixels)})")
    obj, bg = _histogram(np.asarray(object_pixels)), _histogram(np.asarray(background_pixels))

    def probability(colours: Float[np.ndarray, "*shape 3"]) -> Float[np.ndarray, "*shape"]:
        idx = (np.clip(np.asarray(colours, np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.int64) * COLOUR_BINS // 256
        o = obj[idx[..., 0], idx[..., 1], idx[..., 2]]
        b = bg[idx[..., 0], idx[..., 1], idx[..., 2]]
        tiny = 1e-12
        return (o + tiny) / (o + b + 2 * tiny)

    return probability


def object_like_regions(
    fill: UInt8[np.ndarray, "H W 3"],
    render: Float[np.ndarray, "H W 3"],
    unseen: Bool[np.ndarray, "H W"],
    object_probability: Float[np.ndarray, "H W"],
    tolerance: float,
) -> Bool[np.ndarray, "H W"]:
    """Unseen pixels whose render should not be trusted: every 8-connected region of unseen pixels where the render
    is object-coloured (probability above 0.5) or departs from the fill by more than ``tolerance`` (any channel,
    [0, 1] scale), when the region holds at least one object-coloured pixel. A remnant's blurred edges depart from
    the fill without being object-coloured themselves; they join the remnant's region this way."""
    from scipy import ndimage

    objectish = unseen & (object_probability > 0.5)
    if not objectish.any():
        return np.zeros_like(unseen)
    departs = unseen & (_difference(fill, render) > tolerance)
    labels, _ = ndimage.label(departs | objectish, structure=np.ones((3, 3), bool))
    bad = np.unique(labels[objectish])
    return np.isin(labels, bad[bad > 0])


def blend_unseen(
    fill: UInt8[np.ndarray, "H W 3"],
    render: Float[np.ndarray, "H W 3"],
    unseen: Bool[np.ndarray, "H W"],
    weight: float,
    max_difference: float = 1.0,
    keep_fill: Optional[Bool[np.ndarray, "H W"]] = None,
) -> UInt8[np.ndarray, "H W 3"]:
    """``fill`` with its ``unseen`` pixels replaced by ``(1 - weight) * fill + weight * render``.

    ``fill`` is the colour target (uint8), ``render`` the field's render of the same view in [0, 1]; pixels outside
    ``unseen`` are returned unchanged, and so are unseen pixels where render and fill differ by more than
    ``max_difference`` in some channel (on a [0, 1] scale): there the render more likely shows a remnant of the
    object or a floater than a better guess of the background. Pixels in ``keep_fill`` (for example
    :func:`object_like_regions`) keep the fill too.
    """
    if fill.shape[:2] != render.shape[:2] or fill.shape[:2] != unseen.shape:
        raise ValueError(f"shapes differ: fill {fill.shape}, render {render.shape}, unseen {unseen.shape}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must be in [0, 1], got {weight}")
    if keep_fill is not None and keep_fill.shape != unseen.shape:
        raise ValueError(f"shapes differ: keep_fill {keep_fill.shape}, unseen {unseen.shape}")
    if not np.isfinite(render).all():
        raise ValueError("the field's render has NaN or infinite values")
    render = np.clip(render, 0.0, 1.0).astype(np.float64)
    blended = (1.0 - weight) * fill.astype(np.float64) + weight * 255.0 * render
    close = _difference(fill, render) <= max_difference
    use = unseen & close
    if keep_fill is not None:
        use &= ~keep_fill
    out = fill.copy()
    out[use] = np.clip(np.round(blended[use]), 0, 255).astype(np.uint8)
    return out


def save_prior(run_dir: Path, image_name: str, target: UInt8[np.ndarray, "H W 3"], step: int, token: str) -> Path:
    """Write the blended target of ``image_name`` and its record (step, token of the stage outputs it came from)."""
    path = _prior_png(run_dir, image_name)
    save_png(path, target)
    write_json(Path(run_dir) / PRIOR_FILE, {"image": image_name, "step": int(step), "token": token})
    return path


def load_prior(
    run_dir: Path, image_name: str, token: str, shape: tuple
) -> Optional[tuple[UInt8[np.ndarray, "H W 3"], int]]:
    """The saved blended target and its step, or None when absent, for another image or from other stage outputs."""
    import json

    from PIL import Image

    try:
        record = json.loads((Path(run_dir) / PRIOR_FILE).read_text())
        if record.get("image") != image_name or record.get("token") != token:
            return None
        target = np.asarray(Image.open(_prior_png(run_dir, image_name)).convert("RGB"))
    except (OSError, ValueError, AttributeError):
        return None
    if target.shape != tuple(shape):
        return None
    return target, int(record.get("step", 0))
