"""The plugin registers its methods and dataparser the way nerfstudio discovers them."""

from __future__ import annotations

from importlib.metadata import entry_points

from conftest import run_cli


def test_entry_points_resolve_to_method_specs():
    from nerfstudio.plugins.registry_dataparser import DataParserSpecification
    from nerfstudio.plugins.types import MethodSpecification

    methods = {ep.name: ep for ep in entry_points(group="nerfstudio.method_configs")}
    for name in ("spin-inpaint", "spin-inpaint-small"):
        spec = methods[name].load()
        assert isinstance(spec, MethodSpecification)
        assert spec.config.method_name == name
    parsers = {ep.name: ep for ep in entry_points(group="nerfstudio.dataparser_configs")}
    assert isinstance(parsers["spin-llff"].load(), DataParserSpecification)


def test_small_variant_suits_a_cpu():
    from spin_nerfstudio.spin_config import spin_inpaint_small

    cfg = spin_inpaint_small.config
    assert cfg.mixed_precision is False
    assert cfg.pipeline.datamanager.train_num_rays_per_batch <= 1024
    assert cfg.pipeline.model.encoding == "auto"
    assert cfg.pipeline.datamanager.dataparser.eval_mode == "all"


def test_methods_train_on_the_cpu_when_torch_sees_no_gpu(monkeypatch):
    import torch

    from spin_nerfstudio import spin_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert spin_config.spin_inpaint_small_config().machine.device_type == "cpu"
    assert spin_config.spin_inpaint_config().machine.device_type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert spin_config.spin_inpaint_small_config().machine.device_type == "cuda"


def test_ns_train_help_lists_both_methods(tmp_path):
    proc = run_cli(["ns-train", "--help"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0
    assert "spin-inpaint-small" in proc.stdout and "spin-inpaint " in proc.stdout.replace("\n", " ")


def test_model_builds_offline_and_picks_torch_on_cpu():
    import torch
    from nerfstudio.data.scene_box import SceneBox

    from spin_nerfstudio.model.spin_model import SpinModelConfig

    box = SceneBox(aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]]))
    model = SpinModelConfig(implementation="tcnn").setup(scene_box=box, num_train_data=3, device="cpu")
    assert model.implementation == "torch" and model.encoding_kind == "planes"
