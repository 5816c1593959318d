"""Learning-rate schedules of the inpainted fit.

The inpainted fit starts from a fresh field part-way through the run. Left alone, nerfstudio's schedulers would
give that fresh field only the tail of the run's decay (on ``spin-inpaint-small``, 6e-3 down to 2e-3 instead of
2e-2 down to 2e-3), and it came out blurrier than the reconstruction everywhere. :func:`restart_schedules`
compresses each scheduler's whole schedule into the steps that remain, so the fresh field gets the full decay.
"""

from __future__ import annotations

from typing import Callable, Dict

from torch.optim import lr_scheduler


def compressed_schedule(original: Callable[[int], float], start: int, total: int) -> Callable[[int], float]:
    """``original`` stretched so that its steps ``[0, total)`` fall on ``[start, total)``.

    A plain function (not a callable object), so that ``LambdaLR.state_dict`` leaves it out of checkpoints, as it
    does nerfstudio's own schedule functions; a resumed run compresses its schedule again.
    """
    span = max(int(total) - int(start), 1)

    def multiplier(step: int) -> float:
        local = min(max(step - int(start), 0), span)
        return float(original(int(round(local * int(total) / span))))

    multiplier.original = original  # type: ignore[attr-defined]
    return multiplier


def restart_schedules(schedulers: Dict[str, object], start: int, total: int) -> int:
    """Make every ``LambdaLR`` in ``schedulers`` run its whole schedule again over steps ``[start, total)`` and set
    the optimisers' current rate accordingly. Returns how many schedulers changed (others are left alone)."""
    changed = 0
    for sched in schedulers.values():
        if not isinstance(sched, lr_scheduler.LambdaLR):
            continue
        lambdas = []
        for fn in sched.lr_lambdas:
            lambdas.append(compressed_schedule(getattr(fn, "original", fn), start, total))
        sched.lr_lambdas = lambdas
        for group, base_lr, fn in zip(sched.optimizer.param_groups, sched.base_lrs, lambdas):
            group["lr"] = base_lr * fn(max(start, sched.last_epoch))  # a resumed run: its current step
        sched._last_lr = [g["lr"] for g in sched.optimizer.param_groups]  # type: ignore[attr-defined]
        changed += 1
    return changed
