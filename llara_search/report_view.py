"""The ingest report and the file notes as lines for a terminal: skipped files grouped by reason, failed files
named, and every name escaped (`terminal.text`). The CLI prints these; `--json` has every file instead."""

from __future__ import annotations

from rich.text import Text

from .ingest.notes import group_skipped, skipped_hint
from .terminal import text

MAX_NAMED = 50  # failed files (and warnings) named one per line before "… and N more (see --json)"


def skipped_and_failed(report) -> list[Text]:
    """`skipped 45: unsupported format .foo: 12 files, binary: 4...`, the hint when most files were skipped, then
    each failed file on its own line."""
    lines: list[Text] = []
    if report.skipped:
        groups = ", ".join(f"{label}: {n} file{'s' if n != 1 else ''}" for label, n in group_skipped(report.skipped))
        lines.append(text(f"skipped {len(report.skipped)}: {groups}", "dim"))
    hint = skipped_hint(report)
    if hint:
        lines.append(text(f"note: {hint}", "yellow"))
    for f in report.files_failed[:MAX_NAMED]:
        lines.append(text(f"failed: {f['path']}: {f['error']}", "yellow"))
    if len(report.files_failed) > MAX_NAMED:
        lines.append(Text(f"… and {len(report.files_failed) - MAX_NAMED} more failures (see --json)"))
    return lines


def file_notes(notes: list[dict]) -> list[Text]:
    """`status --files`: every file the last ingests skipped or could not read, one line each, failures first."""
    order = sorted(notes, key=lambda n: (n["state"] != "failed", n["kind"], n["path"]))
    return [text(f"{n['state']} [{n['kind']}] {n['path']}: {n['reason']}", "yellow" if n["state"] == "failed"
                 else "dim") for n in order]


__all__ = ["file_notes", "skipped_and_failed"]
