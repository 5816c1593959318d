"""A segmentation from the viewer's clicks, run for the panel by the pipeline between training steps (no GUI)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Sequence, Tuple

from spin_nerfstudio.prompts import PromptSet, SpinInputError
from spin_nerfstudio.stages.names import RECONSTRUCTED
from spin_nerfstudio.viewer.clicks import ClickPoint, build_prompts, map_surface, seen_in_views

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline


def segment_from_clicks(
    pipe: "SpinPipeline",
    points: Sequence[ClickPoint],
    min_accumulation: float,
    step: int,
    save: Callable[[], None],
) -> Tuple[Optional[PromptSet], str]:
    """Render every training view, find which views see each point (updating ``seen``), build the prompts, call
    ``save`` (the panel writes its prompt file) and run the initial-masks stage. Returns the prompts and "", or None
    and why it failed (the pipeline's prompts restored and its removal request withdrawn)."""
    token = pipe._boundary(RECONSTRUCTED, step)
    pipe._run_timed("render", lambda: pipe._render_reconstruction(token))
    views = pipe._views()
    accumulations = pipe.render_accumulations()
    surface = map_surface(pipe._depths, [accumulations[i] for i in range(len(views))])
    tol = pipe.config.visibility_tolerance
    for p in points:
        p.seen = seen_in_views(p.xyz, views, surface, tol, min_accumulation)
    before = (pipe.prompts, pipe.prompt_views)
    try:
        prompts, indices = build_prompts(points, views, pipe.datamanager.image_names, source="viewer clicks")
        pipe.prompts, pipe.prompt_views = prompts, indices
        save()
        pipe._run_timed("initial_masks", lambda: pipe._initial_masks(step, token))
    except (SpinInputError, SystemExit) as err:
        pipe.prompts, pipe.prompt_views = before
        pipe.removal_requested = False
        return None, str(err).replace("spin-nerfstudio: ", "")
    return prompts, ""
