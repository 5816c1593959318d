"""What the tiny end-to-end run wrote for segmentation: the agreement check and the masks contact sheet."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ns_train_args, run_cli
from PIL import Image

from spin_nerfstudio.evaluation.metrics import mask_scores


def test_mask_agreement_was_checked_and_logged(tiny_run, tiny_scene):
    names = sorted(p.name for p in (tiny_scene / "images").glob("*.png"))
    report = json.loads((tiny_run / "mask_agreement.json").read_text())
    assert report["threshold"] == 0.5 and sorted(report["iou"]) == names
    assert all(0.0 <= v <= 1.0 for v in report["iou"].values())
    assert set(report["ignored"]) <= set(names) and "000.png" not in report["ignored"]  # the clicked view stays
    assert len(report["ignored"]) <= len(names) // 2
    log = (tiny_run / "train.log").read_text()
    median = float(np.median(list(report["iou"].values())))
    assert f"spin-nerfstudio: mask agreement: median IoU {median:.2f};" in log
    # Views dropped from the mask loss disagreed with the field; the others' initial masks are mostly right.
    kept = [n for n in names if n not in report["ignored"]]
    gt = {n: np.array(Image.open(tiny_scene / "masks" / n)) > 0 for n in names}
    initial = {n: np.array(Image.open(tiny_run / "initial_masks" / n)) > 0 for n in names}
    assert np.mean([mask_scores(initial[n], gt[n])[0] for n in kept]) > 0.6


def test_masks_contact_sheet_shows_the_final_masks(tiny_run, tiny_scene):
    sheet = np.asarray(Image.open(tiny_run / "masks_sheet.png").convert("RGB")).astype(int)
    # 12 views, 4 to a row, each as image | initial | final, 64x48 tiles scaled by 3 (at least 160 px wide).
    tile_w, tile_h, pad, top = 64 * 3, 48 * 3, 4, 34
    assert sheet.shape[1] == 12 * (tile_w + pad) + pad and sheet.shape[0] == top + 3 * (tile_h + pad) + pad
    final = np.array(Image.open(tiny_run / "masks" / "000.png")) > 0
    x0, y0 = pad + 2 * (tile_w + pad), top + pad  # view 000's final-mask tile
    tile = sheet[y0 : y0 + tile_h : 3, x0 : x0 + tile_w : 3]
    image = np.asarray(Image.open(tiny_scene / "images" / "000.png").convert("RGB")).astype(int)
    tinted = np.round(0.5 * image + 0.5 * np.array([255, 0, 255]))
    assert np.abs(tile[final] - tinted[final]).max() <= 1 and final.any()
    assert np.abs(tile[~final] - image[~final]).max() <= 1


def test_mask_report_and_the_sheet_of_every_view(tiny_run, tiny_scene):
    names = sorted(p.name for p in (tiny_scene / "images").glob("*.png"))
    report = json.loads((tiny_run / "mask_report.json").read_text())
    rows = {r["view"]: r for r in report["views"]}
    assert sorted(rows) == names and rows["000.png"]["status"] == "clicked"
    final = {n: np.array(Image.open(tiny_run / "masks" / n)) > 0 for n in names}
    assert all(rows[n]["area"] == int(final[n].sum()) for n in names)
    assert all(rows[n]["final"] in ("initial", "field") for n in names)
    assert all(0.0 <= rows[n]["initial_field_iou"] <= 1.0 for n in names)
    # The clicked mask's centroid, lifted to 3D, lands inside the final mask wherever the object is well inside.
    gt = {n: np.array(Image.open(tiny_scene / "masks" / n)) > 0 for n in names}
    seen = [n for n in names if gt[n].sum() > 100]
    assert np.mean([rows[n]["centroid_inside"] for n in seen]) >= 0.9
    log = (tiny_run / "train.log").read_text()
    assert any(line in log for line in report["summary"][:1]) and "every view's final mask:" in log
    sheet = Image.open(tiny_run / "masks_all.png")
    # 12 views, 8 to a row, 64 x 48 tiles scaled by 3, title and column rows on top.
    assert sheet.size == (8 * (64 * 3 + 4) + 4, 34 + 2 * (48 * 3 + 4) + 4)


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (None, ["--pipeline.segmenter.checkpoint", "missing.pth"], "missing.pth: SAM checkpoint not found"),
        ("vit_h", ["--pipeline.segmenter.model-type", "vit_b"], "is a vit_h SAM checkpoint but model_type 'vit_b'"),
    ],
)
def test_bad_sam_checkpoint_stops_before_training(tiny_scene, tmp_path, make, extra, message):
    import torch

    if make == "vit_h":  # the tensors that identify a vit_h image encoder, nothing else
        state = {
            "image_encoder.patch_embed.proj.weight": torch.zeros(1280, 3, 1, 1),
            "prompt_encoder.point_embeddings.0.weight": torch.zeros(1, 4),
            "mask_decoder.iou_prediction_head.layers.0.weight": torch.zeros(4, 4),
            **{f"image_encoder.blocks.{b}.norm1.weight": torch.zeros(1) for b in range(32)},
        }
        torch.save(state, tmp_path / "big.pth")
        extra = [*extra, "--pipeline.segmenter.checkpoint", "big.pth"]
    args = ns_train_args(
        tiny_scene, tmp_path / "out", "--pipeline.prompt-file", tiny_scene / "prompts.json",
        "--pipeline.segmenter.backend", "sam", *extra,
    )  # fmt: skip
    proc = run_cli(args, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert message in last and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert not list((tmp_path / "out").rglob("*.ckpt"))


def test_before_after_sheet_shows_the_removal(tiny_run, tiny_scene):
    """RUN/before_after.png: the mask-sheet views as input | before | removal mask | 2D inpainted | after."""
    names = sorted(p.name for p in (tiny_scene / "images").glob("*.png"))
    sheet = np.asarray(Image.open(tiny_run / "before_after.png").convert("RGB")).astype(int)
    tile_w, tile_h, pad, top, left = 64 * 3, 48 * 3, 4, 34, 60
    rows = min(12, len(names))
    assert sheet.shape == (top + rows * (tile_h + pad) + pad, left + 5 * (tile_w + pad) + pad, 3)

    def tile(row: int, col: int) -> np.ndarray:
        x0, y0 = left + pad + col * (tile_w + pad), top + pad + row * (tile_h + pad)
        return sheet[y0 : y0 + tile_h : 3, x0 : x0 + tile_w : 3]

    image = np.asarray(Image.open(tiny_scene / "images" / "000.png").convert("RGB")).astype(int)
    background = np.asarray(Image.open(tiny_scene / "background" / "000.png").convert("RGB")).astype(int)
    inpainted = np.asarray(Image.open(tiny_run / "inpainted" / "000.png").convert("RGB")).astype(int)
    assert np.abs(tile(0, 0) - image).max() == 0 and np.abs(tile(0, 3) - inpainted).max() == 0
    gt = np.array(Image.open(tiny_scene / "masks" / "000.png")) > 0
    after_err = np.abs(tile(0, 4) - background)[gt].mean()
    input_err = np.abs(image - background)[gt].mean()
    assert after_err < 0.3 * input_err, (after_err, input_err)  # the object is gone from the final render
    log = (tiny_run / "train.log").read_text()
    assert f"spin-nerfstudio: before and after removal: {tiny_run / 'before_after.png'}" in log
