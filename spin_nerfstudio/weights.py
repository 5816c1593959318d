"""Learned weights on disk: fetch a file once, verify it against a known SHA-256, detect a damaged cached copy.

Every backend that needs downloaded weights (SAM, LaMa, ...) goes through :func:`fetch_verified`:

- a cached file whose checksum matches is used as is (no network);
- a cached file whose checksum does not match (a cut-off download, a damaged disk, another file under that name)
  is reported and fetched again; with downloads off it is reported and left alone;
- with ``SPIN_NERF_NO_DOWNLOAD=1`` nothing touches the network: a missing file is an error saying where to put it;
- a download goes to a temporary name next to ``dest``, is verified, and only then renamed onto ``dest``, so a kill
  or a bad transfer never leaves a file that a later run would trust.

Checksums are lowercase hex SHA-256 digests; a prefix of at least 8 hex digits is accepted (as torch hub's
``hash_prefix``), the full digest is preferred.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from spin_nerfstudio.prompts import SpinInputError

NO_DOWNLOAD_ENV = "SPIN_NERF_NO_DOWNLOAD"
_CHUNK = 1 << 20


class WeightsError(SpinInputError):
    """A weights file is missing, damaged, or could not be fetched (the message is one line naming the file)."""


def downloads_disabled() -> bool:
    """Whether ``SPIN_NERF_NO_DOWNLOAD`` forbids network access (any value but "", "0", "false", "no")."""
    return os.environ.get(NO_DOWNLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _check_digest_spec(sha256: str) -> str:
    spec = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", spec):
        raise ValueError(f"sha256 must be 8 to 64 hex digits, got {sha256!r}")
    return spec


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str) -> bool:
    """True when ``path`` is a file whose SHA-256 starts with (or equals) ``sha256``; False otherwise."""
    spec = _check_digest_spec(sha256)
    path = Path(path)
    if not path.is_file():
        return False
    return sha256_of(path).startswith(spec)


def fetch_verified(
    url: str,
    dest: Path,
    sha256: str,
    progress: bool = True,
    opener: Optional[Callable[[str], object]] = None,
) -> Path:
    """Return ``dest`` holding the verified file from ``url``, fetching it only when needed.

    Args:
        url: where the file comes from (``https://``, ``http://`` or ``file://``).
        dest: the cache path.
        sha256: its known SHA-256 (hex; a prefix of at least 8 digits is accepted).
        progress: print a one-line progress indicator on stderr while downloading.
        opener: ``urllib.request.urlopen`` by default; tests pass their own.

    Raises:
        WeightsError: downloads are disabled and the file is missing or damaged; the download failed; or the
            downloaded file does not match the checksum.
    """
    spec = _check_digest_spec(sha256)
    dest = Path(dest)
    damaged = False
    if dest.is_file():
        actual = sha256_of(dest)
        if actual.startswith(spec):
            return dest
        damaged = True
        note = (
            f"{dest}: cached file is damaged or not the expected one (sha256 {actual[:12]}..., expected {spec[:12]}...)"
        )
        if downloads_disabled():
            raise WeightsError(
                f"{note}; downloads are off ({NO_DOWNLOAD_ENV}=1): delete it and fetch {url} again, or unset "
                f"{NO_DOWNLOAD_ENV}"
            )
        print(f"spin-nerfstudio: {note}; fetching it again", file=sys.stderr)
    elif downloads_disabled():
        raise WeightsError(
            f"{dest}: weights file not found and downloads are off ({NO_DOWNLOAD_ENV}=1); "
            f"download {url} to that path (sha256 {spec[:12]}...) or unset {NO_DOWNLOAD_ENV}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        _download(url, tmp, progress, opener or urllib.request.urlopen)
        actual = sha256_of(tmp)
        if not actual.startswith(spec):
            raise WeightsError(
                f"{dest}: the file downloaded from {url} does not match its checksum (sha256 {actual[:12]}..., "
                f"expected {spec[:12]}...); it was not used"
            )
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    if damaged:
        print(f"spin-nerfstudio: {dest}: replaced the damaged file with a verified copy", file=sys.stderr)
    return dest


def _download(url: str, tmp: Path, progress: bool, opener: Callable[[str], object]) -> None:
    try:
        response = opener(url)
    except (OSError, ValueError) as err:
        raise WeightsError(f"{url}: download failed ({err})") from None
    try:
        total = int(getattr(response, "headers", {}).get("Content-Length") or 0)
        done = 0
        with open(tmp, "wb") as out:
            while True:
                block = response.read(_CHUNK)  # type: ignore[attr-defined]
                if not block:
                    break
                out.write(block)
                done += len(block)
                if progress:
                    share = f" ({100 * done / total:.0f}%)" if total else ""
                    print(
                        f"\rspin-nerfstudio: downloading {url}: {done / 2**20:.1f} MiB{share}", end="", file=sys.stderr
                    )
        if progress:
            print(file=sys.stderr)
    except OSError as err:
        raise WeightsError(f"{url}: download failed ({err})") from None
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()
