"""The field prior: the reference view's unseen fill blended with the field's render (inpainting/field_prior.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_STEPS, ns_train_args, run_cli
from PIL import Image

from spin_nerfstudio.inpainting.field_prior import (
    PRIOR_DIR,
    PRIOR_FILE,
    blend_unseen,
    load_prior,
    object_colour_model,
    object_like_regions,
    save_prior,
)

# A short refit from the tiny run's stage outputs with the prior switched on (it is off by default).
PRIOR_STEPS = dict(TINY_STEPS, total=60)
BLEND_STEP = 30  # field-prior-fraction 0.5 of a 60-step fit that starts at step 0 (reused stages)


def _reference_name(scene: Path) -> str:
    return Path(json.loads((scene / "prompts.json").read_text())["prompts"][0]["image"]).name


def _prior_args(scene: Path, out: Path, source: Path, *extra, steps=PRIOR_STEPS) -> list:
    flags = ("--pipeline.field-prior-fraction", "0.5", "--pipeline.reference-image", _reference_name(scene))
    return ns_train_args(scene, out, "--pipeline.reuse-stages", source, *flags, *extra, steps=steps)


@pytest.fixture(scope="module")
def prior_run(tiny_run: Path, tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prior")
    proc = run_cli(_prior_args(tiny_scene, out, tiny_run), cwd=out, timeout=900)
    run = out / "tiny" / "spin-inpaint-small" / "run"
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (run / "train.log").write_text(proc.stdout + proc.stderr)
    return run


def _fill_render_unseen():
    rng = np.random.default_rng(0)
    fill = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    render = rng.uniform(0, 1, size=(6, 8, 3)).astype(np.float32)
    unseen = np.zeros((6, 8), bool)
    unseen[2:5, 3:7] = True
    return fill, render, unseen


@pytest.mark.parametrize("weight", [0.0, 0.25, 0.5, 1.0])
def test_blend_mixes_only_the_unseen_pixels(weight: float) -> None:
    fill, render, unseen = _fill_render_unseen()
    out = blend_unseen(fill, render, unseen, weight)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[~unseen], fill[~unseen])
    expected = (1 - weight) * fill[unseen].astype(float) + weight * 255 * render[unseen]
    assert np.abs(out[unseen].astype(float) - expected).max() <= 0.5 + 1e-6


def test_blend_keeps_the_fill_where_the_render_disagrees_strongly() -> None:
    fill = np.full((4, 4, 3), 128, np.uint8)
    render = np.full((4, 4, 3), 0.55, np.float32)  # 0.048 above the fill (128 / 255 = 0.502)
    render[1, 2] = (0.9, 0.1, 0.1)  # a red remnant
    unseen = np.ones((4, 4), bool)
    out = blend_unseen(fill, render, unseen, 0.5, max_difference=0.15)
    np.testing.assert_array_equal(out[1, 2], fill[1, 2])
    assert int(out[0, 0, 0]) == round(0.5 * 128 + 0.5 * 0.55 * 255)
    everywhere = blend_unseen(fill, render, unseen, 0.5)  # the default 1.0 blends every unseen pixel
    assert int(everywhere[1, 2, 0]) == round(0.5 * 128 + 0.5 * 0.9 * 255)


def test_blend_refuses_bad_input() -> None:
    fill, render, unseen = _fill_render_unseen()
    with pytest.raises(ValueError, match="shapes differ"):
        blend_unseen(fill, render[:5], unseen, 0.5)
    with pytest.raises(ValueError, match=r"blend weight must be in \[0, 1\], got 1.5"):
        blend_unseen(fill, render, unseen, 1.5)
    render[3, 4, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        blend_unseen(fill, render, unseen, 0.5)


def _object_and_background_pixels():
    rng = np.random.default_rng(1)
    red = np.clip(rng.normal((200, 30, 30), 8, size=(400, 3)), 0, 255).astype(np.uint8)
    grey = np.clip(rng.normal((120, 125, 118), 10, size=(4000, 3)), 0, 255).astype(np.uint8)
    return red, grey


def test_object_colour_model_separates_the_object_from_the_background() -> None:
    red, grey = _object_and_background_pixels()
    colours = np.array([[200, 30, 30], [190, 40, 35], [120, 125, 118], [30, 30, 220]], np.float64) / 255.0
    p = object_colour_model(red, grey)(colours)
    assert p.shape == (4,)
    assert p[0] > 0.95 and p[1] > 0.95  # object colours (one a little off the mean)
    assert p[2] < 0.05  # the background colour
    assert abs(p[3] - 0.5) < 1e-6  # blue: neither class has it
    with pytest.raises(ValueError, match="no object or background pixels"):
        object_colour_model(red[:0], grey)


def _remnant_scene():
    """A grey fill; the render adds a red remnant with a blurred fringe and, apart from it, a lighter patch."""
    fill = np.full((12, 16, 3), (120, 125, 118), np.uint8)
    render = fill / 255.0
    render[4:7, 3:6] = (200 / 255, 30 / 255, 30 / 255)  # the remnant
    render[3, 2:7] = render[7, 2:7] = (150 / 255, 95 / 255, 90 / 255)  # its fringe: departs, not object-coloured
    render[4:8, 10:14] += 0.2  # a lighter patch of background: departs, not object-coloured
    unseen = np.zeros((12, 16), bool)
    unseen[1:11, 1:15] = True
    return fill, render, unseen


def test_object_like_regions_take_the_remnant_with_its_fringe_and_nothing_else() -> None:
    fill, render, unseen = _remnant_scene()
    red, grey = _object_and_background_pixels()
    keep = object_like_regions(fill, render, unseen, object_colour_model(red, grey)(render), 0.1)
    expected = np.zeros_like(unseen)
    expected[4:7, 3:6] = expected[3, 2:7] = expected[7, 2:7] = True
    np.testing.assert_array_equal(keep, expected)
    out = blend_unseen(fill, render, unseen, 0.5, keep_fill=keep)
    np.testing.assert_array_equal(out[keep], fill[keep])  # remnant and fringe keep the fill
    assert (out[5, 11] > fill[5, 11]).all()  # the lighter patch is blended in
    none = object_like_regions(fill, render, unseen, np.zeros(unseen.shape), 0.1)
    assert not none.any()  # no object-coloured pixel: nothing is kept back
    with pytest.raises(ValueError, match="shapes differ: keep_fill"):
        blend_unseen(fill, render, unseen, 0.5, keep_fill=keep[:5])


def test_saved_prior_loads_only_for_its_image_token_and_shape(tmp_path: Path) -> None:
    fill, render, unseen = _fill_render_unseen()
    target = blend_unseen(fill, render, unseen, 0.5)
    path = save_prior(tmp_path, "003.png", target, 812, "tok")
    assert path == tmp_path / PRIOR_DIR / "003.png"
    assert json.loads((tmp_path / PRIOR_FILE).read_text()) == {"image": "003.png", "step": 812, "token": "tok"}
    loaded = load_prior(tmp_path, "003.png", "tok", target.shape)
    assert loaded is not None
    np.testing.assert_array_equal(loaded[0], target)
    assert loaded[1] == 812
    assert load_prior(tmp_path, "004.png", "tok", target.shape) is None  # another reference image
    assert load_prior(tmp_path, "003.png", "other", target.shape) is None  # other stage outputs
    assert load_prior(tmp_path, "003.png", "tok", (12, 16, 3)) is None  # other image size
    assert load_prior(tmp_path / "missing", "003.png", "tok", target.shape) is None


def test_default_run_fits_the_plain_2d_fill(tiny_run: Path) -> None:
    assert not (tiny_run / PRIOR_FILE).exists() and not (tiny_run / PRIOR_DIR).exists()
    assert "held back" not in (tiny_run / "train.log").read_text()


def test_run_holds_back_the_reference_fill_then_blends_it(prior_run: Path, tiny_scene: Path) -> None:
    run = prior_run
    name = _reference_name(tiny_scene)
    log = (run / "train.log").read_text()
    assert f"the reference view's 2D fill is held back until step {BLEND_STEP}" in " ".join(log.split())
    assert "pixels where the render shows the object's colours keep the 2D fill" in " ".join(log.split())
    record = json.loads((run / PRIOR_FILE).read_text())
    assert record["image"] == name and record["step"] == BLEND_STEP
    blended = np.asarray(Image.open(run / PRIOR_DIR / name).convert("RGB")).astype(int)
    target = np.asarray(Image.open(run / "inpainted_targets" / name).convert("RGB")).astype(int)
    removal = np.asarray(Image.open(run / "masks_dilated" / name)) > 0
    seen = np.asarray(Image.open(run / "seen_elsewhere" / name)) > 0
    unseen = removal & ~seen
    assert unseen.sum() > 20
    np.testing.assert_array_equal(blended[~unseen], target[~unseen])  # only the unseen pixels change
    changed = np.abs(blended - target).max(-1)[unseen]
    assert (changed > 0).mean() > 0.5, "the field's render left the 2D fill untouched"


def test_resumed_run_reuses_the_saved_blend(prior_run: Path, tiny_run: Path, tiny_scene: Path, tmp_path) -> None:
    run = tmp_path / "out" / "tiny" / "spin-inpaint-small" / "run"
    shutil.copytree(prior_run, run)
    name = _reference_name(tiny_scene)
    before = (run / PRIOR_DIR / name).read_bytes()
    load = ("--load-dir", run / "nerfstudio_models")
    args = _prior_args(tiny_scene, tmp_path / "out", tiny_run, *load, steps=dict(PRIOR_STEPS, total=70))
    proc = run_cli(args, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = " ".join(proc.stdout.split())
    assert f"field prior: reusing the blended target of {name} made at step {BLEND_STEP}" in out
    assert "held back" not in out  # resumed past the blend: the reference colour is fitted at once
    assert (run / PRIOR_DIR / name).read_bytes() == before
