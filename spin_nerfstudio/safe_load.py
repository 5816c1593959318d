"""Keep torch's weights-only checkpoint loading on, and allow exactly what nerfstudio's checkpoints contain.

nerfstudio 1.1.5 (``ns-render``, ``ns-viewer``, ``ns-eval``, ``--load-dir``) calls ``torch.load`` without
``weights_only``; torch >= 2.6 then loads weights-only and refuses the numpy scalars nerfstudio saves (the step
counter of its schedulers). Instead of turning the safety off, we allow-list those few numpy globals. A checkpoint
that needs anything else still fails, with torch's message naming the global.

:func:`load_checkpoint` (used by ``ns-train --load-dir`` on our methods and by ``spin-nerf evaluate``) turns torch's
failures into one line naming the file: an unknown global (refused, never executed) or a damaged file.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from spin_nerfstudio.prompts import SpinInputError


class CheckpointError(SpinInputError):
    """A checkpoint that cannot be loaded safely. ``damaged`` is True for unreadable files, False for refused ones."""

    def __init__(self, message: str, damaged: bool) -> None:
        super().__init__(message)
        self.damaged = damaged


def nerfstudio_checkpoint_globals() -> List[object]:
    """The numpy globals found in nerfstudio 1.1.5 checkpoints (scalars and their dtypes)."""
    try:
        from numpy.core.multiarray import scalar  # numpy < 2 spelling, also what old pickles name
    except ImportError:  # pragma: no cover - numpy 2 keeps a compatibility alias
        from numpy._core.multiarray import scalar  # type: ignore[no-redef]
    allowed: List[object] = [scalar, np.dtype]
    for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType"):
        dtype_cls = getattr(getattr(np, "dtypes", None), name, None)
        if dtype_cls is not None:
            allowed.append(dtype_cls)
    return allowed


def allow_nerfstudio_checkpoints() -> None:
    """Register the allow-list with torch (no-op on torch versions without ``add_safe_globals``)."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:
        add(nerfstudio_checkpoint_globals())


def unknown_global(error: BaseException) -> str:
    """The global named by torch's weights-only refusal (e.g. ``__main__.Custom``), or "" when none is named."""
    match = re.search(r"GLOBAL ([\w.]+)", str(error))
    return match.group(1) if match else ""


def refusal_message(path: Path, error: BaseException) -> str:
    """One line explaining a weights-only refusal of ``path``."""
    name = unknown_global(error) or "an object"
    return (
        f"{path}: the checkpoint needs the global '{name}', which weights-only loading does not allow; refusing to "
        "load it (unpickling it could run code). Only if you trust the file, allow-list that class with "
        "torch.serialization.add_safe_globals"
    )


def load_checkpoint(path: Path) -> Dict:
    """``torch.load`` with weights-only on (and our allow-list), mapped to CPU; one-line errors on failure.

    Raises:
        CheckpointError: ``damaged=False`` when the file needs a global outside the allow-list (it is not
            unpickled); ``damaged=True`` when it is truncated or not a checkpoint at all.
    """
    allow_nerfstudio_checkpoints()
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if unknown_global(err):
            raise CheckpointError(refusal_message(path, err), damaged=False) from None
        raise CheckpointError(f"{path}: damaged checkpoint ({_first_line(err)})", damaged=True) from None
    except (RuntimeError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path}: damaged checkpoint ({_first_line(err)})", damaged=True) from None
    if not isinstance(data, dict) or "pipeline" not in data or "step" not in data:
        raise CheckpointError(f"{path}: not a nerfstudio checkpoint (no 'step' and 'pipeline')", damaged=True)
    return data


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]
