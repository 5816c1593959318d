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


def _perceptual_loss_row(p) -> str:
    """The run's perceptual loss settings as configured (the training log names the network that ran)."""
    if getattr(p, "lpips_loss_mult", 0) <= 0:
        return "off"
    network = getattr(p, "perceptual_network", "lpips")  # runs configured before ST-LPIPS had LPIPS only
    what = {
        "auto": f"LPIPS({p.lpips_net}) when its ImageNet backbone was found, else ST-LPIPS({p.lpips_net})",
        "lpips": f"LPIPS({p.lpips_net}) (skipped without its ImageNet backbone)",
        "st-lpips": f"ST-LPIPS({p.lpips_net})",
    }.get(network, str(network))
    return f"{what}, weight {p.lpips_loss_mult}, {p.lpips_patch_size} px patches"
