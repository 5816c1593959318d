"""Building blocks of the report page: image tiles, stage images, number formatting, the style sheet, the page's
image writer (files under ``img/`` or inlined) and the choice of views shown."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image


# ------------------------------------------------------------------------------------------------------- images
def _tile(image: np.ndarray, min_width: int = 240) -> Image.Image:
    from spin_nerfstudio.evaluation.sheet import to_uint8

    img = Image.fromarray(to_uint8(image))
    if img.width < min_width:
        k = -(-min_width // img.width)
        img = img.resize((img.width * k, img.height * k), Image.NEAREST)
    return img


def _depth_colour(depth: np.ndarray) -> np.ndarray:
    import matplotlib

    d = np.asarray(depth, dtype=np.float64)
    lo, hi = np.percentile(d, 1), np.percentile(d, 99)
    return matplotlib.colormaps["turbo"]((np.clip(d, lo, hi) - lo) / max(hi - lo, 1e-9))[..., :3]


def _read_stage_image(run_dir: Path, folder: str, stem: str) -> Optional[np.ndarray]:
    from spin_nerfstudio.stage_io import MARKER

    path = run_dir / folder / f"{stem}.png"
    if not (run_dir / folder / MARKER).is_file() or not path.is_file():
        return None
    return np.array(Image.open(path))


# ------------------------------------------------------------------------------------------------------- html
def _fmt(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.4e}"
    return html.escape(str(value))


CSS = """
body{font-family:system-ui,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:4px 8px;font-size:13px}
th{background:#f4f4f4;text-align:left} td.num{text-align:right;font-family:monospace}
.views td{padding:2px;text-align:center;vertical-align:top} .views img{display:block;width:168px;image-rendering:pixelated}
.note{color:#845;font-size:13px} figure{display:inline-block;margin:6px} figcaption{font-size:12px;color:#555}
.curve{width:640px}
"""


class _Page:
    def __init__(self, folder: Path, embed: bool):
        self.folder, self.embed, self.parts = folder, embed, []  # type: ignore[var-annotated]
        (folder / "img").mkdir(parents=True, exist_ok=True)

    def image(self, tile: Image.Image, name: str, alt: str, css: str = "") -> str:
        path = self.folder / "img" / name
        tile.save(path)
        return self.image_file(path, alt, css)

    def image_file(self, path: Path, alt: str, css: str = "") -> str:
        if self.embed:
            src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
        else:
            src = html.escape(path.relative_to(self.folder).as_posix())
        cls = f' class="{css}"' if css else ""
        return f'<img src="{src}" alt="{html.escape(alt)}"{cls}>'


def _pick_views(names: Sequence[str], k: int, prefer: Sequence[str]) -> List[int]:
    from spin_nerfstudio.evaluation.sheet import pick_views

    idx = pick_views(len(names), k)
    for name in prefer:
        if name in names and names.index(name) not in idx:
            idx = sorted([names.index(name)] + idx[1:])
    return idx
