"""Reconstruction quality without ground truth: held-out-view PSNR and multi-view depth consistency.

- **Held-out PSNR**: views left out of training (``--eval-mode interval`` of ``spin-llff`` leaves out every 8th, as
  nerfstudio's eval split does) rendered and compared with their photographs, optionally only outside a mask.
- **Depth consistency**: every pixel of a view is lifted to 3D with its rendered depth (ray distance) and projected
  into the nearest other camera; where it lands inside that image, its distance to that camera is compared with
  the depth rendered there. The figures are the share of pixels that agree within ``tolerance`` (5%) and the
  median relative difference. A field with floaters or a capture whose poses do not match its images disagrees;
  occlusion between neighbouring views costs a few percent even for exact depth.

:func:`pose_problem` turns the figures of a reconstruction into a one-line diagnosis of a capture whose poses do
not agree with its images (the removal stages then lean on geometry that is not there).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from jaxtyping import Bool, Float

from spin_nerfstudio.segmentation.propagate import PinholeView

GEOMETRY_FILE = "geometry.json"
"""Figures written into the run folder: after the reconstruction ("reconstruction") and after removal ("removal")."""
DEPTH_TOLERANCE = 0.05
"""Relative depth difference below which a reprojected pixel agrees with its neighbour's render."""
MIN_AGREEMENT = 0.35
"""Below this share of agreeing pixels (and above ``MAX_MEDIAN_ERROR``) the depth does not reproject: the poses are
likely wrong. Measured: juicebox 76%, generated scenes 32% to 92% with their poses, 23% with shuffled poses."""
MAX_MEDIAN_ERROR = 0.15
"""Above this median relative depth difference (with agreement below ``MIN_AGREEMENT``) the poses are likely wrong.
Measured: juicebox 1.5%, generated scenes 0.9% to 11.8% with their poses, 22% with shuffled poses."""
MIN_TRAIN_PSNR = 17.0
"""Below this PSNR (dB) over the training views the field could not fit the images: the poses are likely wrong."""


def psnr(
    render: Float[np.ndarray, "H W 3"],
    image: Float[np.ndarray, "H W 3"],
    keep: Optional[Bool[np.ndarray, "H W"]] = None,
) -> float:
    """PSNR (dB, colours in [0, 1]) of one view, over the pixels in ``keep`` (all when None)."""
    err = (np.asarray(render, np.float64)[..., :3] - np.asarray(image, np.float64)[..., :3]) ** 2
    if keep is not None:
        err = err[np.asarray(keep, bool)]
    mse = float(err.mean()) if err.size else float("nan")
    return float(-10.0 * np.log10(max(mse, 1e-10)))


def mean_psnr(
    renders: Sequence[np.ndarray], images: Sequence[np.ndarray], keeps: Optional[Sequence[np.ndarray]] = None
) -> float:
    """PSNR of the pooled squared error of several views (each view weighted by its kept pixels)."""
    total, count = 0.0, 0
    for k, (r, im) in enumerate(zip(renders, images)):
        err = (np.asarray(r, np.float64)[..., :3] - np.asarray(im, np.float64)[..., :3]) ** 2
        if keeps is not None:
            err = err[np.asarray(keeps[k], bool)]
        total += float(err.sum())
        count += err.size
    return float(-10.0 * np.log10(max(total / max(count, 1), 1e-10)))


def nearest_neighbours(views: Sequence[PinholeView]) -> List[int]:
    """For each view, the index of the view whose camera centre is nearest (itself when alone)."""
    centres = np.stack([v.origin for v in views])
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    return [int(j) if np.isfinite(dist[i, j]) else i for i, j in enumerate(np.argmin(dist, axis=1))]


def reprojection_errors(
    source: PinholeView, depth: Float[np.ndarray, "H W"], target: PinholeView, target_depth: Float[np.ndarray, "h w"]
) -> Float[np.ndarray, " num_pixels"]:
    """Relative differences |d_proj - d_target| / d_target of the source pixels that land inside the target view.

    ``depth`` and ``target_depth`` are ray distances (nerfstudio's rendered ``depth``).
    """
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w]
    xy = np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float64)
    d = np.asarray(depth, np.float64).ravel()
    ok = np.isfinite(d) & (d > 0)
    points = source.origin + source.rays(xy[ok]) * d[ok, None]
    pix, z, dist = target.project(points)
    xi, yi = np.round(pix[:, 0]).astype(int), np.round(pix[:, 1]).astype(int)
    inside = (z > 1e-6) & (xi >= 0) & (xi < target.width) & (yi >= 0) & (yi < target.height)
    seen = np.asarray(target_depth, np.float64)[yi[inside], xi[inside]]
    good = np.isfinite(seen) & (seen > 0)
    return np.abs(dist[inside][good] - seen[good]) / seen[good]


@dataclass
class DepthConsistency:
    """Multi-view agreement of rendered depth."""

    agreement: float
    """Share of reprojected pixels whose depth agrees with the neighbour's render within ``tolerance``."""
    median_error: float
    """Median relative depth difference of the reprojected pixels."""
    tolerance: float
    """Relative tolerance used for ``agreement``."""
    pixels: int
    """Reprojected pixels counted."""


def depth_consistency(
    views: Sequence[PinholeView],
    depths: Sequence[Float[np.ndarray, "H W"]],
    tolerance: float = DEPTH_TOLERANCE,
    neighbours: Optional[Sequence[int]] = None,
) -> DepthConsistency:
    """Depth agreement between each view and its nearest neighbour (see the module docstring)."""
    pairs = nearest_neighbours(views) if neighbours is None else list(neighbours)
    errors = [reprojection_errors(views[i], depths[i], views[j], depths[j]) for i, j in enumerate(pairs) if i != j]
    err = np.concatenate(errors) if errors else np.zeros(0)
    if err.size == 0:
        return DepthConsistency(float("nan"), float("nan"), tolerance, 0)
    return DepthConsistency(float((err <= tolerance).mean()), float(np.median(err)), tolerance, int(err.size))


@dataclass
class ReconstructionFigures:
    """Quality figures of a reconstruction without ground truth."""

    train_psnr: float
    """PSNR over the training views (the fit)."""
    heldout_psnr: Optional[float]
    """PSNR over the held-out views (None when every view is a training view)."""
    heldout_views: int
    """Number of held-out views."""
    depth: DepthConsistency
    """Depth consistency between neighbouring training views."""

    def line(self) -> str:
        """One line for the log."""
        held = f"{self.heldout_psnr:.2f} dB on {self.heldout_views}" if self.heldout_psnr is not None else "none"
        return (
            f"training PSNR {self.train_psnr:.2f} dB, held-out PSNR {held}, depth agreement between neighbouring "
            f"views {100 * self.depth.agreement:.1f}% within {100 * self.depth.tolerance:.0f}% "
            f"(median difference {100 * self.depth.median_error:.1f}%)"
        )


def pose_problem(
    figures: ReconstructionFigures,
    min_agreement: float = MIN_AGREEMENT,
    min_psnr: float = MIN_TRAIN_PSNR,
    max_median_error: float = MAX_MEDIAN_ERROR,
) -> Optional[str]:
    """A one-line diagnosis when the reconstruction says the poses do not match the images, else None.

    Depth counts against the poses only when few pixels agree *and* the typical pixel is far off: on a smooth
    generated scene a short fit leaves depth that is loosely placed but still reprojects near the right place.
    """
    low_psnr = figures.train_psnr < min_psnr
    low_agreement = figures.depth.agreement < min_agreement and figures.depth.median_error > max_median_error
    if not (low_psnr or low_agreement):
        return None
    what = []
    if low_psnr:
        what.append(f"the field fits the training views at only {figures.train_psnr:.1f} dB PSNR (< {min_psnr:g})")
    if low_agreement:
        what.append(
            f"only {100 * figures.depth.agreement:.0f}% of rendered depth reprojects into the neighbouring view within "
            f"{100 * figures.depth.tolerance:.0f}% (< {100 * min_agreement:.0f}%; median difference "
            f"{100 * figures.depth.median_error:.0f}%)"
        )
    return (
        "the camera poses do not seem to agree with the images: " + " and ".join(what) + "; check that the pose file's "
        "rows follow the images' sorted file names and belong to this capture"
    )


def write_figures(run_dir: Path, key: str, figures: Dict) -> Path:
    """Merge ``figures`` under ``key`` into RUN/geometry.json."""
    path = Path(run_dir) / GEOMETRY_FILE
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = figures
    path.write_text(json.dumps(data, indent=2))
    return path


def stored_depth_agreement(run_dir: Optional[Path]) -> Optional[float]:
    """The reconstruction's depth agreement between neighbouring views from RUN/geometry.json, or None."""
    path = Path(run_dir) / GEOMETRY_FILE if run_dir is not None else None
    try:
        value = json.loads(path.read_text())["reconstruction"]["depth"]["agreement"] if path else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def figures_dict(figures: ReconstructionFigures) -> Dict:
    """Plain-JSON form of :class:`ReconstructionFigures`."""
    return asdict(figures)


def outside_mask(masks: Sequence[Bool[np.ndarray, "H W"]]) -> List[Bool[np.ndarray, "H W"]]:
    """Complements of the masks (the pixels a removal must keep)."""
    return [~np.asarray(m, bool) for m in masks]


def describe_removal(before: float, after: float, views: int) -> str:
    """One line for the log comparing held-out PSNR outside the removal mask before and after removal."""
    return (
        f"held-out PSNR outside the dilated removal mask on {views} views: {before:.2f} dB before removal, "
        f"{after:.2f} dB after ({after - before:+.2f} dB)"
    )


def split_figures(train: Tuple[Sequence, Sequence], heldout: Optional[Tuple[Sequence, Sequence]]) -> Tuple:
    """(training PSNR, held-out PSNR or None) from (renders, images) pairs."""
    held = mean_psnr(*heldout) if heldout is not None and len(heldout[0]) else None
    return mean_psnr(*train), held
