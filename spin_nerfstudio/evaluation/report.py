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
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

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


@dataclass
class RunInfo:
    """What the report needs to know about a run, read from its ``config.yml`` and its dataset."""

    run_dir: Path
    config: object
    train_files: List[Path]
    test_files: List[Path]
    test_masks: List[Path]
    spin_layout: bool


def load_run(run_dir: Path) -> RunInfo:
    """Read ``RUN/config.yml`` and list the run's training (and SPIn-NeRF test) image files via its dataparser."""
    from spin_nerfstudio.data.spin_layout import LAYOUT_KEY, OBJECT_MASK_FILES
    from spin_nerfstudio.evaluation.protocol import load_run_config

    run_dir = Path(run_dir)
    path = run_dir / "config.yml"
    if not path.is_file():
        raise SpinInputError(f"{path}: run config not found (is {run_dir} a run folder?)")
    config = load_run_config(path)
    dp = config.pipeline.datamanager.dataparser
    try:
        parser = dp.setup()
        train = parser.get_dataparser_outputs("train")
    except (OSError, ValueError) as err:
        raise SpinInputError(f"{run_dir}: cannot read the run's dataset {dp.data} ({err})") from None
    spin = bool(train.metadata.get(LAYOUT_KEY))
    test_files: List[Path] = []
    test_masks: List[Path] = []
    if spin:
        test = parser.get_dataparser_outputs("test")
        test_files = [Path(p) for p in test.image_filenames]
        test_masks = [Path(p) for p in test.metadata.get(OBJECT_MASK_FILES, [])]
    return RunInfo(run_dir, config, [Path(p) for p in train.image_filenames], test_files, test_masks, spin)


def _perceptual_loss_row(p) -> str:
    """The run's perceptual loss settings as configured (the training log names the network that ran)."""
    if getattr(p, "lpips_loss_mult", 0) <= 0:
        return "off"
    network = getattr(p, "perceptual_network", "lpips")  # runs configured before ST-LPIPS had LPIPS only
    what = {
        "auto": f"LPIPS({p.lpips_net}) when its ImageNet backbone was found, else ST-LPIPS({p.lpips_net})",
        "lpips": f"LPIPS({p.lpips_net}) (skipped without its ImageNet backbone)",
        "st-lpips": f"ST-LPIPS({p.lpips_net})",
    }.get(network, str(network))
    return f"{what}, weight {p.lpips_loss_mult}, {p.lpips_patch_size} px patches"


# ------------------------------------------------------------------------------------------------------- images
def _tile(image: np.ndarray, min_width: int = 240) -> Image.Image:
    from spin_nerfstudio.evaluation.sheet import to_uint8

    img = Image.fromarray(to_uint8(image))
    if img.width < min_width:
        k = -(-min_width // img.width)
        img = img.resize((img.width * k, img.height * k), Image.NEAREST)
    return img


def _depth_colour(depth: np.ndarray) -> np.ndarray:
    import matplotlib

    d = np.asarray(depth, dtype=np.float64)
    lo, hi = np.percentile(d, 1), np.percentile(d, 99)
    return matplotlib.colormaps["turbo"]((np.clip(d, lo, hi) - lo) / max(hi - lo, 1e-9))[..., :3]


def _read_stage_image(run_dir: Path, folder: str, stem: str) -> Optional[np.ndarray]:
    from spin_nerfstudio.stage_io import MARKER

    path = run_dir / folder / f"{stem}.png"
    if not (run_dir / folder / MARKER).is_file() or not path.is_file():
        return None
    return np.array(Image.open(path))


# ------------------------------------------------------------------------------------------------------- curves
def read_scalars(run_dir: Path) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """All scalar series of the run's tensorboard event files: tag -> (steps, values)."""
    files = sorted(Path(run_dir).glob("events.out.tfevents.*"))
    if not files:
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: Dict[str, Dict[int, float]] = {}
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            for ev in acc.Scalars(tag):
                series.setdefault(tag, {})[int(ev.step)] = float(ev.value)
    return {t: (np.array(sorted(d)), np.array([d[s] for s in sorted(d)])) for t, d in series.items()}


def stage_boundaries(config, run_dir: Path) -> List[Tuple[int, str]]:
    """(step, label) where each stage began, from the schedule and the stage outputs present in the run."""
    p = config.pipeline
    out = [(0, "reconstruct")]
    if (Path(run_dir) / "initial_masks").is_dir():
        out.append((int(p.reconstruct_steps), "segment"))
        out.append((int(p.reconstruct_steps + p.mask_steps), "inpainted fit"))
    elif (Path(run_dir) / "masks").is_dir():
        out.append((int(p.reconstruct_steps), "inpainted fit"))
    return out


def plot_curves(
    scalars: Dict[str, Tuple[np.ndarray, np.ndarray]], boundaries: Sequence[Tuple[int, str]], folder: Path
) -> List[Tuple[str, Path]]:
    """Loss and training-PSNR plots as PNGs; returns (caption, path) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [
        ("Loss terms (log scale)", "losses.png", sorted(t for t in scalars if t.startswith("Train Loss Dict/")), True),
        ("Total training loss (log scale)", "total_loss.png", [t for t in ("Train Loss",) if t in scalars], True),
        ("Training PSNR (dB; outside the removal mask once the inpainted fit starts)", "train_psnr.png",
         [t for t in ("Train Metrics Dict/psnr",) if t in scalars], False),
    ]  # fmt: skip
    out = []
    folder.mkdir(parents=True, exist_ok=True)
    for caption, name, tags, log in groups:
        if not tags:
            continue
        fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=100)
        for tag in tags:
            steps, values = scalars[tag]
            if log:
                keep = values > 0
                steps, values = steps[keep], values[keep]
            ax.plot(steps, values, marker="." if len(steps) < 40 else None, label=tag.split("/")[-1])
        if log:
            ax.set_yscale("log")
        for step, label in boundaries[1:]:
            ax.axvline(step, color="grey", linestyle="--", linewidth=1)
            ax.annotate(label, (step, 1.0), xycoords=("data", "axes fraction"), fontsize=8, color="grey",
                        xytext=(3, -10), textcoords="offset points")  # fmt: skip
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(tags) > 1:
            ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        fig.savefig(folder / name)
        plt.close(fig)
        out.append((caption, folder / name))
    return out


# ------------------------------------------------------------------------------------------------------- html
def _fmt(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.4e}"
    return html.escape(str(value))


CSS = """
body{font-family:system-ui,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:4px 8px;font-size:13px}
th{background:#f4f4f4;text-align:left} td.num{text-align:right;font-family:monospace}
.views td{padding:2px;text-align:center;vertical-align:top} .views img{display:block;width:168px;image-rendering:pixelated}
.note{color:#845;font-size:13px} figure{display:inline-block;margin:6px} figcaption{font-size:12px;color:#555}
.curve{width:640px}
"""


class _Page:
    def __init__(self, folder: Path, embed: bool):
        self.folder, self.embed, self.parts = folder, embed, []  # type: ignore[var-annotated]
        (folder / "img").mkdir(parents=True, exist_ok=True)

    def image(self, tile: Image.Image, name: str, alt: str, css: str = "") -> str:
        path = self.folder / "img" / name
        tile.save(path)
        return self.image_file(path, alt, css)

    def image_file(self, path: Path, alt: str, css: str = "") -> str:
        if self.embed:
            src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
        else:
            src = html.escape(path.relative_to(self.folder).as_posix())
        cls = f' class="{css}"' if css else ""
        return f'<img src="{src}" alt="{html.escape(alt)}"{cls}>'


def _pick_views(names: Sequence[str], k: int, prefer: Sequence[str]) -> List[int]:
    from spin_nerfstudio.evaluation.sheet import pick_views

    idx = pick_views(len(names), k)
    for name in prefer:
        if name in names and names.index(name) not in idx:
            idx = sorted([names.index(name)] + idx[1:])
    return idx


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


def find_chromium() -> Optional[str]:
    """Path of a Chromium / Chrome executable, if one is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(index: Path, png: Path, width: int = 1400, height: int = 8000) -> Path:
    """Render the page to PNG with headless Chromium (``--headless --no-sandbox --disable-gpu --screenshot``).

    The window is ``height`` pixels tall; the blank part below the page is cropped off afterwards.
    """
    exe = find_chromium()
    if exe is None:
        raise SpinInputError("no chromium / google-chrome executable on PATH (e.g. apt-get install -y chromium)")
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--screenshot={Path(png).resolve()}", f"--window-size={width},{height}", Path(index).resolve().as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not Path(png).is_file():
        raise SpinInputError(f"chromium failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    with Image.open(png) as shot:
        rgb = np.asarray(shot.convert("RGB"))
    rows = np.nonzero((rgb < 250).any(axis=(1, 2)))[0]
    if len(rows) and rows[-1] + 24 < rgb.shape[0]:
        Image.fromarray(rgb[: rows[-1] + 24]).save(png)
    return Path(png)


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
