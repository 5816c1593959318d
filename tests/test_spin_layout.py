"""The SPIn-NeRF dataset layout: the fake-scene generator, the ``spin-llff`` options, and the label masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spin_nerfstudio.data.llff import SpinLLFFDataParserConfig, load_poses_bounds
from spin_nerfstudio.data.spin_layout import (
    LABEL_DIR,
    OBJECT_MASK_FILES,
    TEST_LABEL_DIR,
    dataset_label_masks,
    make_spin_layout_scene,
    read_label,
)
from spin_nerfstudio.evaluation.metrics import object_colour_fraction
from spin_nerfstudio.prompts import SpinInputError

NUM_TRAIN, NUM_TEST, W, H = 6, 4, 32, 24


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Path:
    return make_spin_layout_scene(
        tmp_path_factory.mktemp("spin") / "scene", num_train=NUM_TRAIN, num_test=NUM_TEST, width=W, height=H, seed=3
    )


def parse(data: Path, split: str = "train", **kwargs):
    return SpinLLFFDataParserConfig(data=data, **kwargs).setup().get_dataparser_outputs(split)


def names_in(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_fake_scene_has_the_distributed_layout(fake):
    names = names_in(fake / "images_4")
    assert len(names) == NUM_TRAIN + NUM_TEST
    assert all(len(n) == len("20220819_104000.png") and n[8] == "_" for n in names)  # timestamps
    assert names_in(fake / "images_4" / TEST_LABEL_DIR) == names[:NUM_TEST]
    assert names_in(fake / "images_4" / LABEL_DIR) == names[NUM_TEST:]
    assert names_in(fake / "images") == names
    assert Image.open(fake / "images" / names[0]).size == (4 * W, 4 * H)
    assert Image.open(fake / "images_4" / names[0]).size == (W, H)
    poses, _ = load_poses_bounds(fake / "poses_bounds.npy")
    assert poses.shape[0] == len(names)
    np.testing.assert_allclose(poses[:, :2, 4], np.tile([4 * H, 4 * W], (len(names), 1)))  # full-size H, W


def test_test_views_are_ground_truth_without_the_object(fake):
    names = names_in(fake / "images_4")
    for i, name in enumerate(names):
        image = np.asarray(Image.open(fake / "images_4" / name).convert("RGB"), dtype=np.float32) / 255
        folder = TEST_LABEL_DIR if i < NUM_TEST else LABEL_DIR
        mask = read_label(fake / "images_4" / folder / name)
        assert 0.01 < mask.mean() < 0.5
        frac = object_colour_fraction(image, mask)
        assert (frac < 0.02) if i < NUM_TEST else (frac > 0.6), (name, frac)


def test_parser_splits_the_views_and_scales_intrinsics(fake):
    names = names_in(fake / "images_4")
    train, test = parse(fake, "train"), parse(fake, "test")
    assert [p.name for p in train.image_filenames] == names[NUM_TEST:]
    assert [p.name for p in test.image_filenames] == names[:NUM_TEST]
    assert [p.name for p in parse(fake, "val").image_filenames] == names[:NUM_TEST]
    assert train.metadata["spin_layout"] is True
    assert [Path(p).parent.name for p in train.metadata[OBJECT_MASK_FILES]] == [LABEL_DIR] * NUM_TRAIN
    assert [Path(p).name for p in test.metadata[OBJECT_MASK_FILES]] == names[:NUM_TEST]
    assert [Path(p).parent.name for p in test.metadata[OBJECT_MASK_FILES]] == [TEST_LABEL_DIR] * NUM_TEST
    full_focal = load_poses_bounds(fake / "poses_bounds.npy")[0][0, 2, 4]
    for out in (train, test):
        torch.testing.assert_close(out.cameras.fx, torch.full_like(out.cameras.fx, full_focal / 4))
        assert torch.all(out.cameras.width == W) and torch.all(out.cameras.height == H)
    # Both splits share one world frame: the same poses as when every image is parsed together.
    every = parse(fake, "train", spin_layout=False)
    assert len(every.image_filenames) == NUM_TRAIN + NUM_TEST
    c2w = every.cameras.camera_to_worlds
    torch.testing.assert_close(test.cameras.camera_to_worlds, c2w[:NUM_TEST])
    torch.testing.assert_close(train.cameras.camera_to_worlds, c2w[NUM_TEST:])


def test_full_resolution_folder_gives_full_focal(fake):
    out = parse(fake, "train", downscale_factor=1, spin_layout=False)
    full_focal = load_poses_bounds(fake / "poses_bounds.npy")[0][0, 2, 4]
    torch.testing.assert_close(out.cameras.fx, torch.full_like(out.cameras.fx, full_focal))
    with pytest.raises(FileNotFoundError, match=r"images/label: SPIn-NeRF mask folder not found"):
        parse(fake, "train", downscale_factor=1, spin_layout=True)


def test_num_gt_views_errors_name_the_problem(fake):
    with pytest.raises(FileNotFoundError, match=r"label: no mask for image '20220819_1040"):
        parse(fake, "train", num_gt_views=NUM_TEST - 1)  # a test view would need a label/ mask
    with pytest.raises(ValueError, match=r"num_gt_views must be between 1 and 9 .* got 10"):
        parse(fake, "train", num_gt_views=NUM_TRAIN + NUM_TEST)


def test_label_masks_for_the_pipeline(fake, tmp_path):
    out = parse(fake, "train")
    names = [p.name for p in out.image_filenames]
    masks = dataset_label_masks(out.metadata, names, [(W, H)] * NUM_TRAIN)
    assert masks is not None and len(masks) == NUM_TRAIN
    for name, mask in zip(names, masks):
        expected = np.array(Image.open(fake / "images_4" / LABEL_DIR / name)) > 0
        np.testing.assert_array_equal(mask, expected)
    assert dataset_label_masks({}, names, [(W, H)] * NUM_TRAIN) is None
    with pytest.raises(SpinInputError, match=r"mask is 32x24 but its image is 30x24"):
        dataset_label_masks(out.metadata, names, [(30, H)] * NUM_TRAIN)
    # Non-zero is object (the distributed labels are not all 0/255); all-empty labels are refused.
    one = tmp_path / "one.png"
    Image.fromarray(np.pad(np.ones((4, 4), np.uint8), 4)).save(one)
    assert read_label(one).sum() == 16
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((H, W), np.uint8)).save(empty)
    with pytest.raises(SpinInputError, match=r"every label mask is empty; nothing to remove"):
        dataset_label_masks({OBJECT_MASK_FILES: [empty, empty]}, ["a.png", "b.png"], [(W, H)] * 2)


def test_prompt_file_clicks_the_object_in_a_training_view(fake):
    import json

    prompt = json.loads((fake / "prompts.json").read_text())["prompts"][0]
    assert prompt["image"] in names_in(fake / "images_4" / LABEL_DIR)
    mask = read_label(fake / "images_4" / LABEL_DIR / prompt["image"])
    (x, y), (nx, ny) = prompt["positive"][0], prompt["negative"][0]
    assert mask[y, x] and not mask[ny, nx]
