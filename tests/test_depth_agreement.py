"""Agreement of the views' depth priors in 3D (inpainting/depth_agreement.py)."""

from __future__ import annotations

import numpy as np
import pytest

from spin_nerfstudio.inpainting.depth_agreement import MIN_COMPARED, agreed_pixels, prior_agreement
from spin_nerfstudio.segmentation.propagate import PinholeView

SIZE = 32


def _views(n: int = 3):
    """``n`` cameras 3 units above the plane z = 0, looking straight down at it, 0.2 apart in x."""
    views = []
    for k in range(n):
        c2w = np.concatenate([np.eye(3), np.array([[0.2 * k], [0.0], [3.0]])], 1)
        views.append(PinholeView(c2w=c2w, fx=30.0, fy=30.0, cx=SIZE / 2, cy=SIZE / 2, width=SIZE, height=SIZE))
    return views


def _plane_depth(view: PinholeView):
    """Ray distance from ``view`` to the plane z = 0 at every pixel."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    rays = view.rays(np.stack([xs.ravel(), ys.ravel()], -1))
    return (-view.origin[2] / rays[:, 2]).reshape(SIZE, SIZE)


def _mask():
    mask = np.zeros((SIZE, SIZE), bool)
    mask[8:24, 8:24] = True
    return mask


def test_priors_on_one_surface_agree_and_a_wrong_view_is_outvoted() -> None:
    views = _views()
    masks = [_mask() for _ in views]
    depth = [_plane_depth(v) for v in views]
    shares = prior_agreement(views, masks, depth, tolerance=0.05)
    for share, mask in zip(shares, masks):
        inside = share[mask]
        # most masked pixels land in both other views' masks; the rest are NaN (compared with fewer than 2)
        assert np.isfinite(inside).mean() > 0.7
        assert np.nanmin(inside) == 1.0
        assert np.isnan(share[~mask]).all()
    # view 2's prior is 30% too far: it disagrees with both others, and each of them now has one dissenter
    depth[2] = depth[2] * 1.3
    shares = prior_agreement(views, masks, depth, tolerance=0.05)
    assert np.nanmax(shares[2]) == 0.0
    for k in (0, 1):
        values = shares[k][np.isfinite(shares[k])]
        assert values.size > 0 and np.all(values == 0.5)
    agreed = agreed_pixels(shares, 0.5)
    assert not agreed[2].any() and agreed[0].sum() == np.isfinite(shares[0]).sum()
    # with a stricter share only the seen pixels stay two-sided
    seen = [np.zeros_like(m) for m in masks]
    seen[2][10, 10] = True
    strict = agreed_pixels(shares, 0.75, seen)
    assert [int(a.sum()) for a in strict] == [0, 0, 1]


def test_pixels_without_a_prior_or_outside_other_masks_are_not_compared() -> None:
    views = _views(4)
    masks = [_mask() for _ in views]
    depth = [_plane_depth(v) for v in views]
    depth[0][8:24, 8:16] = 0.0  # no prior on the left half of view 0's mask
    masks[1][:] = False  # view 1 has no mask, hence no prior to compare with
    shares = prior_agreement(views, masks, depth, tolerance=0.05)
    assert np.isnan(shares[0][8:24, 8:16]).all()  # no prior of its own
    assert np.isnan(shares[1]).all()
    # the right half of view 0 is compared with views 2 and 3 only (view 1 has no prior): all agree
    right = shares[0][8:24, 16:24]
    assert np.isfinite(right).mean() > 0.5 and np.nanmin(right) == 1.0
    # view 3 is 6 px to the right of view 0: its columns 8-9 land in view 0's prior-less half and meet one prior
    # (view 2's), below MIN_COMPARED, so they are undefined rather than a share of one
    assert MIN_COMPARED == 2 and np.isnan(shares[3][8:24, 8:10]).all()


def test_mismatched_inputs_are_refused() -> None:
    views = _views()
    with pytest.raises(ValueError, match="3 views, 2 removal masks and 3 depth priors"):
        prior_agreement(views, [_mask()] * 2, [_plane_depth(v) for v in views])


def test_the_fit_stage_marks_agreed_and_seen_pixels_and_says_how_many(monkeypatch, capsys) -> None:
    from types import SimpleNamespace

    from spin_nerfstudio.model.spin_model import SpinModelConfig
    from spin_nerfstudio.stages import inpainted_fit

    views = _views()
    monkeypatch.setattr(inpainted_fit, "pinhole_views", lambda pipe: views)
    pipe = SimpleNamespace(spin_model=SimpleNamespace(config=SpinModelConfig()))
    assert pipe.spin_model.config.depth_loss_sides == "agreed"  # the default
    masks = [_mask() for _ in views]
    depth = [_plane_depth(v) for v in views]
    depth[2] = depth[2] * 1.3  # view 2's fill disagrees with both others
    seen = [np.zeros_like(m) for m in masks]
    seen[2][12, 12] = True
    agreed = inpainted_fit.depth_agreement(pipe, masks, depth, seen)
    shares = prior_agreement(views, masks, depth, tolerance=0.1)
    assert agreed[2].sum() == 1 and agreed[2][12, 12]  # only its seen pixel stays two-sided
    assert agreed[0].sum() == np.isfinite(shares[0]).sum() > 0  # half of two views agree: enough at 50%
    out = " ".join(capsys.readouterr().out.split())
    assert f"two-sided on {sum(int(a.sum()) for a in agreed)}/{3 * 256} masked pixels" in out
