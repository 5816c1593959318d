"""The SPIn-NeRF evaluation protocol's numbers, on images whose answers are known."""

from __future__ import annotations

import math
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from spin_nerfstudio.evaluation.benchmark import write_table
from spin_nerfstudio.evaluation.protocol import fid, find_inception_weights, lpips_map, score_views
from spin_nerfstudio.prompts import SpinInputError

H, W = 40, 60


def _case(delta: float = 0.1):
    """Ground truth 0.5 grey with a texture; the render is off by ``delta`` inside a 10x20 box only."""
    rng = np.random.default_rng(0)
    gt8 = np.clip(128 + rng.integers(-20, 20, size=(H, W, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((H, W), bool)
    mask[10:20, 20:40] = True
    pred = gt8.astype(np.float64) / 255.0
    pred[mask] += delta
    return pred, gt8, mask


def test_masked_psnr_is_inside_pixels_and_bbox_is_the_crop():
    pred, gt8, mask = _case(0.1)
    row = score_views([pred], [gt8], [mask])[0]
    assert row["masked_psnr"] == pytest.approx(20.0, abs=1e-6)  # MSE 0.01 inside the mask
    frac = mask.mean()
    assert row["psnr"] == pytest.approx(20.0 - 10 * math.log10(frac), abs=1e-6)
    # The box is the mask itself (10x20 >= 16 px only in x): grown to 16 rows, so 10/16 of it is off by 0.1.
    assert row["bbox_psnr"] == pytest.approx(20.0 - 10 * math.log10(10 / 16), abs=1e-6)
    assert row["ssim"] > row["bbox_ssim"] > row["masked_ssim"]
    assert row["lpips"] is None and row["masked_lpips"] is None  # no perceptual network given


def test_identical_images_score_perfectly_and_an_empty_mask_gives_null():
    pred, gt8, mask = _case(0.0)
    row = score_views([gt8.astype(np.float64) / 255], [gt8], [mask])[0]
    assert math.isinf(row["psnr"]) and row["ssim"] == pytest.approx(1.0)
    assert row["masked_ssim"] == pytest.approx(1.0)
    empty = score_views([pred], [gt8], [np.zeros((H, W), bool)])[0]
    assert empty["masked_psnr"] is None and empty["bbox_psnr"] is None and empty["masked_ssim"] is None


def test_spatial_lpips_map_matches_lpips_and_localises_the_error():
    from spin_nerfstudio.model.perceptual import PerceptualLoss

    torch.manual_seed(0)
    perceptual = PerceptualLoss("alex", min_size=64)  # random backbone offline: fine for the arithmetic
    pred, gt8, mask = _case(0.3)
    gt = gt8 / 255.0
    lmap = lpips_map(perceptual, pred, gt)
    assert lmap.shape == (H, W)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    full = float(perceptual(t(pred), t(gt)))
    assert lmap.mean() == pytest.approx(full, rel=0.15)
    assert lmap[mask].mean() > 1.1 * lmap[~mask].mean()  # a random backbone's map is broad, but peaks at the error
    assert np.abs(lpips_map(perceptual, gt, gt)).max() < 1e-6
    row = score_views([pred], [gt8], [mask], perceptual)[0]
    assert row["lpips"] == pytest.approx(full, rel=1e-5)
    assert row["masked_lpips"] == pytest.approx(float(lmap[mask].mean()), rel=1e-5)
    assert row["bbox_lpips"] > row["lpips"]


def test_st_lpips_keys_inside_the_mask_and_on_the_crop():
    from spin_nerfstudio.model.perceptual import STLPIPS

    st = STLPIPS("alex")  # the trained weights from the stlpips-pytorch wheel
    pred, gt8, mask = _case(0.3)
    gt = gt8 / 255.0
    row = score_views([pred], [gt8], [mask], st_lpips=st)[0]
    assert row["lpips"] is None and row["masked_lpips"] is None  # LPIPS and ST-LPIPS are kept apart
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    smap = st.spatial(t(pred), t(gt))[0].numpy()
    assert smap.shape == (H, W)
    assert row["st_lpips"] == pytest.approx(float(st(t(pred), t(gt))), rel=1e-5)
    assert row["masked_st_lpips"] == pytest.approx(float(smap[mask].mean()), rel=1e-5)
    assert row["masked_st_lpips"] > 1.5 * float(smap[~mask].mean())  # peaks at the error (deep layers spread it)
    assert row["bbox_st_lpips"] > row["st_lpips"] > 0
    same = score_views([gt], [gt8], [mask], st_lpips=st)[0]
    assert same["st_lpips"] == pytest.approx(0.0, abs=1e-6) and same["masked_st_lpips"] == pytest.approx(0.0, abs=1e-6)


def _random_inception(path: Path) -> Path:
    """A randomly initialised Inception v3 state dict in torch-fidelity's format (He-initialised convolutions)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    target = "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url"
    with mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None):
        with mock.patch(target, lambda *a, **k: {}):  # build the architecture only; nothing is fetched
            net = FeatureExtractorInceptionV3("random", ["2048"])
    torch.manual_seed(0)
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return path


def test_fid_loads_weights_from_a_path_and_measures_set_distance(tmp_path):
    weights = _random_inception(tmp_path / "inception.pth")
    rng = np.random.default_rng(1)
    a = [(rng.random((24, 32, 3)) * 255).astype(np.uint8) for _ in range(2)]
    b = [np.full((24, 32, 3), 128, np.uint8), np.full((20, 30, 3), 30, np.uint8)]
    # One call (4 Inception passes at 299 px: slow on a CPU); the weights come from the file, nothing is fetched.
    with mock.patch(
        "torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url",
        side_effect=AssertionError("download attempted"),
    ):
        value = fid(a, b, weights)
    assert math.isfinite(value) and value > 1.0


def test_fid_weights_must_exist_and_be_a_plain_state_dict(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "cache"))
    assert find_inception_weights() is None  # nothing cached: the caller reports null, never downloads
    with pytest.raises(SpinInputError, match=r"nope.pth: Inception weights file not found"):
        find_inception_weights(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"net": mock.Mock}, bad)  # a pickled class, not tensors
    img = [np.zeros((8, 8, 3), np.uint8)] * 2
    with pytest.raises(SpinInputError, match=r"bad.pth: not a plain PyTorch state dict"):
        fid(img, img, bad)


def test_table_has_a_row_per_scene_and_a_mean_row(tmp_path):
    rows = [
        {
            "scene": "a",
            "train_views": 60,
            "test_views": 40,
            "psnr": 20.0,
            "lpips": None,
            "mask_iou": 0.9,
            "train_s": 10,
        },
        {
            "scene": "b",
            "train_views": 60,
            "test_views": 40,
            "psnr": 24.0,
            "lpips": None,
            "mask_iou": 0.8,
            "train_s": 30,
        },
        {"scene": "c", "error": "c: ns-train failed"},
    ]
    md = write_table(rows, tmp_path)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| scene | train/test views | PSNR |")
    assert lines[2].startswith("| a | 60/40 | 20.00 |") and lines[3].startswith("| b | 60/40 | 24.00 |")
    assert "failed: c: ns-train failed" in lines[4]
    assert lines[5].startswith("| **mean** |  | **22.00** |") and "**0.8500**" in lines[5] and "**n/a**" in lines[5]
    csv = (tmp_path / "benchmark.csv").read_text().splitlines()
    assert csv[0].startswith("scene,train_views,test_views,psnr,ssim,lpips,")
    assert csv[-1].startswith("mean,,,22.0,,,") and len(csv) == 5
