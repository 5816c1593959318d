"""Per-view report of the final masks: area, agreement with the mask field, where each mask came from.

Written by the segmentation stage as ``RUN/mask_report.json`` (one row per view) and ``RUN/mask_report.txt``; the
log shows a summary and the views that look wrong (mask empty, area far from the median, or low agreement).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.segmentation.propagate import PinholeView, confident_pixels


def mask_report(
    names: Sequence[str],
    final: Sequence[Bool[np.ndarray, "H W"]],
    field: Sequence[Bool[np.ndarray, "H W"]],
    initial: Optional[Sequence[Bool[np.ndarray, "H W"]]] = None,
    status: Optional[Sequence[str]] = None,
    source: Optional[Sequence[str]] = None,
) -> List[Dict]:
    """One row per view: final mask area (pixels and share of the image), its ratio to the median area of the
    non-empty final masks, the IoU of the initial mask with the field's render, how the initial mask was made
    (``status``) and which mask the view ended with (``source``)."""
    areas = [int(m.sum()) for m in final]
    nonzero = [a for a in areas if a > 0]
    median = float(np.median(nonzero)) if nonzero else 0.0
    rows = []
    for i, name in enumerate(names):
        row: Dict = {
            "view": name,
            "area": areas[i],
            "area_share": float(areas[i] / final[i].size),
            "area_to_median": float(areas[i] / median) if median > 0 else 0.0,
            "final_field_iou": _iou(final[i], field[i]),
        }
        if initial is not None:
            row["initial_field_iou"] = _iou(initial[i], field[i])
            row["initial_area"] = int(initial[i].sum())
        if status is not None:
            row["status"] = status[i]
        if source is not None:
            row["final"] = source[i]
        rows.append(row)
    return rows


def centroid_hits(
    views: Sequence[PinholeView],
    masks: Sequence[Bool[np.ndarray, "H W"]],
    source: int,
    depth: Float[np.ndarray, "H W"],
) -> List[bool]:
    """Whether one 3D point of the object lands inside each view's mask: the centroid of view ``source``'s mask,
    lifted along its ray to the object's depth there (the median rendered depth over the mask's confidently placed
    pixels, :func:`confident_pixels`). Masks that are well placed across views all contain it (a point near the
    object's centre projects inside its silhouette from everywhere); a shifted or empty mask misses it."""
    mask = np.asarray(masks[source], bool)
    if not mask.any():
        return [False] * len(masks)
    ys, xs = np.nonzero(mask)
    keep = confident_pixels(mask, depth)
    distance = float(np.median(depth[keep])) if keep.any() else float(np.median(depth[mask]))
    point = views[source].origin + views[source].rays(np.array([[xs.mean(), ys.mean()]]))[0] * distance
    hits = []
    for view, m in zip(views, masks):
        xy, z, _ = view.project(point[None])
        xi, yi = int(np.floor(xy[0, 0] + 0.5)), int(np.floor(xy[0, 1] + 0.5))
        inside = z[0] > 0 and 0 <= xi < m.shape[1] and 0 <= yi < m.shape[0]
        hits.append(bool(inside and m[yi, xi]))
    return hits


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def suspicious(row: Dict, min_iou: float = 0.5, spread: float = 2.0) -> List[str]:
    """Why a view's final mask looks wrong (empty list when it does not)."""
    why = []
    if row["area"] == 0:
        why.append("empty")
    elif not 1.0 / spread <= row["area_to_median"] <= spread:
        why.append(f"area x{row['area_to_median']:.2f} of the median")
    if row.get("initial_field_iou", 1.0) < min_iou:
        why.append(f"initial mask IoU {row['initial_field_iou']:.2f} with the field")
    return why


def format_report(rows: Sequence[Dict]) -> str:
    """The full table (one line per view) for ``mask_report.txt``."""
    head = f"{'view':<24} {'area':>6} {'x median':>8} {'init IoU':>8} {'final IoU':>9}  {'status':<24} final"
    lines = [head, "-" * len(head)]
    for r in rows:
        init = f"{r['initial_field_iou']:.2f}" if "initial_field_iou" in r else "-"
        lines.append(
            f"{r['view']:<24} {r['area']:>6} {r['area_to_median']:>8.2f} {init:>8} {r['final_field_iou']:>9.2f}  "
            f"{r.get('status', '-'):<24} {r.get('final', '-')}"
        )
    return "\n".join(lines)


def summary(rows: Sequence[Dict]) -> List[str]:
    """A few lines for the log: counts, area spread, agreement, and the views that look wrong."""
    n = len(rows)
    areas = np.array([r["area"] for r in rows], float)
    ratio = np.array([r["area_to_median"] for r in rows])
    lines = [
        f"final masks: {int((areas > 0).sum())}/{n} views non-empty; area median {np.median(areas[areas > 0]) if (areas > 0).any() else 0:.0f} px, "
        f"{int(((ratio >= 0.5) & (ratio <= 2.0)).sum())}/{n} within x2 of it (min x{ratio.min():.2f}, max x{ratio.max():.2f})"
    ]
    if rows and "initial_field_iou" in rows[0]:
        ious = np.array([r["initial_field_iou"] for r in rows])
        lines.append(
            f"initial masks vs mask field: IoU median {np.median(ious):.2f}, min {ious.min():.2f}; "
            f"{int((ious >= 0.5).sum())}/{n} views >= 0.5"
        )
    if rows and "status" in rows[0]:
        counts: Dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        lines.append(
            "initial masks: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        )
    flagged = [f"{r['view']} ({'; '.join(suspicious(r))})" for r in rows if suspicious(r)]
    if flagged:
        lines.append(f"look at: {', '.join(flagged)}")
    return lines


REPORT_JSON = "mask_report.json"
REPORT_TEXT = "mask_report.txt"
ALL_MASKS_SHEET = "masks_all.png"


def write_mask_report(
    run_dir: Path,
    names: Sequence[str],
    images: UInt8[np.ndarray, "N H W 3"],
    final: Sequence[Bool[np.ndarray, "H W"]],
    field: Sequence[Bool[np.ndarray, "H W"]],
    initial: Optional[Sequence[Bool[np.ndarray, "H W"]]] = None,
    status: Optional[Sequence[str]] = None,
    source: Optional[Sequence[str]] = None,
    centroid: Optional[Tuple[Sequence[PinholeView], int, Float[np.ndarray, "H W"]]] = None,
) -> List[str]:
    """Write ``mask_report.json`` / ``.txt`` and the sheet of every view's final mask (``masks_all.png``) into
    ``run_dir``; returns the summary lines for the log. With ``centroid`` = (cameras, clicked view, its rendered
    depth), each row also says whether the clicked mask's centroid lands inside the view's mask
    (:func:`centroid_hits`)."""
    from spin_nerfstudio.evaluation.mask_sheet import write_all_masks_sheet

    rows = mask_report(names, final, field, initial, status, source)
    lines = summary(rows)
    if centroid is not None:
        hits = centroid_hits(centroid[0], final, centroid[1], centroid[2])
        for row, hit in zip(rows, hits):
            row["centroid_inside"] = hit
        lines.append(
            f"the clicked view's mask centroid, lifted to 3D, lands inside the final mask of {sum(hits)}/{len(hits)} "
            "views" + ("" if all(hits) else f" (not: {', '.join(n for n, h in zip(names, hits) if not h)})")
        )
    run_dir = Path(run_dir)
    (run_dir / REPORT_JSON).write_text(json.dumps({"views": rows, "summary": lines}, indent=2) + "\n")
    (run_dir / REPORT_TEXT).write_text(format_report(rows) + "\n")
    notes = [f"{r.get('initial_field_iou', r['final_field_iou']):.2f}" + ("!" if suspicious(r) else "") for r in rows]
    sheet = write_all_masks_sheet(run_dir / ALL_MASKS_SHEET, images, final, names, notes)
    return lines + [f"per-view mask report: {run_dir / REPORT_TEXT}; every view's final mask: {sheet}"]
