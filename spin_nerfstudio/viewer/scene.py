"""What the panel draws and moves in viser's scene: click spheres, the browsers' cameras, training-view frustums."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import viser
import viser.transforms as vtf

from spin_nerfstudio.viewer.clicks import ClickPoint
from spin_nerfstudio.viewer.panel_config import VISER_SCALE


def add_click_sphere(server: viser.ViserServer, name: str, point: ClickPoint, radius: float) -> Any:
    """Draw a click as a green (positive) or red (negative) sphere, one radius towards the clicking camera so that
    the viewer's depth compositing does not hide it in the surface; return its scene handle."""
    color = (40, 200, 60) if point.positive else (220, 40, 40)
    return server.scene.add_icosphere(
        name,
        radius=radius * VISER_SCALE,
        color=color,
        subdivisions=2,
        position=tuple(float(c) * VISER_SCALE for c in point.xyz + point.towards_camera * radius),
    )


def view_pose(cameras: Any, index: int) -> Tuple[np.ndarray, np.ndarray, float]:
    """Viser camera position (viser units), orientation (wxyz) and vertical field of view of training view
    ``index`` of nerfstudio ``cameras``."""
    c2w = cameras.camera_to_worlds[index].detach().cpu().numpy().astype(np.float64)
    rot = vtf.SO3.from_matrix(c2w[:3, :3]) @ vtf.SO3.from_x_radians(np.pi)
    fov = 2.0 * float(np.arctan(float(cameras.cy[index]) / float(cameras.fy[index])))
    return c2w[:3, 3] * VISER_SCALE, rot.wxyz, fov


def hide_frustum(frustums: Dict[int, Any], hidden: Optional[int], index: int) -> Optional[int]:
    """Show the frustum hidden before (``hidden``) and hide frustum ``index``; return the one now hidden (None if
    the viewer draws no frustum ``index``). Looking through a training view puts the eye at the apex of its frustum,
    whose image (the training photo, as a thumbnail) would then fill the view and hide the render."""
    if hidden is not None and hidden in frustums:
        frustums[hidden].visible = True
    if index not in frustums:
        return None
    frustums[index].visible = False
    return index


def look_through(
    server: viser.ViserServer, cameras: Any, index: int, frustums: Dict[int, Any], hidden: Optional[int]
) -> Optional[int]:
    """Move every connected browser's camera to training view ``index`` (as clicking its frustum does), hiding that
    view's frustum (see :func:`hide_frustum`); return the frustum now hidden."""
    position, wxyz, fov = view_pose(cameras, index)
    hidden = hide_frustum(frustums, hidden, index)
    for client in server.get_clients().values():
        with client.atomic():
            client.camera.position = position
            client.camera.wxyz = wxyz
            client.camera.fov = fov
    return hidden
