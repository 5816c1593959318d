"""A portrait copy of an LLFF capture: every image turned a quarter clockwise and every camera rolled with it.

A phone held upright gives portrait images; the captures in this repo are landscape. This writes the same capture
as if it had been taken upright, so a removal run can be checked on portrait input with a known-good scene: the
images of ``images_N/`` turned by 90 degrees clockwise, ``poses_bounds.npy`` with each camera's LLFF axes rolled
(new down = old right, new right = old up) and height and width swapped, and the prompt file's clicks moved to the
turned pixels. The pose check at the start of a run (SIFT matches on their epipolar lines) confirms the poses.

    python scripts/portrait_llff.py ../shared/data/juicebox configs/juicebox_prompts.json /tmp/jbportrait --factor 8
    ns-train spin-inpaint-small --pipeline.prompt-file /tmp/jbportrait/prompts.json --vis tensorboard \\
        spin-llff --data /tmp/jbportrait --downscale-factor 8 --eval-mode interval --eval-offset 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List

import numpy as np
from PIL import Image


def rolled_poses(poses_bounds: np.ndarray) -> np.ndarray:
    """LLFF ``poses_bounds`` rows (N x 17) of the same cameras rolled a quarter turn about their optical axes so
    that their images are the old ones turned clockwise: [down, right, back] -> [right, -down, back], (h, w) swapped."""
    mats = poses_bounds[:, :15].reshape(-1, 3, 5).copy()
    down, right = mats[:, :, 0].copy(), mats[:, :, 1].copy()
    mats[:, :, 0], mats[:, :, 1] = right, -down
    mats[:, 0, 4], mats[:, 1, 4] = poses_bounds[:, 9].copy(), poses_bounds[:, 4].copy()  # hwf: h <-> w
    return np.concatenate([mats.reshape(-1, 15), poses_bounds[:, 15:]], axis=1)


def turned_point(point: List[float], height: int) -> List[float]:
    """Pixel (x, y) of an image ``height`` rows high, after the image is turned a quarter clockwise."""
    x, y = point
    return [height - 1 - y, x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", type=Path, help="LLFF capture folder (poses_bounds.npy, images_N/)")
    parser.add_argument("prompts", type=Path, help="its prompt file")
    parser.add_argument("output", type=Path)
    parser.add_argument("--factor", type=int, default=8, help="which images_N/ to turn (default 8)")
    args = parser.parse_args()
    folder = f"images_{args.factor}"
    (args.output / folder).mkdir(parents=True, exist_ok=True)
    np.save(args.output / "poses_bounds.npy", rolled_poses(np.load(args.capture / "poses_bounds.npy")))
    for path in sorted((args.capture / folder).iterdir()):
        with Image.open(path) as image:
            image.transpose(Image.Transpose.ROTATE_270).save(args.output / folder / path.name, quality=95)
    prompts = json.loads(args.prompts.read_text())
    for prompt in prompts["prompts"]:
        if "size" not in prompt:
            raise SystemExit(
                f"{args.prompts}: prompt on '{prompt['image']}' has no \"size\"; add the image size it was clicked at"
            )
        width, height = prompt["size"]
        for key in ("positive", "negative"):
            prompt[key] = [turned_point(p, height) for p in prompt.get(key, [])]
        prompt["size"] = [height, width]
    (args.output / "prompts.json").write_text(json.dumps(prompts, indent=2) + "\n")
    print(f"wrote {args.output}: {len(list((args.output / folder).iterdir()))} images turned, poses rolled, prompts")


if __name__ == "__main__":
    main()
