"""The SPIn-NeRF inpainting dataset layout, and a generator of small fake scenes in exactly that layout.

Layout (as distributed; 10 forward-facing scenes ``1 2 3 4 7 9 10 12 book trash``, 100 images each)::

    SCENE/
      poses_bounds.npy        LLFF poses of all 100 images (rows in sorted file-name order), H W focal at full size
      images/                 full-resolution images, file names are timestamps (20220819_105840.png, ...)
      images_4/               the same images downscaled by 4
        label/                object masks of the training views (non-zero = object), named like the images
        test_label/           object masks of the test views (where the object was), named like the images

In sorted file-name order the first ``N_gt = 40`` images are the *test* views, photographed after the object was
physically removed (ground truth); the remaining 60 show the object and are the *training* views.

The ``spin-llff`` dataparser reads this layout when ``spin_layout`` is true (or left at None and the image folder
has a ``label/`` sub-folder): its train split is the training views, its val/test split the ground-truth views, and
its ``metadata`` carries the mask files of the split under :data:`OBJECT_MASK_FILES`. The pipeline uses the training
masks as ready-made object masks when neither a prompt file nor a mask folder is given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from jaxtyping import Bool
from PIL import Image

from spin_nerfstudio.data.masks import check_mask, find_mask_file, read_mask
from spin_nerfstudio.prompts import SpinInputError

LABEL_DIR = "label"
"""Sub-folder of the image folder with the training views' object masks."""
TEST_LABEL_DIR = "test_label"
"""Sub-folder of the image folder with the test views' object masks."""
DEFAULT_NUM_GT = 40
"""Number of leading (sorted) views that are ground-truth test views in the distributed dataset (``N_gt``)."""
OBJECT_MASK_FILES = "object_mask_filenames"
"""Dataparser ``metadata`` key: one object-mask file per image of the split (SPIn-NeRF layout only)."""
LAYOUT_KEY = "spin_layout"
"""Dataparser ``metadata`` key: True when the outputs come from a SPIn-NeRF-layout scene."""
SCENES = ("1", "2", "3", "4", "7", "9", "10", "12", "book", "trash")
"""Scene folder names of the distributed dataset."""


def has_spin_layout(image_dir: Path) -> bool:
    """Whether an LLFF image folder looks like SPIn-NeRF's (it has a ``label/`` sub-folder)."""
    return (Path(image_dir) / LABEL_DIR).is_dir()


def num_gt_views(image_dir: Path, num_gt: Optional[int] = None) -> int:
    """``num_gt`` if given, else the number of masks in ``test_label/``, else :data:`DEFAULT_NUM_GT`."""
    if num_gt is not None:
        return num_gt
    folder = Path(image_dir) / TEST_LABEL_DIR
    if folder.is_dir():
        count = sum(1 for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if count:
            return count
    return DEFAULT_NUM_GT


def split_views(num_images: int, num_gt: int) -> Tuple[List[int], List[int]]:
    """(training indices, test indices) into the sorted image list: the first ``num_gt`` are the test views."""
    if num_gt < 1 or num_gt >= num_images:
        raise ValueError(
            f"num_gt_views must be between 1 and {num_images - 1} for a scene of {num_images} images, got {num_gt} "
            "(the number of leading ground-truth test views; 40 in the distributed SPIn-NeRF scenes)"
        )
    return list(range(num_gt, num_images)), list(range(num_gt))


def label_files(label_dir: Path, image_files: Sequence[Path]) -> List[Path]:
    """The mask file of every image (same name, or same stem with an image suffix) in ``label_dir``.

    Raises:
        FileNotFoundError: the folder or one of the masks is missing.
    """
    if not label_dir.is_dir():
        raise FileNotFoundError(f"{label_dir}: SPIn-NeRF mask folder not found")
    out = []
    for image in image_files:
        try:
            out.append(find_mask_file(label_dir, Path(image).name))
        except SpinInputError as err:
            raise FileNotFoundError(str(err)) from None
    return out


def read_label(path: Path, size: Optional[Tuple[int, int]] = None) -> Bool[np.ndarray, "H W"]:
    """A SPIn-NeRF mask: any non-zero value (in any channel) is object. ``size`` = expected (width, height)."""
    mask = read_mask(path, threshold=0)
    if size is not None and mask.shape != (size[1], size[0]):
        raise SpinInputError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {size[0]}x{size[1]}")
    return mask


def dataset_label_masks(
    metadata: Dict, image_names: Sequence[str], sizes: Sequence[Tuple[int, int]]
) -> Optional[List[np.ndarray]]:
    """The training views' label masks supplied by the dataparser, checked; None when it supplies none.

    A view whose label is empty is allowed (the object may be out of view); a label covering nearly the whole image
    is refused, as is a set of labels that is empty everywhere.
    """
    files = metadata.get(OBJECT_MASK_FILES)
    if not files:
        return None
    if len(files) != len(image_names):
        raise SpinInputError(f"dataparser gave {len(files)} label masks for {len(image_names)} training images")
    masks = [read_label(Path(f), size) for f, size in zip(files, sizes)]
    for path, mask in zip(files, masks):
        if mask.any():
            check_mask(mask, Path(path))
    if not any(m.any() for m in masks):
        raise SpinInputError(f"{Path(files[0]).parent}: every label mask is empty; nothing to remove")
    return masks


# ---------------------------------------------------------------------------------------------------- fake scenes
def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Downscale an H x W (x C) array by an integer factor, averaging each factor x factor block."""
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor, *image.shape[2:])
    return blocks.mean(axis=(1, 3))


def timestamp_names(
    count: int, date: str = "20220819", start_s: int = 10 * 3600 + 40 * 60, step_s: int = 7
) -> List[str]:
    """``count`` increasing timestamp file names like ``20220819_104000.png`` (string order = time order)."""
    names = []
    for k in range(count):
        t = start_s + k * step_s
        names.append(f"{date}_{t // 3600:02d}{t // 60 % 60:02d}{t % 60:02d}.png")
    return names


def make_spin_layout_scene(
    out_dir: Path,
    num_train: int = 60,
    num_test: int = 40,
    width: int = 120,
    height: int = 90,
    seed: int = 0,
    factor: int = 4,
    full_resolution: bool = True,
) -> Path:
    """Write a synthetic scene in SPIn-NeRF's exact layout, with real ground truth for its test views.

    The generator's camera rig (:mod:`spin_nerfstudio.data.synthetic`) gets ``num_train + num_test`` cameras; the
    test cameras are spread evenly over the rig. Every view is ray-cast at ``factor`` times the size and block
    averaged to ``width x height`` for ``images_{factor}/`` (so ``poses_bounds.npy`` holds the full-size H, W and
    focal, as in the real data). Test views are the renders *without* the object (the ground truth), training views
    the renders with it. ``label/`` and ``test_label/`` hold the object masks (0 / 255; a pixel is object when at
    least half of its full-size block is). File names are timestamps, the test views' earlier, so the first
    ``num_test`` in sorted order are the test views.

    Besides the layout it writes ``prompts.json`` (a click on the object in the first training view, in
    ``images_{factor}`` pixels) and ``scene.json`` (generator metadata); the dataparser ignores both.

    Returns:
        ``out_dir``.
    """
    from spin_nerfstudio.data.synthetic import _demo_prompts, _llff_poses_bounds
    from spin_nerfstudio.data.synthetic_render import _render_view
    from spin_nerfstudio.data.synthetic_scene import SceneSpec, _sample_scene

    if num_train < 2 or num_test < 2:
        raise ValueError(f"need at least 2 training and 2 test views, got {num_train} and {num_test}")
    total = num_train + num_test
    spec = SceneSpec(num_views=total, width=width * factor, height=height * factor, seed=seed)
    scene = _sample_scene(spec)
    test_ids = sorted({int(round(i)) for i in np.linspace(0, total - 1, num_test)})
    train_ids = [i for i in range(total) if i not in set(test_ids)]
    order = test_ids + train_ids  # sorted file-name order: test views first
    names = timestamp_names(total)

    out_dir = Path(out_dir)
    small = out_dir / f"images_{factor}"
    for folder in (small / LABEL_DIR, small / TEST_LABEL_DIR) + ((out_dir / "images",) if full_resolution else ()):
        folder.mkdir(parents=True, exist_ok=True)
    bounds = np.zeros((total, 2))
    prompts: Dict[str, object] = {"prompts": []}
    for k, (cam, name) in enumerate(zip(order, names)):
        view = _render_view(scene, scene.c2ws[cam], spec.width, spec.height)
        is_test = k < len(test_ids)
        rgb_full = view["rgb_bg"] if is_test else view["rgb"]
        mask = _block_mean(view["mask"].astype(np.float64), factor) >= 0.5
        if not mask.any():
            raise RuntimeError(f"object not visible in view {name} (camera {cam}); try another seed")
        rgb = np.clip(np.round(_block_mean(rgb_full, factor) * 255.0), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(small / name)
        Image.fromarray(mask.astype(np.uint8) * 255).save(small / (TEST_LABEL_DIR if is_test else LABEL_DIR) / name)
        if full_resolution:
            Image.fromarray(np.clip(np.round(rgb_full * 255.0), 0, 255).astype(np.uint8)).save(
                out_dir / "images" / name
            )
        depth = view["depth_bg"] if is_test else view["depth"]
        bounds[k] = (0.9 * float(depth.min()), 1.1 * float(view["depth_bg"].max()))
        if k == len(test_ids):
            c = factor // 2
            positive, negative = _demo_prompts(
                mask, view["surface"][c::factor, c::factor][: mask.shape[0], : mask.shape[1]]
            )
            prompts["prompts"] = [{"image": name, "positive": [positive], "negative": [negative]}]
    c2ws = scene.c2ws[order]
    np.save(out_dir / "poses_bounds.npy", _llff_poses_bounds(c2ws, spec.height, spec.width, scene.focal, bounds))
    (out_dir / "prompts.json").write_text(json.dumps(prompts, indent=2) + "\n")
    meta = {
        "generator": "spin_nerfstudio.data.spin_layout.make_spin_layout_scene",
        "seed": seed,
        "num_train": num_train,
        "num_test": num_test,
        "factor": factor,
        "size": [width, height],
        "test_cameras": test_ids,
    }
    (out_dir / "scene.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir
