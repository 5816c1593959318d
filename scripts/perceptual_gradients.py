"""How hard the perceptual patch loss pushes a masked pixel, next to the colour MSE, on a figures run's views.

    PYTHONPATH=. .venv/bin/python scripts/perceptual_gradients.py FIGURES_OUT/seedS

For each view: a 24 px patch centred on the removal mask, rendered as the ground truth (the answer the fit should
reach), is scored with ST-LPIPS(vgg) against the 2D-inpainted target the loss compares it with. Printed: that
distance, the mean |gradient| per pixel of ``0.01 * ST-LPIPS`` (the default weight), and the mean |gradient| per
pixel of the colour MSE towards the same target when the pixel is one of a 1024-ray batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spin_nerfstudio.model.perceptual import STLPIPS


def main() -> None:
    seed_dir = Path(sys.argv[1])
    run = seed_dir / "runs/ours/spin-inpaint-small/run"
    net = STLPIPS("vgg")
    ratios = []
    for path in sorted((run / "inpainted").glob("*.png")):

        def rgb(p: Path) -> np.ndarray:
            return np.asarray(Image.open(p).convert("RGB"), np.float32) / 255

        target, truth = rgb(path), rgb(seed_dir / "scene/background" / path.name)
        mask = np.asarray(Image.open(run / "masks_dilated" / path.name).convert("L")) > 0
        ys, xs = np.nonzero(mask)
        p = 24
        y0, x0 = max(0, int(ys.mean()) - p // 2), max(0, int(xs.mean()) - p // 2)
        t = torch.from_numpy(target[y0 : y0 + p, x0 : x0 + p]).permute(2, 0, 1)[None]
        g = torch.from_numpy(truth[y0 : y0 + p, x0 : x0 + p]).permute(2, 0, 1)[None]
        r = g.clone().requires_grad_(True)
        d = net(r, t).mean()
        (0.01 * d).backward()
        perceptual = r.grad.abs().mean().item()
        mse = (2 * (g - t).abs() / (1024 * 3)).mean().item()
        ratios.append(perceptual / mse)
        print(
            f"{path.name}: ST-LPIPS(truth, 2D target) {d.item():.3f}; |grad| per pixel: perceptual {perceptual:.2e}, "
            f"colour MSE {mse:.2e} (ratio {ratios[-1]:.1f}); |truth - target| {(g - t).abs().mean():.3f}"
        )
    print(f"mean ratio {np.mean(ratios):.1f} over {len(ratios)} views")


if __name__ == "__main__":
    main()
