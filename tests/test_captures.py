"""The real captures under ``captures/`` load through ``spin-llff``, their prompts fit, and their poses fit the images."""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import pytest
from PIL import Image

from spin_nerfstudio.data.llff import SpinLLFFDataParserConfig
from spin_nerfstudio.data.pose_check import check_poses, opencv_projection
from spin_nerfstudio.prompts import load_prompts, match_to_dataset

ROOT = Path(__file__).resolve().parents[1]

# name, downscale factor, number of views, (width, height) of the stored images, views used for the pose check
CAPTURES = [
    ("kermit", 4, 9, (160, 120), 9),
    ("fox", 8, 50, (135, 240), 12),
    ("buddha", 8, 67, (240, 135), 16),
]


def projections(cameras, indices: List[int], transpose_rotation: bool = False) -> List[np.ndarray]:
    """OpenCV projection matrices of the dataparser's cameras (optionally with each rotation transposed)."""
    out = []
    for i in indices:
        c2w = cameras.camera_to_worlds[i].numpy().astype(np.float64)
        if transpose_rotation:
            c2w[:, :3] = c2w[:, :3].T
        fx, fy, cx, cy = (float(v[i]) for v in (cameras.fx, cameras.fy, cameras.cx, cameras.cy))
        out.append(opencv_projection(c2w, fx, fy, cx, cy))
    return out


@pytest.mark.parametrize("name,factor,num_views,size,num_checked", CAPTURES)
def test_capture_loads_and_poses_fit(name: str, factor: int, num_views: int, size, num_checked: int) -> None:
    """Every view loads at the stored size with the principal point centred, the prompt file matches the dataset,
    SIFT matches between neighbouring views lie on the epipolar lines of the stored poses (median Sampson distance
    under half a pixel at the stored resolution), and the same matches do not fit poses with transposed rotations
    (a wrong-convention reading of the file: median at least five times larger), so the check tells them apart."""
    data = ROOT / "captures" / name
    assert (data / "SOURCE.md").is_file()
    outputs = SpinLLFFDataParserConfig(data=data, downscale_factor=factor).setup().get_dataparser_outputs("train")
    cameras = outputs.cameras
    assert len(outputs.image_filenames) == num_views
    assert {(int(w), int(h)) for w, h in zip(cameras.width, cameras.height)} == {size}
    np.testing.assert_allclose(cameras.cx.numpy(), size[0] / 2)
    np.testing.assert_allclose(cameras.cy.numpy(), size[1] / 2)
    assert 0 < outputs.metadata["near"] < outputs.metadata["far"]

    prompts = load_prompts(ROOT / "configs" / f"{name}_prompts.json")
    names = [p.name for p in outputs.image_filenames]
    assert match_to_dataset(prompts, names, [size] * num_views) == [names.index(p.image) for p in prompts.prompts]

    indices = list(range(num_checked))
    images = [np.asarray(Image.open(outputs.image_filenames[i]).convert("RGB")) for i in indices]
    distances, _ = check_poses(images, projections(cameras, indices), gap=1)
    assert len(distances) >= 100
    assert np.median(distances) < 0.5
    wrong, _ = check_poses(images, projections(cameras, indices, transpose_rotation=True), gap=1)
    assert np.median(wrong) > 5 * np.median(distances)
