"""Device check: the full ``spin-inpaint`` config (4096 rays, mixed precision) trained in-process on a generated scene.

Run by ``scripts/gpu_check.sh`` on a lent GPU (in-process, because ``ns-train`` imports nerfstudio's whole method
table and its optional packages, which the GPU machine lacks). Usage::

    python scripts/gpu_full.py OUT_DIR [--device cuda] [--steps 1500 600 200] [--encoding hash]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from spin_nerfstudio.data.synthetic import SceneSpec, make_scene
from spin_nerfstudio.demo import demo_config
from spin_nerfstudio.evaluation.evaluate import evaluate_pipeline
from spin_nerfstudio.spin_config import spin_inpaint_config
from spin_nerfstudio.stages.names import STAGES_FILE
from spin_nerfstudio.trainer import run_training as train


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("output", type=Path)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, nargs=3, default=[1500, 600, 200], metavar=("TOTAL", "RECONSTRUCT", "MASK"))
    p.add_argument("--encoding", default="hash", choices=["hash", "planes"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rays", type=int, default=4096)
    args = p.parse_args()
    scene = make_scene(args.output / "scene", SceneSpec(seed=args.seed))
    total, reconstruct, mask = args.steps
    iterations = {"reconstruct": reconstruct, "mask": mask, "total": total}
    config = demo_config(
        scene, scene / "prompts.json", args.output, args.device, iterations, base=spin_inpaint_config()
    )
    config.experiment_name = "full"
    config.pipeline.datamanager.train_num_rays_per_batch = args.rays
    config.pipeline.model.encoding = args.encoding
    config.pipeline.model.implementation = "torch"
    config.steps_per_eval_batch = config.steps_per_eval_image = 1_000_000
    t0 = time.time()
    trainer = train(config)
    t_train = time.time() - t0
    run_dir = Path(config.get_base_dir())
    metrics, _ = evaluate_pipeline(trainer.pipeline, run_dir, total, scene / "masks", scene / "background")
    metrics.pop("per_view", None)
    metrics["train_seconds"] = t_train
    metrics["stage_seconds"] = json.loads((run_dir / STAGES_FILE).read_text())["seconds"]
    metrics["encoding"] = trainer.pipeline.model.encoding_kind
    metrics["implementation"] = trainer.pipeline.model.implementation
    metrics["device"] = args.device
    if torch.cuda.is_available():
        metrics["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        metrics["gpu"] = torch.cuda.get_device_name(0)
    (args.output / "full_metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    print(json.dumps(metrics, indent=2, default=str))


if __name__ == "__main__":
    main()
