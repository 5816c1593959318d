"""``spin-nerf dev segbench``: how good are the masks from a few clicks, before and after the mask field?

For each seed it generates a varied scene (``varied_spec``: object shape, colours, size and position follow the
seed; 2 or 3 views aimed so that the object is partly out of frame), puts 1 to 3 positive clicks (1 + seed mod 3)
well inside the object in view 000, trains ``spin-inpaint-small`` through the segmentation stage (the run stops one
step after the final masks), and scores with ``spin-nerf evaluate``'s code against the generator's masks:

- (a) ``initial``: the per-view masks propagated from the clicks (``RUN/initial_masks``);
- (b) ``field``: the final masks (``RUN/masks``), the masks the removal uses: each view's initial mask where the
  mask field's render confirms it (IoU >= ``--pipeline.mask-keep-initial-iou``), else the render;
- and, for reference, the field's render alone thresholded at 0.5 in every view (``RUN/mask_probability.npy``).

Equivalent commands for one seed (what this module does in one process)::

    spin-nerf make-scene SCENE --seed 0 --vary --num-views 16 --width 96 --height 72
    ns-train spin-inpaint-small --data SCENE --pipeline.prompt-file CLICKS.json --pipeline.segmenter.backend grabcut \\
        --pipeline.reconstruct-steps 500 --pipeline.mask-steps 200 --max-num-iterations 701 ...
    spin-nerf evaluate --load-config RUN/config.yml --gt-masks SCENE/masks --mask-folder initial_masks
    spin-nerf evaluate --load-config RUN/config.yml --gt-masks SCENE/masks

Run: ``spin-nerf dev segbench`` (or ``python -m spin_nerfstudio.dev.segbench``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from spin_nerfstudio.data.synthetic import load_ground_truth, make_scene
from spin_nerfstudio.data.synthetic_scene import varied_spec
from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.segmentation.sam import interior_points

MARKER = ".spin-segbench"
FULL = {"views": 16, "width": 96, "height": 72, "reconstruct": 500, "mask": 200}
QUICK = {"views": 10, "width": 64, "height": 48, "reconstruct": 200, "mask": 60}


def click_file(scene: Path, count: int, out: Path) -> Path:
    """Write a prompt file with ``count`` positive clicks spread well inside the object in view 000."""
    gt = load_ground_truth(scene)
    pts = interior_points(gt["masks"][0], count)
    data = {"prompts": [{"image": gt["names"][0], "positive": [[int(x), int(y)] for x, y in pts], "negative": []}]}
    out.write_text(json.dumps(data, indent=2) + "\n")
    return out


def run_seed(seed: int, output: Path, segmenter: str, sizes: Dict[str, int], device: str = "cpu") -> Dict:
    """Generate, train through segmentation, evaluate; returns one table row."""
    from spin_nerfstudio.demo import demo_config
    from spin_nerfstudio.evaluation.evaluate import evaluate_pipeline
    from spin_nerfstudio.stages.names import AGREEMENT_FILE, INITIAL_MASK_DIR, MASK_DIR, PROBABILITY_FILE
    from spin_nerfstudio.trainer import run_training as train

    start = time.time()
    spec = varied_spec(seed, sizes["views"], sizes["width"], sizes["height"])
    scene = make_scene(output / f"scene_{seed}", spec, llff=False)
    clicks = click_file(scene, 1 + seed % 3, output / f"clicks_{seed}.json")
    steps = {"reconstruct": sizes["reconstruct"], "mask": sizes["mask"]}
    steps["total"] = steps["reconstruct"] + steps["mask"] + 1
    config = demo_config(scene, clicks, output / f"run_{seed}", device, steps)
    config.experiment_name = f"seed{seed}"
    config.pipeline.segmenter.backend = segmenter  # type: ignore[assignment]
    trainer = train(config)
    run_dir = Path(trainer.base_dir)
    scores = {}
    for label, folder in (("initial", INITIAL_MASK_DIR), ("field", MASK_DIR)):
        result, _ = evaluate_pipeline(trainer.pipeline, run_dir, steps["total"], scene / "masks", mask_folder=folder)
        scores[label] = result
        (output / f"metrics_{seed}_{label}.json").write_text(json.dumps(result, indent=2) + "\n")
    agreement = json.loads((run_dir / AGREEMENT_FILE).read_text()) if (run_dir / AGREEMENT_FILE).exists() else {}
    render_iou = None
    if (run_dir / PROBABILITY_FILE).exists():  # the field's render alone, thresholded at the model's 0.5
        from spin_nerfstudio.evaluation.metrics import mask_scores

        threshold = trainer.pipeline.model.config.mask_threshold
        probability = np.load(run_dir / PROBABILITY_FILE).astype(np.float32)
        gt = load_ground_truth(scene)["masks"]
        render_iou = float(np.mean([mask_scores(p > threshold, g)[0] for p, g in zip(probability, gt)]))
    partial = list(range(spec.num_views - spec.partial_views, spec.num_views))
    return {
        "seed": seed,
        "shape": spec.shape,
        "colours": spec.object_palette,
        "scale": spec.object_scale,
        "clicks": 1 + seed % 3,
        "partial_views": len(partial),
        "initial_iou": scores["initial"]["mask_iou"],
        "field_iou": scores["field"]["mask_iou"],
        "render_iou": render_iou,
        "initial_acc": scores["initial"]["mask_accuracy"],
        "field_acc": scores["field"]["mask_accuracy"],
        "partial_initial_iou": float(np.mean([scores["initial"]["per_view"][i]["mask_iou"] for i in partial])),
        "partial_field_iou": float(np.mean([scores["field"]["per_view"][i]["mask_iou"] for i in partial])),
        "ignored_views": agreement.get("ignored", []),
        "run": str(run_dir),
        "seconds": time.time() - start,
    }


def _num(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_table(rows: Sequence[Dict], title: str) -> str:
    """The figures as a fixed-width text table with a mean row."""
    head = (
        f"{'seed':>4} {'shape':>8} {'colours':>7} {'scale':>5} {'clicks':>6} | {'(a) initial IoU':>15} "
        f"{'(b) field IoU':>13} {'render alone':>12} | {'partial views (a)/(b)':>21} | {'dropped':>7} {'time s':>6}"
    )
    lines = [title, head, "-" * len(head)]
    for r in rows:
        partial = f"{r['partial_views']}: {r['partial_initial_iou']:.3f}/{r['partial_field_iou']:.3f}"
        lines.append(
            f"{r['seed']:>4} {r['shape']:>8} {r['colours']:>7} {r['scale']:>5.2f} {r['clicks']:>6} | "
            f"{r['initial_iou']:>15.3f} {r['field_iou']:>13.3f} {_num(r.get('render_iou')):>12} | {partial:>21} | "
            f"{len(r['ignored_views']):>7} {r['seconds']:>6.0f}"
        )
    lines.append("-" * len(head))
    mean_a = float(np.mean([r["initial_iou"] for r in rows]))
    mean_b = float(np.mean([r["field_iou"] for r in rows]))
    acc_a = float(np.mean([r["initial_acc"] for r in rows]))
    acc_b = float(np.mean([r["field_acc"] for r in rows]))
    renders = [r["render_iou"] for r in rows if r.get("render_iou") is not None]
    mean_r = _num(float(np.mean(renders)) if len(renders) == len(rows) else None)
    lines.append(f"{'mean':>4} {'':>8} {'':>7} {'':>5} {'':>6} | {mean_a:>15.3f} {mean_b:>13.3f} {mean_r:>12} |")
    lines.append(f"mean pixel accuracy: (a) {acc_a:.4f}  (b) {acc_b:.4f}")
    lines.append(
        "(b) = the final masks: a view keeps its initial mask where the mask field's render confirms it (IoU >= "
        "--pipeline.mask-keep-initial-iou), else takes the render; 'render alone' = the field's render at 0.5 in every view"
    )
    return "\n".join(lines)


def run_segbench(
    output: Path, seeds: Sequence[int] = (0, 1, 2, 3, 4), segmenter: str = "grabcut", quick: bool = False
) -> List[Dict]:
    """Run every seed, print the table and write ``segbench.json`` and ``segbench.txt`` into ``output``."""
    import torch

    sizes = QUICK if quick else FULL
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        if not (output / MARKER).exists():
            raise SpinInputError(f"{output}: folder exists and is not a segbench output; choose another --output")
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).write_text("written by spin-nerf dev segbench; the next segbench run may delete this folder\n")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = time.time()
    rows = [run_seed(seed, output, segmenter, sizes, device) for seed in seeds]
    title = (
        f"segbench: segmenter '{segmenter}', {sizes['views']} views of {sizes['width']}x{sizes['height']}, "
        f"{sizes['reconstruct']} reconstruction + {sizes['mask']} mask steps, device {device}, "
        f"{time.time() - start:.0f} s in all"
    )
    table = format_table(rows, title)
    (output / "segbench.json").write_text(json.dumps({"sizes": sizes, "rows": rows}, indent=2) + "\n")
    (output / "segbench.txt").write_text(table + "\n")
    print(table)
    return rows


def main() -> None:
    """Command line entry point (same options as ``spin-nerf dev segbench``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--output", type=Path, default=Path("segbench_output"))
    parser.add_argument("--segmenter", default="grabcut", choices=["auto", "grabcut", "sam", "mobilesam"])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run_segbench(args.output, args.seeds, args.segmenter, args.quick)


if __name__ == "__main__":
    main()
