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

Pointer callbacks are neither wrapped in the training lock nor followed by a re-render in nerfstudio 1.1.5; the
panel's own GUI callbacks are not either (they are raw viser widgets inside one element), so every handler here
needs the lock and triggers the re-render itself. The training loop releases the lock for only a few bytecodes
between steps and Python's lock is not fair, so a handler blocked on it can wait for minutes while training runs.
Every click and button press is therefore queued and run by whichever thread holds the lock first: the training
loop at the end of its next step (the panel's step callback runs under the lock), or the handler's own thread when
it gets the lock (training paused or finished, ``ns-viewer``). Nothing is dropped: a click that cannot be taken
(no depth yet, nothing opaque, click mode gone, an error) gives a red notification saying why, and one that waits
longer than ``busy_notice`` seconds (a segmentation holds the lock for a while) gives a notification that it waits.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Optional

import numpy as np
import viser
import viser.transforms as vtf
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfstudio.utils.rich_utils import CONSOLE
from nerfstudio.viewer.viewer_elements import ViewerClick, ViewerControl, ViewerElement

from spin_nerfstudio.model.names import INITIAL_MASK, OBJECT_OVERLAY, Stage
from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.stages.names import PROMPT_FILE, RECONSTRUCTED
from spin_nerfstudio.viewer.clicks import (
    ClickPoint,
    build_prompts,
    lift_click,
    map_surface,
    rendered_surface,
    seen_in_views,
)

if TYPE_CHECKING:
    from spin_nerfstudio.pipeline import SpinPipeline

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


@dataclass
class _Pending:
    """A click or button press of the panel, waiting for the training lock."""

    what: str
    """What it is, for notifications and the trace ("click", "Undo last", ...)."""
    action: Callable[[], Any]
    """What to do with the training lock held."""
    received: float = field(default_factory=time.time)
    """When it arrived (seconds since the epoch)."""
    done: threading.Event = field(default_factory=threading.Event)
    """Set once it has run (or failed with a notification)."""


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
        self._pending: List[_Pending] = []
        self._pending_lock = threading.Lock()

    # ------------------------------------------------------------------ viewer wiring
    def _create_gui_handle(self, viser_server: viser.ViserServer) -> None:
        gui = viser_server.gui
        with gui.add_folder("Object removal") as folder:
            self.gui_handle = folder  # type: ignore[assignment]
            w = self._widgets
            w["status"] = gui.add_markdown(self._status_text())
            w["mode"] = gui.add_dropdown("Click mode", MODES, initial_value="Off")
            w["undo"] = gui.add_button("Undo last", icon=viser.Icon.ARROW_BACK_UP)
            w["clear"] = gui.add_button("Clear all", icon=viser.Icon.TRASH)
            w["segment"] = gui.add_button("Segment", icon=viser.Icon.SCAN)
            w["remove"] = gui.add_button("Remove object", icon=viser.Icon.ERASER, color="red")
            num_views = max(1, self._pipeline.datamanager.num_views)
            w["view"] = gui.add_slider("Training view", 0, num_views - 1, 1, 0, disabled=num_views == 1)
            w["goto"] = gui.add_button("Go to training view", icon=viser.Icon.CAMERA)
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
        self._run_pending()  # the training loop holds the lock here
        now = time.time()
        if now - self._last_status >= self.config.status_every:
            self._last_status = now
            self._refresh()

    @property
    def interactive(self) -> bool:
        """Whether clicks drive this run (False when a prompt file or a mask dir was given)."""
        pipe = self._pipeline
        return getattr(pipe, "given_masks", None) is None and getattr(pipe.config, "prompt_file", None) is None

    def _rerender(self) -> None:
        trigger = getattr(self.viewer, "_trigger_rerender", None)
        if trigger is not None:
            trigger()

    def _locked(self, fn: Callable[[], Any], what: str = "The action") -> None:
        """Run ``fn`` with the training lock held, by whichever thread gets it first (see the module docstring);
        return once it has run."""
        item = _Pending(what, fn)
        with self._pending_lock:
            self._pending.append(item)
        lock = getattr(self.viewer, "train_lock", None)
        told = False
        while not item.done.is_set():
            if lock is None:
                self._run_pending()
            elif lock.acquire(timeout=0.05):
                try:
                    self._run_pending()
                finally:
                    lock.release()
            elif not item.done.wait(0.05) and not told and time.time() - item.received >= self.config.busy_notice:
                told = True
                trace(f"{what} waits for the training lock")
                self.notify(
                    f"{what} waits", f"the trainer is busy ({self._busy_reason()}); it is taken when it is free"
                )

    def _busy_reason(self) -> str:
        if self.pending_segmentation:
            return "segmenting"
        if self._pipeline.spin_model.stage == Stage.INPAINT:
            return "preparing the removal"
        return "a training step or a render"

    def _run_pending(self) -> None:
        """Run the queued clicks and button presses, in order (the caller holds the training lock)."""
        with self._pending_lock:
            items, self._pending = self._pending, []
        for item in items:
            trace(f"{item.what} runs after {time.time() - item.received:.3f} s")
            try:
                item.action()
            except Exception as err:  # noqa: BLE001 - viser's worker threads would swallow it silently
                CONSOLE.print_exception()
                self.notify(f"{item.what} not taken", f"{type(err).__name__}: {err}", error=True)
            finally:
                item.done.set()
        if items:
            self._refresh()
            self._rerender()

    # ------------------------------------------------------------------ messages and status
    def notify(self, title: str, body: str, error: bool = False) -> None:
        """Show a notification to every connected browser, keep it in :attr:`messages` and print it."""
        self.messages.append(f"{title}: {body}")
        CONSOLE.print(f"{'[yellow]' if error else ''}spin-nerfstudio viewer: {title}: {body}")
        if self.server is None:
            return
        for client in self.server.get_clients().values():
            try:
                client.add_notification(title, body, auto_close=8000, color="red" if error else None)
            except Exception:  # a client that just left
                pass

    def _stage_line(self) -> str:
        pipe = self._pipeline
        stage = pipe.spin_model.stage
        step = "" if self.last_step is None else f" · step {self.last_step}"
        if stage == Stage.RECONSTRUCT:
            waiting = " · segmenting at the next step" if self.pending_segmentation else ""
            return f"**Stage:** reconstruct{step}{waiting}"
        if stage == Stage.SEGMENT:
            end = pipe.mask_fit_end()
            done = "" if self.last_step is None else f", mask head until step {end}"
            then = "; then removal" if pipe.removal_requested else "; press Remove object to inpaint"
            return f"**Stage:** segment{step}{done}{then}"
        return f"**Stage:** inpaint{step} · fitting the scene without the object"

    def _status_text(self) -> str:
        n_pos = sum(p.positive for p in self.points)
        n_neg = len(self.points) - n_pos
        lines = [self._stage_line(), f"**Clicks:** {n_pos} positive, {n_neg} negative"]
        if self.segmented_note:
            lines.append(f"**Segmented:** {self.segmented_note}")
        if not self.interactive:
            lines.append("Clicks come from the prompt file or mask dir of this run.")
        elif self.mode != "Off":
            lines.append(f"**Mode:** {self.mode} (camera locked; pick Off to move it)")
        if self.messages:
            lines.append(f"_{self.messages[-1]}_")
        return "  \n".join(lines)

    def _refresh(self) -> None:
        w = self._widgets
        if not w:
            return
        w["status"].content = self._status_text()
        busy = self._pipeline.spin_model.stage == Stage.INPAINT or not self.interactive
        for key in ("undo", "clear", "segment", "remove"):
            w[key].disabled = busy
        w["undo"].disabled = busy or not self.points
        w["clear"].disabled = busy or not self.points

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
        self._locked(lambda: self._add_click(click, mode), "Click")
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
        views = self._pipeline._views()
        seen = seen_in_views(
            result.point,
            views,
            rendered_surface(model, views),
            self._pipeline.config.visibility_tolerance,
            cfg.min_accumulation,
        )
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
        self._locked(self._undo, "Undo last")

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
        self._locked(self._clear, "Clear all")

    def _clear(self) -> None:
        self.points.clear()
        for handle in self._spheres:
            handle.remove()
        self._spheres.clear()
        self._version += 1
        self._save()

    def segment(self) -> None:
        """Ask the pipeline to segment from the current points at its next training step."""
        self._locked(self._request_segmentation, "Segment")

    def _request_segmentation(self) -> bool:
        if not self.interactive or self._pipeline.spin_model.stage == Stage.INPAINT:
            self.notify("Cannot segment", "segmentation of this run is over", error=True)
            return False
        if not any(p.positive for p in self.points):
            self.notify("Cannot segment", "add a positive click on the object first", error=True)
            return False
        self.pending_segmentation = True
        self._tell_when()
        return True

    def remove(self) -> None:
        """Let the run go on to the final masks and the inpainting stages (segmenting first if needed)."""
        self._locked(self._request_removal, "Remove object")

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

    def _training_state(self) -> str:
        trainer = getattr(self.viewer, "trainer", None)
        if trainer is None:
            return "none"
        return str(getattr(trainer, "training_state", "training"))

    def _tell_when(self) -> None:
        state = self._training_state()
        if state == "paused":
            self.notify("Segmentation queued", "training is paused; it runs when you resume training")
        elif state in ("completed", "none"):
            where = f" {self.prompt_path}" if self.prompt_path is not None else ""
            self.notify(
                "Training is not running",
                f"segmentation runs between training steps; the clicks are saved in{where}: train with "
                "--pipeline.prompt-file on that file",
                error=True,
            )
        else:
            self.notify("Segmenting", "at the next training step")

    def go_to_view(self, index: int) -> None:
        """Move every connected browser's camera to training view ``index`` (as clicking its frustum does)."""
        cams = self._pipeline.datamanager.train_dataset.cameras
        if not 0 <= index < len(cams):
            self.notify("No such view", f"training views are 0 to {len(cams) - 1}", error=True)
            return
        c2w = cams.camera_to_worlds[index].detach().cpu().numpy().astype(np.float64)
        rot = vtf.SO3.from_matrix(c2w[:3, :3]) @ vtf.SO3.from_x_radians(np.pi)
        fov = 2.0 * float(np.arctan(float(cams.cy[index]) / float(cams.fy[index])))
        if self.server is None:
            return
        # Looking through a training view puts the eye at the apex of its frustum, whose image (the training photo,
        # as a thumbnail) would then fill the view and hide the render: hide that one frustum while there.
        frustums = getattr(self.viewer, "camera_handles", {}) or {}
        if self._hidden_frustum is not None and self._hidden_frustum in frustums:
            frustums[self._hidden_frustum].visible = True
        self._hidden_frustum = index if index in frustums else None
        if self._hidden_frustum is not None:
            frustums[index].visible = False
        for client in self.server.get_clients().values():
            with client.atomic():
                client.camera.position = c2w[:3, 3] * VISER_SCALE
                client.camera.wxyz = rot.wxyz
                client.camera.fov = fov
        self.notify(
            "Camera moved", f"looking through training view {index} ({self._pipeline.datamanager.image_names[index]})"
        )

    # ------------------------------------------------------------------ drawing and saving
    def _draw(self, point: ClickPoint, index: int) -> None:
        if self.server is None:
            return
        color = (40, 200, 60) if point.positive else (220, 40, 40)
        handle = self.server.scene.add_icosphere(
            f"/spin_clicks/point_{self._version}_{index}",
            radius=self.config.sphere_radius * VISER_SCALE,
            color=color,
            subdivisions=2,
            position=tuple(
                float(c) * VISER_SCALE for c in point.xyz + point.towards_camera * self.config.sphere_radius
            ),
        )
        self._spheres.append(handle)

    def _prompt_target(self) -> Optional[Path]:
        run_dir = getattr(self._pipeline, "run_dir", None)
        if run_dir is not None:
            return Path(run_dir) / PROMPT_FILE
        log = getattr(self.viewer, "log_filename", None)
        if log is not None:
            return Path(log).parent / VIEWER_PROMPT_FILE
        return None

    def _save(self) -> None:
        path = self._prompt_target()
        if path is None:
            return
        pipe = self._pipeline
        try:
            prompts, _ = build_prompts(self.points, pipe._views(), pipe.datamanager.image_names, source=str(path))
        except SpinInputError:
            if self.prompt_path is not None and self.prompt_path.is_file():
                self.prompt_path.unlink()  # no positive click left: do not leave a stale prompt file behind
            self.prompt_path = None
            return
        prompts.save(path)
        self.prompt_path = path

    # ------------------------------------------------------------------ called by the pipeline
    def run_segmentation(self, step: int) -> bool:
        """Segment from the current points (in the training loop, under the lock); True if it worked."""
        self.pending_segmentation = False
        pipe = self._pipeline
        token = pipe._boundary(RECONSTRUCTED, step)
        pipe._run_timed("render", lambda: pipe._render_reconstruction(token))
        views = pipe._views()
        accumulations = pipe.render_accumulations()
        surface = map_surface(pipe._depths, [accumulations[i] for i in range(len(views))])
        tol, min_acc = pipe.config.visibility_tolerance, self.config.min_accumulation
        for p in self.points:
            p.seen = seen_in_views(p.xyz, views, surface, tol, min_acc)
        before = (pipe.prompts, pipe.prompt_views)
        try:
            prompts, indices = build_prompts(self.points, views, pipe.datamanager.image_names, source="viewer clicks")
            pipe.prompts, pipe.prompt_views = prompts, indices
            self._save()
            pipe._run_timed("initial_masks", lambda: pipe._initial_masks(step, token))
        except (SpinInputError, SystemExit) as err:
            pipe.prompts, pipe.prompt_views = before
            pipe.removal_requested = False
            self.notify("Segmentation failed", str(err).replace("spin-nerfstudio: ", ""), error=True)
            self._refresh()
            return False
        self.segment_step = step
        self._segmented_version = self._version
        masks = pipe.datamanager.view_batch[INITIAL_MASK]
        covered = int((masks.flatten(1).amax(dim=1) > 0).sum())
        images = ", ".join(p.image for p in prompts.prompts)
        self.segmented_note = f"step {step}, clicks in {images}, initial masks in {covered}/{len(masks)} views"
        self.notify("Segmented", f"clicks in {images}; initial masks in {covered}/{len(masks)} views")
        self._show_overlay()
        self._refresh()
        self._rerender()
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

    def _show_overlay(self) -> None:
        if not self.config.switch_to_overlay:
            return
        dropdown = getattr(getattr(self.viewer, "control_panel", None), "_output_render", None)
        if dropdown is None:
            return
        options = list(getattr(dropdown, "options", []) or [])
        if OBJECT_OVERLAY in options and dropdown.value == "rgb":
            dropdown.value = OBJECT_OVERLAY
