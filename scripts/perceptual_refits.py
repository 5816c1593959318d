"""Paired refits with and without the perceptual loss from one ``spin-nerf dev figures`` run's stage outputs.

    PYTHONPATH=. .venv/bin/python scripts/perceptual_refits.py FIGURES_OUT/seedS METHOD REPEAT [--steps N]
    PYTHONPATH=. .venv/bin/python scripts/perceptual_refits.py --table FIGURES_OUT/seed* ...

METHOD is ``st_lpips`` (ours with ``--pipeline.perceptual-network st-lpips``, weight ``--pipeline.st-lpips-loss-mult``)
or ``no_perceptual`` (ours with ``--pipeline.lpips-loss-mult 0 --pipeline.st-lpips-loss-mult 0``), so the pair does not
depend on the default; REPEAT sets the fit's random
seed (42 + REPEAT) as ``spin-nerf dev figures`` does. The refit starts from the seed's removal run (stage outputs kept
in ``RUN/``), optionally for fewer steps than the run's inpainted fit (same stretch of the learning-rate schedule,
stopped early), and is scored inside the scene's ground-truth masks with ``spin-nerf evaluate``'s metrics; the
scores go to ``RUN/baselines/perceptual_refits/METHOD_REPEAT_sSTEPS.json``. One process per refit, so several can
run side by side; ``--table`` prints masked PSNR / SSIM / ST-LPIPS per seed and fit, and the paired differences.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RUN = Path("runs/ours/spin-inpaint-small/run")
KEYS = ("masked_psnr", "masked_ssim", "masked_st_lpips")


def refit(seed_dir: Path, method: str, repeat: int, steps: int | None) -> Path:
    from spin_nerfstudio.dev.figures import _refit_change
    from spin_nerfstudio.evaluation.baselines import BASELINE_DIR, METRIC_KEYS, train_variant, variant_config
    from spin_nerfstudio.evaluation.evaluate import evaluate_pipeline
    from spin_nerfstudio.stage_io import write_json

    run_dir = seed_dir / RUN
    name = f"{method}_{repeat}_s{steps or 'full'}"
    cfg = variant_config(
        run_dir / "config.yml", run_dir / BASELINE_DIR / "perceptual_refits", name, _refit_change(method, repeat), steps
    )
    pipe, base, step = train_variant(cfg)
    res, _ = evaluate_pipeline(pipe, base, step, seed_dir / "scene" / "masks", seed_dir / "scene" / "background")
    out = run_dir / BASELINE_DIR / "perceptual_refits" / f"{name}.json"
    write_json(out, {"method": method, "repeat": repeat, "steps": step, **{k: res.get(k) for k in METRIC_KEYS}})
    return out


def table(seed_dirs: list) -> str:
    lines = ["| seed | fit | steps | " + " | ".join(f"{k} on / off / on - off" for k in KEYS) + " |"]
    lines.append("|---|---|---|" + "---|" * len(KEYS))
    diffs = {k: [] for k in KEYS}
    for seed_dir in seed_dirs:
        folder = Path(seed_dir) / RUN / "baselines" / "perceptual_refits"
        for on_file in sorted(folder.glob("st_lpips_*.json")):
            off_file = folder / on_file.name.replace("st_lpips_", "no_perceptual_", 1)
            if not off_file.is_file():
                continue
            on, off = json.loads(on_file.read_text()), json.loads(off_file.read_text())
            cells = []
            for k in KEYS:
                d = on[k] - off[k]
                diffs[k].append(d)
                cells.append(f"{on[k]:.3f} / {off[k]:.3f} / {d:+.3f}")
            lines.append(f"| {Path(seed_dir).name} | {on['repeat']} | {on['steps']} | " + " | ".join(cells) + " |")
    n = len(diffs[KEYS[0]])
    if n:
        means = " | ".join(f"mean on - off {sum(v) / n:+.3f}" for v in diffs.values())
        lines.append(f"| mean of {n} pairs | | | {means} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("seed_dirs", nargs="+", type=Path)
    p.add_argument("--table", action="store_true")
    p.add_argument("--steps", type=int, default=None)
    a = p.parse_args()
    if a.table:
        print(table(a.seed_dirs))
        return
    seed_dir, method, repeat = a.seed_dirs[0], str(a.seed_dirs[1]), int(str(a.seed_dirs[2]))
    if method not in ("st_lpips", "no_perceptual"):
        sys.exit(f"perceptual_refits: METHOD must be st_lpips or no_perceptual, got {method}")
    print(refit(seed_dir, method, repeat, a.steps), flush=True)


if __name__ == "__main__":
    main()
