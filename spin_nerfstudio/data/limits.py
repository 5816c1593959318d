"""Input limits of a removal run, checked after the dataset is parsed and before any image is loaded.

- fewer training views than ``min_views`` stop the run (SPIn-NeRF's captures have 60 views; a handful is the least
  that constrains a radiance field);
- cameras that all sit at one position stop the run (a rotation-only capture has no parallax, so no depth);
- images of different sizes stop the run (every view is cached in one tensor);
- images whose longer side exceeds ``max_image_side`` are downscaled on load, with a warning giving the memory the
  full-size cache would have needed (:data:`BYTES_PER_PIXEL` per pixel and view);
- a dataset whose cache (every view's image plus the per-view stage targets, at the size it is loaded at) would not
  fit in the memory budget (``max_memory_gb``, by default a share of this machine's available memory) stops the run
  before training, naming the estimate, the budget and the flags that downscale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image

from spin_nerfstudio.prompts import SpinInputError

BYTES_PER_PIXEL = 76
"""Memory per pixel and view that the run keeps cached: the float RGB image in the train and eval caches (2 x 12
bytes) plus the per-view float32 stage tensors (initial mask and its weight, object and removal masks, inpainted
colour and depth, reference flag, seen-elsewhere flag and colour: 52 bytes)."""

AVAILABLE_SHARE = 0.75
"""Share of the available memory (``MemAvailable``) that the cache may take when no budget is given; the rest is
left for the libraries, the model, renders and the stages' working copies."""

COINCIDENT_TOLERANCE = 1e-6
"""Camera centres closer than this (relative to their distance from the origin, at least 1) count as one position."""


@dataclass
class DatasetReport:
    """What the checks found."""

    sizes: List[Tuple[int, int]]
    """(width, height) of each training image as stored on disk."""
    scale: float = 1.0
    """Factor applied to every image on load (1 when no downscaling is needed)."""
    scaled_size: Tuple[int, int] = (0, 0)
    """(width, height) after downscaling."""
    warnings: List[str] = field(default_factory=list)
    """Messages to print (downscaling)."""


def gib(num_bytes: float) -> str:
    """Bytes as GiB with two significant digits."""
    return f"{num_bytes / 2**30:.2g} GiB"


def image_size(path: Path) -> Tuple[int, int]:
    """(width, height) read from an image file's header."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError) as err:
        raise SpinInputError(f"{path}: cannot read image ({err})") from None


def available_memory_bytes() -> Optional[int]:
    """Memory available to a new allocation now: ``MemAvailable`` of ``/proc/meminfo`` (None where unreadable)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_budget(max_memory_gb: float) -> Tuple[Optional[float], str]:
    """The cache's memory budget in bytes and where it comes from: ``max_memory_gb`` GiB when positive, else
    :data:`AVAILABLE_SHARE` of the available memory (None, no check, where that cannot be read)."""
    if max_memory_gb > 0:
        return max_memory_gb * 2**30, "--pipeline.datamanager.max-memory-gb"
    available = available_memory_bytes()
    if available is None:
        return None, "unknown"
    return AVAILABLE_SHARE * available, f"{AVAILABLE_SHARE:.0%} of the {gib(available)} available now"


def cache_bytes(num_views: int, width: int, height: int) -> int:
    """Estimated cached memory of a run: every view's image and per-view targets (:data:`BYTES_PER_PIXEL`)."""
    return num_views * width * height * BYTES_PER_PIXEL


def largest_fitting_side(num_views: int, width: int, height: int, budget: float) -> int:
    """The longest image side (same aspect ratio) at which the cache of ``num_views`` views fits ``budget``."""
    pixels = budget / (num_views * BYTES_PER_PIXEL)
    longest, shortest = max(width, height), min(width, height)
    return int((pixels * longest / shortest) ** 0.5)


def check_memory(num_views: int, size: Tuple[int, int], data: Path, max_memory_gb: float) -> None:
    """Stop when the cache of ``num_views`` views of ``size`` (width, height) exceeds the memory budget."""
    budget, source = memory_budget(max_memory_gb)
    w, h = size
    need = cache_bytes(num_views, w, h)
    if budget is None or need <= budget:
        return
    side = largest_fitting_side(num_views, w, h, budget)
    fix = (
        f"downscale with --pipeline.datamanager.max-image-side {side} or the dataparser's --downscale-factor"
        if side >= 16
        else "use fewer views"
    )
    raise SpinInputError(
        f"{data}: {num_views} views of {w}x{h} need about {gib(need)} of memory for the cached images and per-view "
        f"targets, more than the {gib(budget)} budget ({source}); {fix}, or raise --pipeline.datamanager.max-memory-gb"
    )


def check_view_count(num_views: int, min_views: int, data: Path) -> None:
    """Stop when there are too few views."""
    if num_views < min_views:
        raise SpinInputError(
            f"{data}: {num_views} training view(s); a removal run needs at least {min_views} views from different "
            "positions (--pipeline.datamanager.min-views)"
        )


def check_camera_positions(origins: Float[np.ndarray, "num_views 3"], data: Path) -> None:
    """Stop when every camera centre is at the same place."""
    origins = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    if len(origins) < 2:
        return
    spread = float(np.linalg.norm(origins - origins.mean(axis=0), axis=1).max())
    reach = max(1.0, float(np.linalg.norm(origins, axis=1).max()))
    if not np.isfinite(spread) or spread <= COINCIDENT_TOLERANCE * reach:
        raise SpinInputError(coincident_message(data, len(origins)))


def coincident_message(data: Path, num_views: Optional[int] = None) -> str:
    """The error for cameras that all coincide."""
    count = f"all {num_views} cameras" if num_views else "all cameras"
    return (
        f"{data}: {count} are at the same position; a radiance field needs views from different positions "
        "(a rotation-only capture has no parallax)"
    )


def check_sizes(
    paths: Sequence[Path], camera_sizes: Sequence[Tuple[int, int]], require_files: bool = True
) -> List[Tuple[int, int]]:
    """Sizes on disk; all views must share one size matching the cameras.

    With ``require_files`` False (rendering a finished run without its images), absent files take their camera's
    size."""
    sizes = []
    for path, cam in zip(paths, camera_sizes):
        if not Path(path).is_file():
            if require_files:
                raise SpinInputError(f"{path}: image not found")
            sizes.append(cam)
            continue
        size = image_size(path)
        if size != cam:
            raise SpinInputError(
                f"{path}: image is {size[0]}x{size[1]} but its camera says {cam[0]}x{cam[1]} (wrong w/h in the "
                "dataset file?)"
            )
        sizes.append(size)
    for path, size in zip(paths, sizes):
        if size != sizes[0]:
            raise SpinInputError(
                f"{path}: image is {size[0]}x{size[1]} but {Path(paths[0]).name} is {sizes[0][0]}x{sizes[0][1]}; "
                "every view must have the same size"
            )
    return sizes


def downscale_factor(width: int, height: int, max_side: int) -> Tuple[float, Tuple[int, int]]:
    """Factor bringing the longer side to at most ``max_side``, and the size it gives.

    The factor is picked so that nerfstudio's two roundings of the new size (Python floats for the image, float32
    tensors for the camera) give the same integers.
    """
    longest = max(width, height)
    if longest <= max_side:
        return 1.0, (width, height)
    if min(width, height) * max_side / longest < 2:
        raise SpinInputError(f"{width}x{height} images cannot be downscaled to at most {max_side} px (too narrow)")
    scale = (max_side + 0.5) / longest
    for _ in range(1000):
        sizes64 = (int(width * scale), int(height * scale))
        sizes32 = tuple(int((torch.tensor([n]) * scale).to(torch.int64)) for n in (width, height))
        if sizes64 == sizes32 and max(sizes64) <= max_side and min(sizes64) >= 1:
            return scale, sizes64
        scale *= 1.0 - 1e-5
    raise SpinInputError(f"cannot downscale {width}x{height} images to at most {max_side} px")  # pragma: no cover


def check_dataset(
    paths: Sequence[Path],
    camera_sizes: Sequence[Tuple[int, int]],
    origins: Float[np.ndarray, "num_views 3"],
    data: Path,
    min_views: int,
    max_image_side: int,
    require_files: bool = True,
    max_memory_gb: float = 0.0,
) -> DatasetReport:
    """All checks of this module; returns the sizes, the load-time scale and any warning.

    ``max_memory_gb``: the cache's memory budget in GiB (0: a share of the available memory; negative: no check)."""
    check_view_count(len(paths), min_views, data)
    check_camera_positions(origins, data)
    sizes = check_sizes(paths, camera_sizes, require_files)
    w, h = sizes[0]
    scale, scaled = downscale_factor(w, h, max_image_side)
    report = DatasetReport(sizes=sizes, scale=scale, scaled_size=scaled)
    if max_memory_gb >= 0:
        check_memory(len(paths), scaled, data, max_memory_gb)
    if scale != 1.0:
        n = len(paths)
        full, small = cache_bytes(n, w, h), cache_bytes(n, *scaled)
        report.warnings.append(
            f"images are {w}x{h}, larger than --pipeline.datamanager.max-image-side {max_image_side}; downscaling "
            f"them to {scaled[0]}x{scaled[1]} on load. Caching the {n} views at full size would have needed about "
            f"{gib(full)} of memory ({gib(small)} now); clicks and masks are scaled to match"
        )
    return report


def check_parser_outputs(
    outputs, data: Path, min_views: int, max_image_side: int, require_files: bool = True, max_memory_gb: float = 0.0
) -> DatasetReport:
    """:func:`check_dataset` on a nerfstudio ``DataparserOutputs``: its image files, camera sizes and origins."""
    cams = outputs.cameras
    camera_sizes = [(int(w), int(h)) for w, h in zip(cams.width.view(-1).tolist(), cams.height.view(-1).tolist())]
    return check_dataset(
        paths=[Path(p) for p in outputs.image_filenames],
        camera_sizes=camera_sizes,
        origins=cams.camera_to_worlds[:, :3, 3].cpu().numpy(),
        data=data,
        min_views=min_views,
        max_image_side=max_image_side,
        require_files=require_files,
        max_memory_gb=max_memory_gb,
    )
