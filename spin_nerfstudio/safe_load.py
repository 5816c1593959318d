"""Keep torch's weights-only checkpoint loading on, and allow exactly what nerfstudio's checkpoints contain.

nerfstudio 1.1.5 (``ns-render``, ``ns-viewer``, ``ns-eval``, ``--load-dir``) calls ``torch.load`` without
``weights_only``; torch >= 2.6 then loads weights-only and refuses the numpy scalars nerfstudio saves (the step
counter of its schedulers). Instead of turning the safety off, we allow-list those few numpy globals. A checkpoint
that needs anything else still fails, with torch's message naming the global.
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch


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
