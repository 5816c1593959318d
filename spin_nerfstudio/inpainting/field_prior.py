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
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.stage_io import save_png, stem, write_json

PRIOR_DIR = "field_prior"
PRIOR_FILE = "field_prior.json"


def _prior_png(run_dir: Path, image_name: str) -> Path:
    return Path(run_dir) / PRIOR_DIR / f"{stem(image_name)}.png"


def blend_unseen(
    fill: UInt8[np.ndarray, "H W 3"],
    render: Float[np.ndarray, "H W 3"],
    unseen: Bool[np.ndarray, "H W"],
    weight: float,
    max_difference: float = 1.0,
) -> UInt8[np.ndarray, "H W 3"]:
    """``fill`` with its ``unseen`` pixels replaced by ``(1 - weight) * fill + weight * render``.

    ``fill`` is the colour target (uint8), ``render`` the field's render of the same view in [0, 1]; pixels outside
    ``unseen`` are returned unchanged, and so are unseen pixels where render and fill differ by more than
    ``max_difference`` in some channel (on a [0, 1] scale): there the render more likely shows a remnant of the
    object or a floater than a better guess of the background.
    """
    if fill.shape[:2] != render.shape[:2] or fill.shape[:2] != unseen.shape:
        raise ValueError(f"shapes differ: fill {fill.shape}, render {render.shape}, unseen {unseen.shape}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must be in [0, 1], got {weight}")
    if not np.isfinite(render).all():
        raise ValueError("the field's render has NaN or infinite values")
    render = np.clip(render, 0.0, 1.0).astype(np.float64)
    blended = (1.0 - weight) * fill.astype(np.float64) + weight * 255.0 * render
    close = np.abs(render - fill / 255.0).max(axis=-1) <= max_difference
    use = unseen & close
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
