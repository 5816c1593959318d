"""The developer benchmarks' report files: the report as JSON and its printed table as Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict


def write_report(
    output: Path,
    report: Dict[str, Any],
    format_table: Callable[[Dict[str, Any]], str],
    result_file: str,
    table_file: str,
) -> Dict[str, Any]:
    """Add ``format_table(report)`` to ``report`` as ``table``, write the report to ``output / result_file`` (JSON)
    and the table to ``output / table_file``; returns the report."""
    table = format_table(report)
    report["table"] = table
    (output / result_file).write_text(json.dumps(report, indent=2) + "\n")
    (output / table_file).write_text(table + "\n")
    return report
