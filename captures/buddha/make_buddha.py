"""Builds captures/buddha (LLFF) from alicevision/dataset_buddha: grayscale images + AliceVision P matrices, all 67
views sorted by azimuth around the point the optical axes converge on.

Usage: python make_buddha.py OUT [--check-only]
Inputs (extracted from the git mirror beforehand): /tmp/buddha/000NN._g.png (commit 368e726), /tmp/buddha/000NN_P.txt
(HEAD 9067f67 = 530b17c), /tmp/buddha/oldP/000NN_P.txt (commit 368e726).
"""

import sys
from pathlib import Path

import cv2
import numpy as np
import scipy.linalg as sl
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from spin_nerfstudio.data.llff import opengl_to_llff  # noqa: E402
from spin_nerfstudio.data.pose_check import check_poses  # noqa: E402

SRC = Path("/tmp/buddha")
# Upright wide views, in azimuth order around the head (front -> left side -> back), about 220 degrees.
ALL = sorted(int(q.name[:5]) for q in SRC.glob("*._g.png"))


def _azimuth_order(views):
    """The views sorted by azimuth around the point nearest to every optical axis (the head)."""
    cs, ds = [], []
    for v in views:
        k, r, t = decompose(np.loadtxt(SRC / f"{v:05d}_P.txt"))
        cs.append(-r.T @ t)
        ds.append(r.T @ np.array([0.0, 0.0, 1.0]))
    cs, ds = np.array(cs), np.array(ds)
    a = sum(np.eye(3) - np.outer(d, d) for d in ds)
    b = sum((np.eye(3) - np.outer(d, d)) @ c for c, d in zip(cs, ds))
    focus = np.linalg.solve(a, b)
    up = -np.mean(ds, 0)  # cameras look down at the table on average
    up /= np.linalg.norm(up)
    e1 = np.cross(up, [1.0, 0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    rel = cs - focus
    az = np.arctan2(rel @ e2, rel @ e1)
    return [v for _, v in sorted(zip(az, views))]


VIEWS = None
OUT_W, OUT_H = 240, 135  # 2736 x 1540 / 11.4


def decompose(p):
    """P = K [R | t] (OpenCV camera: x right, y down, z forward) -> K (K[2,2] = 1), R, t."""
    k, r = sl.rq(p[:, :3])
    s = np.diag(np.sign(np.diag(k)))
    k, r = k @ s, s @ r
    t = np.linalg.solve(k, p[:, 3])
    if np.linalg.det(r) < 0:
        r, t = -r, -t
    return k / k[2, 2], r, t


def load(views, pdir):
    ks, c2ws, imgs = [], [], []
    for v in views:
        k, r, t = decompose(np.loadtxt(pdir / f"{v:05d}_P.txt"))
        ks.append(k)
        c2w_cv = np.concatenate([r.T, (-r.T @ t)[:, None]], axis=1)
        c2ws.append(c2w_cv)
        imgs.append(np.asarray(Image.open(SRC / f"{v:05d}._g.png").convert("L")))
    return np.array(ks), np.array(c2ws), imgs


def projections(ks, c2ws, scale, shift=0.0):
    """Pixel-index projection matrices at image scale `scale`; `shift` adds to the principal point first."""
    out = []
    for k, c2w in zip(ks, c2ws):
        kk = k.copy()
        kk[0, 2] += shift
        kk[1, 2] += shift
        # full-res pixel-index coords x -> scaled coords (x + 0.5) * s - 0.5
        a = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])
        r, c = c2w[:, :3], c2w[:, 3]
        out.append(a @ kk @ np.concatenate([r.T, (-r.T @ c)[:, None]], axis=1))
    return out


def main():
    global VIEWS
    VIEWS = _azimuth_order(ALL)
    print("order", VIEWS)
    out = Path(sys.argv[1])
    check_only = "--check-only" in sys.argv
    scale = 0.25
    for name, pdir in () if not check_only else (("HEAD P", SRC), ("old P", SRC / "oldP")):
        ks, c2ws, imgs = load(VIEWS, pdir)
        small = [
            cv2.cvtColor(cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2RGB)
            for im in imgs
        ]
        for shift in (0.0, -0.5):
            d, depths = check_poses(small, projections(ks, c2ws, scale, shift), gap=2)
            print(
                f"{name} shift {shift}: {len(d)} matches, median Sampson {np.median(d) / scale:.2f} px full-res, "
                f"share<1px@work {np.mean(d < 1.0):.2f}"
            )
        print(
            "  f",
            ks[:, 0, 0].min(),
            ks[:, 0, 0].max(),
            "cx",
            ks[:, 0, 2].min(),
            ks[:, 0, 2].max(),
            "cy",
            ks[:, 1, 2].min(),
            ks[:, 1, 2].max(),
            "skew",
            np.abs(ks[:, 0, 1]).max(),
            "fy/fx",
            (ks[:, 1, 1] / ks[:, 0, 0]).min(),
            (ks[:, 1, 1] / ks[:, 0, 0]).max(),
        )
    if check_only:
        return

    ks, c2ws, imgs = load(VIEWS, SRC)
    h, w = imgs[0].shape
    focal = float(np.mean(ks[:, 0, 0]))
    cx, cy = float(np.mean(ks[:, 0, 2])), float(np.mean(ks[:, 1, 2]))
    # Resample so the principal point (pixel-index coords) lands on the image centre ((w-1)/2, (h-1)/2).
    dx, dy = cx - (w - 1) / 2, cy - (h - 1) / 2
    print(f"focal {focal:.3f}, principal point ({cx:.3f}, {cy:.3f}); shift ({dx:.3f}, {dy:.3f}) px")
    warp = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]])
    centred = [cv2.warpAffine(im, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for im in imgs]

    # Depth bounds: SIFT matches between neighbouring views, triangulated with the poses (work scale 0.25).
    small = [
        cv2.cvtColor(cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2RGB)
        for im in centred
    ]
    kc = np.array([[focal, 0, (w - 1) / 2], [0, focal, (h - 1) / 2], [0, 0, 1.0]])
    d, depths = check_poses(small, projections([kc] * len(VIEWS), c2ws, scale), gap=3)
    print(f"after centring: median Sampson {np.median(d) / scale:.2f} px full-res ({len(d)} matches)")

    rows = []
    for i, c2w_cv in enumerate(c2ws):
        zs = np.array([z for z in depths[i] if z > 0])
        if len(zs) < 20:  # a few close-ups match too little to bound their depth
            print("few depths", VIEWS[i], len(zs))
            zs = np.array([1.0, 15.0]) if len(zs) < 2 else zs
        c2w_gl = c2w_cv * np.array([1.0, -1.0, -1.0, 1.0])
        llff = opengl_to_llff(c2w_gl[None])[0]
        hwf = np.array([[h], [w], [focal]], dtype=np.float64)
        near, far = np.percentile(zs, 0.1), np.percentile(zs, 99.9)
        rows.append(np.concatenate([np.concatenate([llff, hwf], axis=1).ravel(), [near, far]]))
        print(f"  view {VIEWS[i]:2d}: {len(zs)} depths, near {near:.3f} far {far:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "poses_bounds.npy", np.stack(rows).astype(np.float64))
    folder = out / "images_8"
    folder.mkdir(exist_ok=True)
    for i, (v, im) in enumerate(zip(VIEWS, centred)):
        small = cv2.resize(im, (OUT_W, OUT_H), interpolation=cv2.INTER_AREA)
        Image.fromarray(small).convert("RGB").save(folder / f"{i:02d}_buddha{v:05d}.jpg", quality=90)
    print("wrote", out)


if __name__ == "__main__":
    main()
