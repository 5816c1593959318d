"""The panel's viser GUI: the "Object removal" folder and its buttons' state, notifications, the output switch."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import viser

from spin_nerfstudio.model.names import OBJECT_OVERLAY
from spin_nerfstudio.viewer.panel_config import MODES


def add_widgets(gui: Any, status: str, num_views: int) -> Tuple[Any, Dict[str, Any]]:
    """Create the "Object removal" folder in viser's ``gui``; return the folder and its widgets by key (``status``,
    ``mode``, ``undo``, ``clear``, ``segment``, ``remove``, ``view``, ``goto``). The caller wires their callbacks."""
    w: Dict[str, Any] = {}
    with gui.add_folder("Object removal") as folder:
        w["status"] = gui.add_markdown(status)
        w["mode"] = gui.add_dropdown("Click mode", MODES, initial_value="Off")
        w["undo"] = gui.add_button("Undo last", icon=viser.Icon.ARROW_BACK_UP)
        w["clear"] = gui.add_button("Clear all", icon=viser.Icon.TRASH)
        w["segment"] = gui.add_button("Segment", icon=viser.Icon.SCAN)
        w["remove"] = gui.add_button("Remove object", icon=viser.Icon.ERASER, color="red")
        w["view"] = gui.add_slider("Training view", 0, num_views - 1, 1, 0, disabled=num_views == 1)
        w["goto"] = gui.add_button("Go to training view", icon=viser.Icon.CAMERA)
    return folder, w


def refresh_widgets(widgets: Dict[str, Any], status: str, busy: bool, has_points: bool) -> None:
    """Show ``status``; disable the click and removal buttons while ``busy``, and Undo / Clear without points."""
    widgets["status"].content = status
    for key in ("undo", "clear", "segment", "remove"):
        widgets[key].disabled = busy
    widgets["undo"].disabled = busy or not has_points
    widgets["clear"].disabled = busy or not has_points


def notify_clients(server: viser.ViserServer, title: str, body: str, error: bool = False) -> None:
    """Show a notification (red for an error) to every browser connected to ``server``."""
    for client in server.get_clients().values():
        try:
            client.add_notification(title, body, auto_close=8000, color="red" if error else None)
        except Exception:  # a client that just left
            pass


def show_overlay(viewer: Any) -> None:
    """Switch the viewer's output from ``rgb`` to the tinted object overlay (if it shows rgb and offers it)."""
    dropdown = getattr(getattr(viewer, "control_panel", None), "_output_render", None)
    if dropdown is None:
        return
    options = list(getattr(dropdown, "options", []) or [])
    if OBJECT_OVERLAY in options and dropdown.value == "rgb":
        dropdown.value = OBJECT_OVERLAY
