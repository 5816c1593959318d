"""Shared fixtures: a tiny generated scene and one tiny end-to-end ``ns-train spin-inpaint-small`` run on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# libgomp's spinning worker threads cost up to 10x on shared cores; it reads this once, when torch loads
# (see spin_nerfstudio/cpu.py). Set before any test imports torch; subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Tiny but real: 12 views of 64x48, a short schedule. Every stage runs.
TINY_SPEC = {"num_views": 12, "width": 64, "height": 48, "seed": 0}
TINY_STEPS = {"reconstruct": 300, "mask": 100, "total": 700}
# ST-LPIPS (the stlpips-pytorch wheel's weights) is switched on so the perceptual patch path runs offline; runs that
# are compared with ``tiny_run`` (the resumed kill chain) must use the same flags
TINY_RUN_FLAGS = ("--pipeline.perceptual-network", "st-lpips")


def run_cli(args, cwd: Path, timeout: int = 2400, env_extra=None) -> subprocess.CompletedProcess:
    """Run one of the installed commands (ns-train, ns-render, spin-nerf) and capture its output."""
    env = dict(os.environ, SPIN_NERF_NO_DOWNLOAD="1", PYTHONWARNINGS="ignore")
    env.update(env_extra or {})
    return subprocess.run(
        [str(BIN / args[0]), *map(str, args[1:])], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def ns_train_args(scene: Path, out: Path, *extra, steps=TINY_STEPS, timestamp="run", steps_per_save=None) -> list:
    """ns-train arguments of a tiny CPU run without the viewer."""
    return [
        "ns-train", "spin-inpaint-small",
        "--data", scene,
        "--output-dir", out,
        "--experiment-name", "tiny",
        "--timestamp", timestamp,
        "--vis", "tensorboard",
        "--machine.device-type", "cpu",
        "--max-num-iterations", steps["total"],
        "--steps-per-save", steps_per_save or steps["total"],
        "--pipeline.reconstruct-steps", steps["reconstruct"],
        "--pipeline.mask-steps", steps["mask"],
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    """A generated scene with ground truth (images, masks, background, depth, prompts.json)."""
    from spin_nerfstudio.data.synthetic import SceneSpec, make_scene

    return make_scene(tmp_path_factory.mktemp("scene") / "tiny", SceneSpec(**TINY_SPEC))


@pytest.fixture(scope="session")
def tiny_run(tiny_scene, tmp_path_factory) -> Path:
    """Run folder of a finished tiny removal run (trained through the real ns-train command)."""
    out = tmp_path_factory.mktemp("runs")
    args = ns_train_args(tiny_scene, out, "--pipeline.prompt-file", tiny_scene / "prompts.json", *TINY_RUN_FLAGS)
    proc = run_cli(args, cwd=out)
    run_dir = out / "tiny" / "spin-inpaint-small" / "run"
    if proc.returncode != 0 or not (run_dir / "config.yml").is_file():
        pytest.fail(f"tiny ns-train run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    (run_dir / "train.log").write_text(proc.stdout + proc.stderr)
    return run_dir
