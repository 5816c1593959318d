"""The ``spin-nerf`` command: make-scene, demo, evaluate, benchmark, report; developer benchmarks under ``dev``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from spin_nerfstudio.prompts import SpinInputError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spin-nerf", description="Object removal for nerfstudio (SPIn-NeRF).")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("make-scene", help="write a synthetic capture with one removable object and ground truth")
    s.add_argument("output", type=Path)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num-views", type=int, default=24)
    s.add_argument("--width", type=int, default=120)
    s.add_argument("--height", type=int, default=90)
    s.add_argument("--no-llff", action="store_true", help="skip poses_bounds.npy")
    s.add_argument(
        "--vary",
        action="store_true",
        help="object shape/colour/size/position and partly-out-of-frame views from the seed",
    )
    s.add_argument(
        "--texture",
        default="smooth",
        choices=["smooth", "tiles", "stripes", "checker"],
        help="background texture: smooth blends (default) or a sharp high-frequency pattern over them",
    )
    s.add_argument(
        "--spin-layout",
        action="store_true",
        help="SPIn-NeRF layout: images_4/ with label/, test_label/; --num-views training views",
    )
    s.add_argument("--num-test", type=int, default=40, help="--spin-layout: ground-truth test views (N_gt)")

    d = sub.add_parser("demo", help="generate a scene, remove its object on this machine, write a contact sheet")
    d.add_argument("--output", type=Path, default=Path("demo_output"))
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    e = sub.add_parser("evaluate", help="score a finished run's masks and renders against ground truth")
    e.add_argument("--load-config", type=Path, required=True, help="RUN/config.yml")
    e.add_argument("--gt-masks", type=Path, default=None, help="binary PNGs named like the images, white = object")
    e.add_argument("--gt-images", type=Path, default=None, help="the same views without the object")
    e.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    e.add_argument(
        "--mask-folder", default="masks", choices=["masks", "initial_masks"],
        help="which of the run's masks --gt-masks scores: final (masks) or per-view propagated (initial_masks)",
    )  # fmt: skip
    e.add_argument(
        "--baselines",
        action="store_true",
        help="also score per-view 2D inpainting and a masked NeRF (trained here) on the same views",
    )

    _add_weight_args(e)

    from spin_nerfstudio.evaluation import benchmark, report

    benchmark.add_command(sub, _add_weight_args)
    report.add_command(sub)

    from spin_nerfstudio.dev.cli import add_command as add_dev_command

    add_dev_command(sub)
    return p


def _add_weight_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inception-weights", type=Path, default=None, help="FID Inception weights (else torch's cache)")
    p.add_argument("--lpips-weights", type=Path, default=None, help="LPIPS AlexNet backbone (else torch's cache)")


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``spin-nerf``."""
    from spin_nerfstudio.cpu import prefer_passive_openmp

    prefer_passive_openmp()  # before torch is imported; see spin_nerfstudio/cpu.py
    args = _parser().parse_args(argv)
    try:
        if args.command == "make-scene":
            from spin_nerfstudio.data.synthetic import SceneSpec, make_scene

            if args.spin_layout:
                from spin_nerfstudio.data.spin_layout import make_spin_layout_scene

                out = make_spin_layout_scene(
                    args.output, args.num_views, args.num_test, args.width, args.height, args.seed
                )
            else:
                spec = SceneSpec(num_views=args.num_views, width=args.width, height=args.height, seed=args.seed)
                if args.vary:
                    from spin_nerfstudio.data.synthetic_scene import varied_spec

                    spec = varied_spec(args.seed, args.num_views, args.width, args.height)
                if args.texture != "smooth":
                    import dataclasses

                    spec = dataclasses.replace(spec, texture=args.texture)
                out = make_scene(args.output, spec, llff=not args.no_llff)
            print(f"spin-nerf: scene written to {out}")
        elif args.command == "demo":
            from spin_nerfstudio.demo import run_demo

            run_demo(args.output, seed=args.seed, device=args.device)
        elif args.command == "evaluate":
            from spin_nerfstudio.evaluation.evaluate import evaluate_run, write_metrics

            for path in (args.gt_masks, args.gt_images):
                if path is not None and not path.is_dir():
                    raise SpinInputError(f"{path}: folder not found")
            result = evaluate_run(
                args.load_config,
                args.gt_masks,
                args.gt_images,
                mask_folder=args.mask_folder,
                inception_weights=args.inception_weights,
                lpips_weights=args.lpips_weights,
                baselines=args.baselines,
            )
            print(write_metrics(result, args.output))
            if "comparison" in result:
                from spin_nerfstudio.evaluation.baselines import comparison_table

                print(comparison_table(result["comparison"]), file=sys.stderr)  # type: ignore[arg-type]
        elif args.command in ("benchmark", "report"):
            return args.run_command(args)
        elif args.command == "dev":
            from spin_nerfstudio.dev.cli import run as run_dev

            run_dev(args)
    except SpinInputError as err:
        print(f"spin-nerf: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
