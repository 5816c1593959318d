"""``spin-nerf dev witnesses``: the seen-elsewhere stage with every other view as a witness against a capped number.

On generated scenes of a growing number of views (same size, same camera extent, denser), the stage
(:func:`spin_nerfstudio.inpainting.visibility.seen_elsewhere_targets`) runs on exact inputs: the true depth as the
rendered depth, the true object masks grown by 2 pixels as removal masks, a biharmonic 2D fill. Each setting of
``max_witnesses`` runs on the same inputs in this one process, alternating, best of ``repeats`` in CPU seconds
(user + system, all threads); the share of masked pixels seen elsewhere and the colour error of the seen pixels
against the true background tell what the cap costs in quality.

``--replay DIR`` instead replays the stage of a finished ``spin-nerf dev scaling`` size folder (or demo output) on its
own inputs (rendered depth, removal masks, 2D fill; the object-colour rejection off), once per setting: the cost of
the cap with the imperfect rendered depth of a real run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np


def _scene_inputs(root: Path) -> Dict[str, Any]:
    from spin_nerfstudio.data.synthetic import load_ground_truth
    from spin_nerfstudio.inpainting.biharmonic import BiharmonicInpainter
    from spin_nerfstudio.segmentation.propagate import PinholeView, dilate

    gt = load_ground_truth(root)
    tf = json.loads((root / "transforms.json").read_text())
    views = [
        PinholeView(np.asarray(f["transform_matrix"])[:3], tf["fl_x"], tf["fl_y"], tf["cx"], tf["cy"], tf["w"], tf["h"])
        for f in tf["frames"]
    ]
    h, w = gt["depth"][0].shape
    depth = []
    for view, z in zip(views, gt["depth"]):  # z-depth to ray distance
        ys, xs = np.mgrid[0:h, 0:w]
        xy = np.stack([xs.ravel(), ys.ravel()], -1)
        cam = np.stack([(xy[:, 0] + 0.5 - view.cx) / view.fx, (xy[:, 1] + 0.5 - view.cy) / view.fy], -1)
        depth.append((z * np.sqrt(1.0 + (cam**2).sum(-1)).reshape(h, w)).astype(np.float32))
    removal = [dilate(m, 5, 1) for m in gt["masks"]]
    inp = BiharmonicInpainter()
    return {
        "views": views, "images": gt["images"], "removal": removal, "background": gt["background"],
        "inpainted_rgb": [inp.inpaint_rgb(i, m) for i, m in zip(gt["images"], removal)],
        "inpainted_depth": [inp.inpaint_depth(d, m) for d, m in zip(depth, removal)], "rendered_depth": depth,
    }  # fmt: skip


def run_witness_bench(
    output: Path, view_counts: Sequence[int], width: int, height: int, limits: Sequence[int], repeats: int = 2
) -> Dict[str, Any]:
    """Time the stage per view count and cap; writes ``witnesses.json`` and ``witnesses.md`` into ``output``."""
    from spin_nerfstudio.data.synthetic import SceneSpec, make_scene
    from spin_nerfstudio.inpainting import visibility as vis

    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    rows: List[Dict[str, Any]] = []
    for n in view_counts:
        inputs = _scene_inputs(make_scene(output / f"scene_{n}", SceneSpec(n, width, height, 0), llff=False))
        background = inputs.pop("background")
        best: Dict[int, float] = {k: float("inf") for k in limits}
        result: Dict[int, Any] = {}
        for _ in range(repeats):
            for k in limits:
                c0 = time.process_time()
                result[k] = vis.seen_elsewhere_targets(**inputs, config=vis.VisibilityConfig(max_witnesses=k))
                best[k] = min(best[k], time.process_time() - c0)
        masked = sum(int(m.sum()) for m in inputs["removal"])
        for k in limits:
            t = result[k]
            seen = sum(int(s.sum()) for s in t.seen)
            err = [
                np.abs(tt[s].astype(float) - bg[s].astype(float)).mean()
                for tt, s, bg in zip(t.targets, t.seen, background)
                if s.any()
            ]
            rows.append({"views": n, "max_witnesses": k, "cpu_seconds": best[k], "seen_fraction": seen / max(masked, 1),
                         "seen_abs_error": float(np.mean(err)) if err else None, "masked_pixels": masked})  # fmt: skip
        print(f"spin-nerf dev witnesses: {n} views done", flush=True)
    lines = [
        f"spin-nerf dev witnesses: {width}x{height} generated scenes, views {' '.join(map(str, view_counts))}, "
        f"max_witnesses {' '.join(map(str, limits))} (0: all), best of {repeats}, CPU seconds (user + system)",
        "",
        "| views | max witnesses | CPU s | seen share | mean abs error of seen colour (0-255) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        err = "–" if r["seen_abs_error"] is None else f"{r['seen_abs_error']:.2f}"
        lines.append(
            f"| {r['views']} | {r['max_witnesses'] or 'all'} | {r['cpu_seconds']:.2f} | {r['seen_fraction']:.3f} | {err} |"
        )
    for k in limits:
        from spin_nerfstudio.dev.scaling_stages import growth_exponents

        fit = growth_exponents(
            [(r["views"], width * height, r["cpu_seconds"]) for r in rows if r["max_witnesses"] == k]
        )
        b = "–" if fit["views"] is None else f"{fit['views']:.2f}"
        lines.append(f"\nmax_witnesses {k or 'all'}: CPU seconds grow as views^{b}")
    report = {"width": width, "height": height, "rows": rows, "table": "\n".join(lines)}
    (output / "witnesses.json").write_text(json.dumps(report, indent=2) + "\n")
    (output / "witnesses.md").write_text(report["table"] + "\n")
    return report


def replay(output: Path, limits: Sequence[int]) -> str:
    """Re-run the seen-elsewhere stage of the finished run under ``output`` (a demo-style folder) per setting."""
    from PIL import Image

    from spin_nerfstudio.inpainting import visibility as vis
    from spin_nerfstudio.prompts import SpinInputError
    from spin_nerfstudio.segmentation.propagate import PinholeView

    found = next(Path(output).rglob(vis.SUMMARY_FILE), None)
    if found is None:
        raise SpinInputError(f"{output}: no finished run with {vis.SUMMARY_FILE} under it")
    run, scene = found.parent, Path(output) / "scene"
    tf = json.loads((scene / "transforms.json").read_text())
    scale = json.loads((run / "dataparser_transforms.json").read_text())["scale"]  # rendered depth is in its units
    views = [
        PinholeView(np.asarray(f["transform_matrix"])[:3], tf["fl_x"], tf["fl_y"], tf["cx"], tf["cy"], tf["w"], tf["h"])
        for f in tf["frames"]
    ]
    names = [Path(f["file_path"]).stem for f in tf["frames"]]

    def rgb(path: Path) -> np.ndarray:
        return np.asarray(Image.open(path).convert("RGB"))

    inputs = {
        "views": views, "images": [rgb(scene / "images" / f"{n}.png") for n in names],
        "removal": [np.asarray(Image.open(run / "masks_dilated" / f"{n}.png")) > 0 for n in names],
        "inpainted_rgb": [rgb(run / "inpainted" / f"{n}.png") for n in names],
        "inpainted_depth": [np.load(run / "inpainted_depth" / f"{n}.npy") / scale for n in names],
        "rendered_depth": [np.load(run / "depth" / f"{n}.npy") / scale for n in names],
    }  # fmt: skip
    masked = sum(int(m.sum()) for m in inputs["removal"])
    own = json.loads(found.read_text())["seen_fraction"]
    lines = [
        f"spin-nerf dev witnesses --replay {output}: {len(views)} views; the run's own seen share {own:.4f}",
        "",
        "| max witnesses | CPU s | seen share |",
        "|---:|---:|---:|",
    ]
    for k in limits:
        c0 = time.process_time()
        t = vis.seen_elsewhere_targets(**inputs, config=vis.VisibilityConfig(max_witnesses=k))
        share = sum(int(s.sum()) for s in t.seen) / max(masked, 1)
        lines.append(f"| {k or 'all'} | {time.process_time() - c0:.2f} | {share:.4f} |")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``spin-nerf dev witnesses`` options."""
    p.add_argument("views", type=int, nargs="*", default=[16, 32, 64], help="view counts (default 16 32 64)")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=48)
    p.add_argument("--limits", type=int, nargs="+", default=[0, 16], help="max_witnesses settings (0: all views)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--output", type=Path, default=Path("witnesses_output"))
    p.add_argument("--replay", type=Path, default=None, metavar="DIR",
                   help="replay the stage of a finished dev scaling size folder instead of generating scenes")  # fmt: skip
