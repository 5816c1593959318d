"""spin-nerfstudio: remove a clicked object from a captured 3D scene (SPIn-NeRF for nerfstudio)."""

from spin_nerfstudio.quiet import filter_known_warnings

__version__ = "0.1.0"

filter_known_warnings()  # known third-party deprecation notes only (spin_nerfstudio/quiet.py)
