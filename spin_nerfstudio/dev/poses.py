"""``spin-nerf dev poses DATA``: do a capture's poses agree with its images? The figure the run checks first.

Loads DATA as the runs do (``spin-llff`` when it holds ``poses_bounds.npy``, else nerfstudio's ``transforms.json``
parser) and prints the share of SIFT matches between neighbouring views that lie on the epipolar lines of their
poses (:func:`spin_nerfstudio.data.pose_check.pose_agreement`). ``--shuffle SEED`` permutes the poses among the
views first, to show what poses that do not belong to the images give.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from spin_nerfstudio.prompts import SpinInputError

if TYPE_CHECKING:
    from spin_nerfstudio.data.pose_check import PoseAgreement


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``spin-nerf dev poses``."""
    parser.add_argument("data", type=Path, help="capture folder (poses_bounds.npy with images_N/, or transforms.json)")
    parser.add_argument("--downscale-factor", type=int, default=None,
                        help="image folder images_N to read (default: the parser's choice)")  # fmt: skip
    parser.add_argument("--shuffle", type=int, default=None, metavar="SEED",
                        help="permute the poses among the views with this seed (the failing case)")  # fmt: skip


def capture_agreement(data: Path, downscale_factor: Optional[int] = None, shuffle: Optional[int] = None):
    """The :class:`PoseAgreement` of the capture at ``data`` (poses permuted with seed ``shuffle`` when given)."""
    from PIL import Image

    from spin_nerfstudio.data.pose_check import pose_agreement

    data = Path(data)
    if (data / "poses_bounds.npy").is_file():
        from spin_nerfstudio.data.llff import SpinLLFFDataParserConfig

        parser = SpinLLFFDataParserConfig(data=data, downscale_factor=downscale_factor)
    elif (data / "transforms.json").is_file():
        from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

        parser = NerfstudioDataParserConfig(data=data, downscale_factor=downscale_factor or 1)
    else:
        raise SpinInputError(f"{data}: neither poses_bounds.npy nor transforms.json; not a capture folder")
    outputs = parser.setup().get_dataparser_outputs("train")
    cams = outputs.cameras
    images = []
    for k, path in enumerate(outputs.image_filenames):
        size = (int(cams.width[k]), int(cams.height[k]))
        with Image.open(path) as im:
            im = im.convert("RGB")
            images.append(np.asarray(im if im.size == size else im.resize(size, Image.Resampling.LANCZOS)))
    c2w = cams.camera_to_worlds.numpy().astype(np.float64)
    if shuffle is not None:
        c2w = c2w[np.random.default_rng(shuffle).permutation(len(c2w))]
    fx, fy, cx, cy = (v.view(-1).numpy().astype(np.float64) for v in (cams.fx, cams.fy, cams.cx, cams.cy))
    return pose_agreement(images, c2w, fx, fy, cx, cy)


def describe(data: Path, result: PoseAgreement, shuffle: Optional[int]) -> str:
    """The lines ``spin-nerf dev poses`` prints."""
    what = f"{data}" + ("" if shuffle is None else f" (poses shuffled, seed {shuffle})")
    share = "not judged" if result.share is None else f"{100 * result.share:.0f}% (pooled {100 * result.pooled:.0f}%)"
    verdict = {True: "agree", False: "do not agree", None: "not judged"}[result.agrees]
    return (
        f"{what}\n"
        f"  matches on their epipolar lines (within {result.tolerance_px:.1f} px): {share}\n"
        f"  pairs judged: {result.judged} of {result.pairs} ({result.matches} matches); {result.seconds:.1f} s\n"
        f"  poses {verdict} (threshold {100 * result.threshold:.0f}%)"
    )
