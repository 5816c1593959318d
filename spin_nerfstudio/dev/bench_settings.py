"""What ``spin-nerf dev bench`` compares and measures: the methods, the settings of a run, and the targets."""

from __future__ import annotations

from dataclasses import dataclass

METHODS = ("spin", "nerfacto-torch")
"""Methods compared, in the order they run."""

LABELS = {"spin": "spin (tri-plane)", "nerfacto-torch": "nerfacto-torch"}

TARGET_SPEEDUP = 5.0
"""Target: training step and per-view render at least this many times faster than nerfacto-torch."""
TARGET_DEMO_SECONDS = 600.0
"""Target: the demo finishes within 10 minutes on 2 CPU cores."""
TARGET_DEMO_MEMORY_MB = 4096.0
"""Target: the demo's peak memory stays under 4 GB."""


@dataclass
class BenchSettings:
    """What one bench run measures."""

    budget_s: float = 60.0
    """Training wall-clock budget of each method, in seconds (setup and evaluation not included)."""
    rays: int = 1024
    """Rays per training batch, the same for both methods."""
    num_views: int = 24
    """Views of the generated scene."""
    width: int = 96
    """Image width of the generated scene."""
    height: int = 72
    """Image height of the generated scene."""
    seed: int = 0
    """Seed of the generated scene and of torch."""
    eval_interval: int = 4
    """Every eval_interval-th view (0, 4, 8, ...) is held out of training and scored."""
    warmup_steps: int = 3
    """Steps excluded from the step-time statistics (first-call allocation, lazy initialisation)."""
    max_render_views: int = 0
    """Render (and score) at most this many held-out views; 0 renders all of them."""
