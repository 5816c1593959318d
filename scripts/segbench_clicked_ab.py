"""The clicked view's mask of a ``spin-nerf dev segbench`` run, colour GrabCut alone vs today's segmenter.

Both run on the depth that each seed's reconstruction rendered (``run_S/.../depth``), so the difference is the
segmenter's alone (a segbench run differs from the next in its reconstruction). IoU with the generator's mask.

    spin-nerf dev segbench --output DIR && python scripts/segbench_clicked_ab.py DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from spin_nerfstudio.data.synthetic import load_ground_truth
from spin_nerfstudio.segmentation.grabcut import GrabCutSegmenter


def clicked_view_ious(output: Path, seed: int) -> tuple:
    """(colour-only IoU, default IoU, what the default kept) for one seed, or None without its depth."""
    depth_dirs = sorted((output / f"run_{seed}").rglob("depth"))
    if not depth_dirs:
        return None
    gt = load_ground_truth(output / f"scene_{seed}")
    name, truth, image = gt["names"][0], gt["masks"][0], gt["images"][0]
    depth = np.load(depth_dirs[0] / (Path(name).stem + ".npy"))
    prompt = json.loads((output / f"clicks_{seed}.json").read_text())["prompts"][0]
    positive, negative = np.array(prompt["positive"], float), np.array(prompt["negative"], float).reshape(-1, 2)
    scores = []
    for margin in (-1.0, GrabCutSegmenter().depth_colour_margin):
        segmenter = GrabCutSegmenter(depth_colour_margin=margin)
        mask = segmenter.segment(image, positive, negative, depth)
        scores.append(float((mask & truth).sum() / max(1, (mask | truth).sum())))
    return scores[0], scores[1], segmenter.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the --output folder of a segbench run")
    args = parser.parse_args()
    print("| seed | colour only | default | default kept |\n|---|---|---|---|")
    for seed in range(100):
        row = clicked_view_ious(args.output, seed)
        if row is not None:
            print(f"| {seed} | {row[0]:.3f} | {row[1]:.3f} | {row[2]} |")


if __name__ == "__main__":
    main()
