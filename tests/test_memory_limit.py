"""A dataset whose cache would not fit in memory is refused before training, with the estimate and the fix."""

from __future__ import annotations

import re

import numpy as np
import pytest

from spin_nerfstudio.data import limits
from spin_nerfstudio.data.limits import BYTES_PER_PIXEL, cache_bytes, check_memory, largest_fitting_side
from spin_nerfstudio.prompts import SpinInputError
from spin_nerfstudio.spin_config import spin_inpaint_small_config

GIB = 2**30


def test_cache_estimate_counts_every_view_and_pixel() -> None:
    assert cache_bytes(100, 1008, 567) == 100 * 1008 * 567 * BYTES_PER_PIXEL
    # about 4 GiB for a SPIn-NeRF-size scene at images_4
    assert 4.0 < cache_bytes(100, 1008, 567) / GIB < 4.5


def test_refusal_names_estimate_budget_and_a_side_that_fits(tmp_path) -> None:
    need = cache_bytes(100, 1008, 567)
    with pytest.raises(SpinInputError) as err:
        check_memory(100, (1008, 567), tmp_path, max_memory_gb=1.0)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{tmp_path}: 100 views of 1008x567 need about {need / GIB:.2g} GiB of memory")
    assert "more than the 1 GiB budget (--pipeline.datamanager.max-memory-gb)" in msg
    assert "--downscale-factor" in msg and "raise --pipeline.datamanager.max-memory-gb" in msg
    side = int(re.search(r"--pipeline.datamanager.max-image-side (\d+)", msg).group(1))
    # the suggested side fits the budget, and a few pixels more would not
    h = side * 567 // 1008
    assert cache_bytes(100, side, h) <= GIB
    assert cache_bytes(100, side + 8, (side + 8) * 567 // 1008) > GIB
    check_memory(100, (side, h), tmp_path, max_memory_gb=1.0)  # no error
    assert largest_fitting_side(100, 567, 1008, GIB) == side  # portrait: same longest side


def test_default_budget_is_a_share_of_available_memory(tmp_path, monkeypatch) -> None:
    need = cache_bytes(12, 64, 48)
    monkeypatch.setattr(limits, "available_memory_bytes", lambda: int(need / limits.AVAILABLE_SHARE) - 1024)
    with pytest.raises(SpinInputError, match=r"75% of the .* available now"):
        check_memory(12, (64, 48), tmp_path, max_memory_gb=0.0)
    monkeypatch.setattr(limits, "available_memory_bytes", lambda: int(need / limits.AVAILABLE_SHARE) + 1024)
    check_memory(12, (64, 48), tmp_path, max_memory_gb=0.0)
    monkeypatch.setattr(limits, "available_memory_bytes", lambda: None)  # unreadable: no check
    check_memory(12, (64, 48), tmp_path, max_memory_gb=0.0)


def test_budget_applies_to_the_downscaled_size(tmp_path) -> None:
    from PIL import Image

    paths = []
    for i in range(6):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (400, 300)).save(paths[-1])
    origins = np.random.default_rng(1).normal(size=(6, 3))
    budget_gb = cache_bytes(6, 200, 150) / GIB * 1.01  # fits at 200x150, not at 400x300
    with pytest.raises(SpinInputError, match=r"6 views of 400x300 need about"):
        limits.check_dataset(paths, [(400, 300)] * 6, origins, tmp_path, 5, 1600, max_memory_gb=budget_gb)
    report = limits.check_dataset(paths, [(400, 300)] * 6, origins, tmp_path, 5, 200, max_memory_gb=budget_gb)
    assert report.scaled_size == (200, 150)
    # a negative budget turns the check off
    limits.check_dataset(paths, [(400, 300)] * 6, origins, tmp_path, 5, 1600, max_memory_gb=-1.0)


def _config(scene, tmp_path, budget_gb: float):
    config = spin_inpaint_small_config()
    config.output_dir = tmp_path / "out"
    config.experiment_name, config.timestamp, config.vis = "big", "run", "tensorboard"
    config.machine.device_type = "cpu"
    config.data = config.pipeline.datamanager.data = scene
    config.pipeline.prompt_file = scene / "prompts.json"
    config.pipeline.datamanager.max_memory_gb = budget_gb
    return config


def test_run_is_refused_before_anything_is_written(tiny_scene, tmp_path) -> None:
    need = cache_bytes(12, 64, 48)
    config = _config(tiny_scene, tmp_path, need / GIB / 2)
    with pytest.raises(SystemExit, match=r"12 views of 64x48 need about .* more than the .* budget"):
        config.save_config()  # ns-train's pre-flight check: one line, exit before any file is written
    assert not (tmp_path / "out").exists()
    # the datamanager refuses too (runs started without the pre-flight check)
    with pytest.raises(SpinInputError, match=r"--pipeline.datamanager.max-image-side \d+ or the dataparser"):
        config.pipeline.datamanager.setup(device="cpu", test_mode="val", world_size=1, local_rank=0)
    # the same scene with a budget that holds it starts
    ok = _config(tiny_scene, tmp_path, need / GIB * 2)
    dm = ok.pipeline.datamanager.setup(device="cpu", test_mode="val", world_size=1, local_rank=0)
    assert dm.num_views == 12


def test_budget_flag_is_range_checked() -> None:
    from spin_nerfstudio.validate import check_pipeline_values

    config = spin_inpaint_small_config()
    config.pipeline.datamanager.max_memory_gb = float("nan")
    with pytest.raises(SpinInputError, match=r"--pipeline.datamanager.max-memory-gb: expected a finite number"):
        check_pipeline_values(config.pipeline)
