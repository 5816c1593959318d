"""Kill a tiny run with SIGKILL in the middle of each stage, resume it with ``--load-dir``, and compare.

One run goes through three kills (``SPIN_NERF_STAGE_DELAY`` slows each stage to about 0.3 s per view written, so
the kills land inside a stage):

1. run ``a``, killed in segmentation once some initial masks are written; resumed as run ``b`` (a new run folder:
   the stage outputs are copied over) ...
2. ... killed while inpainting once some views are inpainted; resumed in the same folder ``b`` ...
3. ... killed in the final fit after its first checkpoint there; resumed as run ``d``, which finishes.

The checks: each resume starts at the right step and stage, reuses every view written before the kill (log lines,
unchanged bytes and modification times) and recomputes only the missing ones; the finished run's metrics match those
of the uninterrupted ``tiny_run`` (same scene, clicks and schedule) within a tolerance. A second test injects NaN
into the depth prior of a finished run and resumes it: the run stops naming the step and the loss term and keeps its
last checkpoint.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
import torch
from conftest import BIN, TINY_RUN_FLAGS, TINY_STEPS, ns_train_args

from spin_nerfstudio.evaluation.evaluate import evaluate_run
from spin_nerfstudio.safe_load import load_checkpoint

SAVE_EVERY = 100
DELAY = "0.3"
R, M, TOTAL = TINY_STEPS["reconstruct"], TINY_STEPS["mask"], TINY_STEPS["total"]
TOLERANCE = {"mask_iou": 0.05, "mask_accuracy": 0.01, "psnr": 1.5, "ssim": 0.03, "masked_psnr": 2.0}


def _start(args, log: Path) -> subprocess.Popen:
    env = dict(os.environ, SPIN_NERF_NO_DOWNLOAD="1", PYTHONWARNINGS="ignore", SPIN_NERF_STAGE_DELAY=DELAY)
    with open(log, "w") as f:
        return subprocess.Popen([str(BIN / args[0]), *map(str, args[1:])], stdout=f, stderr=subprocess.STDOUT, env=env)


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], log: Path, timeout: float = 2400) -> None:
    start = time.time()
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"run ended ({proc.returncode}) before the kill point:\n{log.read_text()[-3000:]}")
        if time.time() - start > timeout:
            proc.kill()
            pytest.fail(f"kill point not reached in {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _partial(folder: Path, minimum: int = 3) -> Callable[[], bool]:
    """Some views written, folder not complete."""
    return lambda: len(list(folder.glob("*.png"))) >= minimum and not (folder / "_complete.json").exists()


def _files(folder: Path, suffix: str) -> Dict[str, tuple]:
    """name -> (bytes, mtime) of the view files in a stage folder."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.glob(f"*{suffix}"))}


def _ckpt_steps(run: Path) -> list:
    return sorted(int(p.name[5:14]) for p in (run / "nerfstudio_models").glob("step-*.ckpt"))


@pytest.fixture(scope="module")
def kill_chain(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict:
    out = tmp_path_factory.mktemp("kills")
    prompts = tiny_scene / "prompts.json"
    runs = out / "tiny" / "spin-inpaint-small"
    obs: Dict = {"start": time.time()}

    def args(timestamp, *extra):
        return ns_train_args(
            tiny_scene,
            out,
            "--pipeline.prompt-file",
            prompts,
            *TINY_RUN_FLAGS,
            *extra,
            timestamp=timestamp,
            steps_per_save=SAVE_EVERY,
        )

    # 1. killed in segmentation (initial masks being written)
    a = runs / "a"
    proc = _start(args("a"), out / "a.log")
    _kill_when(proc, _partial(a / "initial_masks"), out / "a.log")
    obs["a_initial"] = _files(a / "initial_masks", ".png")
    obs["a_depth_complete"] = (a / "depth" / "_complete.json").is_file()
    obs["a_ckpts"] = _ckpt_steps(a)

    # 2. resumed into a new folder b, killed while inpainting
    b = runs / "b"
    proc = _start(args("b", "--load-dir", a / "nerfstudio_models"), out / "b1.log")
    _kill_when(proc, _partial(b / "inpainted"), out / "b1.log")
    obs["b1_log"] = (out / "b1.log").read_text()
    obs["b_initial"] = _files(b / "initial_masks", ".png")
    obs["b_masks"] = _files(b / "masks", ".png")
    obs["b_inpainted"] = _files(b / "inpainted", ".png")
    obs["b_inpainted_depth"] = _files(b / "inpainted_depth", ".npy")
    obs["b1_ckpts"] = _ckpt_steps(b)

    # 3. resumed in the same folder b, killed in the final fit after its first checkpoint there
    proc = _start(args("b", "--load-dir", b / "nerfstudio_models"), out / "b2.log")
    _kill_when(proc, lambda: any(s >= R + M + SAVE_EVERY for s in _ckpt_steps(b)), out / "b2.log")
    obs["b2_log"] = (out / "b2.log").read_text()
    obs["b2_masks"] = _files(b / "masks", ".png")
    obs["b2_inpainted"] = _files(b / "inpainted", ".png")
    obs["b2_ckpts"] = _ckpt_steps(b)

    # 4. resumed into a new folder d, runs to the end
    d = runs / "d"
    proc = _start(args("d", "--load-dir", b / "nerfstudio_models"), out / "d.log")
    assert proc.wait(timeout=2400) == 0, (out / "d.log").read_text()[-3000:]
    obs["d_log"] = (out / "d.log").read_text()
    obs["d_ckpts"] = _ckpt_steps(d)
    obs["b_final"] = {name: _files(b / name, suffix) for name, suffix in (("masks", ".png"), ("inpainted", ".png"))}
    obs["d_final"] = {name: _files(d / name, suffix) for name, suffix in (("masks", ".png"), ("inpainted", ".png"))}
    obs["d"] = d
    obs["seconds"] = time.time() - obs["start"]
    return obs


def test_kill_during_segmentation_reuses_depth_and_written_masks(kill_chain) -> None:
    obs = kill_chain
    assert obs["a_depth_complete"] and obs["a_ckpts"] == [R - 1]  # the boundary checkpoint, saved before the stage
    written = len(obs["a_initial"])
    assert 3 <= written < 12
    log = obs["b1_log"]
    assert f"resuming at step {R} of {TOTAL}" in log  # no reconstruction step redone
    assert "resuming in stage 'reconstruct'" in log and "copied" in log
    assert "depth: reusing 12/12 views" in log
    assert f"initial_masks: reusing {written}/12 views" in log
    for name, (data, _) in obs["a_initial"].items():  # the copies in b are the masks written before the kill
        assert obs["b_initial"][name][0] == data
    assert len(obs["b_initial"]) == 12


def test_kill_during_inpainting_reuses_masks_and_inpainted_views(kill_chain) -> None:
    obs = kill_chain
    assert obs["b1_ckpts"] == [R + M - 1]  # boundary checkpoint of the inpainting stage
    both = sorted(set(n[:-4] for n in obs["b_inpainted"]) & set(n[:-4] for n in obs["b_inpainted_depth"]))
    assert 2 <= len(both) < 12
    log = obs["b2_log"]
    assert f"resuming at step {R + M} of {TOTAL}" in log and "resuming in stage 'segment'" in log
    assert "resumed segmentation with the initial masks" in log
    assert "masks: reusing 12/12 views" in log
    assert f"inpainted: reusing {len(both)}/12 views" in log
    assert obs["b2_masks"] == obs["b_masks"]  # same bytes, same modification times: not rewritten
    for stem in both:
        assert obs["b2_inpainted"][f"{stem}.png"] == obs["b_inpainted"][f"{stem}.png"]
    assert len(obs["b2_inpainted"]) == 12


def test_kill_during_final_fit_resumes_from_its_checkpoint(kill_chain) -> None:
    obs = kill_chain
    step = max(obs["b2_ckpts"])
    assert step >= R + M + SAVE_EVERY
    log = obs["d_log"]
    assert f"resuming at step {step + 1} of {TOTAL}" in log and "resuming in stage 'inpaint'" in log
    assert "resumed the inpainted fit with the stage outputs" in log
    assert "reusing" not in log and "stage 'inpaint' took" not in log  # no stage work at all
    assert obs["d_ckpts"] == [TOTAL - 1]
    for name in ("masks", "inpainted"):  # the new folder holds the same stage outputs
        assert {k: v[0] for k, v in obs["d_final"][name].items()} == {k: v[0] for k, v in obs["b_final"][name].items()}


def test_resumed_run_matches_the_uninterrupted_run(kill_chain, tiny_run, tiny_scene) -> None:
    gt = dict(gt_masks=tiny_scene / "masks", gt_images=tiny_scene / "background")
    resumed = evaluate_run(kill_chain["d"] / "config.yml", **gt)
    straight = evaluate_run(tiny_run / "config.yml", **gt)
    print(f"\nkill chain: {kill_chain['seconds']:.0f} s for 3 kills (segmentation, inpainting, final fit) + 3 resumes")
    for key, tol in TOLERANCE.items():
        print(f"{key}: uninterrupted {straight[key]:.4f}, killed 3x and resumed {resumed[key]:.4f} (tolerance {tol})")
        assert abs(resumed[key] - straight[key]) <= tol, (key, resumed[key], straight[key])
    assert resumed["step"] == straight["step"] == TOTAL - 1
    assert resumed["object_colour_fraction"] < 0.05


def test_nan_in_depth_prior_stops_naming_step_and_term(tiny_run, tiny_scene, tmp_path) -> None:
    run = tmp_path / "out" / "tiny" / "spin-inpaint-small" / "run"
    shutil.copytree(tiny_run, run)
    for folder in ("inpainted_depth", "seen_depth"):  # the 2D fill and the prior the fit uses (corrected by the sweep)
        prior = run / folder / "000.npy"
        depth = np.load(prior)
        depth[:] = np.nan  # a depth prior gone bad
        np.save(prior, depth)
    prompts = tiny_scene / "prompts.json"
    steps = dict(TINY_STEPS, total=TOTAL + 20)
    load = ("--load-dir", run / "nerfstudio_models")
    args = ns_train_args(tiny_scene, tmp_path / "out", "--pipeline.prompt-file", prompts, *load, steps=steps)
    proc = subprocess.run(
        [str(BIN / args[0]), *map(str, args[1:])],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, SPIN_NERF_NO_DOWNLOAD="1", PYTHONWARNINGS="ignore"),
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    ckpt = run / "nerfstudio_models" / f"step-{TOTAL - 1:09d}.ckpt"
    assert last == (
        f"spin-nerfstudio: step {TOTAL}: loss 'depth_loss' is not finite (nan); stopping, last good checkpoint "
        f"kept: {ckpt}"
    ), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert _ckpt_steps(run) == [TOTAL - 1]
    state = load_checkpoint(ckpt)  # still a good, finite checkpoint, weights-only loadable
    assert state["step"] == TOTAL - 1
    assert all(torch.isfinite(v).all() for v in state["pipeline"].values() if v.is_floating_point())
