"""Peak CUDA memory per stage, for the stage timings in ``RUN/stages.json``.

torch keeps one high-water mark of the memory its caching allocator handed out; :class:`CudaPeaks` reads and resets it
at each stage boundary, so each stage (and each stretch of training between boundaries) gets its own peak, and the
run keeps the overall one. Without an initialised CUDA device everything here is a no-op and reads ``None``.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch


def cuda_peak_mb(reset: bool = True) -> Optional[float]:
    """Peak CUDA memory allocated by torch since the last reset, in MiB; resets the mark when ``reset``.

    ``None`` when CUDA has not been initialised in this process (a CPU run)."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    peak = torch.cuda.max_memory_allocated() / 2**20
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return float(peak)


class CudaPeaks:
    """Per-name peak CUDA MiB, the overall peak kept across the resets."""

    def __init__(self) -> None:
        self.peaks: Dict[str, float] = {}
        self.overall: Optional[float] = None

    def mark(self, name: Optional[str]) -> None:
        """Close the stretch since the last mark: its peak goes to ``name`` (max over its runs; ``None``: only to the
        overall peak), and the mark is reset for the next stretch."""
        peak = cuda_peak_mb(reset=True)
        if peak is None:
            return
        self.overall = peak if self.overall is None else max(self.overall, peak)
        if name is not None:
            self.peaks[name] = max(self.peaks.get(name, 0.0), peak)

    def as_json(self) -> Dict[str, object]:
        """``{"stages": {name: MiB}, "overall": MiB}`` (empty on a CPU run)."""
        return {} if self.overall is None else {"stages": dict(self.peaks), "overall": self.overall}
