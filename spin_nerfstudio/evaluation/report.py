"""``spin-nerf report RUN``: one HTML page to open after a run.

The page (``RUN/report/index.html`` unless ``--output``; images alongside in ``img/``, or inlined with ``--embed``)
shows, top to bottom:

1. the run: method, data, schedule, stage times, where the masks came from;
2. the metrics table (``RUN/metrics.json`` or ``--metrics FILE``, as written by ``spin-nerf evaluate --output`` or
   ``spin-nerf benchmark``; on a SPIn-NeRF-layout run without one, the evaluation is run and saved first), each
   metric with how it is computed;
3. the training views: input, reconstruction before removal, object mask, removal (dilated) mask, 2D-inpainted
   target and the final render of the finished model;
4. the test views of a SPIn-NeRF-layout run: ground truth, our render, test mask;
5. the loss curves read from the run's tensorboard event files, with the stage boundaries marked.

It also writes ``sheet.png``, a contact sheet of the training-view table, for places where HTML is awkward.

The run's settings are read in :mod:`.report_run`, the loss curves drawn in :mod:`.report_curves`, the page's
building blocks are in :mod:`.report_html` and the PNG screenshot in :mod:`.report_screenshot`.
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from spin_nerfstudio.evaluation.report_curves import plot_curves, read_scalars, stage_boundaries
from spin_nerfstudio.evaluation.report_html import (
    CSS,
    _depth_colour,
    _fmt,
    _Page,
    _pick_views,
    _read_stage_image,
    _tile,
)
from spin_nerfstudio.evaluation.report_run import _perceptual_loss_row, load_run
from spin_nerfstudio.evaluation.report_screenshot import screenshot
from spin_nerfstudio.prompts import SpinInputError

METRIC_HELP: Dict[str, str] = {
    "psnr": "PSNR (dB), whole image, 10 log10(1/MSE), mean over views",
    "ssim": "SSIM, whole image (Gaussian window 1.5), mean over views",
    "lpips": "LPIPS (AlexNet), whole image, mean over views",
    "masked_psnr": "PSNR (dB) over the pixels inside the mask",
    "masked_ssim": "SSIM map averaged over the pixels inside the mask",
    "masked_lpips": "spatial LPIPS map averaged over the pixels inside the mask",
    "bbox_psnr": "PSNR (dB) on the crop to the mask's bounding box",
    "bbox_ssim": "SSIM on the crop to the mask's bounding box",
    "bbox_lpips": "LPIPS on the crop to the mask's bounding box",
    "st_lpips": "ST-LPIPS (shift-tolerant LPIPS, AlexNet trunk; a different metric, not comparable with LPIPS), "
    "whole image, mean over views",
    "masked_st_lpips": "ST-LPIPS (not LPIPS) inside the mask: spatial map over the mask's pixels for the SPIn-NeRF "
    "test split, else on the crop to the mask's bounding box",
    "bbox_st_lpips": "ST-LPIPS (not LPIPS) on the crop to the mask's bounding box",
    "fid": "FID (Inception pool 2048) between the sets of renders and ground-truth views",
    "bbox_fid": "FID on the bounding-box crops",
    "mask_accuracy": "training views: pixel accuracy of the final masks",
    "mask_iou": "training views: IoU of the final masks",
    "object_colour_fraction": "share of masked pixels still showing the object's colours (synthetic scenes)",
}
"""One-line description of each metric key shown in the table (the full protocol is in the evaluation modules)."""

STAGE_FOLDERS = (
    ("input", None),
    ("reconstruction", "renders_before"),
    ("initial mask", "initial_masks"),
    ("object mask", "masks"),
    ("removal mask", "masks_dilated"),
    ("2D inpainted", "inpainted"),
    ("final render", None),
)
"""Columns of the training-view table and the run sub-folder each comes from."""


def build_report(
    run_dir: Path,
    output: Optional[Path] = None,
    metrics_path: Optional[Path] = None,
    num_views: int = 4,
    render: bool = True,
    embed: bool = False,
) -> Path:
    """Write the report page of a run; returns the path of ``index.html``."""
    from spin_nerfstudio.evaluation.sheet import contact_sheet, overlay, save_sheet
    from spin_nerfstudio.stage_io import stem

    info = load_run(run_dir)
    run_dir = info.run_dir
    out = Path(output) if output is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    page = _Page(out, embed)
    cfg = info.config
    notes: List[str] = []

    # ---- model (renders, and the evaluation of a SPIn-NeRF run that has none yet)
    pipeline = step = None
    metrics_file = Path(metrics_path) if metrics_path is not None else run_dir / "metrics.json"
    if metrics_path is not None and not metrics_file.is_file():
        raise SpinInputError(f"{metrics_file}: metrics file not found")
    if render:
        from nerfstudio.utils.eval_utils import eval_setup

        from spin_nerfstudio import safe_load

        safe_load.allow_nerfstudio_checkpoints()
        try:
            _, pipeline, _, step = eval_setup(run_dir / "config.yml", test_mode="test")
        except (SystemExit, FileNotFoundError, RuntimeError) as err:
            notes.append(f"final renders skipped: cannot load the model ({str(err)[:200]})")
            pipeline = None
    metrics: Optional[Dict] = None
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
        except json.JSONDecodeError as err:
            raise SpinInputError(f"{metrics_file}: not valid JSON ({err.msg})") from None
    elif pipeline is not None and info.spin_layout:
        from spin_nerfstudio.evaluation.evaluate import write_metrics
        from spin_nerfstudio.evaluation.protocol import evaluate_test_split

        result, _ = evaluate_test_split(pipeline, run_dir, int(step))  # type: ignore[arg-type]
        metrics = json.loads(write_metrics(result, metrics_file))

    # ---- header
    p = cfg.pipeline  # type: ignore[attr-defined]
    stages_file = run_dir / "stages.json"
    stage_s = json.loads(stages_file.read_text()).get("seconds", {}) if stages_file.is_file() else {}
    from spin_nerfstudio.evaluation.protocol import masks_source

    rows = [
        ("run", str(run_dir)),
        ("method", cfg.method_name),  # type: ignore[attr-defined]
        ("data", str(p.datamanager.dataparser.data)),
        ("layout", "SPIn-NeRF (train on the views with the object, test on ground-truth views)" if info.spin_layout
         else "all views are training views"),
        ("views", f"{len(info.train_files)} training" + (f", {len(info.test_files)} test" if info.spin_layout else "")),
        ("schedule", f"reconstruct {p.reconstruct_steps} steps, mask head {p.mask_steps} steps, "
         f"total {cfg.max_num_iterations} steps"),  # type: ignore[attr-defined]
        ("object masks", masks_source(p)),
        ("perceptual loss", _perceptual_loss_row(p)),
        ("stage times", ", ".join(f"{k} {v:.1f} s" for k, v in stage_s.items()) or "n/a"),
    ]  # fmt: skip
    body = [f"<h1>spin-nerfstudio run report</h1><p>{html.escape(str(run_dir))}</p>", '<h2 id="run">Run</h2><table>']
    body += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows]
    body.append("</table>")

    # ---- metrics
    body.append('<h2 id="metrics">Metrics</h2>')
    if metrics is None:
        body.append(
            f'<p class="note">No metrics: {html.escape(str(metrics_file))} does not exist. Write it with '
            f"<code>spin-nerf evaluate --load-config {html.escape(str(run_dir / 'config.yml'))} "
            f"[--gt-masks DIR --gt-images DIR] --output {html.escape(str(metrics_file))}</code>.</p>"
        )
    else:
        body.append(f"<p>From {html.escape(str(metrics_file))}" + (
            f" (protocol: {html.escape(str(metrics['protocol']))})" if "protocol" in metrics else "") + "</p>")  # fmt: skip
        body.append('<table class="metrics"><tr><th>metric</th><th>value</th><th>how</th></tr>')
        for key, help_text in METRIC_HELP.items():
            if key in metrics:
                body.append(
                    f'<tr><td>{key}</td><td class="num">{_fmt(metrics[key])}</td><td>{html.escape(help_text)}</td></tr>'
                )
        for key in ("step", "num_views", "num_test_views", "num_train_views", "resolution", "masks_from"):
            if key in metrics:
                body.append(f'<tr><td>{key}</td><td class="num">{_fmt(metrics[key])}</td><td></td></tr>')
        body.append("</table>")
        for note in metrics.get("notes", []):
            body.append(f'<p class="note">{html.escape(str(note))}</p>')

    # ---- training views
    names = [f.name for f in info.train_files]
    prompt_file = run_dir / "prompts.json"
    prefer = []
    if prompt_file.is_file():
        prefer = [pr.get("image", "") for pr in json.loads(prompt_file.read_text()).get("prompts", [])][:1]
    idx = _pick_views(names, num_views, prefer)
    finals: Dict[int, np.ndarray] = {}
    if pipeline is not None:
        from spin_nerfstudio.render import render_views

        cams = pipeline.datamanager.train_dataset.cameras
        rend = render_views(pipeline.model, cams, indices=idx, keys=("rgb",), description="Rendering report views")
        finals = {i: r for i, r in zip(idx, rend["rgb"])}
    columns = [
        (label, folder) for label, folder in STAGE_FOLDERS
        if (folder is None and (label == "input" or finals)) or (folder is not None and (run_dir / folder).is_dir())
    ]  # fmt: skip
    body.append('<h2 id="training-views">Training views</h2>')
    body.append(
        "<p>Input, the reconstruction before removal, the masks (magenta), the 2D-inpainted target the final fit "
        "uses inside the removal mask, and the final render of the finished model.</p>"
    )
    body.append('<table class="views"><tr><th>view</th>' + "".join(f"<th>{c}</th>" for c, _ in columns) + "</tr>")
    sheet_rows = []
    for i in idx:
        s = stem(names[i])
        image = np.asarray(Image.open(info.train_files[i]).convert("RGB"))
        cells, sheet_row = [], []
        for label, folder in columns:
            if label == "input":
                tile = image
            elif label == "final render":
                tile = finals[i]
            else:
                arr = _read_stage_image(run_dir, folder, s)  # type: ignore[arg-type]
                if arr is None:
                    cells.append("<td>missing</td>")
                    sheet_row.append(np.zeros_like(image))
                    continue
                tile = overlay(image, arr > 0) if "mask" in label else arr
            sheet_row.append(tile)
            key = label.replace(" ", "_").replace("2D_", "")
            cells.append("<td>" + page.image(_tile(tile), f"train_{key}_{s}.png", f"{label} {names[i]}") + "</td>")
        sheet_rows.append(sheet_row)
        body.append(f"<tr><td>{html.escape(names[i])}</td>" + "".join(cells) + "</tr>")
    body.append("</table>")
    save_sheet(contact_sheet(sheet_rows, [c for c, _ in columns], [stem(names[i]) for i in idx]), out / "sheet.png")

    # ---- depth: reconstruction and inpainted target
    depth_dir, inpainted_depth_dir = run_dir / "depth", run_dir / "inpainted_depth"
    if (depth_dir / f"{stem(names[idx[0]])}.npy").is_file():
        body.append('<h2 id="depth">Depth</h2><p>Rendered depth before removal and the 2D-inpainted depth target.</p>')
        body.append('<table class="views"><tr><th>view</th><th>depth</th><th>inpainted depth</th></tr>')
        for i in idx:
            s = stem(names[i])
            cells = []
            for folder, key in ((depth_dir, "depth"), (inpainted_depth_dir, "inpainted_depth")):
                f = folder / f"{s}.npy"
                tile = (
                    page.image(_tile(_depth_colour(np.load(f))), f"{key}_{s}.png", f"{key} {s}")
                    if f.is_file()
                    else "missing"
                )
                cells.append(f"<td>{tile}</td>")
            body.append(f"<tr><td>{html.escape(names[i])}</td>" + "".join(cells) + "</tr>")
        body.append("</table>")

    # ---- test views (SPIn-NeRF layout)
    if info.spin_layout:
        from spin_nerfstudio.data.spin_layout import read_label
        from spin_nerfstudio.evaluation.protocol import load_test_renders

        test_names = [f.name for f in info.test_files]
        renders = load_test_renders(run_dir, test_names)
        body.append('<h2 id="test-views">Test views (ground truth)</h2>')
        if renders is None:
            body.append('<p class="note">No test renders yet: run <code>spin-nerf evaluate</code> on this run.</p>')
        else:
            per_view = {v["image"]: v for v in (metrics or {}).get("per_view", []) if isinstance(v, dict)}
            body.append('<table class="views"><tr><th>view</th><th>ground truth</th><th>ours</th><th>test mask</th>'
                        "<th>PSNR / PSNR-in</th></tr>")  # fmt: skip
            for j in _pick_views(test_names, num_views, []):
                s = stem(test_names[j])
                gt = np.asarray(Image.open(info.test_files[j]).convert("RGB"))
                mask = read_label(info.test_masks[j]) if j < len(info.test_masks) else np.zeros(gt.shape[:2], bool)
                pv = per_view.get(test_names[j], {})
                score = f"{_fmt(pv.get('psnr'))} / {_fmt(pv.get('masked_psnr'))}"
                body.append(
                    f"<tr><td>{html.escape(test_names[j])}</td>"
                    f"<td>{page.image(_tile(gt), f'test_truth_{s}.png', 'ground truth ' + s)}</td>"
                    f"<td>{page.image(_tile(renders[j]), f'test_ours_{s}.png', 'ours ' + s)}</td>"
                    f"<td>{page.image(_tile(overlay(gt, mask)), f'test_mask_{s}.png', 'test mask ' + s)}</td>"
                    f'<td class="num">{score}</td></tr>'
                )
            body.append("</table>")

    # ---- loss curves
    body.append('<h2 id="loss-curves">Loss curves</h2>')
    scalars = read_scalars(run_dir)
    if not scalars:
        body.append(
            f'<p class="note">No tensorboard event files in {html.escape(str(run_dir))} '
            "(train with <code>--vis tensorboard</code> to log them).</p>"
        )
    else:
        boundaries = stage_boundaries(cfg, run_dir)
        for caption, path in plot_curves(scalars, boundaries, out / "img"):
            body.append(f"<figure>{page.image_file(path, caption, 'curve')}<figcaption>{html.escape(caption)}"
                        "</figcaption></figure>")  # fmt: skip
        body.append("<table><tr><th>series</th><th>first</th><th>last</th><th>last step</th></tr>")
        for tag in sorted(t for t in scalars if t.startswith(("Train Loss", "Train Metrics"))):
            steps, values = scalars[tag]
            body.append(
                f'<tr><td>{html.escape(tag)}</td><td class="num">{_fmt(float(values[0]))}</td>'
                f'<td class="num">{_fmt(float(values[-1]))}</td><td class="num">{int(steps[-1])}</td></tr>'
            )
        body.append("</table>")
    for note in notes:
        body.append(f'<p class="note">{html.escape(note)}</p>')

    text = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>spin-nerfstudio report: {html.escape(run_dir.name)}</title><style>{CSS}</style></head>\n"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    index = out / "index.html"
    index.write_text(text)
    return index


def add_command(sub) -> None:
    """Register ``spin-nerf report`` on the CLI's sub-parsers."""
    r = sub.add_parser("report", help="write an HTML page of a run: views, masks, inpainting, renders, curves, metrics")
    r.add_argument("run", type=Path, help="run folder (holding config.yml)")
    r.add_argument("--output", type=Path, default=None, help="folder of the page (default RUN/report)")
    r.add_argument("--metrics", type=Path, default=None, help="metrics JSON (default RUN/metrics.json)")
    r.add_argument("--views", type=int, default=4, help="training / test views shown")
    r.add_argument("--no-render", action="store_true", help="do not load the model for the final renders")
    r.add_argument("--embed", action="store_true", help="inline the images (one self-contained HTML file)")
    r.add_argument("--screenshot", type=Path, default=None, help="also render the page to this PNG (headless Chromium)")
    r.set_defaults(run_command=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    if args.views < 1:
        raise SpinInputError(f"--views must be at least 1, got {args.views}")
    index = build_report(args.run, args.output, args.metrics, args.views, not args.no_render, args.embed)
    print(f"spin-nerf report: {index}")
    if args.screenshot is not None:
        print(f"spin-nerf report: screenshot {screenshot(index, args.screenshot)}")
    return 0
