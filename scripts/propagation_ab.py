"""Segmentation A/Bs on a run's own depth: initial masks with and without growing round the object
(``--pipeline.segmenter.grow``), and the clicked view's mask with colour GrabCut alone against today's segmenter.

Real capture (no truth: mask areas, statuses, and a sheet of every view, image | grow off | grow on)::

    python scripts/propagation_ab.py capture DATA RUN PROMPTS SHEET.png [--factor 8]

``spin-nerf dev segbench --output DIR`` run (IoU with the generator's masks, per seed)::

    python scripts/propagation_ab.py segbench DIR

The clicked view of each segbench seed, colour GrabCut alone vs the default (``--pipeline.segmenter.depth-colour-
margin``), IoU with the generator's mask::

    python scripts/propagation_ab.py clicked DIR

All read the depth the run rendered (``RUN/depth``) and propagate the clicks as the ``initial_masks`` stage does
(opacity taken as 1, as it is only read at the clicks).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np
from PIL import Image

from spin_nerfstudio.prompts import load_prompts, match_to_dataset
from spin_nerfstudio.segmentation.grabcut import GrabCutSegmenter
from spin_nerfstudio.segmentation.multiview import PropagationResult, propagate_prompts
from spin_nerfstudio.segmentation.propagate import PinholeView


def both(prompts, clicked: List[int], images, depths, views) -> Dict[bool, PropagationResult]:
    """The propagation with grow off and on."""
    ones = [np.ones_like(d) for d in depths]
    return {
        grow: propagate_prompts(prompts, clicked, images, depths, ones, views, GrabCutSegmenter(), grow=grow)
        for grow in (False, True)
    }


def capture(data: Path, run: Path, prompt_file: Path, sheet: Path, factor: int) -> None:
    from spin_nerfstudio.data.llff import SpinLLFFDataParserConfig

    config = SpinLLFFDataParserConfig(data=data, downscale_factor=factor, eval_mode="interval", eval_offset=4)
    outputs = config.setup().get_dataparser_outputs("train")
    names = [p.name for p in outputs.image_filenames]
    views = [PinholeView.from_cameras(outputs.cameras, i) for i in range(len(names))]
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in outputs.image_filenames])
    depths = [np.load(run / "depth" / (Path(n).stem + ".npy")) for n in names]
    prompts = load_prompts(prompt_file)
    results = both(
        prompts, match_to_dataset(prompts, names, [(v.width, v.height) for v in views]), images, depths, views
    )
    for grow, result in results.items():
        areas = np.array([m.sum() for m in result.masks])
        counts = {s: result.status.count(s) for s in sorted(set(result.status))}
        print(
            f"grow {grow}: {int((areas > 0).sum())}/{len(areas)} non-empty, median area {int(np.median(areas))} px, {counts}"
        )
    tiles = []
    for j, image in enumerate(images):
        row = [image]
        for grow in (False, True):
            tinted = image.copy()
            m = results[grow].masks[j]
            tinted[m] = (0.5 * tinted[m] + np.array([127, 0, 127])).astype(np.uint8)
            row.append(tinted)
        tiles.append(np.concatenate(row, 1))
    while len(tiles) % 4:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.concatenate([np.concatenate(tiles[i : i + 4], 1) for i in range(0, len(tiles), 4)], 0)
    Image.fromarray(grid).save(sheet)
    print(f"sheet: {sheet}")


def segbench_seeds(output: Path) -> Iterator[Dict]:
    """Each seed of a segbench run with its rendered depth: names, ground truth, views, depths, prompts."""
    from spin_nerfstudio.data.synthetic import load_ground_truth

    for seed in range(100):
        depth_dirs = sorted((output / f"run_{seed}").rglob("depth"))
        if not depth_dirs:
            continue
        gt = load_ground_truth(output / f"scene_{seed}")
        names = list(gt["names"])
        tf = json.loads((output / f"scene_{seed}" / "transforms.json").read_text())
        views = [
            PinholeView(
                np.asarray(f["transform_matrix"])[:3], tf["fl_x"], tf["fl_y"], tf["cx"], tf["cy"], tf["w"], tf["h"]
            )
            for f in tf["frames"]
        ]
        yield {
            "seed": seed,
            "names": names,
            "gt": gt,
            "views": views,
            "depths": [np.load(depth_dirs[0] / (Path(n).stem + ".npy")) for n in names],
            "prompts": load_prompts(output / f"clicks_{seed}.json"),
        }


def segbench(output: Path) -> None:
    from spin_nerfstudio.evaluation.metrics import mask_scores

    print("| seed | grow off | grow on |\n|---|---|---|")
    for s in segbench_seeds(output):
        gt, names, prompts = s["gt"], s["names"], s["prompts"]
        clicked = [names.index(p.image) for p in prompts.prompts]
        results = both(prompts, clicked, gt["images"], s["depths"], s["views"])
        means = [np.mean([mask_scores(m, g)[0] for m, g in zip(results[g].masks, gt["masks"])]) for g in (False, True)]
        print(f"| {s['seed']} | {means[0]:.3f} | {means[1]:.3f} |")


def clicked(output: Path) -> None:
    from spin_nerfstudio.evaluation.metrics import mask_scores

    print("| seed | colour only | default | default kept |\n|---|---|---|---|")
    for s in segbench_seeds(output):
        prompt = s["prompts"].prompts[0]
        k = s["names"].index(prompt.image)
        truth, image, depth = s["gt"]["masks"][k], s["gt"]["images"][k], s["depths"][k]
        positive = np.asarray(prompt.positive, float)
        negative = np.asarray(prompt.negative, float).reshape(-1, 2)
        scores = []
        for margin in (-1.0, GrabCutSegmenter().depth_colour_margin):
            segmenter = GrabCutSegmenter(depth_colour_margin=margin)
            mask = segmenter.segment(image, positive, negative, depth)
            scores.append(mask_scores(mask, truth)[0])
        print(f"| {s['seed']} | {scores[0]:.3f} | {scores[1]:.3f} | {segmenter.summary()} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("capture")
    for name in ("data", "run", "prompts", "sheet"):
        c.add_argument(name, type=Path)
    c.add_argument("--factor", type=int, default=8)
    for mode in ("segbench", "clicked"):
        sub.add_parser(mode).add_argument("output", type=Path, help="the --output folder of a segbench run")
    args = parser.parse_args()
    if args.mode == "capture":
        capture(args.data, args.run, args.prompts, args.sheet, args.factor)
    else:
        {"segbench": segbench, "clicked": clicked}[args.mode](args.output)


if __name__ == "__main__":
    main()
