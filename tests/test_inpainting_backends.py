"""Tests of the inpainting backends: the biharmonic offline default, LaMa's loading and pre/post-processing through a
tiny TorchScript stand-in, and how ``auto`` chooses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from spin_nerfstudio.data.synthetic import SceneSpec, load_ground_truth, make_scene
from spin_nerfstudio.evaluation.metrics import psnr
from spin_nerfstudio.inpainting import lama
from spin_nerfstudio.inpainting.biharmonic import BiharmonicInpainter, biharmonic_fill
from spin_nerfstudio.inpainting.config import InpainterConfig
from spin_nerfstudio.inpainting.lama import LamaInpainter, check_torchscript
from spin_nerfstudio.inpainting.select import SelectingInpainter, decoy_masks
from spin_nerfstudio.inpainting.telea import TeleaInpainter
from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.segmentation.propagate import dilate

# --- the stand-in LaMa: same calling convention as big-lama.pt ------------------------------------------------------


class InvertInside(nn.Module):
    """Returns ``1 - image`` on masked pixels and the image elsewhere; checks LaMa's input contract."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        torch._assert(image.dim() == 4 and image.shape[0] == 1 and image.shape[1] == 3, "image must be [1,3,H,W]")
        torch._assert(mask.dim() == 4 and mask.shape[1] == 1, "mask must be [1,1,H,W]")
        torch._assert(image.shape[2] % 8 == 0 and image.shape[3] % 8 == 0, "not padded to a multiple of 8")
        torch._assert(image.shape[2:] == mask.shape[2:], "image and mask sizes differ")
        torch._assert(not mask.is_floating_point(), "mask must hold integers")
        torch._assert(bool(((mask == 0) | (mask == 1)).all()), "mask must be 0/1")
        torch._assert(bool((image >= 0).all()) and bool((image <= 1).all()), "image must be in [0, 1]")
        m = mask.to(image.dtype)
        return image * (1 - m) + (1 - image) * m


class WrongShape(nn.Module):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image[:, :1]


@pytest.fixture(scope="module")
def lama_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lama") / "tiny-lama.pt"
    torch.jit.save(torch.jit.script(InvertInside()), str(path))
    return path


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Torch hub cache pointed at an empty folder, LAMA_MODEL unset, downloads off."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv("LAMA_MODEL", raising=False)
    monkeypatch.setenv("SPIN_NERF_NO_DOWNLOAD", "1")
    return hub


def flat(capsys) -> str:
    """Captured stdout with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().out.split())


def odd_image(h: int = 45, w: int = 61, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def odd_mask(h: int = 45, w: int = 61) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[10:30, 20:50] = True
    mask[h - 1, w - 1] = True  # a pixel on the padded corner
    return mask


def test_lama_pads_calls_and_crops_back(lama_file: Path) -> None:
    inpainter = LamaInpainter(lama_file, device="cpu")
    image, mask = odd_image(), odd_mask()
    out = inpainter.inpaint_rgb(image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], image[~mask])
    # the stand-in inverts masked pixels: any shift from padding or cropping, channel swap or scaling shows up here
    assert np.abs(out[mask].astype(int) - (255 - image[mask].astype(int))).max() <= 1
    assert np.array_equal(inpainter.inpaint_rgb(image, np.zeros_like(mask)), image)


def test_lama_depth_goes_through_normalised_disparity(lama_file: Path) -> None:
    rng = np.random.default_rng(1)
    depth = rng.uniform(2.0, 5.0, size=(45, 61)).astype(np.float32)
    mask = odd_mask()
    depth[mask] = np.nan  # unknown inside the hole is fine
    out = LamaInpainter(lama_file, device="cpu").inpaint_depth(depth, mask)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert np.array_equal(out[~mask], depth[~mask])
    # the hole is 0 in normalised disparity; the stand-in turns it into 1, i.e. the largest known disparity
    assert np.allclose(out[mask], depth[~mask].min(), rtol=1e-5)


def test_lama_rejects_bad_depth(lama_file: Path) -> None:
    depth = np.full((16, 16), 3.0, np.float32)
    depth[0, 0] = np.inf
    mask = np.zeros((16, 16), bool)
    mask[5:9, 5:9] = True
    with pytest.raises(ValueError, match="NaN or infinite values outside the mask"):
        LamaInpainter(lama_file, device="cpu").inpaint_depth(depth, mask)


def test_lama_wrong_output_shape_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pt"
    torch.jit.save(torch.jit.script(WrongShape()), str(path))
    with pytest.raises(SpinInputError, match=r"wrong.pt: LaMa model returned \(1, 1, 48, 64\), expected"):
        LamaInpainter(path, device="cpu").inpaint_rgb(odd_image(), odd_mask())


def test_missing_or_non_torchscript_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(SpinInputError, match=r"nope.pt: LaMa checkpoint not found$"):
        LamaInpainter(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a model")
    with pytest.raises(SpinInputError, match=r"junk.pt: not a TorchScript file \(not a zip archive\)"):
        check_torchscript(junk)
    state = tmp_path / "state.pt"
    torch.save(InvertInside().state_dict() | {"w": torch.zeros(2)}, state)
    with pytest.raises(SpinInputError, match=r"state.pt: not a TorchScript file \(a plain torch.save checkpoint\?\)"):
        LamaInpainter(state)
    for err in (SpinInputError,):
        with pytest.raises(err) as info:
            InpainterConfig(backend="lama", checkpoint=state).check()
        assert "\n" not in str(info.value)


def test_auto_prefers_a_configured_checkpoint(lama_file: Path, empty_hub: Path, capsys) -> None:
    inp = InpainterConfig(checkpoint=lama_file).setup()
    assert isinstance(inp, LamaInpainter) and inp.checkpoint == lama_file
    assert f"inpainter backend 'lama' ({lama_file} from --pipeline.inpainter.checkpoint)" in flat(capsys)


def test_auto_uses_lama_model_env_and_a_verified_cache(lama_file: Path, empty_hub: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LAMA_MODEL", str(lama_file))
    assert InpainterConfig().setup().name == "lama"
    assert "from LAMA_MODEL" in flat(capsys)
    monkeypatch.delenv("LAMA_MODEL")
    cached = empty_hub / "checkpoints" / "big-lama.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(lama_file.read_bytes())
    # a cached file that is not the release file is not trusted (downloads off: reported, offline fallback)
    inp = InpainterConfig().setup()
    log = flat(capsys)
    assert inp.name == "select" and "cached file is damaged or not the expected one" in log
    monkeypatch.setattr(lama, "LAMA_SHA256", hashlib.sha256(lama_file.read_bytes()).hexdigest())
    assert InpainterConfig().setup().name == "lama"
    assert "from torch hub cache, SHA-256 verified" in flat(capsys)


def test_auto_falls_back_offline_and_says_why(empty_hub: Path, capsys) -> None:
    inp = InpainterConfig().setup()
    assert isinstance(inp, SelectingInpainter)
    log = flat(capsys)
    assert "inpainter backend 'select' (offline default, no learned weights; biharmonic or Telea colour fill" in log
    assert "downloads are off" in log
    assert isinstance(InpainterConfig(backend="biharmonic").setup(), BiharmonicInpainter)
    with pytest.raises(SpinInputError, match="no LaMa checkpoint: .*downloads are off"):
        InpainterConfig(backend="lama").setup()
    assert isinstance(InpainterConfig(backend="telea").setup(), TeleaInpainter)


def test_auto_downloads_the_release_file_when_allowed(lama_file: Path, empty_hub: Path, monkeypatch, capsys) -> None:
    from spin_nerfstudio import weights

    monkeypatch.setenv("SPIN_NERF_NO_DOWNLOAD", "0")
    calls = []

    def fake_fetch(url: str, dest: Path, sha256: str, **kwargs) -> Path:
        calls.append((url, Path(dest), sha256))
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(lama_file.read_bytes())
        return Path(dest)

    monkeypatch.setattr(weights, "fetch_verified", fake_fetch)
    assert InpainterConfig().setup().name == "select"  # the default never reaches the network
    assert calls == [] and "downloads are off (--pipeline.inpainter.download True allows one)" in flat(capsys)
    assert InpainterConfig(download=True).setup().name == "lama"
    assert calls == [(lama.LAMA_URL, empty_hub / "checkpoints" / "big-lama.pt", lama.LAMA_SHA256)]
    assert "downloaded, SHA-256 verified" in flat(capsys)

    def failing(*args, **kwargs) -> Path:
        raise weights.WeightsError("https://example.invalid: download failed (network unreachable)")

    (empty_hub / "checkpoints" / "big-lama.pt").unlink()
    monkeypatch.setattr(weights, "fetch_verified", failing)
    assert InpainterConfig(download=True).setup().name == "select"
    assert "download failed (network unreachable)" in flat(capsys)
    calls.clear()
    monkeypatch.setattr(weights, "fetch_verified", fake_fetch)
    assert InpainterConfig(download=False).setup().name == "select"
    assert calls == [] and "downloads are off (--pipeline.inpainter.download True allows one)" in flat(capsys)


# --- biharmonic ----------------------------------------------------------------------------------------------------


def test_biharmonic_reproduces_planes_exactly() -> None:
    yy, xx = np.mgrid[:40, :50].astype(np.float64)
    ramp = (0.3 + 0.01 * xx - 0.004 * yy)[..., None]
    mask = np.zeros((40, 50), bool)
    mask[5:35, 8:30] = True
    mask[0:3, 45:50] = True  # touching the image border
    filled = biharmonic_fill(np.where(mask[..., None], 7.0, ramp), mask)
    assert np.abs(filled - ramp).max() < 1e-8
    # depth of a plane: inverse depth is affine in pixels, so the fill is exact in depth too
    depth = (1.0 / ramp[..., 0]).astype(np.float32)
    out = BiharmonicInpainter().inpaint_depth(np.where(mask, np.nan, depth), mask)
    assert np.abs(out[mask] - depth[mask]).max() / depth.max() < 1e-5


def test_biharmonic_coarse_to_fine_matches_direct() -> None:
    rng = np.random.default_rng(0)
    image = (rng.random((30, 40, 3)) * 40 + np.linspace(0, 200, 40)[None, :, None]).astype(np.uint8)
    mask = np.zeros((30, 40), bool)
    mask[6:24, 10:32] = True
    direct = BiharmonicInpainter().inpaint_rgb(image, mask)
    pyramid = BiharmonicInpainter(max_direct=50).inpaint_rgb(image, mask)  # 396 unknowns: coarse-to-fine + CG
    assert np.abs(direct.astype(int) - pyramid.astype(int)).max() <= 1


def test_biharmonic_edge_cases() -> None:
    image = odd_image()
    with pytest.raises(ValueError, match="covers every pixel"):
        BiharmonicInpainter().inpaint_rgb(image, np.ones(image.shape[:2], bool))
    assert np.array_equal(BiharmonicInpainter().inpaint_rgb(image, np.zeros(image.shape[:2], bool)), image)
    depth = np.full((10, 12), 3.0, np.float32)
    depth[0, 0] = np.nan
    mask = np.zeros((10, 12), bool)
    mask[4:6, 4:6] = True
    with pytest.raises(ValueError, match="NaN or infinite values outside the mask"):
        BiharmonicInpainter().inpaint_depth(depth, mask)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("bih_scenes")
    return [load_ground_truth(make_scene(root / f"s{s}", SceneSpec(num_views=6, seed=s), llff=False)) for s in (0, 1)]


def test_biharmonic_beats_telea_on_masked_psnr(scenes) -> None:
    gains = []
    for gt in scenes:
        for image, background, obj in zip(gt["images"], gt["background"], gt["masks"]):
            mask = dilate(obj, 5, 1)
            bg = background / 255.0
            ours = psnr(BiharmonicInpainter().inpaint_rgb(image, mask) / 255.0, bg, mask)
            telea = psnr(TeleaInpainter().inpaint_rgb(image, mask) / 255.0, bg, mask)
            gains.append(ours - telea)
    assert np.mean(gains) > 1.0, gains
    assert min(gains) > 0.0, gains


def test_harmonic_fill_never_overshoots_scattered_values() -> None:
    from spin_nerfstudio.inpainting.biharmonic import harmonic_fill

    rng = np.random.default_rng(2)
    values = rng.uniform(0.2, 0.8, size=(40, 50, 1))
    hole = np.zeros((40, 50), bool)
    hole[5:35, 5:45] = True
    hole[rng.random((40, 50)) < 0.05] = False  # scattered known pixels inside the hole, as seen pixels are
    filled = harmonic_fill(values, hole)
    assert np.array_equal(filled[~hole], values[~hole])
    assert filled[hole].min() >= 0.2 and filled[hole].max() <= 0.8
    # the thin-plate fill through the same scattered pixels rings past them
    plate = biharmonic_fill(values, hole)
    assert plate[hole].min() < 0.2 or plate[hole].max() > 0.8
    yy, xx = np.mgrid[:40, :50].astype(np.float64)
    ramp = (0.1 + 0.01 * xx + 0.005 * yy)[..., None]
    assert np.abs(harmonic_fill(np.where(hole[..., None], 0.0, ramp), hole) - ramp).max() < 1e-9


@pytest.mark.parametrize("make", [BiharmonicInpainter, TeleaInpainter, "lama"], ids=["biharmonic", "telea", "lama"])
def test_every_backend_shares_the_interface_contract(make, lama_file: Path) -> None:
    inpainter = LamaInpainter(lama_file) if make == "lama" else make()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    depth = rng.uniform(1.0, 3.0, (16, 24)).astype(np.float32)
    empty = np.zeros((16, 24), bool)
    mask = empty.copy()
    mask[5:10, 8:14] = True
    # an empty mask gives an equal copy, never the input itself
    for src, out in ((image, inpainter.inpaint_rgb(image, empty)), (depth, inpainter.inpaint_depth(depth, empty))):
        assert out is not src and np.array_equal(out, src)
    # unmasked pixels come back unchanged, masked depth is filled with finite positive values
    rgb = inpainter.inpaint_rgb(image, mask)
    assert rgb.dtype == np.uint8 and np.array_equal(rgb[~mask], image[~mask])
    holed = np.where(mask, np.nan, depth).astype(np.float32)
    filled = inpainter.inpaint_depth(holed, mask)
    assert filled.dtype == np.float32 and np.array_equal(filled[~mask], depth[~mask])
    assert np.isfinite(filled[mask]).all() and (filled[mask] > 0).all()
    # known depth must be finite and positive: the same message from every backend
    for bad, words in ((np.inf, "NaN or infinite"), (0.0, "zero or negative")):
        broken = depth.copy()
        broken[0, 0] = bad
        with pytest.raises(ValueError, match=f"depth has {words} values outside the mask"):
            inpainter.inpaint_depth(broken, mask)


def test_decoy_masks_are_shifted_copies_clear_of_the_hole() -> None:
    mask = np.zeros((40, 60), bool)
    mask[15:25, 5:15] = True  # near the left border: no room on the left
    decoys = decoy_masks(mask, count=4)
    assert len(decoys) == 3  # right, up, down
    grown = dilate(mask, 5, 1)
    for d in decoys:
        assert d.sum() == mask.sum() and not (d & grown).any()
    assert decoy_masks(np.ones((10, 10), bool)) == [] and decoy_masks(np.zeros((10, 10), bool)) == []


def test_select_takes_telea_on_stripes_and_biharmonic_on_shading() -> None:
    h, w = 60, 90
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros((h, w), bool)
    mask[22:38, 37:53] = True
    stripes = np.where(((xx + yy) // 4) % 2 == 0, 200, 40).astype(np.uint8)[..., None].repeat(3, axis=2)
    shading = (60 + 120 * np.sin(xx / 25.0) ** 2 + 0.5 * yy).astype(np.uint8)[..., None].repeat(3, axis=2)
    sel = SelectingInpainter()
    for image, expected in ((stripes, "telea"), (shading, "biharmonic")):
        name, errors = sel.choose(image, mask)
        assert name == expected and errors[expected] < errors["biharmonic" if expected == "telea" else "telea"]
        filled = sel.inpaint_rgb(image, mask)
        direct = {"telea": TeleaInpainter(), "biharmonic": BiharmonicInpainter()}[expected].inpaint_rgb(image, mask)
        assert np.array_equal(filled, direct)  # the real hole gets the chosen fill
    assert sel.choices == {"telea": 1, "biharmonic": 1}
    assert sel.summary() == "2D colour fill chosen on decoy holes beside each mask: biharmonic in 1, telea in 1 view(s)"
    depth = np.full((h, w), 2.0, np.float32)
    assert np.allclose(sel.inpaint_depth(depth, mask), 2.0)  # depth: the biharmonic fill in disparity


@pytest.mark.parametrize("texture", ["tiles", "smooth"])
def test_select_fills_generated_scenes_at_least_as_well_as_either_fill(texture: str, tmp_path: Path) -> None:
    gt = load_ground_truth(make_scene(tmp_path / texture, SceneSpec(num_views=6, texture=texture, seed=1), llff=False))
    scores = {}
    for name, inp in (
        ("select", SelectingInpainter()),
        ("biharmonic", BiharmonicInpainter()),
        ("telea", TeleaInpainter()),
    ):
        err = []
        for img, m, bg in zip(gt["images"], gt["masks"], gt["background"]):
            hole = dilate(m, 5, 2)
            err.append(np.mean((inp.inpaint_rgb(img, hole)[hole].astype(float) - bg[hole]) ** 2))
        scores[name] = 10 * np.log10(255**2 / np.mean(err))
    assert scores["select"] >= max(scores["biharmonic"], scores["telea"]) - 0.3, scores
    if texture == "tiles":
        assert scores["select"] >= scores["biharmonic"] + 1.0, scores  # the sharp texture is not smeared (+1.6 dB)
