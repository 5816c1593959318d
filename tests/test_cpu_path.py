"""The CPU-path changes keep the model's results: same contraction, same renders, freed memory kept."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.field_components.spatial_distortions import SceneContraction

from spin_nerfstudio.cpu import keep_freed_memory, prefer_passive_openmp
from spin_nerfstudio.model.field import OBJECT_LOGIT_BOUND, BoxContraction, bound_logit
from spin_nerfstudio.model.names import Stage
from spin_nerfstudio.model.spin_model import SpinModelConfig


def test_box_contraction_matches_nerfstudio():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(2000, 3) * 5.0, torch.zeros(1, 3), torch.tensor([[0.5, -0.99, 0.2], [1.0, 1.0, -1.0]])])
    ours, theirs = BoxContraction()(x), SceneContraction(order=float("inf"))(x)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert torch.equal(ours[-3:], x[-3:])  # identity inside the unit cube
    assert float(ours.abs().max()) < 2.0


def _model():
    torch.manual_seed(0)
    config = SpinModelConfig(plane_resolutions=(16,), plane_components=4, num_proposal_samples_per_ray=(16,),
                             num_nerf_samples_per_ray=8, proposal_resolution=16, eval_num_rays_per_chunk=37)  # fmt: skip
    return config.setup(scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])), num_train_data=1)


def _rays(n: int = 50) -> RayBundle:
    g = torch.Generator().manual_seed(1)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g) + torch.tensor([0.0, 0.0, -2.0]), dim=-1)
    return RayBundle(origins=torch.zeros(n, 3) + torch.tensor([0.0, 0.0, 2.0]), directions=d,
                     pixel_area=torch.full((n, 1), 1e-4), camera_indices=torch.zeros(n, 1, dtype=torch.long))  # fmt: skip


def test_renders_before_segmentation_skip_only_the_object_head():
    model = _model()
    model.eval()
    with torch.no_grad():
        torch.manual_seed(2)
        before = model(_rays())
        model.set_stage(Stage.SEGMENT)
        torch.manual_seed(2)
        after = model(_rays())
    for key in ("rgb", "depth", "accumulation"):
        assert torch.equal(before[key], after[key]), key
    assert torch.equal(before["object_mask"], torch.zeros_like(before["object_mask"]))
    assert float(after["object_mask"].min()) > 0.0  # a sigmoid: the head ran
    model.train()
    model.set_stage(Stage.RECONSTRUCT)
    assert "object_logit" in model(_rays())  # training keeps evaluating it in every stage


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_is_applied_on_linux():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent


def test_passive_openmp_respects_the_user(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert prefer_passive_openmp() is False
    assert os.environ["OMP_WAIT_POLICY"] == "active"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert prefer_passive_openmp() is False  # torch is already imported here: too late for this process
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # but children inherit it


def test_object_logit_is_bounded_and_float32_under_half_precision_autocast():
    """A NaN mask loss stopped the full config on a GPU (mixed precision): the mask head overflowed float16."""
    assert torch.isfinite(bound_logit(torch.tensor([float("inf"), -float("inf"), 6e4]))).all()
    x = torch.linspace(-50.0, 50.0, 9, dtype=torch.float16)
    assert torch.equal(bound_logit(x), x.float())  # the identity for any logit that matters
    model = _model()
    model.train()
    model.set_stage(Stage.SEGMENT)
    with torch.no_grad():
        model.field.mask_head[-1].weight.mul_(1e6)  # a head whose raw output overflows float16 (max 65504)
        model.field.mask_head[-1].bias.fill_(1e6)
    with torch.autocast(device_type="cpu", dtype=torch.float16):
        out = model(_rays())
    logit = out["object_logit"]
    assert logit.dtype == torch.float32
    assert torch.isfinite(logit).all() and float(logit.abs().max()) <= OBJECT_LOGIT_BOUND
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
    assert torch.isfinite(loss)
