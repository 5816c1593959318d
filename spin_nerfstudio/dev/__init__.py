"""Developer benchmarks and figures, run as ``spin-nerf dev figures|segbench|bench|scaling``.

They measure the method on generated scenes (inpainting figures, segmentation IoU, CPU field against nerfacto) for
the design notes; using the plugin needs none of them. The user's commands (``demo``, ``make-scene``, ``evaluate``,
``benchmark``, ``report``) live in ``spin_nerfstudio/evaluation`` and ``spin_nerfstudio/cli.py``.
"""
