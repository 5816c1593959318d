"""The removal pipeline's stages, one module each, in the order the scheduler (``pipeline.SpinPipeline``) runs them.

- ``inputs``: prompts or ready-made masks read and checked before any step.
- ``reconstruct``: after the reconstruction, every view's depth and colour render (``depth/``, ``renders_before/``).
- ``initial_masks``: clicks → a mask in every view (``initial_masks/``), the mask head's target.
- ``mask_field``: agreement check, final masks from the fitted mask head (``masks/``), removal masks
  (``masks_dilated/``).
- ``inpaint``: 2D inpainting of colour and depth (``inpainted/``, ``inpainted_depth/``).
- ``seen_elsewhere``: masked pixels another view saw (``seen_elsewhere/``, ``inpainted_targets/``, ``seen_depth/``).
- ``inpainted_fit``: targets handed to the datamanager, the field reset, the field prior (``field_prior/``) and
  LPIPS patches during the fit.
- ``sheets``: ``masks_sheet.png`` and ``before_after.png``.
- ``resume``: every stage restored the same way from its folders (``--load-dir``, ``--pipeline.reuse-stages``).
- ``names``: the run-folder names (imported by the viewer and the evaluation commands as well).
"""
