"""Process settings that keep the CPU path fast on a few (shared) cores.

Two things, both measured on 2 shared cores (``spin-nerf dev bench`` measures them):

- ``keep_freed_memory``: glibc's malloc hands every large tensor its own ``mmap`` and unmaps it on free, so each
  rendered chunk and training step faults its pages in again (about 25k page faults and a quarter of the CPU time
  of a 96x72 render in system time). Serving them from the heap and keeping freed memory removes that.
  It is applied when a spin-inpaint model is built on a CPU, so ``ns-train``, ``ns-render`` and the viewer get it.
- ``prefer_passive_openmp``: libgomp's worker threads spin while waiting; when the cores are shared with other
  processes that spinning takes the time slices the working threads need (a 10x slowdown of a training step was
  measured under load). ``OMP_WAIT_POLICY=PASSIVE`` makes them sleep instead. libgomp reads it once, when torch is
  imported, so only our own entry points (``spin-nerf``) can set it; for ``ns-train`` set it in the shell.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys

M_TRIM_THRESHOLD = -1
"""mallopt parameter: free memory at the top of the heap above this many bytes is returned to the system."""
M_MMAP_THRESHOLD = -3
"""mallopt parameter: allocations of at least this many bytes get their own mapping."""

_applied = False


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Ask glibc to serve allocations below ``mmap_threshold`` bytes from the heap and keep up to ``trim_threshold``
    bytes of freed memory for reuse. Process-wide, idempotent; returns whether it is in effect (False off glibc)."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
    return _applied


def prefer_passive_openmp() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy; only effective before torch is imported.

    Returns whether this process (or its children) will run with the passive policy.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "torch" not in sys.modules


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this program's own address space.
    (``ru_maxrss`` is not used there: after ``exec`` it keeps the forking parent's peak, so a worker started from a
    big process would report at least the parent's size.) Elsewhere ``ru_maxrss`` (bytes on macOS, KiB otherwise).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0
