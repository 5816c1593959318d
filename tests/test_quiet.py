"""The plugin hides only the known third-party deprecation warnings, and only from the modules that raise them."""

from __future__ import annotations

import warnings

import pytest

from spin_nerfstudio.quiet import KNOWN_WARNINGS, filter_known_warnings

CAMERAS_NOTE = "Using a non-tuple sequence for multidimensional indexing is deprecated and will be changed in pytorch"


def _shown(message: str, category: type, module: str) -> bool:
    """Whether a warning raised from ``module`` reaches the console once the plugin's filters are installed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("always")
        filter_known_warnings()
        warnings.warn_explicit(message, category, filename=module.replace(".", "/") + ".py", lineno=1, module=module)
    return len(caught) == 1


def test_the_known_nerfstudio_warnings_are_hidden() -> None:
    assert not _shown(CAMERAS_NOTE, UserWarning, "nerfstudio.cameras.cameras")
    assert not _shown(
        "Converting a tensor with requires_grad=True to a scalar may lead to unexpected behavior.",
        UserWarning,
        "nerfstudio.utils.writer",
    )
    assert not _shown(
        "`torch.jit.script` is deprecated. Please switch to `torch.compile`", FutureWarning, "torch.jit._script"
    )


@pytest.mark.parametrize(
    "message, category, module",
    [
        ("something else went wrong", UserWarning, "nerfstudio.cameras.cameras"),  # same module, other message
        (CAMERAS_NOTE, UserWarning, "spin_nerfstudio.render"),  # same message from our own code
        (CAMERAS_NOTE, RuntimeWarning, "nerfstudio.cameras.cameras"),  # same message, other category
        ("mean of empty slice", RuntimeWarning, "numpy.lib.nanfunctions"),
    ],
)
def test_other_warnings_still_show(message: str, category: type, module: str) -> None:
    assert _shown(message, category, module)


def test_importing_the_plugin_installs_the_filters() -> None:
    import importlib

    import spin_nerfstudio

    with warnings.catch_warnings():
        warnings.resetwarnings()
        importlib.reload(spin_nerfstudio)
        installed = [
            (f[0], f[1].pattern if f[1] else None, f[2], f[3].pattern if f[3] else None) for f in warnings.filters
        ]
    for category, message, module in KNOWN_WARNINGS:
        assert ("ignore", message, category, module) in installed
    assert len(installed) == len(KNOWN_WARNINGS)  # nothing broader than the listed warnings
