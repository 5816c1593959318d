"""SAM checkpoints: where they are cached, which model type a file holds, and a verified download.

The official checkpoints are published by Meta at ``https://dl.fbaipublicfiles.com/segment_anything/``. The size
and SHA-256 of each file below are not printed on the official page; they were taken from several independent
public projects that pin the same files, and they agree with the official file names, whose suffix is the start of
each file's MD5 (``sam_vit_b_01ec64.pth`` has MD5 ``01ec64d2...``). A downloaded file is accepted only when its size,
SHA-256 and MD5 all match, and it is then loaded once to check that it builds the expected model.

Downloads are switched off by the environment variable ``SPIN_NERF_NO_DOWNLOAD=1`` (tests and CI set it).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from spin_nerfstudio.prompts import SpinInputError

NO_DOWNLOAD_ENV = "SPIN_NERF_NO_DOWNLOAD"
"""Environment variable: set to 1 (or true/yes) to forbid every download."""

MODEL_TYPES = ("vit_b", "vit_l", "vit_h", "vit_t")
# Width of the image encoder's patch embedding, which identifies the model type of a state dict.
ENCODER_WIDTH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
ENCODER_DEPTH = {"vit_b": 12, "vit_l": 24, "vit_h": 32}
PATCH_KEY = "image_encoder.patch_embed.proj.weight"
TINY_PATCH_KEY = "image_encoder.patch_embed.seq.0.c.weight"
"""First convolution of MobileSAM's TinyViT encoder (vit_t): present instead of ``PATCH_KEY``."""
MOBILE_SAM_FILE = "mobile_sam.pt"
"""MobileSAM's checkpoint file name (its vit_t weights), looked for in the same cache; never downloaded (no
verified size and hashes are kept for it)."""


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One of the checkpoints Meta published with segment-anything."""

    model_type: str
    """vit_b, vit_l or vit_h."""
    filename: str
    """Official file name (also the name in the cache)."""
    size: int
    """Size in bytes."""
    sha256: str
    """SHA-256 of the file."""
    md5: str
    """MD5 of the file (its first six hex digits are in the official file name)."""

    @property
    def url(self) -> str:
        """Official download address."""
        return f"https://dl.fbaipublicfiles.com/segment_anything/{self.filename}"


OFFICIAL: Dict[str, OfficialCheckpoint] = {
    c.model_type: c
    for c in (
        OfficialCheckpoint(
            "vit_b",
            "sam_vit_b_01ec64.pth",
            375042383,
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            "01ec64d29a2fca3f0661936605ae66f8",
        ),
        OfficialCheckpoint(
            "vit_l",
            "sam_vit_l_0b3195.pth",
            1249524607,
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            "0b3195507c641ddb6910d2bb5adee89c",
        ),
        OfficialCheckpoint(
            "vit_h",
            "sam_vit_h_4b8939.pth",
            2564550879,
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            "4b8939a88964f0f4ff5f5b2642c598a6",
        ),
    )
}


class DownloadError(RuntimeError):
    """A checkpoint could not be downloaded or did not verify; the message is one line."""


def downloads_disabled() -> bool:
    """Whether ``SPIN_NERF_NO_DOWNLOAD`` forbids downloads."""
    return os.environ.get(NO_DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """Torch's hub checkpoint folder (``$TORCH_HOME/hub/checkpoints``), where SAM checkpoints are looked for."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_checkpoint(model_type: str = "auto") -> Optional[Path]:
    """An official SAM checkpoint already in the cache: the asked type, or for ``auto`` the largest one present
    (``vit_t``: MobileSAM's ``mobile_sam.pt``, which ``auto`` does not consider here)."""
    if model_type == "vit_t":
        return cached_mobile_sam()
    order = [model_type] if model_type != "auto" else ["vit_h", "vit_l", "vit_b"]
    for kind in order:
        path = cache_dir() / OFFICIAL[kind].filename
        if path.is_file():
            return path
    return None


def cached_mobile_sam() -> Optional[Path]:
    """MobileSAM's ``mobile_sam.pt`` in the cache, else None."""
    path = cache_dir() / MOBILE_SAM_FILE
    return path if path.is_file() else None


def _load_state_dict(path: Path) -> dict:
    """Read a checkpoint's tensors without running pickled code; memory-mapped where the format allows."""
    import torch

    path = Path(path)
    if not path.exists():
        raise SpinInputError(f"{path}: SAM checkpoint not found")
    if not path.is_file():
        raise SpinInputError(f"{path}: SAM checkpoint is not a file")
    try:
        mmap = zipfile.is_zipfile(path)
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - any failure to read means "not a checkpoint"
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise SpinInputError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
    if isinstance(data, dict) and "model" in data and isinstance(data["model"], dict):
        data = data["model"]
    if not isinstance(data, dict):
        raise SpinInputError(f"{path}: not a SAM checkpoint (holds a {type(data).__name__}, not a state dict)")
    return data


def model_type_of(state: dict, path: Path) -> str:
    """vit_b / vit_l / vit_h, or vit_t (MobileSAM's TinyViT encoder), from a SAM state dict; a one-line error when
    it is not one."""
    encoder = TINY_PATCH_KEY if TINY_PATCH_KEY in state and PATCH_KEY not in state else PATCH_KEY
    needed = (encoder, "prompt_encoder.point_embeddings.0.weight", "mask_decoder.iou_prediction_head.layers.0.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        raise SpinInputError(f"{path}: not a SAM checkpoint (no '{missing[0]}' among its {len(state)} tensors)")
    if encoder == TINY_PATCH_KEY:
        stages = {k.split(".")[2] for k in state if k.startswith("image_encoder.layers.")}
        if stages != {"0", "1", "2", "3"} or tuple(state[TINY_PATCH_KEY].shape) != (32, 3, 3, 3):
            raise SpinInputError(
                f"{path}: not a MobileSAM vit_t checkpoint (TinyViT encoder with {len(stages)} stages, first "
                f"convolution {tuple(state[TINY_PATCH_KEY].shape)}; expected 4 stages and (32, 3, 3, 3))"
            )
        return "vit_t"
    width = int(state[PATCH_KEY].shape[0])
    if width not in ENCODER_WIDTH:
        raise SpinInputError(f"{path}: not a SAM checkpoint (image encoder width {width}, expected 768/1024/1280)")
    kind = ENCODER_WIDTH[width]
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks."))
    if depth != ENCODER_DEPTH[kind]:
        raise SpinInputError(f"{path}: not a SAM checkpoint (encoder width {width} with {depth} blocks)")
    return kind


def read_checkpoint(path: Path, model_type: str = "auto") -> tuple:
    """Load a SAM state dict and its model type, checking it against the asked ``model_type``."""
    state = _load_state_dict(Path(path))
    kind = model_type_of(state, Path(path))
    if model_type != "auto" and kind != model_type:
        raise SpinInputError(
            f"{path}: this is a {kind} SAM checkpoint but model_type '{model_type}' was asked "
            f"(use --pipeline.segmenter.model-type {kind} or auto"
            + (", and --pipeline.segmenter.backend mobilesam)" if kind == "vit_t" else ")")
        )
    named = [t for t in MODEL_TYPES if f"_{t}" in Path(path).name or Path(path).name.startswith(t)]
    if named and named[0] != kind:
        raise SpinInputError(f"{path}: the file name says {named[0]} but the checkpoint holds a {kind} model")
    return state, kind


def file_digests(path: Path) -> tuple:
    """(size, sha256, md5) of a file, read in chunks."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), md5.hexdigest()


def verify(path: Path, expected: OfficialCheckpoint) -> None:
    """Raise :class:`DownloadError` unless the file has the official size, SHA-256 and MD5."""
    size, sha, md5 = file_digests(path)
    if size != expected.size:
        raise DownloadError(f"{path.name}: {size} bytes, expected {expected.size}")
    if sha != expected.sha256 or md5 != expected.md5:
        raise DownloadError(
            f"{path.name}: checksum mismatch (sha256 {sha[:12]}..., expected {expected.sha256[:12]}...)"
        )


def download_checkpoint(model_type: str, url: Optional[str] = None, expected: Optional[OfficialCheckpoint] = None):
    """Download an official checkpoint into the cache with a progress bar, verify it, and return its path.

    Args:
        model_type: vit_b, vit_l or vit_h.
        url: override of the address (tests use a ``file://`` address); defaults to the official one.
        expected: override of the expected size and hashes; defaults to the official ones.

    Raises:
        DownloadError: downloads are disabled, the transfer failed, or the file did not verify (it is deleted).
    """
    import torch

    if downloads_disabled():
        raise DownloadError(f"downloads are switched off ({NO_DOWNLOAD_ENV}=1)")
    expected = expected or OFFICIAL[model_type]
    target = cache_dir() / expected.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        torch.hub.download_url_to_file(url or expected.url, str(partial), progress=True)
        verify(partial, expected)
    except DownloadError:
        partial.unlink(missing_ok=True)
        raise
    except Exception as err:  # noqa: BLE001 - network errors come in many types
        partial.unlink(missing_ok=True)
        text = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise DownloadError(f"{url or expected.url}: {text}") from None
    partial.replace(target)
    return target
