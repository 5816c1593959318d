"""Property test of a whole run's inputs: prompt files, mask folders, datasets and config values, fuzzed together.

Each example builds the ``spin-inpaint-small`` configuration that ``ns-train`` would build from such a command line
and runs what ``ns-train`` runs first (``config.save_config()``, which checks every input before writing). Every
example must end in either

- a valid run configuration: ``config.yml`` written and nothing else; for the first few, the trainer is also set up
  (pipeline, dataset, model) to confirm it really starts; or
- a one-line ``SystemExit`` message naming the file or the flag at fault, with no file left in the output folder.

Any other exception (a traceback) fails the test. ``pytest -s`` prints the counts.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_prompts import JSONISH, PROMPT_FILES

from spin_nerfstudio.spin_config import spin_inpaint_small_config

NAMES = [f"{i:03d}.png" for i in range(12)]  # the tiny scene's images (64x48)
W, H = 64, 48
COUNTS: Counter = Counter()
SETUPS_TO_RUN = 3


# --- datasets -----------------------------------------------------------------------------------------------------


def _copy_scene(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("background", "depth*", "masks"))
    return dst


def _edit_transforms(scene: Path, edit) -> None:
    path = scene / "transforms.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def datasets(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """The tiny scene and broken variants of it."""
    root = tmp_path_factory.mktemp("fuzz_data")
    out = {"ok": tiny_scene}

    mixed = _copy_scene(tiny_scene, root / "mixed")  # one image resized, the dataset file not
    Image.open(mixed / "images" / "005.png").resize((48, 36)).save(mixed / "images" / "005.png")
    out["mixed"] = mixed

    few = _copy_scene(tiny_scene, root / "few")
    _edit_transforms(few, lambda m: m.update(frames=m["frames"][:3]))
    out["few"] = few

    same = _copy_scene(tiny_scene, root / "coincident")
    _edit_transforms(
        same, lambda m: [f.update(transform_matrix=m["frames"][0]["transform_matrix"]) for f in m["frames"]]
    )
    out["coincident"] = same

    missing = _copy_scene(tiny_scene, root / "missing")
    (missing / "images" / "007.png").unlink()
    out["missing"] = missing

    garbage = _copy_scene(tiny_scene, root / "garbage")
    (garbage / "images" / "002.png").write_bytes(b"not a png")
    out["garbage"] = garbage

    broken_json = _copy_scene(tiny_scene, root / "broken_json")
    (broken_json / "transforms.json").write_text('{"frames": [')
    out["broken_json"] = broken_json

    out["absent"] = root / "absent"
    return out


# --- strategies ---------------------------------------------------------------------------------------------------

COORD = st.integers(-5, 70) | st.floats(-5, 70, allow_nan=False) | st.sampled_from([63.9, 47.9, 64, 48])
POINT = st.lists(COORD, min_size=2, max_size=2) | st.lists(COORD, max_size=3) | JSONISH
IMAGE = st.sampled_from(NAMES) | st.sampled_from(["images/003.png", "999.png", "", "000.jpg"]) | JSONISH
TARGETED_ITEM = st.fixed_dictionaries(
    {"image": IMAGE, "positive": st.lists(POINT, max_size=3)},
    optional={"negative": st.lists(POINT, max_size=2)},
)
TARGETED = st.fixed_dictionaries({"prompts": st.lists(TARGETED_ITEM, min_size=1, max_size=3)})
VALID = st.fixed_dictionaries(
    {
        "prompts": st.lists(
            st.fixed_dictionaries(
                {
                    "image": st.sampled_from(NAMES),
                    "positive": st.lists(st.tuples(st.integers(0, 63), st.integers(0, 47)), min_size=1, max_size=3),
                }
            ),
            min_size=1,
            max_size=2,
        )
    }
)
PROMPT_CONTENT = (
    st.none()
    | VALID.map(json.dumps)
    | TARGETED.map(lambda d: json.dumps(d, allow_nan=True))
    | PROMPT_FILES.map(lambda d: json.dumps(d, allow_nan=True))
    | st.sampled_from(["", "{", "[]", "null", '{"prompts": [{"image": "000.png", "positive": [[NaN, 1]]}]}'])
    | st.just(b"\xff\xfe\x00garbage")
    | st.just("<missing>")
)

MASK_KINDS = ["good", "good_rgb", "good_jpg", "missing", "empty", "full", "wrong_size", "garbage", "grey_low"]
MASK_FOLDER = (
    st.none()
    | st.just(["good"] * 12)
    | st.tuples(st.integers(0, 11), st.sampled_from(MASK_KINDS)).map(
        lambda t: ["good"] * t[0] + [t[1]] + ["good"] * (11 - t[0])
    )
    | st.lists(st.sampled_from(MASK_KINDS), min_size=12, max_size=12)
    | st.just("<missing>")
)

INTS = st.integers(-3, 3000)
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1, 2)
CONFIG_FIELDS = {
    "pipeline.reconstruct_steps": st.integers(-2, 400) | st.text(max_size=3),
    "pipeline.mask_steps": st.integers(-2, 200),
    "pipeline.dilate_kernel": st.integers(-2, 300),
    "pipeline.dilate_iterations": st.none() | st.integers(-2, 2000) | st.floats(0, 3),
    "pipeline.visibility_tolerance": FLOATS,
    "pipeline.lpips_patch_size": st.integers(-1, 5000),
    "pipeline.lpips_every": st.integers(-1, 4),
    "pipeline.lpips_loss_mult": FLOATS,
    "pipeline.st_lpips_loss_mult": FLOATS,
    "pipeline.field_prior_fraction": FLOATS,
    "pipeline.field_prior_weight": FLOATS,
    "pipeline.field_prior_max_difference": FLOATS,
    "pipeline.field_prior_object_tolerance": FLOATS,
    "pipeline.reference_image": st.none() | st.sampled_from(NAMES + ["nope.png", "images/004.png"]),
    "pipeline.model.mask_threshold": FLOATS,
    "pipeline.model.depth_loss_mult": FLOATS,
    "pipeline.model.depth_loss_tolerance": FLOATS,
    "pipeline.model.far_plane": FLOATS | st.just(1000.0),
    "pipeline.datamanager.max_image_side": st.integers(0, 5000) | st.just(32),
    "pipeline.datamanager.min_views": st.integers(0, 20),
    "max_num_iterations": INTS,
    "steps_per_save": st.integers(-1, 1000),
}
CONFIG_VALUES = st.dictionaries(st.sampled_from(sorted(CONFIG_FIELDS)), st.none(), max_size=4).flatmap(
    lambda picked: st.fixed_dictionaries({k: CONFIG_FIELDS[k] for k in picked})
)
DATASET = st.sampled_from(["ok"] * 6 + ["mixed", "few", "coincident", "missing", "garbage", "broken_json", "absent"])


# --- writing an example -------------------------------------------------------------------------------------------


def _write_masks(folder: Path, kinds: List[str]) -> None:
    folder.mkdir(parents=True)
    for name, kind in zip(NAMES, kinds):
        mask = np.zeros((H, W), np.uint8)
        mask[10:30, 20:40] = 255
        path = folder / name
        if kind == "missing":
            continue
        if kind == "empty":
            mask[:] = 0
        elif kind == "full":
            mask[:] = 255
        elif kind == "wrong_size":
            mask = np.zeros((H // 2, W // 2), np.uint8) + 255 * (np.arange(W // 2) < 5)
        elif kind == "grey_low":
            mask = mask // 2  # 127: below the threshold, so an empty mask
        if kind == "garbage":
            path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
        elif kind == "good_rgb":
            Image.fromarray(np.stack([mask] * 3, -1)).save(path)
        elif kind == "good_jpg":
            Image.fromarray(mask).save(path.with_suffix(".jpg"), quality=100)
        else:
            Image.fromarray(mask.astype(np.uint8)).save(path)


def _set(config, dotted: str, value) -> None:
    *parents, name = dotted.split(".")
    target = config
    for p in parents:
        target = getattr(target, p)
    setattr(target, name, value)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fuzz")
    yield root
    total = sum(COUNTS[k] for k in ("valid", "error"))
    print(
        f"\nfuzz: {total} run configurations tried: {COUNTS['error']} ended in a one-line error "
        f"({COUNTS['error_files']} naming a file, {COUNTS['error_flags']} naming a flag), {COUNTS['valid']} valid "
        f"({COUNTS['setup']} of them set up through the trainer); kinds: "
        + ", ".join(f"{k}={v}" for k, v in sorted(COUNTS.items()) if k.startswith("input_"))
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(prompt=PROMPT_CONTENT, masks=MASK_FOLDER, values=CONFIG_VALUES, dataset=DATASET)
def test_inputs_end_in_a_valid_config_or_one_line(work, datasets, prompt, masks, values, dataset) -> None:
    case = work / f"case{sum(COUNTS[k] for k in ('valid', 'error')):04d}"
    case.mkdir()
    config = spin_inpaint_small_config()
    config.output_dir = case / "out"
    config.experiment_name = "fuzz"
    config.timestamp = "run"
    config.vis = "tensorboard"
    config.machine.device_type = "cpu"
    config.data = datasets[dataset]
    config.pipeline.datamanager.data = datasets[dataset]  # what ns-train's --data alias does
    culprits = [str(datasets[dataset])]
    COUNTS[f"input_dataset_{dataset}"] += 1
    prompt_path: Optional[Path] = None
    if prompt is not None:
        prompt_path = case / "clicks.json"
        if prompt != "<missing>":
            (prompt_path.write_bytes if isinstance(prompt, bytes) else prompt_path.write_text)(prompt)
        config.pipeline.prompt_file = prompt_path
        culprits.append(str(prompt_path))
        COUNTS["input_prompt_file"] += 1
    if masks is not None:
        mask_dir = case / "masks"
        if masks != "<missing>":
            _write_masks(mask_dir, masks)
        config.pipeline.mask_dir = mask_dir
        culprits.append(str(mask_dir))
        COUNTS["input_mask_dir"] += 1
    for dotted, value in values.items():
        _set(config, dotted, value)
        COUNTS["input_config_values"] += 1

    try:
        config.save_config()  # what ns-train does first: checks every input, then writes config.yml
    except SystemExit as stop:
        message = str(stop.code)
        assert "\n" not in message and message.startswith("spin-nerfstudio: "), message
        names_file = any(c in message for c in culprits)
        names_flag = "--" in message
        assert names_file or names_flag, message
        assert not [p for p in (case / "out").rglob("*") if p.is_file()], "a run folder was written"
        COUNTS["error"] += 1
        COUNTS["error_files" if names_file else "error_flags"] += 1
        return
    written = [p for p in (case / "out").rglob("*") if p.is_file()]
    assert [p.name for p in written] == ["config.yml"]
    COUNTS["valid"] += 1
    if COUNTS["setup"] < SETUPS_TO_RUN:
        trainer = config.setup(local_rank=0, world_size=1)
        trainer.setup()  # builds the dataset, the pipeline (its own input checks) and the model
        assert trainer.pipeline.datamanager.num_views == 12
        COUNTS["setup"] += 1
    shutil.rmtree(case)
