"""Where and how the panel writes its clicks as a prompt file, after every change of the clicks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.segmentation.propagate import PinholeView
from spin_nerfstudio.stages.names import PROMPT_FILE
from spin_nerfstudio.viewer.clicks import ClickPoint, build_prompts
from spin_nerfstudio.viewer.panel_config import VIEWER_PROMPT_FILE


def prompt_target(run_dir: Optional[Any], log_filename: Optional[Any]) -> Optional[Path]:
    """``prompts.json`` in the run folder during ``ns-train``, else ``viewer_prompts.json`` next to the config in
    ``ns-viewer`` (the viewer's ``log_filename``); None without either."""
    if run_dir is not None:
        return Path(run_dir) / PROMPT_FILE
    if log_filename is not None:
        return Path(log_filename).parent / VIEWER_PROMPT_FILE
    return None


def write_prompts(
    points: Sequence[ClickPoint],
    views: Sequence[PinholeView],
    image_names: Sequence[str],
    path: Path,
    previous: Optional[Path],
) -> Optional[Path]:
    """Write the clicks to ``path`` as a prompt file and return ``path``. Without a positive click seen in a training
    view, delete the file written before (``previous``, so that no stale prompt file is left) and return None."""
    try:
        prompts, _ = build_prompts(points, views, image_names, source=str(path))
    except SpinInputError:
        if previous is not None and previous.is_file():
            previous.unlink()
        return None
    prompts.save(path)
    return path
