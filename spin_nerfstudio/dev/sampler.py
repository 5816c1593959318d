"""Samples of a child process's resident memory and CPU time (from ``/proc/PID``), and their totals over a span."""

from __future__ import annotations

import os
import threading
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

SAMPLE_SECONDS = 0.05
"""Interval of the parent's memory and CPU-time samples of the child."""


def _read_sample(pid: int, ticks: float) -> Optional[Tuple[float, float, float]]:
    """(time, VmRSS MiB, CPU seconds) of process ``pid`` now; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as fh:
            rss = next((float(line.split()[1]) / 1024.0 for line in fh if line.startswith("VmRSS:")), 0.0)
    except (OSError, IndexError, ValueError):
        return None
    cpu = (float(fields[11]) + float(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    return time.time(), rss, cpu


class Sampler(threading.Thread):
    """Samples a child's resident memory and CPU time until it exits."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: List[Tuple[float, float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        ticks = float(os.sysconf("SC_CLK_TCK"))
        while not self._halt.is_set():
            sample = _read_sample(self.pid, ticks)
            if sample is not None:
                self.samples.append(sample)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def span_usage(
    samples: Sequence[Tuple[float, float, float]], start: float, end: float
) -> Tuple[Optional[float], Optional[float]]:
    """(CPU seconds, peak MiB) of the child between ``start`` and ``end`` from the samples (None: no sample)."""
    if not samples:
        return None, None
    t = np.array([s[0] for s in samples])
    cpu = np.array([s[2] for s in samples])
    rss = np.array([s[1] for s in samples])
    inside = (t >= start) & (t <= end)
    # the samples just outside the span bound it (a stage shorter than the interval still gets one)
    lo, hi = max(int(np.searchsorted(t, start)) - 1, 0), min(int(np.searchsorted(t, end)), len(t) - 1)
    inside[lo] = inside[hi] = True
    used = float(np.interp(end, t, cpu) - np.interp(start, t, cpu))
    return max(used, 0.0), float(rss[inside].max())
