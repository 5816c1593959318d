"""Dataparser for LLFF captures (``poses_bounds.npy`` + ``images/`` / ``images_N/``), registered as ``spin-llff``.

LLFF layout
-----------
``poses_bounds.npy`` is an ``(N, 17)`` array, one row per image. Row ``i`` holds a ``3x5`` matrix flattened row-major
followed by the near and far depth bounds of view ``i``. The first three columns of the ``3x5`` matrix are the
camera-to-world rotation in LLFF's ``[down, right, back]`` axis order, the fourth is the camera centre, the fifth is
``[height, width, focal]`` of the *full-resolution* image. Rows correspond to the image files in plain string-sorted
file-name order (``IMG_0``, ``IMG_1``, ``IMG_10``, ``IMG_11``, ... - not numeric order).

Images live in ``images/`` (full resolution) and/or ``images_N/`` (downscaled by ``N``). The real downscale is measured
from the image files on disk and applied to the focal length, so the folder name is only used to pick the folder.

SPIn-NeRF layout
----------------
With ``spin_layout`` (auto-detected by a ``label/`` folder inside the image folder, e.g. ``images_4/label/``) the
first ``num_gt_views`` images in sorted order are ground-truth test views (object physically removed) and the rest
are training views: the train split holds only the training views, the val and test splits only the test views, and
``metadata["object_mask_filenames"]`` lists the object mask of each image of the split (``label/`` for training views,
``test_label/`` for test views). See :mod:`spin_nerfstudio.data.spin_layout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.cameras import camera_utils
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.data.utils.dataparsers_utils import get_train_eval_split_all, get_train_eval_split_interval
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from PIL import Image
from torch import Tensor

from spin_nerfstudio.data import spin_layout as layout

POSES_FILENAME = "poses_bounds.npy"
"""Name of the LLFF pose file inside the scene folder."""
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
"""File suffixes (compared lower-case) counted as images in an image folder."""
DEFAULT_DOWNSCALE_ORDER = (4, 8, 1)
"""Downscale factors tried, in order, when ``downscale_factor`` is None."""
SCALE_TOLERANCE = 0.01
"""Maximum relative difference allowed between the width and the height downscale of an image."""


def image_folder_name(downscale_factor: int) -> str:
    """Name of the LLFF image folder for a downscale factor: ``images`` for 1, else ``images_{N}``."""
    return "images" if downscale_factor == 1 else f"images_{downscale_factor}"


def list_image_folders(data: Path) -> List[str]:
    """Names of the ``images*`` folders that exist in ``data`` (sorted)."""
    if not data.is_dir():
        return []
    return sorted(p.name for p in data.iterdir() if p.is_dir() and p.name.startswith("images"))


def list_images(folder: Path) -> List[Path]:
    """Image files of ``folder`` in plain string-sorted file-name order (the row order of ``poses_bounds.npy``)."""
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: p.name
    )


def llff_to_opengl(
    poses_llff: Float[np.ndarray, "num_cams 3 4"],
) -> Float[np.ndarray, "num_cams 3 4"]:
    """Reorders LLFF ``[down, right, back | t]`` camera-to-world columns into OpenGL ``[right, up, back | t]``."""
    down, right, back, centre = (poses_llff[..., i] for i in range(4))
    return np.stack([right, -down, back, centre], axis=-1)


def opengl_to_llff(
    poses_opengl: Float[np.ndarray, "num_cams 3 4"],
) -> Float[np.ndarray, "num_cams 3 4"]:
    """Inverse of :func:`llff_to_opengl`: OpenGL ``[right, up, back | t]`` into LLFF ``[down, right, back | t]``."""
    right, up, back, centre = (poses_opengl[..., i] for i in range(4))
    return np.stack([-up, right, back, centre], axis=-1)


def load_poses_bounds(path: Path) -> Tuple[Float[np.ndarray, "num_cams 3 5"], Float[np.ndarray, "num_cams 2"]]:
    """Loads ``poses_bounds.npy``; returns the ``3x5`` pose/hwf matrices and the ``[near, far]`` bounds.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be read or is not an ``(N, 17)`` array with N >= 1 of finite numbers.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: LLFF pose file {POSES_FILENAME} not found")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: cannot read as a numpy array ({type(err).__name__}: {err})") from err
    if array.ndim != 2 or array.shape[1] != 17 or array.shape[0] == 0:
        raise ValueError(f"{path}: expected an array of shape (N, 17) with N >= 1, got shape {tuple(array.shape)}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{path}: contains non-finite values")
    return array[:, :15].reshape(-1, 3, 5), array[:, 15:17]


@dataclass
class SpinLLFFDataParserConfig(DataParserConfig):
    """Config of the LLFF dataparser (``spin-llff``): ``poses_bounds.npy`` plus ``images/`` or ``images_N/``."""

    _target: Type = field(default_factory=lambda: SpinLLFF)
    """target class to instantiate"""
    data: Path = Path()
    """Scene folder holding ``poses_bounds.npy`` and the ``images/`` / ``images_N/`` folders."""
    downscale_factor: Optional[int] = None
    """Which image folder to read: ``images_{N}/``, or ``images/`` for 1. None picks ``images_4/`` if present, else
    ``images_8/``, else ``images/``. The focal length is scaled by the image size measured on disk, not by N."""
    scale_factor: float = 1.0
    """Extra scale applied to the camera positions (and the near/far bounds) after auto scaling."""
    orientation_method: Literal["pca", "up", "vertical", "none"] = "up"
    """How to rotate the poses (see ``nerfstudio.cameras.camera_utils.auto_orient_and_center_poses``)."""
    center_method: Literal["poses", "focus", "none"] = "poses"
    """How to translate the poses: mean camera centre, focus of attention of the optical axes, or not at all."""
    auto_scale_poses: bool = True
    """Scale the poses so that the largest absolute camera coordinate is 1 (before ``scale_factor``)."""
    eval_mode: Literal["all", "interval"] = "all"
    """Train/eval split: "all" uses every image for both splits (nerfstudio's convention for object removal, where
    every view is needed); "interval" holds out every ``eval_interval``-th image (indices 0, N, 2N, ...) for eval."""
    eval_interval: int = 8
    """Hold out every N-th image for eval when ``eval_mode`` is "interval"."""
    eval_offset: int = 0
    """First held-out index when ``eval_mode`` is "interval" (indices offset, offset + N, ...; 0 is nerfstudio's
    split). Lets a clicked view stay a training view."""
    scene_scale: float = 1.5
    """Half-size of the axis-aligned scene box centred on the origin, in output (scaled) coordinates."""
    spin_layout: Optional[bool] = None
    """SPIn-NeRF inpainting-dataset layout: the first ``num_gt_views`` sorted images are ground-truth test views (the
    val/test split), the rest the training views (the train split), object masks from ``label/`` and ``test_label/``
    inside the image folder. None detects it by the image folder's ``label/`` sub-folder. Overrides ``eval_mode``."""
    num_gt_views: Optional[int] = None
    """SPIn-NeRF layout: number of leading (sorted) images that are ground-truth test views (their ``N_gt``). None
    counts the masks in ``test_label/`` (40 in the distributed dataset), or takes 40 without that folder."""


@dataclass
class SpinLLFF(DataParser):
    """LLFF dataparser: reads ``poses_bounds.npy`` and the matching image folder into nerfstudio's OpenGL convention.

    The output ``metadata`` holds ``near`` (min near bound over all views) and ``far`` (max far bound over all views),
    both multiplied by the dataparser scale so they are in the output coordinates.
    """

    config: SpinLLFFDataParserConfig

    def __init__(self, config: SpinLLFFDataParserConfig):
        super().__init__(config=config)
        self.config = config

    def _image_dir(self) -> Path:
        """Image folder selected by ``downscale_factor`` (see the config field)."""
        data = self.config.data
        factor = self.config.downscale_factor
        if factor is None:
            for candidate in DEFAULT_DOWNSCALE_ORDER:
                if (data / image_folder_name(candidate)).is_dir():
                    return data / image_folder_name(candidate)
            wanted = ", ".join(image_folder_name(f) for f in DEFAULT_DOWNSCALE_ORDER)
        else:
            if factor < 1:
                raise ValueError(f"downscale_factor must be >= 1 or None, got {factor}")
            if (data / image_folder_name(factor)).is_dir():
                return data / image_folder_name(factor)
            wanted = image_folder_name(factor)
        existing = ", ".join(f"{name}/" for name in list_image_folders(data)) or "none"
        raise FileNotFoundError(f"{data}: no image folder {wanted} (existing images* folders: {existing})")

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs: Optional[Dict]) -> DataparserOutputs:
        data = self.config.data
        if not data.is_dir():
            raise FileNotFoundError(f"{data}: LLFF scene folder not found")
        poses_hwf, bounds = load_poses_bounds(data / POSES_FILENAME)
        image_dir = self._image_dir()
        image_filenames = list_images(image_dir)
        if len(image_filenames) != len(poses_hwf):
            raise ValueError(
                f"{image_dir}: {len(image_filenames)} images but {data / POSES_FILENAME} has {len(poses_hwf)} pose rows"
            )

        # Intrinsics: H, W, focal of the full-resolution image, rescaled by the size of the image on disk.
        full_height, full_width, full_focal = (poses_hwf[:, i, 4] for i in range(3))
        sizes = np.array([self._image_size(path) for path in image_filenames], dtype=np.float64)  # (N, 2): w, h
        scale_w = sizes[:, 0] / full_width
        scale_h = sizes[:, 1] / full_height
        bad = np.abs(scale_w - scale_h) > SCALE_TOLERANCE * scale_h
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(
                f"{image_dir}: image {image_filenames[i].name} is {int(sizes[i, 0])}x{int(sizes[i, 1])} (WxH) but "
                f"{POSES_FILENAME} says {int(full_width[i])}x{int(full_height[i])}: width scale {scale_w[i]:.4f} "
                f"!= height scale {scale_h[i]:.4f} (wrong downscale folder or poses for another image size?)"
            )
        focal = full_focal * scale_w

        # Extrinsics: LLFF [down, right, back] -> OpenGL [right, up, back], then orient, centre and scale.
        c2w = llff_to_opengl(poses_hwf[:, :, :4])
        poses: Float[Tensor, "num_cams 4 4"] = torch.eye(4, dtype=torch.float32).repeat(len(c2w), 1, 1)
        poses[:, :3, :4] = torch.from_numpy(c2w).float()
        poses, transform_matrix = camera_utils.auto_orient_and_center_poses(
            poses, method=self.config.orientation_method, center_method=self.config.center_method
        )
        scale = 1.0
        if self.config.auto_scale_poses:
            max_coordinate = float(torch.max(torch.abs(poses[:, :3, 3])))
            if max_coordinate > 0:
                scale /= max_coordinate
        scale *= self.config.scale_factor
        poses[:, :3, 3] *= scale

        metadata: Dict[str, object] = {}
        use_spin = self.config.spin_layout
        if use_spin is None:
            use_spin = layout.has_spin_layout(image_dir)
        if use_spin:
            if not layout.has_spin_layout(image_dir):
                raise FileNotFoundError(
                    f"{image_dir / layout.LABEL_DIR}: SPIn-NeRF mask folder not found (the distributed masks are in "
                    "images_4/label/: use downscale_factor 4)"
                )
            i_train, i_test = layout.split_views(
                len(image_filenames), layout.num_gt_views(image_dir, self.config.num_gt_views)
            )
            if split not in ("train", "val", "test"):
                raise ValueError(f"Unknown split {split!r} (expected 'train', 'val' or 'test')")
            indices = np.asarray(i_train if split == "train" else i_test, dtype=np.int64)
            folder = image_dir / (layout.LABEL_DIR if split == "train" else layout.TEST_LABEL_DIR)
            metadata[layout.LAYOUT_KEY] = True
            metadata[layout.OBJECT_MASK_FILES] = layout.label_files(folder, [image_filenames[i] for i in indices])
        else:
            indices = self._split_indices(split, len(image_filenames))
        idx = torch.from_numpy(indices).long()

        def per_camera(values: np.ndarray, dtype: torch.dtype) -> Tensor:
            return torch.from_numpy(values).to(dtype)[idx].unsqueeze(-1)

        cameras = Cameras(
            camera_to_worlds=poses[idx, :3, :4],
            fx=per_camera(focal, torch.float32),
            fy=per_camera(focal, torch.float32),
            cx=per_camera(sizes[:, 0] / 2.0, torch.float32),
            cy=per_camera(sizes[:, 1] / 2.0, torch.float32),
            width=per_camera(sizes[:, 0].astype(np.int64), torch.int32),
            height=per_camera(sizes[:, 1].astype(np.int64), torch.int32),
            camera_type=CameraType.PERSPECTIVE,
        )
        half = self.config.scene_scale
        scene_box = SceneBox(aabb=torch.tensor([[-half, -half, -half], [half, half, half]], dtype=torch.float32))
        return DataparserOutputs(
            image_filenames=[image_filenames[i] for i in indices],
            cameras=cameras,
            scene_box=scene_box,
            dataparser_scale=scale,
            dataparser_transform=transform_matrix,
            metadata={"near": float(bounds[:, 0].min()) * scale, "far": float(bounds[:, 1].max()) * scale, **metadata},
        )

    @staticmethod
    def _image_size(path: Path) -> Tuple[int, int]:
        """(width, height) of an image file, read from its header."""
        with Image.open(path) as image:
            return image.size

    def _split_indices(self, split: str, num_images: int) -> np.ndarray:
        """Indices (into the string-sorted image list) of the images of ``split``."""
        placeholder = list(range(num_images))
        if self.config.eval_mode == "all":
            i_train, i_eval = get_train_eval_split_all(placeholder)
        elif self.config.eval_mode == "interval":
            if self.config.eval_interval < 2:
                interval = self.config.eval_interval
                raise ValueError(f"eval_interval must be >= 2 (1 leaves no training image), got {interval}")
            offset = self.config.eval_offset
            if not 0 <= offset < self.config.eval_interval:
                raise ValueError(f"eval_offset must be in [0, eval_interval), got {offset}")
            i_train, i_eval = get_train_eval_split_interval(placeholder, self.config.eval_interval)
            if offset:
                held = np.arange(num_images) % self.config.eval_interval == offset
                i_train, i_eval = np.flatnonzero(~held), np.flatnonzero(held)
        else:
            raise ValueError(f"Unknown eval_mode {self.config.eval_mode!r} (expected 'all' or 'interval')")
        if split == "train":
            return np.asarray(i_train, dtype=np.int64)
        if split in ("val", "test"):
            return np.asarray(i_eval, dtype=np.int64)
        raise ValueError(f"Unknown split {split!r} (expected 'train', 'val' or 'test')")


spin_llff = DataParserSpecification(
    config=SpinLLFFDataParserConfig(),
    description="LLFF captures (poses_bounds.npy + images_N/) for spin-nerfstudio",
)
"""Entry point ``spin-llff`` of the ``nerfstudio.dataparser_configs`` group."""
