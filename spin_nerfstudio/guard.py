"""NaN and divergence guard: stop at the first non-finite loss or gradient, naming the step and the loss term.

- Losses are checked after each forward pass (:meth:`FiniteGuard.check_losses`).
- Gradients are checked just before each optimiser applies them (a step pre-hook on every optimiser), so a
  non-finite gradient never reaches the parameters. With mixed precision, torch's grad scaler already skips steps
  whose gradients overflowed (normal for float16) and the hook never sees them; only gradients about to be applied
  are checked. The guilty loss term is found by re-running the step's forward pass and back-propagating one term at
  a time (the ``attribute`` callback).

Either way the run stops with one line (``SystemExit``) before anything else is written, so the last checkpoint on
disk, which holds only finite parameters, is kept; the message names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from nerfstudio.utils.rich_utils import CONSOLE


def stop(message: str) -> None:
    """Stop the run with a one-line message (no traceback); every stage stops this way."""
    CONSOLE.print(f"[bold red]spin-nerfstudio: {message}")
    raise SystemExit(f"spin-nerfstudio: {message}")


def latest_checkpoint(checkpoint_dir: Optional[Path]) -> Optional[Path]:
    """The ``step-*.ckpt`` with the highest step in ``checkpoint_dir`` (None when there is none)."""
    if checkpoint_dir is None or not Path(checkpoint_dir).is_dir():
        return None
    found: List[Tuple[int, Path]] = []
    for path in Path(checkpoint_dir).glob("step-*.ckpt"):
        digits = path.name[len("step-") : -len(".ckpt")]
        if digits.isdigit():
            found.append((int(digits), path))
    return max(found)[1] if found else None


def _describe(value: torch.Tensor) -> str:
    value = value.detach()
    if value.numel() == 1:
        return str(value.item())
    return "contains NaN" if torch.isnan(value).any() else "contains inf"


class FiniteGuard:
    """Checks losses and gradients of one training run.

    Args:
        checkpoint_dir: where the run's checkpoints are (named in the message), or None.
        attribute: called when a gradient is non-finite; returns the loss term that reproduces it, or None.
    """

    def __init__(
        self, checkpoint_dir: Optional[Path] = None, attribute: Optional[Callable[[], Optional[str]]] = None
    ) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.attribute = attribute
        self.step = 0
        self._names: Dict[int, str] = {}
        self._handles: list = []

    def _kept(self) -> str:
        ckpt = latest_checkpoint(self.checkpoint_dir)
        return f"last good checkpoint kept: {ckpt}" if ckpt is not None else "no checkpoint was saved yet"

    def check_losses(self, step: int, losses: Dict[str, torch.Tensor]) -> None:
        """Stop when a loss term is NaN or infinite."""
        self.step = step
        for name, value in losses.items():
            if not bool(torch.isfinite(value.detach()).all()):
                stop(f"step {step}: loss '{name}' is not finite ({_describe(value)}); stopping, {self._kept()}")

    def install(
        self, optimizers: Dict[str, torch.optim.Optimizer], named_parameters: Iterable[Tuple[str, torch.nn.Parameter]]
    ) -> None:
        """Check every optimiser's gradients before it steps."""
        self._names = {id(p): name for name, p in named_parameters}
        for handle in self._handles:
            handle.remove()
        self._handles = [opt.register_step_pre_hook(self._before_step) for opt in optimizers.values()]

    def _before_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        sums = torch.stack([g.detach().float().sum() for g in grads])
        if bool(torch.isfinite(sums).all()):
            return
        bad = [
            self._names.get(id(p), "a parameter")
            for group in optimizer.param_groups
            for p in group["params"]
            if p.grad is not None and not bool(torch.isfinite(p.grad).all())
        ]
        if not bad:  # only the float sum overflowed
            return
        term = None
        if self.attribute is not None:
            try:
                term = self.attribute()
            except Exception:  # noqa: BLE001 - attribution is best effort; the stop below is what matters
                term = None
        source = f"from loss '{term}'" if term else "no single loss term reproduces it"
        stop(
            f"step {self.step}: gradient of '{bad[0]}' is not finite ({source}); stopping before the update, "
            f"{self._kept()}"
        )


def first_nonfinite_term(
    model: torch.nn.Module, ray_bundle, batch: Dict, names: List[str], extra: Dict[str, Callable[[], torch.Tensor]]
) -> Optional[str]:
    """Re-run a step's forward pass one loss term at a time; the first term whose gradient is not finite.

    ``names`` are the step's loss terms; a term in ``extra`` is recomputed by its function instead of the model's
    loss dict (e.g. the LPIPS patch loss, which renders its own rays).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    for name in names:
        model.zero_grad(set_to_none=True)
        if name in extra:
            loss = extra[name]()
        else:
            outputs = model(ray_bundle)
            metrics = model.get_metrics_dict(outputs, batch)  # type: ignore[operator]
            loss = model.get_loss_dict(outputs, batch, metrics)[name]  # type: ignore[operator]
        if not loss.requires_grad:
            continue
        loss.backward()
        if any(p.grad is not None and not bool(torch.isfinite(p.grad).all()) for p in params):
            return name
    return None
