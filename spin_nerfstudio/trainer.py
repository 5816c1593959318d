"""The trainer of ``spin-inpaint``: nerfstudio's ``Trainer``, made safe to kill and to resume.

What it changes, and why:

- Inputs are checked before ``config.yml`` is written (:func:`spin_nerfstudio.validate.check_run_inputs`): bad input
  stops ``ns-train`` with one line and leaves no run folder. A failure later in set-up removes the run folder it
  created, as long as that folder holds nothing but what nerfstudio wrote at start (config, logs).
- ``config.yml`` and checkpoints are written atomically (temporary file, flush, fsync, rename), so a kill never
  leaves a truncated file that a resume would trust; checkpoints also carry the run's *stage lineage* (the ids of
  the stage boundaries they descend from, see :mod:`spin_nerfstudio.stage_io`).
- ``--load-dir RUN/nerfstudio_models`` resumes from the newest readable checkpoint there (a damaged one is reported
  and skipped; one that needs an unknown global is refused with one line), copies the finished and half-finished
  stage outputs of that run folder into this run's folder when nerfstudio made a new one (a new ``--timestamp``),
  and trains up to ``--max-num-iterations`` steps *in total* (nerfstudio alone would add that many steps again).
- Checkpoints carry the random streams (:mod:`spin_nerfstudio.rng`), restored on loading, so a resumed run draws
  the same ray batches and patches as the uninterrupted run would have.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional, Tuple, Type

import torch
import yaml
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils.decorators import check_main_thread
from nerfstudio.utils.rich_utils import CONSOLE

from spin_nerfstudio.guard import stop
from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.rng import restore_rng_state, rng_state
from spin_nerfstudio.safe_load import CheckpointError, load_checkpoint

CHECKPOINT_EXTRA = "spin"
"""Key of our extra entry in nerfstudio checkpoints (a dict of str/int: weights-only loadable)."""
CHECKPOINT_RNG = "rng"
"""Key of the random streams in our checkpoints (:mod:`spin_nerfstudio.rng`)."""

# Files nerfstudio writes into a run folder before training starts; a folder holding only these is "fresh".
_FRESH_FILES = ("config.yml", "dataparser_transforms.json")
_FRESH_PREFIXES = ("events.out.tfevents",)


@dataclass
class SpinTrainerConfig(TrainerConfig):
    """Trainer configuration of the spin-inpaint methods."""

    _target: Type = field(default_factory=lambda: SpinTrainer)

    def save_config(self) -> None:
        """Check every input first (nothing is written when one is bad), then write ``config.yml`` atomically."""
        from spin_nerfstudio.validate import check_run_inputs

        try:
            check_run_inputs(self)
        except SpinInputError as err:
            stop(str(err))
        base_dir = self.get_base_dir()
        base_dir.mkdir(parents=True, exist_ok=True)
        path = base_dir / "config.yml"
        CONSOLE.log(f"Saving config to: {path}")
        _atomic_write_text(path, yaml.dump(self))


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def checkpoint_step(path: Path) -> Optional[int]:
    """Step of a ``step-000000123.ckpt`` file name; None for other names."""
    name = Path(path).name
    if not (name.startswith("step-") and name.endswith(".ckpt")):
        return None
    digits = name[len("step-") : -len(".ckpt")]
    return int(digits) if digits.isdigit() else None


def list_checkpoints(folder: Path) -> List[Tuple[int, Path]]:
    """(step, path) of the checkpoints in ``folder``, newest first."""
    found = [(checkpoint_step(p), p) for p in Path(folder).iterdir() if p.is_file()] if Path(folder).is_dir() else []
    return sorted(((s, p) for s, p in found if s is not None), reverse=True)


def is_fresh_run_folder(base_dir: Path) -> bool:
    """Whether a run folder holds only what nerfstudio writes before training (so removing it loses nothing)."""
    base_dir = Path(base_dir)
    if not base_dir.is_dir():
        return False
    for path in base_dir.rglob("*"):
        if path.is_file() and not (path.name in _FRESH_FILES or path.name.startswith(_FRESH_PREFIXES)):
            return False
    return True


def remove_fresh_run_folder(base_dir: Path, output_dir: Path) -> bool:
    """Remove a fresh run folder and the parents it leaves empty (up to ``output_dir``); True when removed."""
    base_dir = Path(base_dir)
    if not is_fresh_run_folder(base_dir):
        return False
    shutil.rmtree(base_dir)
    stop_at = Path(output_dir).resolve()
    parent = base_dir.parent
    while parent.resolve() != stop_at and stop_at in parent.resolve().parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
    return True


class SpinTrainer(Trainer):
    """nerfstudio's trainer with atomic checkpoints, stage-aware resume and no half-made run folders."""

    config: SpinTrainerConfig

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        """nerfstudio's set-up; on failure, the run folder this run created is removed again."""
        try:
            super().setup(test_mode=test_mode)
        except BaseException:
            if remove_fresh_run_folder(self.base_dir, self.config.output_dir):
                CONSOLE.print(f"spin-nerfstudio: removed the unused run folder {self.base_dir}")
            raise

    # ------------------------------------------------------------------ checkpoints
    @check_main_thread
    def save_checkpoint(self, step: int) -> None:
        """Save model, optimisers, schedulers, scaler and the stage lineage, atomically."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / f"step-{step:09d}.ckpt"
        pipeline = self.pipeline.module if hasattr(self.pipeline, "module") else self.pipeline
        state = {
            "step": step,
            "pipeline": pipeline.state_dict(),
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.optimizers.schedulers.items()},
            "scalers": self.grad_scaler.state_dict(),
        }
        extra = getattr(self.pipeline, "resume_state", None)
        if extra is not None:
            state[CHECKPOINT_EXTRA] = extra()
        state[CHECKPOINT_RNG] = rng_state()
        tmp = self.base_dir / f".step-{step:09d}.ckpt.tmp"  # outside the checkpoint folder, same file system
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        for stale in self.base_dir.glob(".step-*.ckpt.tmp"):  # left by a run killed while saving
            stale.unlink(missing_ok=True)
        if self.config.save_only_latest_checkpoint:
            for _, other in list_checkpoints(self.checkpoint_dir):
                if other != path:
                    other.unlink(missing_ok=True)

    def _load_checkpoint(self) -> None:
        """Load ``--load-dir`` (newest readable checkpoint, or ``--load-step``) or ``--load-checkpoint``."""
        load_dir, load_file = self.config.load_dir, self.config.load_checkpoint
        if load_dir is None and load_file is None:
            CONSOLE.print("No Nerfstudio checkpoint to load, so training from scratch.")
            return
        if load_dir is not None:
            load_dir = Path(load_dir)
            if self.config.load_step is not None:
                candidates = [load_dir / f"step-{self.config.load_step:09d}.ckpt"]
                if not candidates[0].is_file():
                    stop(f"{candidates[0]}: checkpoint not found (--load-step {self.config.load_step})")
            else:
                candidates = [p for _, p in list_checkpoints(load_dir)]
                if not candidates:
                    stop(f"{load_dir}: --load-dir holds no checkpoint (step-*.ckpt)")
        else:
            candidates = [Path(load_file)]  # type: ignore[arg-type]
            if not candidates[0].is_file():
                stop(f"{candidates[0]}: checkpoint not found (--load-checkpoint)")
        state, path = None, None
        for path in candidates:
            try:
                state = load_checkpoint(path)
                break
            except CheckpointError as err:
                if not err.damaged or len(candidates) == 1:
                    stop(str(err))
                CONSOLE.print(f"[yellow]spin-nerfstudio: {err}; trying an older checkpoint")
        if state is None or path is None:
            stop(f"{load_dir}: no readable checkpoint")
            return
        self._start_step = int(state["step"]) + 1
        self.pipeline.load_pipeline(state["pipeline"], state["step"])
        self.optimizers.load_optimizers(state["optimizers"])
        if "schedulers" in state and self.config.load_scheduler:
            self.optimizers.load_schedulers(state["schedulers"])
        self.grad_scaler.load_state_dict(state["scalers"])
        resume = getattr(self.pipeline, "resume_from", None)
        if resume is not None:
            resume(state.get(CHECKPOINT_EXTRA), source_run_dir=path.parent.parent, run_dir=self.base_dir)
        if not restore_rng_state(state.get(CHECKPOINT_RNG)):
            CONSOLE.print("spin-nerfstudio: the checkpoint holds no random streams; the resumed run draws new ones")
        CONSOLE.print(f"Done loading Nerfstudio checkpoint from {path}")

    # ------------------------------------------------------------------ training
    def train(self) -> None:
        """Train; a resumed run stops at ``--max-num-iterations`` steps in total."""
        total = self.config.max_num_iterations
        start = self._start_step
        if start == 0:
            super().train()
            return
        remaining = total - start
        if remaining <= 0:
            CONSOLE.print(
                f"spin-nerfstudio: the checkpoint is at step {start - 1}, already at --max-num-iterations {total}; "
                "nothing left to train"
            )
            self.step = start - 1
            outputs = getattr(self.pipeline.datamanager, "train_dataparser_outputs", None)
            if outputs is not None:
                outputs.save_dataparser_transform(self.base_dir / "dataparser_transforms.json")
            if not (self.checkpoint_dir / f"step-{start - 1:09d}.ckpt").is_file():
                self.save_checkpoint(start - 1)
            return
        CONSOLE.print(f"spin-nerfstudio: resuming at step {start} of {total}")
        self.config.max_num_iterations = remaining
        try:
            super().train()
        finally:
            self.config.max_num_iterations = total


def run_training(config) -> object:
    """Run nerfstudio's trainer in this process and return it (its pipeline holds the trained model).

    nerfstudio keeps its event writers in module-level lists that every trainer appends to; an earlier run in the
    same process would otherwise keep writing into its own (possibly deleted) run folder, so they are cleared first.
    """
    from nerfstudio.utils import writer as event_writer

    event_writer.EVENT_WRITERS.clear()
    event_writer.EVENT_STORAGE.clear()
    config.set_timestamp()
    config.print_to_terminal()
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()
    return trainer
