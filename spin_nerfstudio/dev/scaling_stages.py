"""``spin-nerf dev scaling``'s figures per stage: each stage's spans, its wall and CPU seconds and peak memory from
the samples (nested stages subtracted from the fits), and the growth exponents over the sizes run."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from spin_nerfstudio.dev.sampler import span_usage

STAGE_ORDER = (
    "scene", "setup", "fit_reconstruct", "render", "initial_masks", "fit_segment", "mask_agreement", "final_masks",
    "inpaint", "seen_elsewhere", "field_prior", "fit_inpaint", "result_sheet", "removal_figures", "evaluate",
)  # fmt: skip
"""Rows of the table, in the order they run (``scene`` is the scene generation, not part of a removal)."""


def stage_spans(worker: Dict[str, Any], stages_file: Dict[str, Any]) -> Dict[str, List[List[float]]]:
    """Every row's [start, end] spans: the pipeline's own plus scene, setup, fit_inpaint and evaluate (the demo's
    own wall-clock spans of scene generation, training and evaluation)."""
    spans: Dict[str, List[List[float]]] = {k: [list(s) for s in v] for k, v in stages_file.get("spans", {}).items()}
    demo = worker["spans"]
    train_start, train_end = demo["train"]
    spans["scene"] = [list(demo["scene"])]
    firsts = [s[0] for v in spans.values() for s in v if s[0] >= train_start]
    spans["setup"] = [[train_start, min(firsts) if firsts else train_end]]
    late = ("field_prior", "result_sheet", "removal_figures", "scene")  # inside the inpainted fit / at its last step
    boundary_ends = [s[1] for k, v in spans.items() if k not in late for s in v]
    spans["fit_inpaint"] = [[max(boundary_ends), train_end]]
    spans["evaluate"] = [list(demo["evaluate"])]
    return spans


def _inside(inner: List[float], outer: List[float]) -> bool:
    return inner is not outer and inner[0] >= outer[0] and inner[1] <= outer[1]


def stage_rows(
    spans: Dict[str, List[List[float]]], samples: Sequence[Tuple[float, float, float]]
) -> Dict[str, Dict[str, Optional[float]]]:
    """Per stage: wall seconds, CPU seconds (nested stages subtracted from the fits) and peak memory."""
    rows: Dict[str, Dict[str, Optional[float]]] = {}
    for name, runs in spans.items():
        wall, cpu, peak = 0.0, 0.0, None
        for span in runs:
            usage = span_usage(samples, span[0], span[1])
            wall += span[1] - span[0]
            cpu = None if (cpu is None or usage[0] is None) else cpu + usage[0]
            if usage[1] is not None:
                peak = usage[1] if peak is None else max(peak, usage[1])
            if name.startswith("fit_"):
                for other, others in spans.items():
                    for inner in others:
                        if not other.startswith("fit_") and _inside(inner, span):
                            wall -= inner[1] - inner[0]
                            nested = span_usage(samples, inner[0], inner[1])[0]
                            cpu = None if (cpu is None or nested is None) else cpu - nested
        rows[name] = {"seconds": wall, "cpu_seconds": cpu, "peak_rss_mb": peak}
    return rows


def growth_exponents(points: Sequence[Tuple[float, float, float]]) -> Dict[str, Optional[float]]:
    """Least-squares exponents b, c of ``y = a * views^b * pixels^c`` from (views, pixels, y) points (y > 0).

    An exponent is None when the points do not vary in that variable (or vary in views and pixels together)."""
    pts = [(v, p, y) for v, p, y in points if y is not None and y > 0]
    if len(pts) < 2:
        return {"views": None, "pixels": None}
    logv = np.log([p[0] for p in pts])
    logp = np.log([p[1] for p in pts])
    logy = np.log([p[2] for p in pts])
    vary_v, vary_p = np.ptp(logv) > 1e-9, np.ptp(logp) > 1e-9
    columns, names = [np.ones(len(pts))], []
    if vary_v:
        columns.append(logv)
        names.append("views")
    if vary_p:
        columns.append(logp)
        names.append("pixels")
    design = np.stack(columns, axis=1)
    if np.linalg.matrix_rank(design) < design.shape[1]:  # views and pixels grew together: not separable
        return {"views": None, "pixels": None}
    coef = np.linalg.lstsq(design, logy, rcond=None)[0]
    out: Dict[str, Optional[float]] = {"views": None, "pixels": None}
    for name, value in zip(names, coef[1:]):
        out[name] = float(value)
    return out


def stage_names(results: Sequence[Dict[str, Any]]) -> List[str]:
    """The stages present in any result: those of :data:`STAGE_ORDER` in its order, then any other."""
    present = {n for r in results for n in r["stages"]}
    return [n for n in STAGE_ORDER if n in present] + sorted(present - set(STAGE_ORDER))


def fit_exponents(results: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Optional[float]]]:
    """Per stage, the growth exponents of CPU seconds (and of wall seconds) over the sizes run."""
    names = stage_names(results)
    out: Dict[str, Dict[str, Optional[float]]] = {}
    for name in names:
        row: Dict[str, Optional[float]] = {}
        for key, label in (("cpu_seconds", "cpu"), ("seconds", "wall")):
            pts = [(r["views"], r["pixels"], r["stages"].get(name, {}).get(key)) for r in results]
            fit = growth_exponents(pts)
            row[f"{label}_views"], row[f"{label}_pixels"] = fit["views"], fit["pixels"]
        out[name] = row
    return out
