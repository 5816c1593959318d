"""The printed (Markdown) tables of a ``spin-nerf dev scaling`` report."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from spin_nerfstudio.dev.scaling_stages import stage_names


def _num(x: Optional[float], fmt: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def format_table(report: Dict[str, Any]) -> str:
    """The Markdown tables of a scaling report."""
    results = report["results"]
    steps = report["steps"]
    gpu = any(r.get("cuda_peak_mb") is not None for r in results)
    sizes = ", ".join(r["size"] for r in results)
    lines = [
        f"spin-nerf dev scaling: sizes {sizes} (views x width x height), schedule {steps[0]}/{steps[1]}/{steps[2]} "
        f"steps (reconstruct/mask/total), seed {report['seed']}, device {report.get('device', 'cpu')}, "
        f"config {report.get('config', 'small')}, torch threads {report['threads']}, "
        f"config changes: {' '.join(report.get('settings', [])) or 'none'}, "
        f"load average at start {report['load_start']}",
        "",
        "Seconds per stage, CPU (user + system, all threads) / wall; peak resident MiB sampled inside the stage"
        + ("; peak GPU MiB (torch's allocator) of the stage:" if gpu else ":"),
        "",
        "| stage | " + " | ".join(r["size"] for r in results) + " | exponent in views (CPU) | in pixels (CPU) |",
        "|---|" + "---:|" * (len(results) + 2),
    ]
    exps = report["exponents"]
    for name in stage_names(results):
        cells = []
        for r in results:
            s = r["stages"].get(name)
            cells.append(
                "–" if s is None
                else f"{_num(s['cpu_seconds'], '.2f')} / {_num(s['seconds'], '.2f')} s, {_num(s['peak_rss_mb'], '.0f')} MiB"
                + (f", GPU {_num(s.get('cuda_peak_mb'), '.0f')} MiB" if gpu else "")
            )  # fmt: skip
        e = exps.get(name, {})
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {_num(e.get('cpu_views'), '.2f')} | {_num(e.get('cpu_pixels'), '.2f')} |"
        )
    lines.append(
        "| unattributed (checkpoints, sheets, imports) | "
        + " | ".join(f"{r['unattributed_seconds']:.2f} s" for r in results) + " | | |"
    )  # fmt: skip
    lines.append("| **whole child (wall)** | " + " | ".join(f"{r['child_seconds']:.1f} s" for r in results) + " | | |")
    lines.append("| **peak memory, VmHWM** | " + " | ".join(f"{r['peak_rss_mb']:.0f} MiB" for r in results) + " | | |")
    if gpu:
        lines.append(
            "| **peak GPU memory (torch)** | "
            + " | ".join(f"{_num(r.get('cuda_peak_mb'), '.0f')} MiB" for r in results) + " | | |"
        )  # fmt: skip
    lines += [
        "",
        "Exponents: least squares of log(CPU seconds) on log(views) and log(pixels per view) over "
        f"{sizes}; '–' where the sizes do not vary in that variable. Wall-second exponents are in scaling.json.",
    ]
    for fail in report.get("failed", []):
        lines.append(f"FAILED {fail['size']}: {fail['error']}")
    return "\n".join(lines)
