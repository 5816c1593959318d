"""The "Object removal" panel of the nerfstudio viewer: click the object, segment it, remove it.

The pipeline holds a :class:`RemovalPanel` (a nerfstudio ``ViewerElement``, installed into the Control tab under
"Custom Elements") and its :class:`PanelControl` (a ``ViewerControl``, through which the panel gets the viewer:
its training lock, its re-render trigger and the pointer callback). Both are public pipeline attributes because
nerfstudio's viewer only finds elements and controls there.

What the user does and what happens:

- *Click mode* Positive / Negative registers the pointer callback (viser then locks the camera); Off unregisters it.
  The browser sends clicks only once the server's answer to the mode change has reached it, which is when the
  status line shows "**Mode:** Positive" (or Negative); a click before that is a camera click. A click is a ray; the model is rendered along it (eval mode, no gradients, under the training lock) and the
  point at the rendered depth becomes a green (positive) or red (negative) sphere. Clicks before
  ``min_steps`` training steps, on nothing opaque, or on background at infinity give a notification instead.
- *Undo last* / *Clear all* edit the points. After every change the points are written to the run folder as a
  prompt file (``prompts.json`` during ``ns-train``, ``viewer_prompts.json`` next to the config in
  ``ns-viewer``): each 3D point is expressed as a pixel click in the training view(s) that see it, with the 3D
  points alongside (``positive_3d`` / ``negative_3d``).
- *Segment* asks the pipeline to segment at the next training step: it renders every training view, projects the
  points into them, builds the prompts and runs the segmentation stage; the mask head then trains and the viewer
  switches its output to ``rgb_object_overlay`` (the object tinted) if it showed ``rgb``.
- *Remove object* lets the pipeline go on to the final masks and the inpainting stages once the mask head has had
  its ``mask_steps`` (segmenting first if the clicks changed since the last *Segment*).

Every click and button press waits for the training lock (:mod:`spin_nerfstudio.viewer.actions`) and is never
dropped: one that cannot be taken (no depth yet, nothing opaque, click mode gone, an error) gives a red notification
saying why, and one that waits longer than ``busy_notice`` seconds gives a notification that it waits.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import numpy as np
import viser
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfstudio.utils.rich_utils import CONSOLE
from nerfstudio.viewer.viewer_elements import ViewerClick, ViewerControl, ViewerElement

from spin_nerfstudio.model.names import INITIAL_MASK, Stage
from spin_nerfstudio.viewer.actions import ActionQueue
from spin_nerfstudio.viewer.clicks import ClickPoint, lift_click, rendered_surface, seen_in_views
from spin_nerfstudio.viewer.panel_config import MODES, TRACE_ENV, RemovalPanelConfig, trace
from spin_nerfstudio.viewer.prompt_file import prompt_target, write_prompts
from spin_nerfstudio.viewer.scene import add_click_sphere, look_through
from spin_nerfstudio.viewer.segment import segment_from_clicks
from spin_nerfstudio.viewer.status import busy_reason, segment_notice, stage_line, status_text, training_state
from spin_nerfstudio.viewer.widgets import add_widgets, notify_clients, refresh_widgets, show_overlay

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline

__all__ = ["PanelControl", "RemovalPanel", "RemovalPanelConfig"]  # the config is defined in panel_config.py


class PanelControl(ViewerControl):
    """The panel's handle on the viewer (nerfstudio calls ``_setup`` once the viewer exists)."""

    def __init__(self, panel: "RemovalPanel") -> None:
        self._panel = panel

    def _setup(self, viewer: Any) -> None:
        super()._setup(viewer)
        self._panel.attach(viewer)


class RemovalPanel(ViewerElement[str]):
    """The "Object removal" folder of the viewer and the click state behind it."""

    def __init__(self, pipeline: "SpinPipeline", config: Optional[RemovalPanelConfig] = None) -> None:
        super().__init__("Object removal")
        self._pipeline = pipeline
        self.config = config or RemovalPanelConfig()
        self.control = PanelControl(self)
        self.points: List[ClickPoint] = []
        """The clicks, in order."""
        self.mode: str = "Off"
        """Current click mode (one of :data:`MODES`)."""
        self.messages: List[str] = []
        """Every notification shown, in order (also printed to the console)."""
        self.pending_segmentation = False
        """Set by Segment / Remove object; the pipeline segments at its next step and clears it."""
        self.segment_step: Optional[int] = None
        """Training step of the last segmentation from the viewer's clicks."""
        self.last_step: Optional[int] = None
        """Last training step seen (None before training, or in ``ns-viewer``)."""
        self.prompt_path: Optional[Path] = None
        """Where the clicks were last written."""
        self.segmented_note = ""
        """What the last segmentation from the viewer's clicks gave (shown in the panel)."""
        self.viewer: Any = None
        self.server: Optional[viser.ViserServer] = None
        self._version = 0
        self._segmented_version = -1
        self._spheres: List[Any] = []
        self._last_status = 0.0
        self._widgets: dict = {}
        self._hidden_frustum: Optional[int] = None
        self._actions = ActionQueue(
            lock=lambda: getattr(self.viewer, "train_lock", None),
            notify=self.notify,
            busy_reason=lambda: busy_reason(self.pending_segmentation, self._pipeline.spin_model.stage),
            busy_notice=lambda: self.config.busy_notice,
            after=self._refresh_and_rerender,
        )

    # ------------------------------------------------------------------ viewer wiring
    def _create_gui_handle(self, viser_server: viser.ViserServer) -> None:
        num_views = max(1, self._pipeline.datamanager.num_views)
        self.gui_handle, w = add_widgets(viser_server.gui, self._status_text(), num_views)  # type: ignore[assignment]
        self._widgets = w
        w["mode"].on_update(self._on_mode_widget)
        w["undo"].on_click(lambda _: self.undo())
        w["clear"].on_click(lambda _: self.clear())
        w["segment"].on_click(lambda _: self.segment())
        w["remove"].on_click(lambda _: self.remove())
        w["goto"].on_click(lambda _: self.go_to_view(int(w["view"].value)))
        self._refresh()

    def _on_mode_widget(self, event: Any) -> None:
        """A browser changed the Click mode dropdown. viser also calls this, on a worker thread and some time later,
        for the values the panel itself assigns (``client`` None); those are ignored, or a late one would undo a
        newer ``select_mode``."""
        trace(f"mode widget update to {event.target.value!r} from client {getattr(event, 'client_id', None)}")
        if event.client is not None:
            self.select_mode(str(event.target.value))

    def install(self, viser_server: viser.ViserServer) -> None:
        """Create the panel's folder and widgets (called by nerfstudio's viewer)."""
        self.server = viser_server
        self._create_gui_handle(viser_server)

    def attach(self, viewer: Any) -> None:
        """Keep the viewer (training lock, re-render, trainer)."""
        self.viewer = viewer
        self.server = viewer.viser_server
        websock = getattr(self.server, "_websock_server", None)
        if os.environ.get(TRACE_ENV) == "1" and websock is not None:
            from viser import _messages

            websock.register_handler(
                _messages.ScenePointerMessage,
                lambda client_id, msg: trace(f"pointer message {msg.event_type} from client {client_id}"),
            )

    def training_callback(self) -> TrainingCallback:
        """Callback that records the step and refreshes the progress line."""
        return TrainingCallback(
            where_to_run=[TrainingCallbackLocation.AFTER_TRAIN_ITERATION], update_every_num_iters=1, func=self.on_step
        )

    def on_step(self, step: int) -> None:
        """Record the training step; refresh the status every ``status_every`` seconds."""
        self.last_step = step
        self._actions.run_pending()  # the training loop holds the lock here
        now = time.time()
        if now - self._last_status >= self.config.status_every:
            self._last_status = now
            self._refresh()

    @property
    def interactive(self) -> bool:
        """Whether clicks drive this run (False when a prompt file or a mask dir was given)."""
        pipe = self._pipeline
        return getattr(pipe, "given_masks", None) is None and getattr(pipe.config, "prompt_file", None) is None

    def _refresh_and_rerender(self) -> None:
        self._refresh()
        trigger = getattr(self.viewer, "_trigger_rerender", None)
        if trigger is not None:
            trigger()

    # ------------------------------------------------------------------ messages and status
    def notify(self, title: str, body: str, error: bool = False) -> None:
        """Show a notification to every connected browser, keep it in :attr:`messages` and print it."""
        self.messages.append(f"{title}: {body}")
        CONSOLE.print(f"{'[yellow]' if error else ''}spin-nerfstudio viewer: {title}: {body}")
        if self.server is not None:
            notify_clients(self.server, title, body, error)

    def _status_text(self) -> str:
        pipe = self._pipeline
        stage = stage_line(
            pipe.spin_model.stage, self.last_step, self.pending_segmentation, pipe.removal_requested, pipe.mask_fit_end
        )
        return status_text(stage, self.points, self.segmented_note, self.interactive, self.mode, self.messages)

    def _refresh(self) -> None:
        if self._widgets:
            busy = self._pipeline.spin_model.stage == Stage.INPAINT or not self.interactive
            refresh_widgets(self._widgets, self._status_text(), busy, bool(self.points))

    # ------------------------------------------------------------------ handlers
    def select_mode(self, mode: str) -> None:
        """Enter a click mode (registers the pointer callback) or leave it (unregisters it)."""
        if mode not in MODES:
            raise ValueError(f"click mode must be one of {MODES}, got '{mode}'")
        if mode != "Off" and not self.interactive:
            self.notify("Clicks are off", "this run's object comes from its prompt file or mask dir", error=True)
            mode = "Off"
        elif mode != "Off" and self._pipeline.spin_model.stage == Stage.INPAINT:
            self.notify("Clicks are off", "the object is being removed; segmentation is over", error=True)
            mode = "Off"
        previous, self.mode = self.mode, mode
        if mode != "Off" and previous == "Off":
            self.control.register_pointer_cb("click", self.click, removed_cb=self._pointer_removed)
            trace(f"pointer callback registered (mode {mode})")
        elif mode == "Off" and previous != "Off":
            self.control.unregister_pointer_cb()
            trace("pointer callback unregistered")
        self._show_mode()

    def _show_mode(self) -> None:
        dropdown = self._widgets.get("mode")
        if dropdown is not None and dropdown.value != self.mode:
            dropdown.value = self.mode  # its update callback then finds the mode already set
        self._refresh()

    def _pointer_removed(self) -> None:
        # Our callback was removed: by us (mode is already Off) or replaced by another pointer callback.
        if self.mode != "Off":
            self.mode = "Off"
            self._show_mode()

    def click(self, click: ViewerClick) -> None:
        """Pointer callback: lift the clicked ray to a 3D point and add it (under the training lock)."""
        mode = self.mode  # the mode the click was made in, even if it changes while the click waits
        trace(f"click callback entered (mode {mode})")
        self._actions.run(lambda: self._add_click(click, mode), "Click")
        trace(f"click done; {len(self.points)} points")

    def _add_click(self, click: ViewerClick, mode: str) -> None:
        if mode == "Off":
            self.notify("Click not taken", "the click mode is Off; pick Positive or Negative first", error=True)
            return
        if not self.interactive or self._pipeline.spin_model.stage == Stage.INPAINT:
            self.notify("Click not taken", "the object is being removed; segmentation is over", error=True)
            return
        positive = mode == "Positive"
        if self.last_step is not None and self.last_step < self.config.min_steps:
            self.notify(
                "No depth yet",
                f"the reconstruction has trained {self.last_step} of {self.config.min_steps} steps; click again soon",
                error=True,
            )
            return
        cfg = self.config
        model = self._pipeline.model
        result = lift_click(model, click.origin, click.direction, cfg.min_accumulation, cfg.max_distance)
        if result.point is None:
            self.notify("No point", result.message, error=True)
            return
        views, tolerance = self._pipeline._views(), self._pipeline.config.visibility_tolerance
        seen = seen_in_views(result.point, views, rendered_surface(model, views), tolerance, cfg.min_accumulation)
        if not seen:
            self.notify("No point", "no training view sees this point; click where the photos see it", error=True)
            return
        back = -np.asarray(click.direction, dtype=np.float64)
        back = back / max(float(np.linalg.norm(back)), 1e-12)
        point = ClickPoint(positive=positive, xyz=result.point, seen=seen, towards_camera=back)
        self.points.append(point)
        self._version += 1
        self._draw(point, len(self.points) - 1)
        self._save()
        kind = "positive" if positive else "negative"
        self.notify(f"Added a {kind} point", f"{result.message}; seen in {len(seen)} training views")

    def undo(self) -> None:
        """Remove the last point."""
        self._actions.run(self._undo, "Undo last")

    def _undo(self) -> None:
        if not self.points:
            self.notify("Nothing to undo", "there are no clicks", error=True)
            return
        self.points.pop()
        if self._spheres:
            self._spheres.pop().remove()
        self._version += 1
        self._save()

    def clear(self) -> None:
        """Remove every point."""
        self._actions.run(self._clear, "Clear all")

    def _clear(self) -> None:
        self.points.clear()
        for handle in self._spheres:
            handle.remove()
        self._spheres.clear()
        self._version += 1
        self._save()

    def segment(self) -> None:
        """Ask the pipeline to segment from the current points at its next training step."""
        self._actions.run(self._request_segmentation, "Segment")

    def _request_segmentation(self) -> bool:
        if not self.interactive or self._pipeline.spin_model.stage == Stage.INPAINT:
            self.notify("Cannot segment", "segmentation of this run is over", error=True)
            return False
        if not any(p.positive for p in self.points):
            self.notify("Cannot segment", "add a positive click on the object first", error=True)
            return False
        self.pending_segmentation = True
        title, body, error = segment_notice(training_state(self.viewer), self.prompt_path)
        self.notify(title, body, error=error)
        return True

    def remove(self) -> None:
        """Let the run go on to the final masks and the inpainting stages (segmenting first if needed)."""
        self._actions.run(self._request_removal, "Remove object")

    def _request_removal(self) -> None:
        pipe = self._pipeline
        stage = pipe.spin_model.stage
        if not self.interactive or stage == Stage.INPAINT:
            self.notify("Already removing", "the inpainting stages are running", error=True)
            return
        if stage == Stage.RECONSTRUCT or (self.points and self._version != self._segmented_version):
            if not self._request_segmentation():
                return
        pipe.removal_requested = True
        self.select_mode("Off")
        if self.pending_segmentation:
            when = f"after segmenting and {pipe.config.mask_steps} mask-head steps"
        else:
            when = f"at step {pipe.mask_fit_end()}"
        self.notify("Removal requested", f"the inpainting stages start {when}")

    def go_to_view(self, index: int) -> None:
        """Move every connected browser's camera to training view ``index`` (as clicking its frustum does)."""
        cams = self._pipeline.datamanager.train_dataset.cameras
        if not 0 <= index < len(cams):
            self.notify("No such view", f"training views are 0 to {len(cams) - 1}", error=True)
            return
        if self.server is None:
            return
        frustums = getattr(self.viewer, "camera_handles", {}) or {}
        self._hidden_frustum = look_through(self.server, cams, index, frustums, self._hidden_frustum)
        self.notify(
            "Camera moved", f"looking through training view {index} ({self._pipeline.datamanager.image_names[index]})"
        )

    # ------------------------------------------------------------------ drawing and saving
    def _draw(self, point: ClickPoint, index: int) -> None:
        if self.server is None:
            return
        name = f"/spin_clicks/point_{self._version}_{index}"
        handle = add_click_sphere(self.server, name, point, self.config.sphere_radius)
        self._spheres.append(handle)

    def _save(self) -> None:
        path = prompt_target(getattr(self._pipeline, "run_dir", None), getattr(self.viewer, "log_filename", None))
        if path is not None:
            pipe = self._pipeline
            self.prompt_path = write_prompts(
                self.points, pipe._views(), pipe.datamanager.image_names, path, self.prompt_path
            )

    # ------------------------------------------------------------------ called by the pipeline
    def run_segmentation(self, step: int) -> bool:
        """Segment from the current points (in the training loop, under the lock); True if it worked."""
        self.pending_segmentation = False
        pipe = self._pipeline
        prompts, why = segment_from_clicks(pipe, self.points, self.config.min_accumulation, step, self._save)
        if prompts is None:
            self.notify("Segmentation failed", why, error=True)
            self._refresh()
            return False
        self.segment_step = step
        self._segmented_version = self._version
        masks = pipe.datamanager.view_batch[INITIAL_MASK]
        covered = int((masks.flatten(1).amax(dim=1) > 0).sum())
        images = ", ".join(p.image for p in prompts.prompts)
        self.segmented_note = f"step {step}, clicks in {images}, initial masks in {covered}/{len(masks)} views"
        self.notify("Segmented", f"clicks in {images}; initial masks in {covered}/{len(masks)} views")
        if self.config.switch_to_overlay:
            show_overlay(self.viewer)
        self._refresh_and_rerender()
        return True

    def accept_final_masks(self, masks: List[np.ndarray]) -> bool:
        """Whether the removal may go on with these final masks. With viewer clicks an empty mask is not fatal:
        the panel says so and waits for another "Remove object" (headless runs stop, as before)."""
        if any(m.any() for m in masks) or not self.interactive:
            return True
        self._pipeline.removal_requested = False
        self.notify(
            "Not removing yet",
            "the mask head renders no object pixel yet; let it train longer (or click again) and press Remove object",
            error=True,
        )
        self._refresh()
        return False
