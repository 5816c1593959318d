"""The report's loss curves: scalar series from the run's tensorboard event files, plotted with stage boundaries."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np


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
