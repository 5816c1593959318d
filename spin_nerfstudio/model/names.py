"""Names the model shares with the pipeline, the stages and the viewer: the training stages, the per-ray batch
entries the pipeline adds, and the model's extra render outputs."""

from __future__ import annotations

import enum


class Stage(enum.IntEnum):
    """Training stages of a removal run, in order."""

    RECONSTRUCT = 0
    SEGMENT = 1
    INPAINT = 2


# Keys of per-ray batch entries that the pipeline adds once they exist.
INITIAL_MASK = "initial_mask"
"""Initial (propagated 2D) object mask, H x W x 1 in {0, 1}."""
INITIAL_MASK_WEIGHT = "initial_mask_weight"
"""Per-pixel trust in the initial mask, H x W x 1 (0 for views that disagree with the field)."""
OBJECT_MASK = "object_mask"
"""Final object mask rendered from the mask field, before dilation, H x W x 1."""
REMOVAL_MASK = "removal_mask"
"""Dilated final mask: the pixels whose content is replaced, H x W x 1."""
INPAINTED_RGB = "inpainted_rgb"
"""2D-inpainted colour target, H x W x 3."""
INPAINTED_DEPTH = "inpainted_depth"
"""2D-inpainted depth target (ray distance in scene units), H x W x 1."""
REFERENCE_VIEW = "reference_view"
"""1 on every pixel of the reference view, whose inpainted colour is fitted directly, H x W x 1."""
SEEN_MASK = "seen_mask"
"""1 on removal-mask pixels whose background another view observed (inpainting/visibility.py), H x W x 1."""
DEPTH_AGREED = "depth_agreed"
"""1 on removal-mask pixels whose depth prior agrees with the other views' priors in 3D
(inpainting/depth_agreement.py; only with ``depth_loss_sides`` "agreed"), H x W x 1."""
SEEN_RGB = "seen_rgb"
"""Observed background colour of the seen-elsewhere pixels, H x W x 3."""
SPARSE_DEPTH = "sparse_depth"
"""Ray distance of SIFT matches triangulated with the poses (data/sparse_depth.py), 0 where none, H x W x 1."""

RGB_FOR_UPDATES = {"both": "rgb", "colour": "rgb_colour_only", "geometry": "rgb_geometry_only"}
"""Rendered colour output whose gradient reaches what a loss may update."""
OBJECT_OVERLAY = "rgb_object_overlay"
"""Viewer/render output: rgb with the object mask tinted (plain rgb while nothing is segmented yet)."""
OVERLAY_TINT = (0.1, 0.55, 1.0)
"""Colour blended over the object in ``rgb_object_overlay``."""
OVERLAY_OPACITY = 0.6
"""Blend weight of the tint where the object mask is 1."""
