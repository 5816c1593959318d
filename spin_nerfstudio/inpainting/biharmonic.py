"""Offline default inpainter: multi-scale biharmonic fill, for colour and for depth.

Inside the mask each channel solves the biharmonic equation (the square of the 4-neighbour graph Laplacian, zero
on every unknown pixel) with the known pixels around the hole as boundary values. Unlike a harmonic (membrane)
fill or OpenCV's fast marching, the thin-plate fill carries the gradients at the hole's rim into it, so smooth
shading and slow texture gradients continue instead of flattening out, and it reproduces any affine ramp exactly
(a plane's inverse depth is affine in pixel coordinates, so a hole in a planar surface is filled exactly in
disparity). Holes are solved separately, each on a crop around it.

Small holes are solved directly (sparse LU). Holes with more than ``max_direct`` unknowns are solved coarse to fine:
the image and mask are halved, filled recursively, the coarse fill is upsampled as the starting point, and
conjugate gradients refine it at full resolution.

It needs no learned weights. It is no texture synthesiser: a large hole in a busy texture comes out smooth.
"""

from __future__ import annotations

from typing import Iterator, List, Tuple

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from jaxtyping import Bool, Float, UInt8

from spin_nerfstudio.inpainting.base import Inpainter

# The squared Laplacian reaches two pixels: crops keep this many known pixels around each hole.
_REACH = 2


def graph_laplacian(height: int, width: int) -> sp.csr_matrix:
    """4-neighbour graph Laplacian of an ``height`` x ``width`` grid (free, i.e. Neumann, at the grid's edges)."""
    idx = np.arange(height * width).reshape(height, width)
    pairs = [(idx[:, :-1].ravel(), idx[:, 1:].ravel()), (idx[:-1].ravel(), idx[1:].ravel())]
    rows = np.concatenate([np.concatenate([a, b]) for a, b in pairs])
    cols = np.concatenate([np.concatenate([b, a]) for a, b in pairs])
    adj = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(height * width, height * width))
    return (sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()


def _hole_crops(mask: np.ndarray, reach: int) -> Iterator[Tuple[np.ndarray, int, int, int, int]]:
    """Each group of holes (holes closer than a stencil's ``reach`` share one) with its crop ``y0, y1, x0, x1``:
    the group's bounding box grown by ``reach`` pixels, within the image."""
    h, w = mask.shape
    size = 2 * reach + 1
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((size, size), np.uint8))
    count, labels = cv2.connectedComponents(grown, connectivity=8)
    for k in range(1, count):
        group = (labels == k) & mask
        ys, xs = np.nonzero(group)
        yield (
            group,
            max(0, ys.min() - reach), min(h, ys.max() + reach + 1),
            max(0, xs.min() - reach), min(w, xs.max() + reach + 1),
        )  # fmt: skip


def biharmonic_fill(
    values: Float[np.ndarray, "H W C"], mask: Bool[np.ndarray, "H W"], max_direct: int = 250_000
) -> Float[np.ndarray, "H W C"]:
    """Fill the masked entries of ``values`` (float64 result); unmasked entries are returned unchanged.

    Raises ValueError when every pixel is masked (there is nothing to continue).
    """
    mask = np.asarray(mask, dtype=bool)
    out = np.array(values, dtype=np.float64, copy=True)
    if not mask.any():
        return out
    if mask.all():
        raise ValueError("the mask covers every pixel; there is nothing to inpaint from")
    h, w = mask.shape
    for group, y0, y1, x0, x1 in _hole_crops(mask, _REACH):
        crop = out[y0:y1, x0:x1]
        hole = group[y0:y1, x0:x1]
        if hole.all():
            raise ValueError("the mask covers every pixel; there is nothing to inpaint from")
        edges = (y0 == 0, y1 == h, x0 == 0, x1 == w)  # which crop sides are the image's own border
        out[y0:y1, x0:x1] = _solve_crop(crop, hole, edges, max_direct)
    return out


def harmonic_fill(values: Float[np.ndarray, "H W C"], mask: Bool[np.ndarray, "H W"]) -> Float[np.ndarray, "H W C"]:
    """Membrane (Laplace) fill of the masked entries: smooth, and never outside the range of the known values
    around each hole (the maximum principle), however scattered the known values inside a hole are."""
    mask = np.asarray(mask, dtype=bool)
    out = np.array(values, dtype=np.float64, copy=True)
    if not mask.any():
        return out
    if mask.all():
        raise ValueError("the mask covers every pixel; there is nothing to inpaint from")
    for group, y0, y1, x0, x1 in _hole_crops(mask, 1):  # the 4-neighbour Laplacian reaches one pixel
        hole = group[y0:y1, x0:x1]
        if hole.all():
            raise ValueError("the mask covers every pixel; there is nothing to inpaint from")
        lap = graph_laplacian(*hole.shape)
        unknown, known = np.flatnonzero(hole), np.flatnonzero(~hole)
        flat = out[y0:y1, x0:x1].reshape(hole.size, -1)
        a_uu = lap[unknown][:, unknown].tocsc()
        rhs = -(lap[unknown][:, known] @ flat[known])
        solve = spla.factorized(a_uu)
        for c in range(flat.shape[1]):
            flat[unknown, c] = solve(np.ascontiguousarray(rhs[:, c]))
        out[y0:y1, x0:x1] = flat.reshape(out[y0:y1, x0:x1].shape)
    return out


def bending_rows(height: int, width: int, edges: Tuple[bool, bool, bool, bool]) -> sp.csr_matrix:
    """Second-difference rows whose squares sum to the bending energy of a crop; every row vanishes on affine ramps.

    Inside: the 5-point Laplacian. On a side of the crop that is the image's border (``edges``: top, bottom,
    left, right): the second difference along that side (a free edge), and at a corner of two such sides the
    twist (mixed difference). Pixels on the other sides of the crop get no row: they lie beyond the stencil's
    reach of the unknowns.
    """
    idx = np.arange(height * width).reshape(height, width)
    top, bottom, left, right = edges
    rows: List[np.ndarray] = []
    cols: List[np.ndarray] = []
    vals: List[np.ndarray] = []
    count = 0

    def add(centre: np.ndarray, stencil: List[Tuple[np.ndarray, float]]) -> None:
        nonlocal count
        n = centre.size
        if n == 0:
            return
        r = np.arange(count, count + n)
        for cells, weight in stencil:
            rows.append(r)
            cols.append(cells.ravel())
            vals.append(np.full(n, weight))
        count += n

    c = idx[1:-1, 1:-1]
    add(c, [(c, -4.0), (idx[:-2, 1:-1], 1.0), (idx[2:, 1:-1], 1.0), (idx[1:-1, :-2], 1.0), (idx[1:-1, 2:], 1.0)])
    if width >= 3:
        for flag, row in ((top, 0), (bottom, height - 1)):
            if flag:
                add(idx[row, 1:-1], [(idx[row, 1:-1], -2.0), (idx[row, :-2], 1.0), (idx[row, 2:], 1.0)])
    if height >= 3:
        for flag, col in ((left, 0), (right, width - 1)):
            if flag:
                add(idx[1:-1, col], [(idx[1:-1, col], -2.0), (idx[:-2, col], 1.0), (idx[2:, col], 1.0)])
    if height >= 2 and width >= 2:
        for vflag, r0, r1 in ((top, 0, 1), (bottom, height - 1, height - 2)):
            for hflag, c0, c1 in ((left, 0, 1), (right, width - 1, width - 2)):
                if vflag and hflag:
                    corner = idx[r0 : r0 + 1, c0]
                    add(
                        corner,
                        [
                            (corner, 1.0),
                            (idx[r0 : r0 + 1, c1], -1.0),
                            (idx[r1 : r1 + 1, c0], -1.0),
                            (idx[r1 : r1 + 1, c1], 1.0),
                        ],
                    )
    data = np.concatenate(vals) if vals else np.zeros(0)
    return sp.csr_matrix(
        (
            data,
            (np.concatenate(rows) if rows else np.zeros(0, int), np.concatenate(cols) if cols else np.zeros(0, int)),
        ),
        shape=(count, height * width),
    )


def _solve_crop(
    crop: np.ndarray, hole: np.ndarray, edges: Tuple[bool, bool, bool, bool], max_direct: int
) -> np.ndarray:
    """Minimise the bending energy over the crop's unknowns; a tiny full-grid term keeps degenerate crops solvable."""
    ch, cw = hole.shape
    lap = graph_laplacian(ch, cw)
    bend = bending_rows(ch, cw, edges)
    system = (bend.T @ bend + 1e-9 * (lap @ lap)).tocsr()
    unknown = np.flatnonzero(hole)
    known = np.flatnonzero(~hole)
    a_uu = system[unknown][:, unknown].tocsc()
    a_uk = system[unknown][:, known]
    flat = crop.reshape(ch * cw, -1).copy()
    rhs = -(a_uk @ flat[known])
    if len(unknown) <= max_direct:
        solve = spla.factorized(a_uu)
        for c in range(flat.shape[1]):
            flat[unknown, c] = solve(np.ascontiguousarray(rhs[:, c]))
    else:
        start = _coarse_start(crop, hole, max_direct).reshape(ch * cw, -1)
        for c in range(flat.shape[1]):
            flat[unknown, c], _ = spla.cg(a_uu, rhs[:, c], x0=start[unknown, c], rtol=1e-6, maxiter=2000)
    return flat.reshape(crop.shape)


def _coarse_start(crop: np.ndarray, hole: np.ndarray, max_direct: int) -> np.ndarray:
    """Fill a half-resolution copy, upsample it: the starting point of the full-resolution solve."""
    ch, cw = hole.shape
    small = cv2.resize(
        np.where(hole[..., None], 0.0, crop), ((cw + 1) // 2, (ch + 1) // 2), interpolation=cv2.INTER_AREA
    )
    weight = cv2.resize((~hole).astype(np.float64), ((cw + 1) // 2, (ch + 1) // 2), interpolation=cv2.INTER_AREA)
    small = small.reshape(weight.shape + (-1,))
    small_hole = weight < 0.999
    small = np.where(small_hole[..., None], 0.0, small / np.maximum(weight, 1e-9)[..., None])
    if small_hole.all():
        filled = np.full_like(small, crop[~hole].mean(axis=0))
    else:
        filled = biharmonic_fill(small, small_hole, max_direct)
    up = cv2.resize(filled, (cw, ch), interpolation=cv2.INTER_LINEAR).reshape(crop.shape)
    return np.where(hole[..., None], up, crop)


class BiharmonicInpainter(Inpainter):
    """Thin-plate (biharmonic) fill of colour, and of depth in disparity space."""

    name = "biharmonic"

    def __init__(self, max_direct: int = 250_000) -> None:
        self.max_direct = max_direct

    def _fill_rgb(self, image: UInt8[np.ndarray, "H W 3"], mask: Bool[np.ndarray, "H W"]) -> UInt8[np.ndarray, "H W 3"]:
        filled = biharmonic_fill(image.astype(np.float64), mask, self.max_direct)
        return np.clip(np.round(filled), 0, 255).astype(np.uint8)

    def _fill_depth(self, depth: Float[np.ndarray, "H W"], mask: Bool[np.ndarray, "H W"]) -> Float[np.ndarray, "H W"]:
        """Through inverse depth: exact for a planar surface."""
        known = depth[~mask]
        disparity = np.where(mask, 0.0, 1.0 / np.where(mask, 1.0, depth.astype(np.float64)))
        filled = biharmonic_fill(disparity[..., None], mask, self.max_direct)[..., 0]
        # A fill may overshoot towards zero disparity; keep it within the range seen around the hole.
        filled = np.clip(filled, 1.0 / float(known.max()) * 0.5, 1.0 / float(known.min()) * 2.0)
        return (1.0 / filled).astype(np.float32)
