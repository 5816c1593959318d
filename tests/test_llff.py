"""Tests of the ``spin-llff`` dataparser on synthetic LLFF scenes and on the real ``juicebox`` capture."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from PIL import Image

from spin_nerfstudio.data.llff import SpinLLFF, SpinLLFFDataParserConfig, spin_llff

JUICEBOX = Path(__file__).resolve().parents[1].parent / "shared/data/juicebox"
JUICEBOX_FOCAL_FULL = 1131.39138466  # focal of the 1920x1080 images, from juicebox's poses_bounds.npy


def random_rotations(num: int, seed: int = 0) -> np.ndarray:
    """``num`` random proper rotation matrices (det +1)."""
    rng = np.random.default_rng(seed)
    rotations = []
    for _ in range(num):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        rotations.append(q)
    return np.stack(rotations)


def write_llff_scene(
    root: Path,
    c2w_opengl: np.ndarray,
    full_hw: Tuple[int, int] = (40, 60),
    focals: Optional[Sequence[float]] = None,
    folders: Sequence[str] = ("images_2",),
    image_wh: Tuple[int, int] = (30, 20),
    names: Optional[List[str]] = None,
    num_images: Optional[int] = None,
    bounds: Tuple[float, float] = (0.5, 10.0),
) -> Path:
    """Writes an LLFF scene: ``poses_bounds.npy`` from OpenGL c2w matrices and small PNGs in ``folders``.

    The LLFF rotation columns are written by hand here as ``[down, right, back] = [-up, right, back]`` so that the
    test does not rely on the parser's own conversion helpers.
    """
    num = len(c2w_opengl)
    focals = [50.0] * num if focals is None else list(focals)
    right, up, back, centre = (c2w_opengl[:, :, i] for i in range(4))
    hwf = np.stack([np.array([full_hw[0], full_hw[1], f], dtype=np.float64) for f in focals])
    mat = np.stack([-up, right, back, centre, hwf], axis=-1)  # (N, 3, 5)
    rows = np.concatenate([mat.reshape(num, 15), np.tile(np.array(bounds), (num, 1))], axis=1)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "poses_bounds.npy", rows)
    names = [f"img_{i}" for i in range(num)] if names is None else names
    num_images = num if num_images is None else num_images
    for folder in folders:
        (root / folder).mkdir(exist_ok=True)
        for name in names[:num_images]:
            Image.new("RGB", image_wh, (120, 30, 200)).save(root / folder / f"{name}.png")
    return root


def simple_c2w(num: int = 3, seed: int = 0) -> np.ndarray:
    """``num`` OpenGL c2w matrices with random rotations and positions."""
    rng = np.random.default_rng(seed + 1)
    return np.concatenate([random_rotations(num, seed), rng.uniform(-3, 3, size=(num, 3, 1))], axis=-1)


def parse(data: Path, split: str = "train", **kwargs):
    """Runs the dataparser on ``data``."""
    return SpinLLFFDataParserConfig(data=data, **kwargs).setup().get_dataparser_outputs(split)


RAW = dict(orientation_method="none", center_method="none", auto_scale_poses=False)


# --- synthetic scenes ---------------------------------------------------------------------------------------------


def test_spec_and_config_target() -> None:
    assert isinstance(spin_llff, DataParserSpecification)
    assert isinstance(spin_llff.config, SpinLLFFDataParserConfig)
    assert isinstance(SpinLLFFDataParserConfig(data=Path("x")).setup(), SpinLLFF)


def test_axis_conversion_gives_back_opengl_poses(tmp_path: Path) -> None:
    c2w = simple_c2w(3)
    write_llff_scene(tmp_path, c2w)
    out = parse(tmp_path, downscale_factor=2, **RAW)
    got = out.cameras.camera_to_worlds.double().numpy()
    np.testing.assert_allclose(got[:, :, :3], c2w[:, :, :3], atol=1e-6)
    np.testing.assert_allclose(got[:, :, 3], c2w[:, :, 3], atol=1e-5)
    assert out.dataparser_scale == 1.0
    torch.testing.assert_close(out.dataparser_transform, torch.eye(4)[:3])


def test_axis_conversion_projects_a_point_in_front(tmp_path: Path) -> None:
    """A point placed on a camera's optical axis projects to the image centre and lies in front (OpenGL -z)."""
    c2w = simple_c2w(3, seed=5)
    write_llff_scene(tmp_path, c2w)
    cams = parse(tmp_path, downscale_factor=2, **RAW).cameras
    # In LLFF terms the camera looks along -back; a point 2 units along it must be straight ahead.
    point = c2w[0, :, 3] - 2.0 * c2w[0, :, 2]
    rays = cams.generate_rays(camera_indices=0)
    centre_dir = rays.directions[10, 15].double().numpy()  # pixel (row 10, col 15) = image centre of 30x20
    expected = (point - c2w[0, :, 3]) / 2.0
    np.testing.assert_allclose(centre_dir, expected, atol=0.05)


def test_intrinsics_scaled_by_image_size_on_disk(tmp_path: Path) -> None:
    write_llff_scene(tmp_path, simple_c2w(3), full_hw=(40, 60), focals=[50.0] * 3, image_wh=(30, 20))
    cams = parse(tmp_path, downscale_factor=2).cameras
    assert torch.all(cams.width == 30) and torch.all(cams.height == 20)
    torch.testing.assert_close(cams.fx.squeeze(-1), torch.full((3,), 25.0))
    torch.testing.assert_close(cams.fy.squeeze(-1), torch.full((3,), 25.0))
    torch.testing.assert_close(cams.cx.squeeze(-1), torch.full((3,), 15.0))
    torch.testing.assert_close(cams.cy.squeeze(-1), torch.full((3,), 10.0))


def test_a_portrait_capture_gives_the_rays_of_the_same_capture_in_landscape(tmp_path: Path) -> None:
    """A phone held upright: the images turned a quarter clockwise and each camera rolled with them (new right = old
    up, new up = old left, ``hwf`` height and width swapped) must see along the same rays, pixel for pixel."""
    c2w = simple_c2w(2, seed=3)
    write_llff_scene(tmp_path / "landscape", c2w, full_hw=(40, 60), image_wh=(30, 20))
    right, up, back, centre = (c2w[:, :, i] for i in range(4))
    portrait_c2w = np.stack([up, -right, back, centre], axis=-1)
    write_llff_scene(tmp_path / "portrait", portrait_c2w, full_hw=(60, 40), image_wh=(20, 30))
    land = parse(tmp_path / "landscape", downscale_factor=2, **RAW).cameras
    port = parse(tmp_path / "portrait", downscale_factor=2, **RAW).cameras
    assert int(port.width[0]) == 20 and int(port.height[0]) == 30
    for k in range(2):
        a = land.generate_rays(camera_indices=k)
        b = port.generate_rays(camera_indices=k)
        for row, col in ((0, 0), (5, 22), (19, 29)):  # landscape pixel -> portrait pixel (col, 19 - row)
            torch.testing.assert_close(b.directions[col, 19 - row], a.directions[row, col], atol=1e-5, rtol=0)
            torch.testing.assert_close(b.origins[col, 19 - row], a.origins[row, col], atol=1e-5, rtol=0)


def test_rows_follow_string_sorted_file_names(tmp_path: Path) -> None:
    names = [f"img_{i}" for i in range(12)]
    sorted_names = sorted(names)  # img_0, img_1, img_10, img_11, img_2, ...
    assert sorted_names[:4] == ["img_0", "img_1", "img_10", "img_11"]
    focals = [100.0 + k for k in range(12)]  # row k gets focal 100 + k
    write_llff_scene(tmp_path, simple_c2w(12), focals=focals, names=names, image_wh=(60, 40), folders=("images",))
    out = parse(tmp_path, downscale_factor=1)
    assert [p.stem for p in out.image_filenames] == sorted_names
    torch.testing.assert_close(out.cameras.fx.squeeze(-1), torch.tensor(focals, dtype=torch.float32))


def test_auto_orient_scale_and_transform_are_consistent(tmp_path: Path) -> None:
    c2w = simple_c2w(6, seed=3)
    write_llff_scene(tmp_path, c2w, bounds=(0.5, 10.0))
    out = parse(tmp_path, downscale_factor=2, scale_factor=0.5)
    got = out.cameras.camera_to_worlds.double()
    assert got[:, :, 3].abs().max().item() == pytest.approx(0.5, abs=1e-5)
    transform = out.dataparser_transform.double()
    c2w_t = torch.from_numpy(c2w)
    torch.testing.assert_close(got[:, :, :3], transform[:, :3] @ c2w_t[:, :, :3], atol=1e-5, rtol=0)
    expected_t = (transform[:, :3] @ c2w_t[:, :, 3:] + transform[:, 3:]).squeeze(-1) * out.dataparser_scale
    torch.testing.assert_close(got[:, :, 3], expected_t, atol=1e-5, rtol=0)
    assert out.metadata["near"] == pytest.approx(0.5 * out.dataparser_scale)
    assert out.metadata["far"] == pytest.approx(10.0 * out.dataparser_scale)
    torch.testing.assert_close(out.scene_box.aabb, torch.tensor([[-1.5] * 3, [1.5] * 3]))


def test_eval_modes(tmp_path: Path) -> None:
    write_llff_scene(tmp_path, simple_c2w(10), folders=("images_4",), image_wh=(15, 10))
    assert len(parse(tmp_path, "train").image_filenames) == 10
    assert len(parse(tmp_path, "test").image_filenames) == 10
    train = parse(tmp_path, "train", eval_mode="interval", eval_interval=4).image_filenames
    test = parse(tmp_path, "test", eval_mode="interval", eval_interval=4).image_filenames
    all_names = sorted(f"img_{i}.png" for i in range(10))
    assert [p.name for p in test] == [all_names[i] for i in (0, 4, 8)]
    assert len(train) == 7 and not set(train) & set(test)


def test_default_folder_prefers_images_4_then_8_then_full(tmp_path: Path) -> None:
    c2w = simple_c2w(2)
    write_llff_scene(tmp_path / "a", c2w, folders=("images", "images_4", "images_8"), image_wh=(15, 10))
    write_llff_scene(tmp_path / "b", c2w, folders=("images", "images_8"), image_wh=(15, 10))
    write_llff_scene(tmp_path / "c", c2w, folders=("images",), image_wh=(60, 40))
    assert parse(tmp_path / "a").image_filenames[0].parent.name == "images_4"
    assert parse(tmp_path / "b").image_filenames[0].parent.name == "images_8"
    assert parse(tmp_path / "c").image_filenames[0].parent.name == "images"


# --- errors -------------------------------------------------------------------------------------------------------


def test_missing_poses_file(tmp_path: Path) -> None:
    write_llff_scene(tmp_path, simple_c2w(3))
    (tmp_path / "poses_bounds.npy").unlink()
    with pytest.raises(FileNotFoundError, match="poses_bounds.npy"):
        parse(tmp_path)


def test_wrong_poses_shape(tmp_path: Path) -> None:
    write_llff_scene(tmp_path, simple_c2w(3))
    np.save(tmp_path / "poses_bounds.npy", np.zeros((3, 16)))
    with pytest.raises(ValueError, match=r"poses_bounds\.npy.*\(3, 16\)"):
        parse(tmp_path)


def test_image_count_mismatch(tmp_path: Path) -> None:
    write_llff_scene(tmp_path, simple_c2w(3), num_images=2)
    with pytest.raises(ValueError, match=r"images_2.*2 images.*3 pose rows"):
        parse(tmp_path, downscale_factor=2)


def test_mismatched_downscale(tmp_path: Path) -> None:
    # Poses say 60x40 (WxH); 30x30 images are not a uniform downscale of it.
    write_llff_scene(tmp_path, simple_c2w(3), full_hw=(40, 60), image_wh=(30, 30))
    with pytest.raises(ValueError, match=r"images_2.*30x30.*60x40"):
        parse(tmp_path, downscale_factor=2)


def test_missing_image_folder_lists_existing(tmp_path: Path) -> None:
    write_llff_scene(tmp_path, simple_c2w(3), folders=("images_2", "images_16"))
    with pytest.raises(FileNotFoundError, match=r"images_4.*images_16/, images_2/"):
        parse(tmp_path, downscale_factor=4)
    with pytest.raises(FileNotFoundError, match=r"images_4, images_8, images.*images_16/, images_2/"):
        parse(tmp_path)


# --- real capture -------------------------------------------------------------------------------------------------

needs_juicebox = pytest.mark.skipif(not JUICEBOX.is_dir(), reason=f"juicebox capture folder absent: {JUICEBOX}")


@needs_juicebox
@pytest.mark.parametrize("factor, size", [(4, (480, 270)), (8, (240, 135))])
def test_juicebox(factor: int, size: Tuple[int, int]) -> None:
    out = parse(JUICEBOX, downscale_factor=factor)
    cams = out.cameras
    assert len(cams) == 64 and len(out.image_filenames) == 64
    assert torch.all(cams.width == size[0]) and torch.all(cams.height == size[1])
    torch.testing.assert_close(cams.fx, torch.full((64, 1), JUICEBOX_FOCAL_FULL / factor))
    torch.testing.assert_close(cams.fy, cams.fx)
    torch.testing.assert_close(cams.cx, torch.full((64, 1), size[0] / 2))
    torch.testing.assert_close(cams.cy, torch.full((64, 1), size[1] / 2))
    c2w = cams.camera_to_worlds
    assert c2w[:, :, 3].abs().max().item() <= 1.0 + 1e-5
    view_dirs = -c2w[:, :, 2]
    assert view_dirs.mean(dim=0).norm().item() > 0.5
    assert c2w[:, :, 1].mean(dim=0)[2].item() > 0.9  # "up" orientation: mean camera up is +z
    names = [p.name for p in out.image_filenames]
    assert names == sorted(names)
    assert names[:4] == ["IMG_4831_0.jpg", "IMG_4831_1.jpg", "IMG_4831_10.jpg", "IMG_4831_11.jpg"]
    assert names[12] == "IMG_4831_2.jpg"
    assert 0 < out.metadata["near"] < out.metadata["far"]


@needs_juicebox
def test_juicebox_default_folder_and_focus_centre() -> None:
    out = parse(JUICEBOX, center_method="focus")
    assert out.image_filenames[0].parent.name == "images_4"
    c2w = out.cameras.camera_to_worlds
    # With focus centring, every optical axis passes close to the origin (the carton).
    origins, dirs = c2w[:, :, 3], -c2w[:, :, 2]
    along = (-origins * dirs).sum(-1, keepdim=True)
    miss = (-origins - along * dirs).norm(dim=-1)
    assert torch.all(along > 0) and miss.max().item() < 0.2
