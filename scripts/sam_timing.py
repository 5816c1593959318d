"""Time SAM's predictor on the CPU: MobileSAM vit_t against SAM vit_b, random weights, alternating rounds.

    PYTHONPATH=. .venv/bin/python scripts/sam_timing.py --threads 2 --rounds 3

Both models are randomly initialised (no weights are downloaded); the cost of ``set_image`` (the image embedding)
and of ``predict`` (prompt encoder + mask decoder, two points, three candidate masks) does not depend on the weights.
The two models are timed in alternation, round after round, so a load change on a shared machine hits both alike;
the medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch


def _predictor(kind: str):
    if kind == "vit_t":
        from mobile_sam import SamPredictor, sam_model_registry
    else:
        from segment_anything import SamPredictor, sam_model_registry
    return SamPredictor(sam_model_registry[kind](checkpoint=None).eval())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (each times both models)")
    parser.add_argument("--size", type=int, nargs=2, default=(1008, 756), metavar=("W", "H"), help="image size")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    w, h = args.size
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    points, labels = np.array([[w / 2, h / 2], [w / 2 + 20, h / 2 + 10]], np.float32), np.array([1, 1])
    models = {kind: _predictor(kind) for kind in ("vit_t", "vit_b")}
    times = {kind: {"set_image": [], "predict": []} for kind in models}
    with torch.inference_mode():
        for r in range(args.rounds):
            for kind, pred in models.items():
                t0 = time.perf_counter()
                pred.set_image(image)
                t1 = time.perf_counter()
                masks, _, _ = pred.predict(point_coords=points, point_labels=labels, multimask_output=True)
                t2 = time.perf_counter()
                assert masks.shape == (3, h, w)
                times[kind]["set_image"].append(t1 - t0)
                times[kind]["predict"].append(t2 - t1)
                print(f"round {r + 1} {kind}: set_image {t1 - t0:.2f} s, predict {t2 - t1:.3f} s", flush=True)
    params = {k: sum(p.numel() for p in m.model.parameters()) / 1e6 for k, m in models.items()}
    print(f"\n{args.threads} threads, {w}x{h} image, {args.rounds} alternating rounds, medians:")
    for kind in models:
        s, p = (statistics.median(times[kind][k]) for k in ("set_image", "predict"))
        print(f"{kind} ({params[kind]:.1f} M parameters): set_image {s:.2f} s, predict {p:.3f} s")
    for key in ("set_image", "predict"):
        ratio = statistics.median(times["vit_b"][key]) / statistics.median(times["vit_t"][key])
        print(f"vit_b / vit_t {key}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
