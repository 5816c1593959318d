"""``spin-nerf dev``: the developer benchmarks under one verb (figures, segbench, bench, scaling, witnesses, geometry,
poses)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from spin_nerfstudio.prompts import SpinInputError


def add_command(sub) -> None:
    """Add ``dev`` and its sub-commands to the ``spin-nerf`` parser's sub-parsers."""
    dev = sub.add_parser(
        "dev", help="developer benchmarks on generated scenes: figures, segbench, bench, scaling, witnesses"
    )
    verbs = dev.add_subparsers(dest="dev_command", required=True)

    f = verbs.add_parser("figures", help="inpainting figures on generated scenes: ours vs baselines, ablation, 2D")
    f.add_argument("--output", type=Path, default=Path("figures_output"))
    f.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    f.add_argument("--num-views", type=int, default=24)
    f.add_argument("--width", type=int, default=120)
    f.add_argument("--height", type=int, default=90)
    f.add_argument("--steps", type=int, nargs=3, default=None, metavar=("RECONSTRUCT", "MASK", "TOTAL"),
                   help="schedule (default: spin-inpaint-small's)")  # fmt: skip
    f.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    f.add_argument("--masks", default="truth", choices=["truth", "clicks"],
                   help="removal masks: the scene's ground truth (default) or segmented from its click")  # fmt: skip
    f.add_argument("--repeats", type=int, default=2, help="fits per method and scene, averaged (default 2)")
    f.add_argument("--texture", default="smooth", choices=["smooth", "tiles", "stripes", "checker"],
                   help="background texture of the generated scenes (default smooth)")  # fmt: skip
    f.add_argument("--refits", nargs="+", default=["ours", "plain_targets", "masked_nerf"],
                   choices=["ours", "plain_targets", "masked_nerf", "no_perceptual", "st_lpips", "depth_both"],
                   help="methods fitted from each run's stage outputs (ours is always fitted; no_perceptual = ours "
                   "without the perceptual loss (both weights 0), st_lpips = ours with --pipeline.perceptual-network st-lpips, depth_both = ours with "
                   "--pipeline.model.depth-loss-sides both)")  # fmt: skip
    f.add_argument("--st-lpips-mult", type=float, default=None, metavar="WEIGHT",
                   help="ST-LPIPS loss weight of ours and the refits that keep the perceptual loss (default: the "
                   "pipeline's --pipeline.st-lpips-loss-mult; refits already in OUTPUT are reused, so give a new --output)")  # fmt: skip
    f.add_argument("--table-only", action="store_true", help="print the table of OUTPUT/figures.json again")

    g = verbs.add_parser("geometry", help="a run's reconstruction figures: held-out PSNR, depth reprojection agreement")
    g.add_argument("run", type=Path, help="run folder (holding config.yml)")

    b = verbs.add_parser("segbench", help="initial vs mask-field IoU on varied generated scenes")
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    b.add_argument("--output", type=Path, default=Path("segbench_output"))
    b.add_argument("--segmenter", default="grabcut", choices=["auto", "grabcut", "sam", "mobilesam"])
    b.add_argument("--quick", action="store_true", help="smaller scenes and fewer steps (a smoke run, not the figures)")

    from spin_nerfstudio.dev.bench import add_arguments

    add_arguments(verbs.add_parser("bench", help="time and score the CPU field against nerfacto's torch path"))

    from spin_nerfstudio.dev import scaling

    scaling.add_arguments(
        verbs.add_parser("scaling", help="every stage's seconds and peak memory as the scene grows in views and pixels")
    )
    from spin_nerfstudio.dev import witnesses

    witnesses.add_arguments(
        verbs.add_parser("witnesses", help="seen-elsewhere stage: all other views as witnesses vs a capped number")
    )
    from spin_nerfstudio.dev import poses

    poses.add_arguments(
        verbs.add_parser("poses", help="a capture's poses against its images: SIFT matches on their epipolar lines")
    )


def run(args: argparse.Namespace) -> None:
    """Run the parsed ``spin-nerf dev`` sub-command."""
    if args.dev_command == "segbench":
        from spin_nerfstudio.dev.segbench import run_segbench

        run_segbench(args.output, seeds=args.seeds, segmenter=args.segmenter, quick=args.quick)
    elif args.dev_command == "bench":
        from spin_nerfstudio.dev.bench import run_bench, settings_from_args

        report = run_bench(args.output, settings_from_args(args), args.demo_output, args.run_demo)
        print(report["table"])
    elif args.dev_command == "figures":
        _figures(args)
    elif args.dev_command == "scaling":
        from spin_nerfstudio.dev.scaling import parse_size, run_scaling

        sizes = [parse_size(s) for s in args.sizes]
        print(run_scaling(args.output, sizes, args.steps, args.seed, args.settings, args.device, args.config)["table"])
    elif args.dev_command == "witnesses":
        from spin_nerfstudio.dev.witnesses import replay, run_witness_bench

        if args.replay is not None:
            print(replay(args.replay, args.limits))
            return
        print(run_witness_bench(args.output, args.views, args.width, args.height, args.limits, args.repeats)["table"])
    elif args.dev_command == "geometry":
        from spin_nerfstudio.evaluation.geometry_check import run_dir_figures

        print("\n".join(run_dir_figures(args.run)))
    elif args.dev_command == "poses":
        from spin_nerfstudio.dev.poses import capture_agreement, describe

        result = capture_agreement(args.data, args.downscale_factor, args.shuffle)
        print(describe(args.data, result, args.shuffle))


def _figures(args: argparse.Namespace) -> None:
    from spin_nerfstudio.dev.figures import figures_table, run_figures

    if args.table_only:
        path = args.output / "figures.json"
        if not path.is_file():
            raise SpinInputError(f"{path}: not found; run spin-nerf dev figures first")
        print(figures_table(json.loads(path.read_text())))
        return
    if args.repeats < 1:
        raise SpinInputError(f"--repeats: must be at least 1, got {args.repeats}")
    if args.st_lpips_mult is not None and not (math.isfinite(args.st_lpips_mult) and args.st_lpips_mult >= 0):
        raise SpinInputError(f"--st-lpips-mult: must be a finite number of at least 0, got {args.st_lpips_mult}")
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    iterations = None
    if args.steps is not None:
        iterations = {"reconstruct": args.steps[0], "mask": args.steps[1], "total": args.steps[2]}
    spec = {"num_views": args.num_views, "width": args.width, "height": args.height}
    if args.texture != "smooth":
        spec["texture"] = args.texture
    refits = ["ours", *[r for r in args.refits if r != "ours"]]
    figures = run_figures(
        args.output, args.seeds, spec, iterations, device, args.masks, args.repeats, refits, args.st_lpips_mult
    )
    print(figures_table(figures))
