"""Prompt files: the clicks that name the object to remove.

Format (pixel coordinates of the image as stored on disk, x right, y down, origin top-left)::

    {"prompts": [{"image": "000.png", "positive": [[x, y], ...], "negative": [[x, y], ...], "size": [w, h]}]}

Images are matched by file name (the name alone, not the folder). ``size`` (optional) is the width and height of the
image the clicks were made in: a run on a downscaled or upscaled copy of the capture (``--downscale-factor``) moves
the clicks onto its own pixels. Without it the clicks are taken as pixels of the training images. Every problem is reported as a
:class:`SpinInputError` whose message is one line naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple


class SpinInputError(ValueError):
    """Bad user input (prompt file, mask folder, config value). The message is one line naming the culprit."""


@dataclass
class ImagePrompt:
    """Clicks in one image."""

    image: str
    """File name of the image the clicks were made in."""
    positive: List[Tuple[float, float]] = field(default_factory=list)
    """Pixels on the object, (x, y)."""
    negative: List[Tuple[float, float]] = field(default_factory=list)
    """Pixels that are not the object, (x, y)."""
    positive_3d: List[Tuple[float, float, float]] = field(default_factory=list)
    """Optional world points of the positive clicks (written by the viewer panel)."""
    negative_3d: List[Tuple[float, float, float]] = field(default_factory=list)
    """Optional world points of the negative clicks."""
    size: Optional[Tuple[int, int]] = None
    """Optional (width, height) of the image the clicks were made in; None: the training image's own size."""


@dataclass
class PromptSet:
    """All clicks of a run."""

    prompts: List[ImagePrompt]
    """One entry per clicked image."""
    source: str = "<memory>"
    """Where the prompts came from, for messages."""

    @property
    def num_positive(self) -> int:
        """Number of positive clicks over all images."""
        return sum(len(p.positive) for p in self.prompts)

    def to_json(self) -> Dict:
        """The JSON object written to a prompt file."""
        out = []
        for p in self.prompts:
            entry: Dict = {"image": p.image, "positive": [list(map(float, xy)) for xy in p.positive]}
            entry["negative"] = [list(map(float, xy)) for xy in p.negative]
            if p.positive_3d:
                entry["positive_3d"] = [list(map(float, xyz)) for xyz in p.positive_3d]
            if p.negative_3d:
                entry["negative_3d"] = [list(map(float, xyz)) for xyz in p.negative_3d]
            if p.size is not None:
                entry["size"] = [int(p.size[0]), int(p.size[1])]
            out.append(entry)
        return {"prompts": out}

    def save(self, path: Path) -> None:
        """Write the prompt file atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2))
        tmp.replace(path)


def _points(value: object, where: str, dims: int) -> List[Tuple[float, ...]]:
    if not isinstance(value, list):
        raise SpinInputError(f"{where}: expected a list of [x, y] points, got {type(value).__name__}")
    pts = []
    for k, pt in enumerate(value):
        ok = isinstance(pt, (list, tuple)) and len(pt) == dims
        ok = ok and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in pt)
        if not ok:
            raise SpinInputError(f"{where}[{k}]: expected {dims} numbers, got {json.dumps(pt)[:60]}")
        if not all(abs(c) <= 1.7976931348623157e308 for c in pt):  # largest float: no NaN, inf, or huge int
            raise SpinInputError(f"{where}[{k}]: coordinates must be finite, got {pt}")
        pts.append(tuple(float(c) for c in pt))
    return pts


def _size(value: object, where: str) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    ok = ok and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in value)
    if not ok:
        raise SpinInputError(
            f"{where}: expected [width, height] in pixels (two positive integers), got {json.dumps(value)[:60]}"
        )
    return int(value[0]), int(value[1])


def parse_prompts(data: object, source: str = "<memory>") -> PromptSet:
    """Check the structure of a decoded prompt file and return it as a :class:`PromptSet`."""
    if not isinstance(data, dict) or "prompts" not in data:
        raise SpinInputError(f"{source}: expected a JSON object with a 'prompts' list")
    items = data["prompts"]
    if not isinstance(items, list) or not items:
        raise SpinInputError(f"{source}: 'prompts' must be a non-empty list")
    prompts = []
    for i, item in enumerate(items):
        where = f"{source}: prompts[{i}]"
        if not isinstance(item, dict):
            raise SpinInputError(f"{where}: expected an object with 'image', 'positive', 'negative'")
        image = item.get("image")
        if not isinstance(image, str) or not image:
            raise SpinInputError(f"{where}.image: expected a file name string")
        prompts.append(
            ImagePrompt(
                image=Path(image).name,
                positive=_points(item.get("positive", []), f"{where}.positive", 2),
                negative=_points(item.get("negative", []), f"{where}.negative", 2),
                positive_3d=_points(item.get("positive_3d", []), f"{where}.positive_3d", 3),
                negative_3d=_points(item.get("negative_3d", []), f"{where}.negative_3d", 3),
                size=_size(item.get("size"), f"{where}.size"),
            )
        )
    result = PromptSet(prompts=prompts, source=source)
    if result.num_positive == 0:
        raise SpinInputError(f"{source}: no positive click; click at least once on the object to remove")
    return result


def load_prompts(path: Path) -> PromptSet:
    """Read and check a prompt file."""
    path = Path(path)
    if not path.is_file():
        raise SpinInputError(f"{path}: prompt file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SpinInputError(f"{path}: not valid JSON ({err})") from None
    return parse_prompts(data, source=str(path))


def match_to_dataset(prompts: PromptSet, image_names: Sequence[str], sizes: Sequence[Tuple[int, int]]) -> List[int]:
    """Index of each prompt's image in the dataset; checks names exist and points lie inside the image.

    A prompt with a ``size`` other than its training image's has its clicks moved onto the training image's pixels
    here (in place: the prompt then holds the training size), after checking that the two have the same aspect.

    Args:
        prompts: the parsed prompt set.
        image_names: file names of the training images, in dataset order.
        sizes: (width, height) of each training image as stored on disk.
    """
    index = {Path(n).name: i for i, n in enumerate(image_names)}
    out = []
    for i, p in enumerate(prompts.prompts):
        if p.image not in index:
            some = ", ".join(list(index)[:3])
            raise SpinInputError(
                f"{prompts.source}: prompts[{i}].image '{p.image}' is not a training image (have e.g. {some})"
            )
        k = index[p.image]
        w, h = sizes[k]
        if p.size is not None and tuple(p.size) != (w, h):
            _rescale(p, (w, h), f"{prompts.source}: prompts[{i}]")
        for kind, pts in (("positive", p.positive), ("negative", p.negative)):
            for j, (x, y) in enumerate(pts):
                if not (0 <= x < w and 0 <= y < h):
                    hint = "" if p.size is not None else "; clicks made at another resolution need the prompt's 'size'"
                    raise SpinInputError(
                        f"{prompts.source}: prompts[{i}].{kind}[{j}] = ({x:g}, {y:g}) is outside {p.image} ({w}x{h}){hint}"
                    )
        out.append(k)
    return out


def _rescale(prompt: ImagePrompt, target: Tuple[int, int], where: str) -> None:
    """Move ``prompt``'s clicks from its ``size`` onto an image of ``target`` (width, height) pixels, pixel centre to
    pixel centre; refuses sizes whose aspect differs by more than 2% (another crop, or the width and height swapped)."""
    if prompt.size is None:
        return
    (sw, sh), (w, h) = prompt.size, target
    if abs((w / h) / (sw / sh) - 1.0) > 0.02:
        raise SpinInputError(
            f"{where}.size {sw}x{sh} does not have the aspect of {prompt.image} as trained ({w}x{h}); "
            "give the size of the image the clicks were made in"
        )
    sx, sy = w / sw, h / sh

    def move(pts: List[Tuple[float, float]]) -> List[Tuple[float, float]]:
        # pixel centre to pixel centre, kept on the image (a click on an edge pixel stays on the edge pixel)
        return [
            (min(max((x + 0.5) * sx - 0.5, 0.0), w - 1.0), min(max((y + 0.5) * sy - 0.5, 0.0), h - 1.0)) for x, y in pts
        ]

    prompt.positive, prompt.negative, prompt.size = move(prompt.positive), move(prompt.negative), (w, h)
