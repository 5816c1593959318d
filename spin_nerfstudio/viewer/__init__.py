"""The viewer side of spin-nerfstudio: the "Object removal" panel and the click-to-3D logic behind it."""
