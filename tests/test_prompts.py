"""Tests of the prompt-file reader: valid files, one-line errors naming file and field, dataset matching, saving."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spin_nerfstudio.prompts import (
    ImagePrompt,
    PromptSet,
    SpinInputError,
    load_prompts,
    match_to_dataset,
    parse_prompts,
)


def write(tmp_path: Path, content: object, name: str = "prompts.json") -> Path:
    """Write ``content`` (a str as is, anything else as JSON) to a prompt file."""
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def load_error(tmp_path: Path, content: object) -> str:
    """The message of the SpinInputError raised when loading ``content``; checks it is one line naming the file."""
    path = write(tmp_path, content)
    with pytest.raises(SpinInputError) as info:
        load_prompts(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_valid_file_parses(tmp_path: Path) -> None:
    data = {
        "prompts": [
            {"image": "images/000.png", "positive": [[10, 20], [30.5, 4]], "negative": [[1, 2]]},
            {"image": "/abs/dir/001.jpg", "positive": []},
        ]
    }
    prompts = load_prompts(write(tmp_path, data))
    assert prompts.source == str(tmp_path / "prompts.json")
    assert [p.image for p in prompts.prompts] == ["000.png", "001.jpg"]
    first = prompts.prompts[0]
    assert first.positive == [(10.0, 20.0), (30.5, 4.0)]
    assert first.negative == [(1.0, 2.0)]
    assert all(isinstance(c, float) for pt in first.positive + first.negative for c in pt)
    assert prompts.prompts[1].positive == [] and prompts.prompts[1].negative == []
    assert prompts.num_positive == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpinInputError, match="prompt file not found") as info:
        load_prompts(tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ({"clicks": []}, "expected a JSON object with a 'prompts' list"),
        ([{"image": "a.png"}], "expected a JSON object with a 'prompts' list"),
        ({"prompts": []}, "'prompts' must be a non-empty list"),
        ({"prompts": {"image": "a.png"}}, "'prompts' must be a non-empty list"),
        ({"prompts": ["a.png"]}, "prompts[0]: expected an object"),
        ({"prompts": [{"image": "a.png", "positive": [[1, 2]]}, 3]}, "prompts[1]: expected an object"),
        ({"prompts": [{"positive": [[1, 2]]}]}, "prompts[0].image: expected a file name string"),
        ({"prompts": [{"image": "", "positive": [[1, 2]]}]}, "prompts[0].image: expected a file name string"),
        ({"prompts": [{"image": 7, "positive": [[1, 2]]}]}, "prompts[0].image: expected a file name string"),
        ({"prompts": [{"image": "a.png", "positive": [1, 2]}]}, "prompts[0].positive[0]: expected 2 numbers"),
        ({"prompts": [{"image": "a.png", "positive": [[1, 2], [1, 2, 3]]}]}, "prompts[0].positive[1]: expected 2"),
        ({"prompts": [{"image": "a.png", "positive": [[1, 2], [1]]}]}, "prompts[0].positive[1]: expected 2 numbers"),
        ({"prompts": [{"image": "a.png", "positive": [["1", 2]]}]}, "prompts[0].positive[0]: expected 2 numbers"),
        ({"prompts": [{"image": "a.png", "positive": [[True, 2]]}]}, "prompts[0].positive[0]: expected 2 numbers"),
        ({"prompts": [{"image": "a.png", "positive": [[None, 2]]}]}, "prompts[0].positive[0]: expected 2 numbers"),
        ({"prompts": [{"image": "a.png", "positive": "1,2"}]}, "prompts[0].positive: expected a list"),
        ('{"prompts": [{"image": "a.png", "positive": [[NaN, 2]]}]}', "prompts[0].positive[0]: coordinates must be"),
        ('{"prompts": [{"image": "a.png", "positive": [[1, Infinity]]}]}', "prompts[0].positive[0]: coordinates"),
        ({"prompts": [{"image": "a.png", "positive": [[1, 2]], "negative": [[1, 2, 3]]}]}, "prompts[0].negative[0]"),
        ({"prompts": [{"image": "a.png", "positive": [[1, 2]], "positive_3d": [[1, 2]]}]}, "prompts[0].positive_3d[0]"),
        ({"prompts": [{"image": "a.png", "positive": [[1, 2]], "negative_3d": [[1, 2, "z"]]}]}, "negative_3d[0]"),
        ({"prompts": [{"image": "a.png", "negative": [[1, 2]]}]}, "no positive click"),
        ({"prompts": [{"image": "a.png", "positive": []}, {"image": "b.png"}]}, "no positive click"),
    ],
)
def test_malformed_files(tmp_path: Path, content: object, expected: str) -> None:
    assert expected in load_error(tmp_path, content)


def test_huge_integer_coordinate_is_an_input_error(tmp_path: Path) -> None:
    # JSON integers are unbounded; one that does not fit a float must be reported, not crash with OverflowError.
    content = '{"prompts": [{"image": "a.png", "positive": [[1' + "0" * 400 + ", 2]]}]}"
    assert "prompts[0].positive[0]" in load_error(tmp_path, content)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.json"
    path.write_bytes(b'{"prompts": "\xff\xfe"}')
    with pytest.raises(SpinInputError, match="not valid JSON"):
        load_prompts(path)


def dataset_prompts(*prompts: ImagePrompt) -> PromptSet:
    return PromptSet(prompts=list(prompts), source="clicks.json")


NAMES = ["images/000.png", "images/001.png", "images/002.png"]
SIZES = [(64, 48), (64, 48), (32, 24)]


def test_match_to_dataset_indices() -> None:
    prompts = dataset_prompts(
        ImagePrompt("002.png", positive=[(31.9, 23.9)], negative=[(0.0, 0.0)]),
        ImagePrompt("000.png", positive=[(63.5, 0.0)]),
    )
    assert match_to_dataset(prompts, NAMES, SIZES) == [2, 0]


def test_match_unknown_image() -> None:
    prompts = dataset_prompts(ImagePrompt("000.png", positive=[(1, 1)]), ImagePrompt("zzz.png", positive=[(1, 1)]))
    with pytest.raises(SpinInputError) as info:
        match_to_dataset(prompts, NAMES, SIZES)
    message = str(info.value)
    assert message.startswith("clicks.json: prompts[1].image 'zzz.png' is not a training image")
    assert "000.png" in message and "\n" not in message


@pytest.mark.parametrize(
    ("prompt", "field", "point"),
    [
        (ImagePrompt("002.png", positive=[(1, 1), (32, 5)]), "prompts[0].positive[1]", "(32, 5)"),
        (ImagePrompt("002.png", positive=[(1, 24)]), "prompts[0].positive[0]", "(1, 24)"),
        (ImagePrompt("002.png", positive=[(-0.5, 3)]), "prompts[0].positive[0]", "(-0.5, 3)"),
        (ImagePrompt("002.png", positive=[(1, 1)], negative=[(2, -1)]), "prompts[0].negative[0]", "(2, -1)"),
    ],
)
def test_match_point_outside_image(prompt: ImagePrompt, field: str, point: str) -> None:
    with pytest.raises(SpinInputError) as info:
        match_to_dataset(dataset_prompts(prompt), NAMES, SIZES)
    message = str(info.value)
    assert field in message and point in message
    assert "002.png (32x24)" in message
    assert "\n" not in message


def test_save_round_trip(tmp_path: Path) -> None:
    original = PromptSet(
        prompts=[
            ImagePrompt(
                "000.png",
                positive=[(1.5, 2.0), (3.0, 4.25)],
                negative=[(5.0, 6.0)],
                positive_3d=[(0.1, -0.2, 0.3), (1.0, 2.0, 3.0)],
                negative_3d=[(-1.0, 0.0, 1e-3)],
            ),
            ImagePrompt("001.png", negative=[(7.0, 8.0)]),
        ],
        source="memory",
    )
    path = tmp_path / "run" / "sub" / "prompts.json"
    original.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["prompts.json"]  # no temporary file left behind
    loaded = load_prompts(path)
    assert loaded.prompts == original.prompts
    assert loaded.source == str(path)
    on_disk = json.loads(path.read_text())
    assert on_disk["prompts"][0]["positive_3d"] == [[0.1, -0.2, 0.3], [1.0, 2.0, 3.0]]
    assert "positive_3d" not in on_disk["prompts"][1]  # empty 3D lists are not written


# --- property test: parse_prompts never raises anything but a one-line SpinInputError -------------------------

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**63, -(2**64)])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
JSONISH = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
NUMBER = st.integers(-1000, 1000) | st.floats(allow_nan=True, allow_infinity=True) | LEAVES
POINT2 = st.lists(NUMBER, min_size=2, max_size=2) | st.lists(NUMBER, max_size=4) | JSONISH
POINT3 = st.lists(NUMBER, min_size=3, max_size=3) | JSONISH
POINTS2 = st.lists(POINT2, max_size=3) | JSONISH
POINTS3 = st.lists(POINT3, max_size=2) | JSONISH
ITEM = (
    st.fixed_dictionaries(
        {"image": st.text(max_size=12) | JSONISH, "positive": POINTS2},
        optional={"negative": POINTS2, "positive_3d": POINTS3, "negative_3d": POINTS3, "extra": JSONISH},
    )
    | JSONISH
)
PROMPT_FILES = (
    st.fixed_dictionaries({"prompts": st.lists(ITEM, max_size=3) | JSONISH}, optional={"other": JSONISH}) | JSONISH
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROMPT_FILES)
def test_parse_never_crashes(data: object) -> None:
    try:
        result = parse_prompts(data, source="p.json")
    except SpinInputError as err:
        message = str(err)
        assert "\n" not in message
        assert message.startswith("p.json: ")
        return
    assert isinstance(result, PromptSet) and result.num_positive >= 1
    for p in result.prompts:
        assert p.image == Path(p.image).name
        for pts, dims in ((p.positive, 2), (p.negative, 2), (p.positive_3d, 3), (p.negative_3d, 3)):
            assert all(len(pt) == dims and all(isinstance(c, float) and math.isfinite(c) for c in pt) for pt in pts)


@pytest.fixture(scope="module")
def prop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prop")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=1, max_size=4))
def test_save_load_property(prop_dir: Path, points: list) -> None:
    original = PromptSet([ImagePrompt("x.png", positive=points)])
    path = prop_dir / "p.json"  # overwritten by every example, atomically
    original.save(path)
    assert load_prompts(path).prompts == original.prompts
    assert sorted(q.name for q in prop_dir.iterdir()) == ["p.json"]


def test_clicks_made_at_another_resolution_move_onto_the_training_pixels(tmp_path: Path) -> None:
    # clicks written for 128x96 copies (twice the training size of 000.png) and 16x12 ones (half of 002.png)
    path = tmp_path / "clicks.json"
    path.write_text(json.dumps({"prompts": [
        {"image": "000.png", "positive": [[127.0, 95.0], [0.0, 0.0]], "negative": [[63.5, 47.5]], "size": [128, 96]},
        {"image": "002.png", "positive": [[15.0, 11.0]], "size": [16, 12]},
    ]}))  # fmt: skip
    prompts = load_prompts(path)
    assert match_to_dataset(prompts, NAMES, SIZES) == [0, 2]
    first, second = prompts.prompts
    # pixel centre to pixel centre: x' = (x + 0.5) * 64 / 128 - 0.5
    assert first.positive == [(63.0, 47.0), (0.0, 0.0)]  # 63.25, 47.25 and -0.25 kept on the image
    assert first.negative == [(31.5, 23.5)] and first.size == (64, 48)
    assert second.positive == [(30.5, 22.5)] and second.size == (32, 24)
    assert prompts.to_json()["prompts"][0]["size"] == [64, 48]  # saved in the training image's pixels


def test_prompt_size_errors(tmp_path: Path) -> None:
    path = tmp_path / "clicks.json"
    path.write_text(json.dumps({"prompts": [{"image": "000.png", "positive": [[1, 1]], "size": [64, 64]}]}))
    with pytest.raises(SpinInputError, match=r"^.*clicks.json: prompts\[0\].size 64x64 does not have the aspect of "
                       r"000.png as trained \(64x48\); give the size of the image the clicks were made in$"):  # fmt: skip
        match_to_dataset(load_prompts(path), NAMES, SIZES)
    for bad in ([64], [64, 0], [64.0, 48], "64x48", [True, 48]):
        path.write_text(json.dumps({"prompts": [{"image": "000.png", "positive": [[1, 1]], "size": bad}]}))
        with pytest.raises(SpinInputError, match=r"prompts\[0\].size: expected \[width, height\] in pixels"):
            load_prompts(path)
    # a click outside the image without a size says how clicks at another resolution are given
    path.write_text(json.dumps({"prompts": [{"image": "002.png", "positive": [[40, 5]]}]}))
    with pytest.raises(SpinInputError, match="need the prompt's 'size'"):
        match_to_dataset(load_prompts(path), NAMES, SIZES)
