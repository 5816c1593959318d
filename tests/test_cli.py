"""``spin-nerf`` shows the user's commands at the top; the developer benchmarks sit under ``spin-nerf dev``."""

from __future__ import annotations

import re

import pytest

from spin_nerfstudio.cli import _parser, main


def _verbs(help_text: str) -> set:
    """The sub-command names in an argparse help text's ``{a,b,c}`` list."""
    found = re.search(r"\{([a-z,-]+)\}", help_text)
    assert found is not None, help_text
    return set(found.group(1).split(","))


def test_top_level_lists_user_commands_and_dev() -> None:
    verbs = _verbs(_parser().format_help())
    assert verbs == {"make-scene", "demo", "evaluate", "benchmark", "report", "dev"}


def test_dev_lists_the_developer_benchmarks(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["dev", "--help"])
    assert info.value.code == 0
    verbs = {"figures", "segbench", "bench", "scaling", "witnesses", "geometry", "poses"}
    assert _verbs(capsys.readouterr().out) == verbs


def test_old_top_level_benchmark_names_are_refused(capsys) -> None:
    for old in ("figures", "segbench", "bench"):
        with pytest.raises(SystemExit) as info:
            main([old])
        assert info.value.code == 2
        assert "invalid choice" in capsys.readouterr().err


def test_dev_figures_table_only_without_a_run_names_the_file(tmp_path, capsys) -> None:
    assert main(["dev", "figures", "--output", str(tmp_path), "--table-only"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'figures.json'}: not found; run spin-nerf dev figures first" in err


def test_dev_scaling_refuses_bad_sizes_and_settings(tmp_path, capsys) -> None:
    assert main(["dev", "scaling", "24x120", "--output", str(tmp_path)]) == 2
    assert "size '24x120': expected VIEWSxWIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["dev", "scaling", "8x48x36", "--set", "pipeline.nope=1", "--output", str(tmp_path)]) == 2
    assert "--set pipeline.nope=1: expected FIELD=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "8x48x36").exists()
