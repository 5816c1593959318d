"""The ``sam`` and ``mobilesam`` backends through their real loading code, the multimask choice, checkpoint errors,
and ``auto``.

No real SAM or MobileSAM weights are used anywhere here: mask quality with real weights is not measured by these
tests (the checkpoints are randomly initialised vit_b / vit_t models saved to temporary files).
"""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pytest
import torch

from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.segmentation import sam_weights as W
from spin_nerfstudio.segmentation.config import SegmenterConfig
from spin_nerfstudio.segmentation.sam import SamSegmenter, choose_mask, interior_points


def _disk(h, w, cx, cy, r):
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


# --- multimask choice -----------------------------------------------------------------------------------------


def test_choose_mask_prefers_candidates_that_respect_the_clicks():
    h, w = 40, 60
    obj = _disk(h, w, 30, 20, 10)
    part = obj & (np.arange(w)[None, :] < 30)  # half the object: misses the second positive click
    everything = np.ones((h, w), bool)  # contains the negative click
    masks = np.stack([part, obj, everything])
    pos, neg = np.array([[25.0, 20.0], [35.0, 20.0]]), np.array([[2.0, 2.0]])
    # SAM's own scores favour the wrong candidates; the clicks must win.
    assert choose_mask(masks, np.array([0.9, 0.5, 0.99]), pos, neg) == 1
    # Without the negative click the whole-image candidate respects the clicks too, but covers everything.
    assert choose_mask(masks, np.array([0.9, 0.5, 0.99]), pos, np.zeros((0, 2))) == 1
    # When several candidates respect every click, the predicted IoU decides.
    bigger = _disk(h, w, 30, 20, 14)
    assert choose_mask(np.stack([obj, bigger, part]), np.array([0.7, 0.8, 0.99]), pos, neg) == 1
    # With a propagated prior, agreement with the prior decides among consistent candidates.
    assert choose_mask(np.stack([obj, bigger]), np.array([0.7, 0.8]), pos[:1], neg, prior=obj) == 0


def test_interior_points_are_inside_and_spread():
    mask = np.zeros((50, 80), bool)
    mask[10:40, 5:75] = True
    pts = interior_points(mask, 3)
    assert pts.shape == (3, 2)
    assert all(mask[int(y), int(x)] for x, y in pts)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    assert d[np.triu_indices(3, 1)].min() > 15  # spread along the long side
    assert interior_points(np.zeros((5, 5), bool)).shape == (0, 2)


# --- the real loader and predictor with a randomly initialised vit_b (SAM) or vit_t (MobileSAM) -----------------


def _random_checkpoint(tmp_path_factory, kind: str):
    if kind == "vit_t":
        from mobile_sam import sam_model_registry
    else:
        from segment_anything import sam_model_registry

    torch.manual_seed(0)
    model = sam_model_registry[kind](checkpoint=None)
    path = tmp_path_factory.mktemp("sam") / "random_weights.pth"
    torch.save(model.state_dict(), path)
    return path, model.mask_decoder.iou_prediction_head.layers[0].weight.detach().clone()


@pytest.fixture(scope="module")
def random_vit_b(tmp_path_factory):
    return _random_checkpoint(tmp_path_factory, "vit_b")


@pytest.fixture(scope="module")
def random_vit_t(tmp_path_factory):
    return _random_checkpoint(tmp_path_factory, "vit_t")


@pytest.mark.parametrize("backend, kind", [("sam", "vit_b"), ("mobilesam", "vit_t")])
def test_sam_segmenter_with_random_weights(request, capsys, backend: str, kind: str):
    path, reference_weight = request.getfixturevalue(f"random_{kind}")
    seg = SegmenterConfig(backend=backend, checkpoint=path).setup(device="cpu")  # type: ignore[arg-type]
    assert f"segmenter backend '{backend}' ({kind}, configured checkpoint" in capsys.readouterr().out
    assert isinstance(seg, SamSegmenter) and seg.model_type == kind and seg.name == backend
    assert seg.description.startswith("MobileSAM vit_t from" if kind == "vit_t" else "SAM vit_b from")
    loaded = seg.predictor.model.mask_decoder.iou_prediction_head.layers[0].weight
    assert torch.equal(loaded, reference_weight)  # the weights came from the file

    calls = []
    predict = seg.predictor.predict

    def spy(**kwargs):
        out = predict(**kwargs)
        calls.append((kwargs, out))
        return out

    seg.predictor.predict = spy
    h, w = 48, 64
    image = np.zeros((h, w, 3), np.uint8)
    image[...] = (90, 100, 110)
    obj = _disk(h, w, 32, 24, 10)
    image[obj] = (220, 40, 20)
    pos, neg = np.array([[32.0, 24.0], [36.0, 26.0]]), np.array([[3.0, 3.0]])
    mask = seg.segment(image, pos, neg)
    assert mask.dtype == bool and mask.shape == (h, w)
    kwargs, (masks, scores, low_res) = calls[0]
    np.testing.assert_array_equal(kwargs["point_coords"], [[32, 24], [36, 26], [3, 3]])
    np.testing.assert_array_equal(kwargs["point_labels"], [1, 1, 0])
    assert kwargs["multimask_output"] is True and kwargs["box"] is None
    assert masks.shape == (3, h, w) and scores.shape == (3,) and low_res.shape == (3, 256, 256)
    assert np.array_equal(mask, masks[choose_mask(masks, scores, pos, neg)])

    # A propagated prior in the same image: the embedding is reused; box and points come from the prior.
    prior = _disk(h, w, 30, 22, 8)
    refined = seg.refine(image, prior)
    assert seg.embeddings_computed == 1
    kwargs, (masks, scores, _) = calls[1]
    x0, y0, x1, y1 = kwargs["box"]
    ys, xs = np.nonzero(prior)
    assert x0 < xs.min() and y0 < ys.min() and x1 > xs.max() and y1 > ys.max()
    assert all(prior[int(y), int(x)] for x, y in kwargs["point_coords"]) and set(kwargs["point_labels"]) == {1}
    candidates = [m for m in masks] + [prior]
    assert refined.shape == (h, w) and any(np.array_equal(refined, c) for c in candidates)


# --- checkpoint errors ------------------------------------------------------------------------------------------


def _fake_sam_state(width: int, depth: int) -> dict:
    state = {
        W.PATCH_KEY: torch.zeros(width, 3, 1, 1),
        "prompt_encoder.point_embeddings.0.weight": torch.zeros(1, 4),
        "mask_decoder.iou_prediction_head.layers.0.weight": torch.zeros(4, 4),
    }
    for b in range(depth):
        state[f"image_encoder.blocks.{b}.norm1.weight"] = torch.zeros(1)
    return state


def test_checkpoint_errors_are_one_line(tmp_path):
    def error(path, model_type="auto"):
        with pytest.raises(SpinInputError) as info:
            SegmenterConfig(backend="sam", checkpoint=path, model_type=model_type).resolve()
        message = str(info.value)
        assert "\n" not in message and str(path) in message
        return message

    assert "SAM checkpoint not found" in error(tmp_path / "missing.pth")
    (tmp_path / "garbage.pth").write_bytes(b"this is not a checkpoint")
    assert "not a readable PyTorch checkpoint" in error(tmp_path / "garbage.pth")
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "other.pth")
    assert "not a SAM checkpoint" in error(tmp_path / "other.pth")
    torch.save(_fake_sam_state(1280, 32), tmp_path / "big.pth")
    message = error(tmp_path / "big.pth", "vit_b")
    assert "is a vit_h SAM checkpoint but model_type 'vit_b' was asked" in message
    torch.save(_fake_sam_state(768, 12), tmp_path / "sam_vit_h_renamed.pth")
    assert "the file name says vit_h but the checkpoint holds a vit_b model" in error(
        tmp_path / "sam_vit_h_renamed.pth"
    )
    assert W.read_checkpoint(tmp_path / "big.pth")[1] == "vit_h"  # auto reads the type from the tensors


# --- auto: cache, download switch, verified download --------------------------------------------------------


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def test_auto_falls_back_to_grabcut_without_checkpoint(empty_cache, monkeypatch, capsys):
    monkeypatch.setenv(W.NO_DOWNLOAD_ENV, "1")
    assert W.cache_dir() == empty_cache
    assert SegmenterConfig(backend="auto").resolve() == ("grabcut", None, "no SAM checkpoint")
    out = capsys.readouterr().out
    assert "no SAM checkpoint (downloads are switched off (SPIN_NERF_NO_DOWNLOAD=1))" in out
    assert "using the offline segmenter 'grabcut'" in out
    with pytest.raises(SpinInputError, match="segmenter 'sam': no checkpoint"):
        SegmenterConfig(backend="sam").resolve()

    # A failed download (as with no network) is one line too, then grabcut.
    monkeypatch.delenv(W.NO_DOWNLOAD_ENV)

    def offline(kind, url=None, expected=None):
        raise W.DownloadError(f"{W.OFFICIAL[kind].url}: <urlopen error [Errno -3] Temporary failure>")

    monkeypatch.setattr(W, "download_checkpoint", offline)
    assert SegmenterConfig(backend="auto", download=True).resolve()[0] == "grabcut"
    lines = [line for line in capsys.readouterr().out.splitlines() if "no SAM checkpoint" in line]
    assert len(lines) == 1 and "sam_vit_b_01ec64.pth" in lines[0]


def test_auto_uses_a_cached_checkpoint(empty_cache, monkeypatch):
    monkeypatch.setenv(W.NO_DOWNLOAD_ENV, "1")
    empty_cache.mkdir(parents=True)
    torch.save(_fake_sam_state(768, 12), empty_cache / W.OFFICIAL["vit_b"].filename)
    backend, path, reason = SegmenterConfig(backend="auto").resolve()
    assert (backend, path, reason) == ("sam", empty_cache / "sam_vit_b_01ec64.pth", "cached checkpoint")


def test_download_is_verified(empty_cache, monkeypatch, tmp_path):
    monkeypatch.delenv(W.NO_DOWNLOAD_ENV, raising=False)
    source = tmp_path / "served.pth"
    torch.save(_fake_sam_state(768, 12), source)
    assert zipfile.is_zipfile(source)
    data = source.read_bytes()
    good = W.OfficialCheckpoint(
        "vit_b", "sam_vit_b_test.pth", len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
    )
    bad = W.OfficialCheckpoint("vit_b", "sam_vit_b_test.pth", len(data), "0" * 64, good.md5)
    with pytest.raises(W.DownloadError, match="checksum mismatch"):
        W.download_checkpoint("vit_b", url=source.as_uri(), expected=bad)
    assert not any(empty_cache.iterdir())  # nothing half-verified is left in the cache
    short = W.OfficialCheckpoint("vit_b", "sam_vit_b_test.pth", len(data) + 1, good.sha256, good.md5)
    with pytest.raises(W.DownloadError, match=f"{len(data)} bytes, expected {len(data) + 1}"):
        W.download_checkpoint("vit_b", url=source.as_uri(), expected=short)
    path = W.download_checkpoint("vit_b", url=source.as_uri(), expected=good)
    assert path == empty_cache / "sam_vit_b_test.pth" and path.read_bytes() == data
    monkeypatch.setenv(W.NO_DOWNLOAD_ENV, "1")
    with pytest.raises(W.DownloadError, match="switched off"):
        W.download_checkpoint("vit_b", url=source.as_uri(), expected=good)


def test_official_table_matches_the_official_names():
    for kind, c in W.OFFICIAL.items():
        assert c.filename == f"sam_{kind}_{c.md5[:6]}.pth" and len(c.sha256) == 64


# --- MobileSAM (vit_t): type read from the checkpoint, errors, auto ----------------------------------------------


def test_mobilesam_checkpoint_type_and_errors(random_vit_t, random_vit_b, tmp_path):
    path = random_vit_t[0]
    assert W.read_checkpoint(path)[1] == "vit_t"  # auto reads the type from the tensors
    # whatever the backend asked, a vit_t checkpoint runs MobileSAM (and a SAM one SAM)
    assert SegmenterConfig(backend="sam", checkpoint=path).resolve() == ("mobilesam", path, "configured checkpoint")
    assert SegmenterConfig(backend="auto", checkpoint=path).resolve()[0] == "mobilesam"

    def error(config: SegmenterConfig) -> str:
        with pytest.raises(SpinInputError) as info:
            config.resolve()
        assert "\n" not in str(info.value)
        return str(info.value)

    message = error(SegmenterConfig(backend="mobilesam", checkpoint=random_vit_b[0]))
    assert message.startswith(f"{random_vit_b[0]}: this is a vit_b SAM checkpoint but model_type 'vit_t' was asked")
    assert "backend mobilesam" in error(SegmenterConfig(backend="sam", checkpoint=path, model_type="vit_b"))
    assert error(SegmenterConfig(backend="mobilesam", model_type="vit_b")).startswith(
        "--pipeline.segmenter.model-type vit_b: the mobilesam backend runs vit_t only"
    )
    state = torch.load(path, weights_only=True)
    broken = {k: v for k, v in state.items() if not k.startswith("image_encoder.layers.3.")}
    torch.save(broken, tmp_path / "three_stages.pt")
    assert "not a MobileSAM vit_t checkpoint (TinyViT encoder with 3 stages" in error(
        SegmenterConfig(backend="mobilesam", checkpoint=tmp_path / "three_stages.pt")
    )
    # the right type but a wrong tensor: the real loader says so in one line
    state["mask_decoder.iou_prediction_head.layers.0.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "mobile_sam.pt")
    with pytest.raises(SpinInputError) as info:
        SegmenterConfig(backend="mobilesam", checkpoint=tmp_path / "mobile_sam.pt").setup(device="cpu")
    assert str(info.value).startswith(f"{tmp_path / 'mobile_sam.pt'}: does not load into SAM vit_t (")
    assert "\n" not in str(info.value)
    (tmp_path / "garbage.pt").write_bytes(b"no")
    assert "not a readable PyTorch checkpoint" in error(
        SegmenterConfig(backend="mobilesam", checkpoint=tmp_path / "garbage.pt")
    )
    assert "SAM checkpoint not found" in error(SegmenterConfig(backend="mobilesam", checkpoint=tmp_path / "nope.pt"))


def test_mobilesam_from_the_cache(random_vit_t, empty_cache, monkeypatch, capsys):
    monkeypatch.setenv(W.NO_DOWNLOAD_ENV, "1")
    message = ""
    with pytest.raises(SpinInputError) as info:
        SegmenterConfig(backend="mobilesam").resolve()
    message = str(info.value)
    assert message.startswith("segmenter 'mobilesam': no checkpoint") and "never downloaded" in message
    assert SegmenterConfig(backend="auto", model_type="vit_t").resolve() == ("grabcut", None, "no MobileSAM checkpoint")
    assert "no MobileSAM checkpoint (mobile_sam.pt not in" in " ".join(capsys.readouterr().out.split())
    empty_cache.mkdir(parents=True)
    mobile = empty_cache / W.MOBILE_SAM_FILE
    mobile.symlink_to(random_vit_t[0])
    assert SegmenterConfig(backend="mobilesam").resolve() == ("mobilesam", mobile, "cached checkpoint")
    assert SegmenterConfig(backend="auto").resolve() == ("mobilesam", mobile, "cached checkpoint")
    # with a SAM checkpoint cached too: auto takes MobileSAM on a CPU and SAM on CUDA; backend sam takes SAM
    torch.save(_fake_sam_state(768, 12), empty_cache / W.OFFICIAL["vit_b"].filename)
    sam = empty_cache / W.OFFICIAL["vit_b"].filename
    assert SegmenterConfig(backend="auto").resolve("cpu")[:2] == ("mobilesam", mobile)
    assert SegmenterConfig(backend="auto").resolve("cuda")[:2] == ("sam", sam)
    assert SegmenterConfig(backend="sam").resolve("cpu")[:2] == ("sam", sam)
