"""The random streams of a run (torch, CUDA, Python, numpy) as checkpoint data, so a resumed run continues them.

nerfstudio seeds the generators once at start and does not save them: a run resumed from a checkpoint draws other
ray batches (and other perceptual patches) than the uninterrupted run would have from that step on, and on the tiny
test scene that alone moved the final PSNR by 2.5 dB (a different mask head fit, a different removal). Saved with
each checkpoint and restored when it is loaded, the streams continue where they were.

The state is plain tensors, ints, lists and None, so a weights-only ``torch.load`` reads it.
"""

from __future__ import annotations

import random
from typing import Any, Dict, Optional

import numpy as np
import torch

VERSION = 1
"""Layout of :func:`rng_state`'s dict (a checkpoint with another version is not restored)."""


def rng_state() -> Dict[str, Any]:
    """The current state of torch's CPU (and, when present, every CUDA device's), Python's and numpy's global
    generators."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: Dict[str, Any] = {
        "version": VERSION,
        "torch": torch.get_rng_state(),
        "python": [int(version), [int(v) for v in internal], gauss],
        "numpy": [str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), cached],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Optional[Dict[str, Any]]) -> bool:
    """Set the generators to a state from :func:`rng_state`; False (nothing changed) when there is none or it has
    another layout (a checkpoint written before the streams were saved)."""
    if not isinstance(state, dict) or state.get("version") != VERSION:
        return False
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return True
