"""Builds a small LLFF capture (``poses_bounds.npy`` + ``images_N/``) from a Bundler or an instant-ngp capture.

Used to make the real captures under ``captures/`` from public repositories (see each ``captures/*/SOURCE.md``):

    python scripts/make_llff_capture.py bundler SRC_DIR/results.example/bundle.out SRC_DIR OUT --downscale 4
    python scripts/make_llff_capture.py transforms SRC_DIR/transforms.json SRC_DIR OUT --downscale 8

Both inputs are undistorted onto a pinhole camera with the principal point at the image centre (LLFF stores one focal
length per view and no principal point or distortion), then downscaled by an integer factor with area averaging.

Near/far bounds are the 0.1 / 99.9 percentiles of the depths of 3D points seen by each view (as LLFF's own
``imgs2poses`` does), from Bundler's sparse points or, for inputs without points, from SIFT matches between
neighbouring views triangulated with the given poses. The script prints the median epipolar (Sampson) distance of
those SIFT matches under the stored poses: a few pixels at most means the poses agree with the images.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np
from jaxtyping import Float
from PIL import Image

from spin_nerfstudio.data.llff import opengl_to_llff
from spin_nerfstudio.data.pose_check import check_poses, opencv_projection


@dataclass
class PinholeCapture:
    """Undistorted full-resolution images with OpenGL camera-to-world poses and one shared pinhole focal length."""

    names: List[str]
    """Image file names, in the order of ``images`` and ``c2w``."""
    images: List[np.ndarray]
    """Undistorted RGB images (H, W, 3) uint8, principal point at the image centre."""
    c2w: Float[np.ndarray, "num_cams 3 4"]
    """OpenGL camera-to-world matrices (x right, y up, z back)."""
    focal: float
    """Focal length in pixels of the undistorted full-resolution images."""
    points: Optional[Float[np.ndarray, "num_points 3"]] = None
    """Sparse 3D points of the source reconstruction, if it has any."""
    visibility: Optional[List[List[int]]] = None
    """For each point, the indices of the views that see it."""


def read_bundler(bundle_path: Path, image_dir: Path) -> PinholeCapture:
    """Reads a Bundler v0.3 ``bundle.out``; cameras are in the string-sorted order of the ``*.jpg`` in ``image_dir``.
    Views Bundler did not register (focal 0) are dropped.

    Bundler projects a world point X with ``P = R X + t``, ``p = -P.xy / P.z``, pixel ``= f (1 + k1 |p|^2 +
    k2 |p|^4) p`` (origin at the image centre, y up), so its camera frame is OpenGL's and ``c2w = [R^T | -R^T t]``.
    """
    tokens = [line for line in bundle_path.read_text().splitlines() if not line.startswith("#")]
    values = " ".join(tokens).split()
    num_cams, num_points = int(values[0]), int(values[1])
    names = sorted(p.name for p in image_dir.glob("*.jpg"))
    if len(names) != num_cams:
        raise ValueError(f"{bundle_path}: {num_cams} cameras but {len(names)} .jpg files in {image_dir}")
    pos = 2
    cams = []
    for _ in range(num_cams):
        f, k1, k2 = (float(v) for v in values[pos : pos + 3])
        rot = np.array(values[pos + 3 : pos + 12], dtype=np.float64).reshape(3, 3)
        trans = np.array(values[pos + 12 : pos + 15], dtype=np.float64)
        pos += 15
        cams.append((f, k1, k2, rot, trans))
    points, visibility = [], []
    for _ in range(num_points):
        points.append([float(v) for v in values[pos : pos + 3]])
        count = int(values[pos + 6])
        views = values[pos + 7 : pos + 7 + 4 * count]
        visibility.append([int(views[4 * j]) for j in range(count)])
        pos += 7 + 4 * count
    registered = [i for i, cam in enumerate(cams) if cam[0] != 0.0]  # focal 0: Bundler could not place the view
    dropped = [names[i] for i in range(num_cams) if i not in registered]
    if dropped:
        print(f"dropped views that Bundler did not register: {', '.join(dropped)}")
    index = {old: new for new, old in enumerate(registered)}
    names, cams = [names[i] for i in registered], [cams[i] for i in registered]
    visibility = [[index[v] for v in views if v in index] for views in visibility]
    focal = float(np.mean([c[0] for c in cams]))
    images, c2w = [], []
    for name, (f, k1, k2, rot, trans) in zip(names, cams):
        image = np.asarray(Image.open(image_dir / name).convert("RGB"))
        images.append(undistort_radial(image, f, k1, k2, focal))
        c2w.append(np.concatenate([rot.T, (-rot.T @ trans)[:, None]], axis=1))
    return PinholeCapture(names, images, np.stack(c2w), focal, np.array(points), visibility)


def undistort_radial(image: np.ndarray, f: float, k1: float, k2: float, focal_out: float) -> np.ndarray:
    """Resamples a Bundler-distorted image (radial k1, k2 on normalised coordinates) onto a centred pinhole camera."""
    height, width = image.shape[:2]
    u, v = np.meshgrid(np.arange(width) + 0.5 - width / 2, np.arange(height) + 0.5 - height / 2)
    x, y = u / focal_out, v / focal_out
    r2 = x * x + y * y
    radial = 1.0 + k1 * r2 + k2 * r2 * r2
    map_x = (f * radial * x + width / 2 - 0.5).astype(np.float32)
    map_y = (f * radial * y + height / 2 - 0.5).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def read_transforms(transforms_path: Path, root: Path) -> PinholeCapture:
    """Reads an instant-ngp / nerfstudio ``transforms.json`` (OpenCV model k1 k2 p1 p2, OpenGL c2w); frames whose
    image file is missing are skipped. Images are undistorted onto a pinhole camera centred on the image."""
    meta = json.loads(transforms_path.read_text())
    width, height = int(meta["w"]), int(meta["h"])
    k_in = np.array([[meta["fl_x"], 0, meta["cx"]], [0, meta["fl_y"], meta["cy"]], [0, 0, 1]], dtype=np.float64)
    dist = np.array([meta.get(k, 0.0) for k in ("k1", "k2", "p1", "p2")], dtype=np.float64)
    focal = 0.5 * (meta["fl_x"] + meta["fl_y"])
    k_out = np.array([[focal, 0, width / 2 - 0.5], [0, focal, height / 2 - 0.5], [0, 0, 1]], dtype=np.float64)
    map_x, map_y = cv2.initUndistortRectifyMap(k_in, dist, None, k_out, (width, height), cv2.CV_32FC1)
    frames = sorted((f for f in meta["frames"] if (root / f["file_path"]).is_file()), key=lambda f: f["file_path"])
    names = [Path(f["file_path"]).name for f in frames]
    images = []
    for frame in frames:
        image = np.asarray(Image.open(root / frame["file_path"]).convert("RGB"))
        if image.shape[:2] != (height, width):
            raise ValueError(
                f"{frame['file_path']}: {image.shape[1]}x{image.shape[0]}, transforms say {width}x{height}"
            )
        images.append(cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    c2w = np.stack([np.array(f["transform_matrix"], dtype=np.float64)[:3, :4] for f in frames])
    return PinholeCapture(names, images, c2w, focal)


def sift_depths(capture: PinholeCapture, work_scale: float) -> Tuple[List[List[float]], float]:
    """Depths of SIFT matches triangulated with the poses in each view, and the median Sampson distance of the
    matches under the poses, both in full-resolution units (matching runs on images scaled by ``work_scale``)."""
    height, width = capture.images[0].shape[:2]
    small = [cv2.resize(im, None, fx=work_scale, fy=work_scale, interpolation=cv2.INTER_AREA) for im in capture.images]
    f, cx, cy = capture.focal * work_scale, width * work_scale / 2, height * work_scale / 2
    projections = [opencv_projection(c2w, f, f, cx, cy) for c2w in capture.c2w]
    distances, depths = check_poses(small, projections)
    median = float(np.median(distances)) / work_scale if len(distances) else float("nan")
    return depths, median


def bundler_depths(capture: PinholeCapture) -> List[List[float]]:
    """Depths of the Bundler points in each view that sees them."""
    depths: List[List[float]] = [[] for _ in capture.names]
    for point, views in zip(capture.points, capture.visibility):
        for view in views:
            c2w = capture.c2w[view]
            depths[view].append(float(-(c2w[:, :3].T @ (point - c2w[:, 3]))[2]))
    return depths


def write_llff(capture: PinholeCapture, depths: List[List[float]], out: Path, downscale: int, quality: int) -> None:
    """Writes ``poses_bounds.npy`` (full-resolution hwf) and ``images_{downscale}/`` JPEGs."""
    height, width = capture.images[0].shape[:2]
    rows = []
    for view, c2w in enumerate(capture.c2w):
        zs = np.array([d for d in depths[view] if d > 0])
        if len(zs) < 10:
            raise ValueError(f"{capture.names[view]}: only {len(zs)} points with positive depth, cannot bound it")
        llff = opengl_to_llff(c2w[None])[0]
        hwf = np.array([[height], [width], [capture.focal]], dtype=np.float64)
        bounds = [np.percentile(zs, 0.1), np.percentile(zs, 99.9)]
        rows.append(np.concatenate([np.concatenate([llff, hwf], axis=1).ravel(), bounds]))
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "poses_bounds.npy", np.stack(rows))
    folder = out / f"images_{downscale}"
    folder.mkdir(exist_ok=True)
    size = (width // downscale, height // downscale)
    for name, image in zip(capture.names, capture.images):
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        Image.fromarray(small).save(folder / (Path(name).stem + ".jpg"), quality=quality)


def main() -> None:
    """Command line: ``bundler BUNDLE_OUT IMAGE_DIR OUT`` or ``transforms TRANSFORMS_JSON ROOT OUT``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["bundler", "transforms"])
    parser.add_argument("source", type=Path, help="bundle.out or transforms.json")
    parser.add_argument("root", type=Path, help="folder of the images (bundler) or of transforms.json's paths")
    parser.add_argument("out", type=Path)
    parser.add_argument("--downscale", type=int, default=8)
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the written images")
    parser.add_argument("--work-scale", type=float, default=0.5, help="image scale for the SIFT check")
    args = parser.parse_args()
    capture = (
        read_bundler(args.source, args.root) if args.kind == "bundler" else read_transforms(args.source, args.root)
    )
    sift, sampson_median = sift_depths(capture, args.work_scale)
    print(
        f"{len(capture.names)} views, focal {capture.focal:.2f} px at {capture.images[0].shape[1]}x"
        f"{capture.images[0].shape[0]}; median Sampson distance of SIFT matches under the poses: "
        f"{sampson_median:.2f} px (full resolution)"
    )
    depths = bundler_depths(capture) if capture.points is not None else sift
    write_llff(capture, depths, args.out, args.downscale, args.quality)
    bounds = np.load(args.out / "poses_bounds.npy")[:, 15:]
    print(f"near {bounds[:, 0].min():.3f} .. far {bounds[:, 1].max():.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
