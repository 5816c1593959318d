"""Tests of the offline perceptual networks: LPIPS (random or loaded backbone) and ST-LPIPS from its wheel."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from spin_nerfstudio.model import perceptual
from spin_nerfstudio.model.perceptual import (
    BACKBONE_FILES,
    STLPIPS,
    STLPIPS_FILES,
    build_perceptual,
    cached_backbone,
    perceptual_plan,
    stlpips_weights,
)


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point torch's hub folder (TORCH_HOME/hub) at an empty folder so no cached backbone is found."""
    hub = tmp_path / "torch_home" / "hub"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


@pytest.fixture(scope="module")
def random_lpips(tmp_path_factory: pytest.TempPathFactory):
    hub = tmp_path_factory.mktemp("empty_hub")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.hub, "get_dir", lambda: str(hub))
        torch.manual_seed(0)
        loss, description = build_perceptual("alex")
    return loss, description, hub


def smooth_image(size: int = 64, seed: int = 0) -> torch.Tensor:
    """(1, 3, size, size) image in [0, 1] made of a few smooth waves and a bright square."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    channels = []
    for _ in range(3):
        f = torch.rand(2, generator=g) * 6 + 1
        channels.append(0.5 + 0.25 * torch.sin(2 * torch.pi * (f[0] * xx + f[1] * yy)))
    img = torch.stack(channels)[None]
    img[..., size // 4 : size // 2, size // 4 : size // 2] = 0.95
    return img.clamp(0, 1)


def blur(img: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(img, 3, stride=1, padding=1, count_include_pad=False)


def test_random_backbone_is_reported(random_lpips) -> None:
    loss, description, hub = random_lpips
    assert loss.pretrained is False
    assert "RANDOM backbone" in description
    assert BACKBONE_FILES["alex"] in description and str(hub / "checkpoints") in description
    assert "\n" not in description
    assert not any(p.requires_grad for p in loss.parameters()) and not loss.training


def test_no_cached_file_found(empty_hub: Path) -> None:
    assert cached_backbone("alex") is None and cached_backbone("vgg") is None


def test_lpips_orders_distortions(random_lpips) -> None:
    loss = random_lpips[0]
    x = smooth_image()
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    same = loss(x, x)
    assert same.shape == (1,) and float(same) == pytest.approx(0.0, abs=1e-6)
    blurred = float(loss(x, blur(x)))
    noisy = float(loss(x, noise))
    assert 0 < blurred < noisy
    # symmetric, and batched pairs give one value each
    assert float(loss(noise, x)) == pytest.approx(noisy, rel=1e-5)
    batch = loss(torch.cat([x, x]), torch.cat([x, noise]))
    assert batch.shape == (2,) and float(batch[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(batch[1]) == pytest.approx(noisy, rel=1e-4)


def test_small_inputs_are_resized(random_lpips) -> None:
    loss = random_lpips[0]
    x = smooth_image(16)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(2))
    out = loss(torch.cat([x, x]), torch.cat([x, noise]))
    assert out.shape == (2,) and torch.isfinite(out).all()
    assert float(out[0]) == pytest.approx(0.0, abs=1e-6) and float(out[1]) > 0.01
    # a non-square input with one small side also works
    tall = smooth_image(64)[..., :20]
    assert float(loss(tall, tall)) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory: pytest.TempPathFactory):
    """A randomly initialised (seeded) torchvision AlexNet saved as a state dict, written once (it is 244 MB)."""
    torch.manual_seed(123)
    net = torchvision.models.alexnet()
    path = tmp_path_factory.mktemp("weights") / "my_alexnet.pth"
    torch.save(net.state_dict(), path)
    yield path, net
    path.unlink()  # do not leave 244 MB in pytest's kept temporary folders


def assert_backbone_loaded(loss, net: torch.nn.Module) -> None:
    """lpips' slices hold torchvision's feature layers under their original indices."""
    features = net.features
    slices = loss.lpips.net
    for slice_name, index in (("slice1", 0), ("slice2", 3), ("slice3", 6), ("slice4", 8), ("slice5", 10)):
        conv = getattr(slices, slice_name)._modules[str(index)]
        assert torch.equal(conv.weight, features[index].weight), (slice_name, index)
        assert torch.equal(conv.bias, features[index].bias), (slice_name, index)


def test_explicit_weights_file_is_loaded(alexnet_file, empty_hub: Path) -> None:
    path, net = alexnet_file
    torch.manual_seed(7)  # the random init lpips builds first must be overwritten
    loss, description = build_perceptual("alex", weights=path)
    assert loss.pretrained is True
    assert description == f"LPIPS(alex) with ImageNet backbone from {path}"
    assert_backbone_loaded(loss, net)
    x = smooth_image()
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6) and float(loss(x, blur(x))) > 0


def test_cached_weights_file_is_found(alexnet_file, empty_hub: Path) -> None:
    source, net = alexnet_file
    path = empty_hub / "checkpoints" / BACKBONE_FILES["alex"]
    path.parent.mkdir(parents=True)
    path.symlink_to(source)
    assert cached_backbone("alex") == path
    assert cached_backbone("vgg") is None
    loss, description = build_perceptual("alex")
    assert loss.pretrained is True and str(path) in description
    assert_backbone_loaded(loss, net)


def test_missing_weights_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "alexnet.pth"
    with pytest.raises(FileNotFoundError) as info:
        build_perceptual("alex", weights=missing)
    assert str(missing) in str(info.value) and "LPIPS backbone weights not found" in str(info.value)


def _pipeline_stub(**config):
    """The attributes SpinPipeline._lpips_due reads, in the inpainting stage 500 steps in."""
    from types import SimpleNamespace

    from spin_nerfstudio.model.names import Stage
    from spin_nerfstudio.pipeline import SpinPipelineConfig

    cfg = SpinPipelineConfig(lpips_start_step=0, **config)
    return SimpleNamespace(
        config=cfg, spin_model=SimpleNamespace(stage=Stage.INPAINT), _stage_start_step=0, _lpips_skipped=None
    )


def test_default_runs_st_lpips_offline_at_its_own_weight(empty_hub, capsys) -> None:
    from spin_nerfstudio.pipeline import SpinPipeline, SpinPipelineConfig

    cfg = SpinPipelineConfig()
    assert cfg.perceptual_network == "auto"  # LPIPS with its backbone, else ST-LPIPS: the loss runs offline
    assert cfg.lpips_loss_mult == 0.01 and cfg.st_lpips_loss_mult == 0.001
    assert perceptual_plan(cfg.lpips_net, cfg.lpips_weights, cfg.perceptual_network)[0] == "st-lpips"
    assert SpinPipeline._lpips_due(_pipeline_stub(), 500) is True  # type: ignore[arg-type]
    assert "skipped" not in capsys.readouterr().out


def test_perceptual_weight_follows_the_network_that_loaded() -> None:
    from spin_nerfstudio.pipeline import SpinPipelineConfig
    from spin_nerfstudio.stages.inpainted_fit import perceptual_weight

    cfg = SpinPipelineConfig()
    assert perceptual_weight(cfg, "st-lpips") == 0.001
    assert perceptual_weight(cfg, "lpips") == 0.01  # SPIn-NeRF's weight for real LPIPS
    assert perceptual_weight(cfg, None) == 0.0
    cfg = SpinPipelineConfig(lpips_loss_mult=0.5, st_lpips_loss_mult=0.25)
    assert (perceptual_weight(cfg, "lpips"), perceptual_weight(cfg, "st-lpips")) == (0.5, 0.25)


@pytest.mark.parametrize(("lpips_mult", "st_mult", "due"), [(0.01, 0.0, False), (0.0, 0.001, True), (0.0, 0.0, False)])
def test_st_lpips_skip_follows_its_own_weight(empty_hub, capsys, lpips_mult: float, st_mult: float, due: bool) -> None:
    from spin_nerfstudio.pipeline import SpinPipeline

    stub = _pipeline_stub(lpips_loss_mult=lpips_mult, st_lpips_loss_mult=st_mult)  # auto: ST-LPIPS offline
    assert SpinPipeline._lpips_due(stub, 500) is due  # type: ignore[arg-type]
    out = " ".join(capsys.readouterr().out.split())
    assert ("its weight (--pipeline.st-lpips-loss-mult) is 0" in out) is (lpips_mult > 0 and not due)


@pytest.mark.parametrize("allow_random", [False, True])
def test_lpips_only_is_skipped_without_backbone_weights_unless_asked(empty_hub, capsys, allow_random: bool) -> None:
    from spin_nerfstudio.pipeline import SpinPipeline

    stub = _pipeline_stub(lpips_random_backbone=allow_random, perceptual_network="lpips")
    assert SpinPipeline._lpips_due(stub, 500) is allow_random  # type: ignore[arg-type]
    out = " ".join(capsys.readouterr().out.split())
    skipped = "perceptual loss skipped: no ImageNet backbone weights (vgg16-397923af.pth"
    assert (skipped in out and "--pipeline.perceptual-network st-lpips uses ST-LPIPS" in out) is not allow_random


@pytest.mark.parametrize("network", ["auto", "st-lpips"])
def test_st_lpips_loss_runs_offline_when_asked(empty_hub, capsys, network: str) -> None:
    from spin_nerfstudio.pipeline import SpinPipeline

    assert SpinPipeline._lpips_due(_pipeline_stub(perceptual_network=network), 500) is True  # type: ignore[arg-type]
    assert "skipped" not in capsys.readouterr().out
    loss, description = build_perceptual("vgg", None, network, False)  # type: ignore[arg-type]
    assert isinstance(loss, STLPIPS) and loss.net_name == "vgg"
    assert (
        description.startswith("ST-LPIPS(vgg) (shift-tolerant LPIPS, weights from ")
        and "LPIPS(vgg) with" not in description
    )


def test_lpips_runs_with_a_backbone_file(empty_hub, tmp_path: Path) -> None:
    from spin_nerfstudio.pipeline import SpinPipeline

    path = tmp_path / "alex.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    stub = _pipeline_stub(lpips_net="alex", lpips_weights=path, perceptual_network="auto")
    assert SpinPipeline._lpips_due(stub, 500) is True  # type: ignore[arg-type]
    assert perceptual_plan("alex", path)[0] == "lpips"  # auto prefers the real LPIPS backbone


def test_perceptual_plan_choices(empty_hub, monkeypatch: pytest.MonkeyPatch) -> None:
    assert perceptual_plan("vgg", None, "auto")[0] == "st-lpips"
    kind, line = perceptual_plan("vgg", None, "st-lpips")
    assert kind == "st-lpips" and "ST-LPIPS(vgg)" in line and "asked for" in line
    assert perceptual_plan("vgg", None, "lpips", random_backbone=True)[0] == "lpips"
    monkeypatch.setattr(perceptual, "stlpips_weights", lambda net: None)  # the wheel is not installed
    kind, line = perceptual_plan("vgg", None, "auto")
    assert kind is None and "no ST-LPIPS weights (pip install stlpips-pytorch)" in line and "\n" not in line
    with pytest.raises(FileNotFoundError, match="perceptual loss skipped"):
        build_perceptual("vgg", None, "auto", False)


# ---------------------------------------------------------------- ST-LPIPS from the stlpips-pytorch wheel
@pytest.fixture(scope="module", params=["alex", "vgg"])
def st_lpips(request) -> STLPIPS:
    return STLPIPS(request.param)


def test_st_lpips_loads_the_wheel_weights(st_lpips: STLPIPS) -> None:
    path = stlpips_weights(st_lpips.net_name)
    assert path is not None and path.name == STLPIPS_FILES[st_lpips.net_name]
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(st_lpips.slices[0][0].weight, state["net.slice1.0.weight"])  # first convolution
    assert torch.equal(st_lpips.heads[4].weight, state["lin4.model.1.weight"])  # last linear head
    assert torch.equal(st_lpips.shift, state["scaling_layer.shift"])
    assert st_lpips.description.startswith(f"ST-LPIPS({st_lpips.net_name}) (shift-tolerant LPIPS, weights from {path}")
    assert "not comparable with LPIPS" in st_lpips.description and "\n" not in st_lpips.description
    assert not any(p.requires_grad for p in st_lpips.parameters()) and not st_lpips.training


def test_st_lpips_orders_distortions_and_tolerates_shifts(st_lpips: STLPIPS) -> None:
    x = smooth_image(64)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    assert float(st_lpips(x, x)) == pytest.approx(0.0, abs=1e-7)
    noisy = (x + 0.1 * (noise - 0.5)).clamp(0, 1)
    d_noise, d_blur, d_random = (float(st_lpips(x, y)) for y in (noisy, blur(x), noise))
    assert 0 < d_noise < d_random and 0 < d_blur < d_random
    assert float(st_lpips(noise, x)) == pytest.approx(d_random, rel=1e-5)
    # a one-pixel shift of the same content is far closer than unrelated content
    assert float(st_lpips(x, torch.roll(x, 1, dims=-1))) < 0.25 * d_random
    # batched pairs give one value each; small inputs are resized first
    batch = st_lpips(torch.cat([x, x]), torch.cat([x, noise]))
    assert batch.shape == (2,) and float(batch[1]) == pytest.approx(d_random, rel=1e-4)
    small = smooth_image(16)
    assert float(st_lpips(small, small)) == pytest.approx(0.0, abs=1e-7)


def test_st_lpips_spatial_map_localises_the_error(st_lpips: STLPIPS) -> None:
    x = smooth_image(64)
    y = x.clone()
    y[..., :, 40:] = torch.rand(y[..., :, 40:].shape, generator=torch.Generator().manual_seed(3))
    m = st_lpips.spatial(x, y)
    assert m.shape == (1, 64, 64)
    assert float(m[..., 48:].mean()) > 2 * float(m[..., :24].mean())  # deep layers see far: 2x, not more
    assert float(m.mean()) == pytest.approx(float(st_lpips(x, y)), rel=0.1)


def test_st_lpips_wrong_weights_file(tmp_path: Path) -> None:
    alex = stlpips_weights("alex")
    with pytest.raises(ValueError) as info:
        STLPIPS("vgg", weights=alex)
    assert str(info.value).startswith(f"{alex}: not ST-LPIPS(vgg) weights (") and "\n" not in str(info.value)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"{junk}: not ST-LPIPS\\(alex\\) weights"):
        STLPIPS("alex", weights=junk)
    with pytest.raises(FileNotFoundError, match="ST-LPIPS weights not found"):
        STLPIPS("alex", weights=tmp_path / "missing.pth")


def test_st_lpips_matches_the_wheels_own_network() -> None:
    """Same numbers as the wheel's own LPIPS class (needs torchsummary, which its module imports unused)."""
    pytest.importorskip("torchsummary")
    pytest.importorskip("IPython")
    from stlpips_pytorch import stlpips

    a = smooth_image(64)
    b = (a + 0.1 * torch.randn(a.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
    for net in ("alex", "vgg"):
        ref = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
        with torch.no_grad():
            assert float(STLPIPS(net)(a, b)) == pytest.approx(float(ref(a * 2 - 1, b * 2 - 1)), rel=1e-5)


def test_perceptual_scorer_offline(empty_hub) -> None:
    import numpy as np

    from spin_nerfstudio.evaluation.perceptual_metrics import PerceptualScorer

    scorer = PerceptualScorer()
    assert scorer.lpips is None and scorer.st_lpips is not None and scorer.st_lpips.net_name == "alex"
    assert any(n.startswith("lpips: no ImageNet AlexNet weights") for n in scorer.notes)
    gt = smooth_image(64)[0].permute(1, 2, 0).numpy()
    pred = gt.copy()
    pred[20:40, 20:40] = 0.5  # a grey square inside the mask
    mask = np.zeros((64, 64), bool)
    mask[18:42, 18:42] = True
    row = scorer.score(pred, gt, mask)
    assert row["lpips"] is None and row["masked_lpips"] is None
    assert 0 < row["st_lpips"] < row["masked_st_lpips"]  # the crop is mostly the damaged square
    assert scorer.score(gt, gt, mask)["masked_st_lpips"] == pytest.approx(0.0, abs=1e-7)
    assert scorer.score(pred, gt)["masked_st_lpips"] is None


# ---------------------------------------------------------------- baselines and the run report
def test_baselines_turn_off_both_perceptual_weights() -> None:
    from types import SimpleNamespace

    from spin_nerfstudio.dev.figures import _refit_change
    from spin_nerfstudio.evaluation.baselines import masked_nerf
    from spin_nerfstudio.pipeline import SpinPipelineConfig

    def config():
        return SimpleNamespace(pipeline=SpinPipelineConfig(), machine=SimpleNamespace(seed=0))

    cfg = config()
    masked_nerf(cfg)
    assert cfg.pipeline.lpips_loss_mult == 0 and cfg.pipeline.st_lpips_loss_mult == 0
    for mult in (None, 0.003):
        cfg = config()
        _refit_change("no_perceptual", 1, mult)(cfg)
        assert cfg.pipeline.lpips_loss_mult == 0 and cfg.pipeline.st_lpips_loss_mult == 0 and cfg.machine.seed == 43
    cfg = config()
    _refit_change("ours", 0, 0.003)(cfg)  # dev figures --st-lpips-mult
    assert cfg.pipeline.st_lpips_loss_mult == 0.003 and cfg.pipeline.lpips_loss_mult == 0.01
    cfg = config()
    _refit_change("ours", 0)(cfg)
    assert cfg.pipeline.st_lpips_loss_mult == 0.001
    assert cfg.pipeline.model.depth_loss_sides == "agreed"  # the default
    cfg = config()
    _refit_change("depth_both", 1)(cfg)  # dev figures --refits depth_both: the old two-sided depth loss
    assert cfg.pipeline.model.depth_loss_sides == "both" and cfg.machine.seed == 43


def test_report_names_the_weight_used() -> None:
    import yaml

    from spin_nerfstudio.evaluation.report_run import _perceptual_loss_row
    from spin_nerfstudio.pipeline import SpinPipelineConfig

    row = _perceptual_loss_row(SpinPipelineConfig(perceptual_network="st-lpips"))
    assert row == "ST-LPIPS(vgg), weight 0.001, 32 px patches"
    row = _perceptual_loss_row(SpinPipelineConfig())
    assert "LPIPS(vgg), weight 0.01 when its ImageNet backbone was found, else ST-LPIPS(vgg), weight 0.001" in row
    row = _perceptual_loss_row(SpinPipelineConfig(perceptual_network="lpips"))
    assert row.startswith("LPIPS(vgg), weight 0.01 (skipped without its ImageNet backbone)")
    assert _perceptual_loss_row(SpinPipelineConfig(lpips_loss_mult=0, st_lpips_loss_mult=0)) == "off"
    assert _perceptual_loss_row(SpinPipelineConfig(perceptual_network="st-lpips", st_lpips_loss_mult=0)) == "off"
    # a config.yml written before st_lpips_loss_mult (ST-LPIPS then ran at lpips_loss_mult) or before ST-LPIPS
    text = yaml.dump(SpinPipelineConfig(perceptual_network="st-lpips"))
    text = "\n".join(line for line in text.splitlines() if not line.startswith("st_lpips_loss_mult:"))
    assert _perceptual_loss_row(yaml.load(text, Loader=yaml.Loader)).startswith("ST-LPIPS(vgg), weight 0.01,")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("perceptual_network:"))
    assert _perceptual_loss_row(yaml.load(text, Loader=yaml.Loader)).startswith("LPIPS(vgg), weight 0.01 (skipped")
