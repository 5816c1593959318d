"""How well the 2D colour fills do on a real capture, without ground truth: decoy holes beside each removal mask.

For every view of RUN with at least three decoy holes (the removal mask shifted beside itself onto known pixels,
``inpainting/select.py``), the ``select`` choice is made on the two nearest decoys as the pipeline makes it, and
the biharmonic fill, the Telea fill and that choice are scored on the other decoys (PSNR against the known pixels).

    python scripts/decoy_check.py RUN IMAGES        # e.g. RUN of juicebox at images_4, IMAGES = its images_4/
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List

import numpy as np
from PIL import Image

from spin_nerfstudio.inpainting.select import SelectingInpainter, decoy_masks


def decoy_scores(run: Path, images: Path) -> Dict[str, List[float]]:
    """Per fill, the mean squared error on the held-out decoys of each view that has them."""
    candidates = SelectingInpainter().candidates
    out: Dict[str, List[float]] = {"biharmonic": [], "telea": [], "select": []}
    for path in sorted((run / "masks_dilated").glob("*.png")):
        mask = np.asarray(Image.open(path)) > 0
        image = Image.open(next(images.glob(path.stem + ".*"))).convert("RGB")
        image = np.asarray(image.resize((mask.shape[1], mask.shape[0])))
        decoys = decoy_masks(mask, 4)
        if len(decoys) < 3:
            continue
        errors = {
            name: [float(np.mean((fill.inpaint_rgb(image, mask | d)[d].astype(float) - image[d]) ** 2)) for d in decoys]
            for name, fill in candidates.items()
        }
        pick = min(errors, key=lambda name: np.mean(errors[name][:2]))
        for name in candidates:
            out[name].append(float(np.mean(errors[name][2:])))
        out["select"].append(float(np.mean(errors[pick][2:])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("images", type=Path)
    args = parser.parse_args()
    for name, errors in decoy_scores(args.run, args.images).items():
        psnr = 10 * np.log10(255**2 / np.mean(errors)) if errors else float("nan")
        print(f"{name}: PSNR on held-out decoy holes {psnr:.2f} dB over {len(errors)} views")


if __name__ == "__main__":
    main()
