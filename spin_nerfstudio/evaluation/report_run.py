"""The run a report describes: its config, its training and test image files, and its settings as table rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List

from spin_nerfstudio.prompts import SpinInputError


@dataclass
class RunInfo:
    """What the report needs to know about a run, read from its ``config.yml`` and its dataset."""

    run_dir: Path
    config: object
    train_files: List[Path]
    test_files: List[Path]
    test_masks: List[Path]
    spin_layout: bool


def load_run(run_dir: Path) -> RunInfo:
    """Read ``RUN/config.yml`` and list the run's training (and SPIn-NeRF test) image files via its dataparser."""
    from spin_nerfstudio.data.spin_layout import LAYOUT_KEY, OBJECT_MASK_FILES
    from spin_nerfstudio.evaluation.protocol import load_run_config

    run_dir = Path(run_dir)
    path = run_dir / "config.yml"
    if not path.is_file():
        raise SpinInputError(f"{path}: run config not found (is {run_dir} a run folder?)")
    config = load_run_config(path)
    dp = config.pipeline.datamanager.dataparser
    try:
        parser = dp.setup()
        train = parser.get_dataparser_outputs("train")
    except (OSError, ValueError) as err:
        raise SpinInputError(f"{run_dir}: cannot read the run's dataset {dp.data} ({err})") from None
    spin = bool(train.metadata.get(LAYOUT_KEY))
    test_files: List[Path] = []
    test_masks: List[Path] = []
    if spin:
        test = parser.get_dataparser_outputs("test")
        test_files = [Path(p) for p in test.image_filenames]
        test_masks = [Path(p) for p in test.metadata.get(OBJECT_MASK_FILES, [])]
    return RunInfo(run_dir, config, [Path(p) for p in train.image_filenames], test_files, test_masks, spin)


def _configured(p, name: str, default):
    """A pipeline config field as the run's ``config.yml`` set it: ``default`` when the file predates the field (a
    loaded config lacks it in its ``__dict__`` and would otherwise read today's class default)."""
    return vars(p).get(name, default) if hasattr(p, "__dict__") else getattr(p, name, default)


def _perceptual_loss_row(p) -> str:
    """The run's perceptual loss settings as configured, with the weight of the network that runs (the training log
    names the network that ran)."""
    network = _configured(p, "perceptual_network", "lpips")  # runs configured before ST-LPIPS had LPIPS only
    lpips_mult = float(_configured(p, "lpips_loss_mult", 0))
    # runs configured before st_lpips_loss_mult weighted ST-LPIPS with lpips_loss_mult
    st_mult = float(_configured(p, "st_lpips_loss_mult", lpips_mult))
    net = p.lpips_net
    lpips = f"LPIPS({net}), weight {lpips_mult:g}" if lpips_mult > 0 else None
    st = f"ST-LPIPS({net}), weight {st_mult:g}" if st_mult > 0 else None
    if network == "lpips":
        what = f"{lpips} (skipped without its ImageNet backbone)" if lpips else None
    elif network == "st-lpips":
        what = st
    elif network == "auto":
        if lpips and st:
            what = f"{lpips} when its ImageNet backbone was found, else {st}"
        elif lpips:
            what = f"{lpips} when its ImageNet backbone was found, else off (ST-LPIPS weight 0)"
        elif st:
            what = f"{st} when LPIPS' ImageNet backbone was not found, else off (LPIPS weight 0)"
        else:
            what = None
    else:
        what = f"{network}, weight {lpips_mult:g}" if lpips_mult > 0 else None
    if what is None:
        return "off"
    return f"{what}, {p.lpips_patch_size} px patches"
