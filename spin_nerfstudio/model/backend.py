"""Which MLP / encoding backend the model uses: tinycudann where it imports and the device is CUDA, else torch."""

from __future__ import annotations

from typing import Literal

from nerfstudio.utils.rich_utils import CONSOLE


def select_implementation(requested: str, device: str) -> Literal["tcnn", "torch"]:
    """Pick tinycudann only where it imports and the device is CUDA."""
    if requested == "torch":
        return "torch"
    cuda = str(device).startswith("cuda")
    try:
        import tinycudann  # noqa: F401

        have_tcnn = True
    except (ImportError, OSError, EnvironmentError):
        have_tcnn = False
    if requested == "tcnn" and not (cuda and have_tcnn):
        why = "no CUDA device" if not cuda else "tinycudann is not installed"
        CONSOLE.print(f"[yellow]spin-nerfstudio: tcnn requested but {why}; using the torch implementation")
        return "torch"
    return "tcnn" if (cuda and have_tcnn) else "torch"
