"""Settings and constants of the viewer's "Object removal" panel, and its ``trace`` diagnostic (no GUI here)."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass

MODES = ("Off", "Positive", "Negative")
"""Click modes of the panel."""
VISER_SCALE = 10.0
"""nerfstudio draws the scene in viser at world x 10 (``VISER_NERFSTUDIO_SCALE_RATIO``)."""
VIEWER_PROMPT_FILE = "viewer_prompts.json"
"""Prompt file written by the panel in ``ns-viewer`` (the run's own ``prompts.json`` is left alone)."""
TRACE_ENV = "SPIN_NERF_VIEWER_TRACE"
"""Environment variable: when set to 1, the panel writes a timestamped line to stderr for every mode change, pointer
message and click it handles (to diagnose clicks that do not show up)."""


def trace(what: str) -> None:
    """One timestamped diagnostic line on stderr when :data:`TRACE_ENV` is 1."""
    if os.environ.get(TRACE_ENV) == "1":
        sys.stderr.write(f"viewer-trace {time.time():.3f} [{threading.current_thread().name}] {what}\n")
        sys.stderr.flush()


@dataclass
class RemovalPanelConfig:
    """Settings of the viewer's "Object removal" panel (``--pipeline.viewer-panel.*``)."""

    min_steps: int = 50
    """Training steps before a click is lifted with the rendered depth (earlier, the depth is noise)."""
    min_accumulation: float = 0.5
    """Rendered opacity below which a click (or a point seen from a training view) hits no surface."""
    max_distance: float = 20.0
    """A clicked surface farther than this from the world origin (max-norm, scene units) is background at
    infinity."""
    sphere_radius: float = 0.03
    """Radius of the spheres drawn at the clicked points, in scene units (drawn one radius towards the clicking
    camera, so that the viewer's depth compositing does not hide them in the surface)."""
    switch_to_overlay: bool = True
    """After segmenting, switch the viewer's output from rgb to the tinted object overlay."""
    status_every: float = 0.5
    """Seconds between updates of the panel's progress line during training."""
    busy_notice: float = 1.0
    """Seconds a click (or a button press) may wait for the trainer (a long training step, a segmentation) before a
    notification says that it is waiting; it is still taken once the trainer is free."""
