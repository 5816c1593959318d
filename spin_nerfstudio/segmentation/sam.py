"""The ``sam`` segmenter: segment-anything's ``SamPredictor`` prompted with clicks, or with a propagated mask.

- In a clicked view, the positive and negative clicks are SAM's point prompts. SAM returns three candidate masks
  (multimask output); :func:`choose_mask` keeps the candidates that contain every positive click and no negative
  click and do not fill the whole image, then takes the one with the best predicted IoU.
- In another view, the mask projected from the clicked view (see ``propagate.py``) becomes a box prompt (its
  bounding box, padded) plus a few positive points spread over its interior; of SAM's three candidates the one that
  agrees best with the projected mask wins, and the projected mask is kept when SAM's masks all disagree with it.

The image embedding (the expensive part, about 13 s for vit_b on two CPU cores) is computed once per image and
reused by later calls on the same image.

MobileSAM (``mobilesam`` backend, model type ``vit_t``: SAM's prompt encoder and mask decoder behind a small TinyViT
image encoder, from the ``mobilesam-mirror`` package) runs through the same class with the same prompt handling;
its predictor has segment-anything's interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.segmentation.base import Segmenter


def _inside(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether each (x, y) point lies on a mask pixel (points outside the image count as outside)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h, w = mask.shape
    xi, yi = np.floor(pts[:, 0]).astype(int), np.floor(pts[:, 1]).astype(int)
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    out = np.zeros(len(pts), dtype=bool)
    out[ok] = mask[yi[ok], xi[ok]]
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def choose_mask(
    masks: Bool[np.ndarray, "C H W"],
    scores: Float[np.ndarray, " C"],
    positive: Float[np.ndarray, "P 2"],
    negative: Float[np.ndarray, "Q 2"],
    prior: Optional[Bool[np.ndarray, "H W"]] = None,
    max_fraction: float = 0.9,
) -> int:
    """Index of the candidate mask to keep among SAM's multimask outputs.

    The candidates are ranked by, in order: how many prompt points they respect (positive clicks inside, negative
    clicks outside), whether they leave some of the image out (cover at most ``max_fraction`` of it), and then
    either their IoU with ``prior`` (a mask propagated from another view, when given) or SAM's predicted IoU.
    """
    best, best_key = 0, None
    for c in range(len(masks)):
        m = masks[c].astype(bool)
        respected = int(_inside(m, positive).sum()) + int((~_inside(m, negative)).sum())
        not_everything = bool(m.mean() <= max_fraction) and bool(m.any())
        quality = _iou(m, prior) + 0.01 * float(scores[c]) if prior is not None else float(scores[c])
        key = (respected, not_everything, quality)
        if best_key is None or key > best_key:
            best, best_key = c, key
    return best


def interior_points(mask: Bool[np.ndarray, "H W"], count: int = 3) -> Float[np.ndarray, "N 2"]:
    """Up to ``count`` (x, y) points well inside a mask and spread apart (the deepest first, then farthest-point)."""
    m8 = np.pad(mask.astype(np.uint8), 1)
    dist = cv2.distanceTransform(m8, cv2.DIST_L2, 3)[1:-1, 1:-1]
    if dist.max() <= 0:
        return np.zeros((0, 2))
    ys, xs = np.nonzero(dist >= 0.5 * dist.max())
    cand = np.stack([xs, ys], axis=-1).astype(np.float64)
    first = int(np.argmax(dist[ys, xs]))
    chosen = [first]
    d2 = ((cand - cand[first]) ** 2).sum(-1)
    while len(chosen) < min(count, len(cand)):
        nxt = int(np.argmax(d2))
        if d2[nxt] <= 0:
            break
        chosen.append(nxt)
        d2 = np.minimum(d2, ((cand - cand[nxt]) ** 2).sum(-1))
    return cand[chosen]


class SamSegmenter(Segmenter):
    """segment-anything's predictor behind the :class:`Segmenter` interface."""

    name = "sam"

    def __init__(self, model, model_type: str, checkpoint: Optional[Path] = None, refine_points: int = 3) -> None:
        if model_type == "vit_t":
            from mobile_sam import SamPredictor

            self.name = "mobilesam"
        else:
            from segment_anything import SamPredictor
        self.predictor = SamPredictor(model)
        self.model_type = model_type
        self.checkpoint = checkpoint
        self.refine_points = refine_points
        self._image_key: Optional[tuple] = None
        self.embeddings_computed = 0

    @classmethod
    def from_checkpoint(cls, path: Path, model_type: str = "auto", device: str = "cpu", **kwargs) -> "SamSegmenter":
        """Build the model of the checkpoint's type and load its weights (one-line errors for bad files)."""
        import torch
        from segment_anything import sam_model_registry

        from spin_nerfstudio.prompts import SpinInputError
        from spin_nerfstudio.segmentation.sam_weights import read_checkpoint

        state, kind = read_checkpoint(Path(path), model_type)
        if kind == "vit_t":
            try:
                from mobile_sam import sam_model_registry
            except ImportError as err:
                raise SpinInputError(
                    f"{path}: a MobileSAM checkpoint needs mobilesam-mirror and timm ({err})"
                ) from None
        model = sam_model_registry[kind](checkpoint=None)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0][:160]
            raise SpinInputError(f"{path}: does not load into SAM {kind} ({first})") from None
        del state
        model.eval().to(torch.device(device))
        return cls(model, kind, Path(path), **kwargs)

    @property
    def description(self) -> str:
        """What runs, for the log."""
        what = f"{'MobileSAM' if self.model_type == 'vit_t' else 'SAM'} {self.model_type}"
        return f"{what} from {self.checkpoint}" if self.checkpoint else what

    def _set_image(self, image: np.ndarray) -> None:
        key = (image.shape, hash(np.ascontiguousarray(image).tobytes()))
        if key != self._image_key:
            self.predictor.set_image(np.ascontiguousarray(image[..., :3]), image_format="RGB")
            self._image_key = key
            self.embeddings_computed += 1

    def _predict(self, coords: np.ndarray, labels: np.ndarray, box: Optional[np.ndarray]) -> tuple:
        masks, scores, _ = self.predictor.predict(
            point_coords=coords if len(coords) else None,
            point_labels=labels if len(coords) else None,
            box=box,
            multimask_output=True,
        )
        return masks.astype(bool), scores

    def segment(
        self,
        image: UInt8[np.ndarray, "H W 3"],
        positive: Float[np.ndarray, "P 2"],
        negative: Float[np.ndarray, "Q 2"],
        depth: Optional[Float[np.ndarray, "H W"]] = None,
    ) -> Bool[np.ndarray, "H W"]:
        """SAM's mask for the clicks: positive clicks label 1, negative clicks label 0, multimask choice."""
        pos = np.asarray(positive, dtype=np.float64).reshape(-1, 2)
        neg = np.asarray(negative, dtype=np.float64).reshape(-1, 2)
        self._set_image(image)
        coords = np.concatenate([pos, neg], axis=0).astype(np.float32)
        labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.int64)
        masks, scores = self._predict(coords, labels, None)
        return masks[choose_mask(masks, scores, pos, neg)]

    def refine(
        self,
        image: UInt8[np.ndarray, "H W 3"],
        prior: Bool[np.ndarray, "H W"],
        depth: Optional[Float[np.ndarray, "H W"]] = None,
    ) -> Bool[np.ndarray, "H W"]:
        """SAM prompted with the prior's padded bounding box and points inside it; the prior if SAM disagrees."""
        if not prior.any():
            return prior
        h, w = prior.shape
        ys, xs = np.nonzero(prior)
        pad = max(2, int(round(0.03 * max(h, w))))
        box = np.array(
            [max(0, xs.min() - pad), max(0, ys.min() - pad), min(w - 1, xs.max() + pad), min(h - 1, ys.max() + pad)],
            dtype=np.float32,
        )
        pts = interior_points(prior, self.refine_points)
        self._set_image(image)
        masks, scores = self._predict(pts.astype(np.float32), np.ones(len(pts), dtype=np.int64), box)
        k = choose_mask(masks, scores, pts, np.zeros((0, 2)), prior=prior)
        return masks[k] if _iou(masks[k], prior) >= 0.3 else prior
