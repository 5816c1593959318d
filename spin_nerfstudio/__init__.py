"""spin-nerfstudio: remove a clicked object from a captured 3D scene (SPIn-NeRF for nerfstudio)."""

__version__ = "0.1.0"
