"""Known third-party deprecation warnings, filtered when the plugin is imported so that a run's console shows our
stage lines, progress bars and results.

Only the warnings listed in :data:`KNOWN_WARNINGS` are hidden, each matched on its category, the start of its
message and the module it is attributed to (nerfstudio 1.1.5 on torch 2.x); every other warning still shows.
Under ``ns-train`` nerfstudio imports its own modules before it loads the plugin, so the import-time ones
(``torch.jit.script``, ``custom_fwd``) may still show once there; the repeated ones during training do not.
"""

from __future__ import annotations

import warnings
from typing import Tuple, Type

KNOWN_WARNINGS: Tuple[Tuple[Type[Warning], str, str], ...] = (
    # nerfstudio's camera code indexes tensors with lists (torch 2.x: deprecated), at every ray batch and render.
    (UserWarning, r"Using a non-tuple sequence for multidimensional indexing is deprecated", r"nerfstudio\.cameras\."),
    # nerfstudio's TensorBoard writer turns loss tensors that still require grad into scalars.
    (UserWarning, r"Converting a tensor with requires_grad=True to a scalar", r"nerfstudio\.utils\.writer"),
    # torch.cuda.amp spellings in nerfstudio (deprecated in torch 2.4).
    (FutureWarning, r"`torch\.cuda\.amp\.custom_(fwd|bwd)\(args\.\.\.\)` is deprecated", r"nerfstudio\."),
    (FutureWarning, r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated", r"nerfstudio\."),
    # torch.jit.script, used by nerfstudio's and torchvision's imports.
    (FutureWarning, r"`torch\.jit\.script` is deprecated", r"torch\.jit\."),
)
"""(category, message regex matched at the start, module regex) of each filtered warning."""


def filter_known_warnings() -> None:
    """Ignore the warnings in :data:`KNOWN_WARNINGS` (and nothing else)."""
    for category, message, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
