"""The figures table: per-method means over seeds, the run-to-run spread of repeated fits, and the gains."""

from __future__ import annotations

import pytest

from spin_nerfstudio.dev.figures import figures_table


def _row(method: str, fits) -> dict:
    keys = ("masked_psnr", "masked_ssim")
    row = {"method": method, **{k: sum(f[k] for f in fits) / len(fits) for k in keys}, "masked_lpips": None}
    row["fits"] = [dict(f, masked_lpips=None) for f in fits]
    return row


def _seed(seed: int, ours, plain, masked, flat: float, no_prior=None) -> dict:
    seed_figures = {
        "seed": seed,
        "mask_iou": 1.0,
        "seconds": 120.0,
        "methods": {
            "ours": _row("ours", [{"masked_psnr": v, "masked_ssim": 0.9} for v in ours]),
            "plain_targets": _row("plain_targets", [{"masked_psnr": v, "masked_ssim": 0.8} for v in plain]),
            "masked_nerf": _row("masked_nerf", [{"masked_psnr": v, "masked_ssim": 0.85} for v in masked]),
            "inpainted_2d": {"method": "inpainted_2d", "masked_psnr": flat, "masked_ssim": 0.7, "masked_lpips": None},
        },
        "inpainters_2d": {"biharmonic": {"masked_psnr": 33.0, "masked_ssim": 0.9}},
        "seen": {"seen_fraction": 0.25, "seen_colour_psnr": 40.0, "target_masked_psnr": 33.0},
    }
    if no_prior is not None:
        seed_figures["methods"]["no_prior"] = _row(
            "no_prior", [{"masked_psnr": v, "masked_ssim": 0.88} for v in no_prior]
        )
    return seed_figures


def test_table_means_spreads_and_gains() -> None:
    figures = {
        "scene": {"num_views": 24},
        "iterations": {"total": 2400},
        "device": "cpu",
        "masks": "truth",
        "repeats": 2,
        "seeds": [
            _seed(0, [36.0, 38.0], [34.0, 34.0], [35.0, 36.0], 32.0),
            _seed(1, [34.0, 35.0], [33.0, 33.0], [34.0, 34.0], 31.0),
        ],
    }
    for seed, st in zip(figures["seeds"], (0.1, 0.3)):  # masked ST-LPIPS of ours, per seed
        seed["methods"]["ours"]["masked_st_lpips"] = st  # type: ignore[index]
    for seed, psnr in zip(figures["seeds"], ([37.0, 37.5], [35.0, 35.5])):  # an ablation without perceptual loss
        seed["methods"]["no_perceptual"] = _row("no_perceptual", [{"masked_psnr": v, "masked_ssim": 0.9} for v in psnr])  # type: ignore[index]
    table = figures_table(figures)
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    # ours: seed means 37.0 and 34.5 -> 35.75; spread (2.0 + 1.0) / 2 = 1.50; masked ST-LPIPS 0.1 and 0.3 -> 0.2
    assert lines["| ours (seen-elsewhere + 2D targets)"].endswith(
        "| 35.75 | 0.900 | null | 0.200 | 37.00 / 34.50 | 0.100 / 0.300 | 1.50 |"
    )
    assert lines["| masked NeRF (never trained on masked pixels)"].endswith(
        "| 34.75 | 0.850 | null | null | 35.50 / 34.00 | null / null | 0.50 |"
    )
    assert lines["| each view inpainted in 2D on its own"].endswith(
        "| 31.50 | 0.700 | null | null | 32.00 / 31.00 | null / null | n/a |"
    )
    assert "ours - ablation without the perceptual loss: -0.50 dB masked PSNR (per seed: -0.25 / -0.75)" in table
    assert "ours - masked NeRF: 1.00 dB masked PSNR (per seed: 1.50 / 0.50)" in table
    assert "ours - 2D inpainting: 4.25 dB masked PSNR (per seed: 5.00 / 3.50)" in table
    assert "mean of 2 fits" in table


def test_table_shows_the_no_prior_ablation_only_when_every_seed_has_it() -> None:
    base = {"scene": {}, "iterations": {}, "device": "cpu", "masks": "truth", "repeats": 2}
    seeds = [
        _seed(0, [36.0, 38.0], [34.0, 34.0], [35.0, 36.0], 32.0, no_prior=[35.0, 36.0]),
        _seed(1, [34.0, 35.0], [33.0, 33.0], [34.0, 34.0], 31.0, no_prior=[34.0, 34.0]),
    ]
    table = figures_table(dict(base, seeds=seeds))
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert lines["| ours without the field prior (ablation)"].endswith(
        "| 34.75 | 0.880 | null | null | 35.50 / 34.00 | null / null | 0.50 |"
    )
    assert "ours - ablation without the field prior: 1.00 dB masked PSNR (per seed: 1.50 / 0.50)" in table
    older = figures_table(dict(base, seeds=[seeds[0], _seed(1, [34.0], [33.0], [34.0], 31.0)]))  # seed 1 predates it
    assert "without the field prior" not in older and "ours - masked NeRF" in older


def test_depth_prior_errors_against_the_true_background(tmp_path) -> None:
    import json

    import numpy as np

    from spin_nerfstudio.data.synthetic import SceneSpec, load_ground_truth, make_scene
    from spin_nerfstudio.dev.figures import depth_prior_errors
    from spin_nerfstudio.stage_io import save_views

    scene = make_scene(tmp_path / "scene", SceneSpec(num_views=3, width=40, height=30, seed=1), llff=False)
    gt = load_ground_truth(scene)
    tf = json.loads((scene / "transforms.json").read_text())
    u, v = np.meshgrid(np.arange(40) + 0.5, np.arange(30) + 0.5)
    stretch = np.sqrt(((u - tf["cx"]) / tf["fl_x"]) ** 2 + ((v - tf["cy"]) / tf["fl_y"]) ** 2 + 1)
    run = tmp_path / "run"
    run.mkdir()
    (run / "dataparser_transforms.json").write_text(json.dumps({"scale": 0.5}))
    truth = [0.5 * z * stretch for z in gt["depth_background"]]  # ray distances in the run's scaled units
    save_views(run / "inpainted_depth", gt["names"], [t * 1.1 for t in truth], kind="npy")
    assert depth_prior_errors(run, scene) == {"inpainted_depth_error": pytest.approx(0.1), "seen_depth_error": None}
    save_views(run / "seen_depth", gt["names"], [t * 0.98 for t in truth], kind="npy")
    assert depth_prior_errors(run, scene)["seen_depth_error"] == pytest.approx(0.02)
