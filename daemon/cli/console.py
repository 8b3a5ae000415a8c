"""What every command shares on the terminal: its exit codes, the plain-text table, and the\nerror for settings that cannot be used. Imports nothing, so `--help` stays quick."""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class SettingsError(Exception):
    """A GRAPHNAP_* variable (or secret file) that cannot be used."""


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
