"""Refit "ours" from a finished run's stage outputs with another 2D fill or depth median, and score it.

The reconstruction and the masks stay those of RUN, so two settings are compared without the run-to-run spread of
new reconstructions. RUN is copied to OUT/src without its seen-elsewhere targets (the refit computes them again with
``--depth-median``); with ``--inpainter`` the copy's 2D colour fill (``inpainted/``) is redone by that backend. The
refit is scored inside SCENE's true masks against its object-free images (a generated scene: ``spin-nerf
make-scene``) and the figures are appended to OUT/results.json.

    python scripts/refit_ab.py RUN SCENE OUT --inpainter select --depth-median 5 --seed 0
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Dict, Optional

import numpy as np
from PIL import Image

SKIPPED = ("seen_elsewhere", "inpainted_targets", "seen_depth", "seen_elsewhere.json", "baselines")


def copy_run(run: Path, src: Path, inpainter: Optional[str], images: Path) -> Optional[str]:
    """Copy RUN without its seen targets (and checkpoints); redo the 2D colour fill with ``inpainter`` if given."""
    shutil.copytree(run, src, ignore=shutil.ignore_patterns(*SKIPPED, "nerfstudio_models", "field_prior*"))
    if inpainter is None:
        return None
    from spin_nerfstudio.inpainting.config import InpainterConfig

    fill = InpainterConfig(backend=inpainter).setup()
    for path in sorted((src / "masks_dilated").glob("*.png")):
        mask = np.asarray(Image.open(path)) > 0
        image = np.asarray(Image.open(next(images.glob(path.stem + ".*"))).convert("RGB"))
        Image.fromarray(fill.inpaint_rgb(image, mask)).save(src / "inpainted" / path.name)
    return fill.summary() or fill.name


def refit(src: Path, out: Path, scene: Path, name: str, depth_median: int, seed: int) -> Dict[str, object]:
    """Train the refit and return its masked figures and the share of masked pixels seen elsewhere."""
    from spin_nerfstudio.evaluation.baselines import METRIC_KEYS, train_variant, variant_config
    from spin_nerfstudio.evaluation.evaluate import evaluate_pipeline

    def change(cfg) -> None:
        cfg.machine.seed = 42 + seed
        cfg.pipeline.visibility.depth_median = depth_median

    pipe, base, step = train_variant(variant_config(src / "config.yml", out / "fits", name, change))
    scores, _ = evaluate_pipeline(pipe, base, step, scene / "masks", scene / "background")
    seen = json.loads((Path(base) / "seen_elsewhere.json").read_text())["seen_fraction"]
    return {**{k: scores.get(k) for k in METRIC_KEYS}, "seen": seen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("scene", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--inpainter", choices=["select", "biharmonic", "telea"], default=None)
    parser.add_argument("--depth-median", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    src = args.out / "src"
    if not src.exists():
        note = copy_run(args.run, src, args.inpainter, args.scene / "images")
        if note:
            print(note, flush=True)
    name = f"{args.inpainter or 'run'}_m{args.depth_median}_s{args.seed}"
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    results[name] = refit(src, args.out, args.scene, name, args.depth_median, args.seed)
    results_file.write_text(json.dumps(results, indent=1))
    print(name, json.dumps(results[name]), flush=True)


if __name__ == "__main__":
    main()
