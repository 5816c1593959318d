"""The seen-elsewhere stage checks each view against a bounded number of witness views."""

from __future__ import annotations

import numpy as np

from spin_nerfstudio.inpainting import visibility as vis
from spin_nerfstudio.inpainting import witnesses as wit
from spin_nerfstudio.segmentation.propagate import PinholeView


def _view(x: float, y: float, facing: float = 1.0) -> PinholeView:
    c2w = np.eye(4)[:3].copy()
    c2w[:, 3] = [x, y, 2.0]
    if facing < 0:  # looking down +z instead of -z
        c2w[:, 2] *= -1
        c2w[:, 0] *= -1
    return PinholeView(c2w, 50.0, 50.0, 32.0, 24.0, 64, 48)


def test_all_views_are_witnesses_up_to_the_cap() -> None:
    views = [_view(float(i), 0.0) for i in range(6)]
    assert wit.witness_order(views, 2, 0) == [0, 1, 3, 4, 5]
    assert wit.witness_order(views, 2, 5) == [0, 1, 3, 4, 5]
    assert wit.witness_order(views, 2, 16) == [0, 1, 3, 4, 5]


def test_capped_witnesses_are_spread_and_face_the_same_way() -> None:
    # a 7 x 7 grid of forward-facing cameras, plus 5 looking the other way far from the source
    views = [_view(float(x), float(y)) for y in range(7) for x in range(7)]
    views += [_view(30.0 + i, 0.0, facing=-1.0) for i in range(5)]
    chosen = wit.witness_order(views, 24, 4)  # source: the grid's centre (3, 3)
    assert len(chosen) == 4 and 24 not in chosen and all(j < 49 for j in chosen)
    assert chosen == sorted(chosen)
    corners = {0, 6, 42, 48}
    assert set(chosen) == corners  # the widest baselines first, then as far from each other as possible
    picked = wit.witness_order(views, 0, 8)
    assert 48 in picked  # the opposite corner is the first pick
    centres = np.stack([views[j].origin for j in picked])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(len(picked)) * 99
    assert gaps.min() >= 2.0  # spread: no two picks next to each other on the unit grid


def test_cap_bounds_the_views_visited(monkeypatch) -> None:
    views = [_view(float(i % 5), float(i // 5)) for i in range(20)]
    visited = []
    real = wit._witness_views

    def spy(views_, removal, source, margin, witnesses=None):
        for item in real(views_, removal, source, margin, witnesses):
            visited.append((source, item[0]))
            yield item

    monkeypatch.setattr(wit, "_witness_views", spy)
    removal = [np.zeros((48, 64), bool) for _ in views]
    for m in removal:
        m[20:28, 28:36] = True
    depth = [np.full((48, 64), 2.0, np.float32) for _ in views]
    rgb = [np.zeros((48, 64, 3), np.uint8) for _ in views]
    for cap, per_view in ((0, 19), (6, 6)):
        visited.clear()
        vis.seen_elsewhere_targets(
            views, rgb, removal, rgb, depth, depth, vis.VisibilityConfig(max_witnesses=cap, reject_object_colours=False)
        )
        # the sweep and the colour lookup each visit every witness once per chunk; one chunk per view here
        assert len(visited) == len(views) * per_view * 2
