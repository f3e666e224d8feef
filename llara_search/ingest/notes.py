"""What an ingest left out, said honestly: one-line reasons, the skipped files grouped by why, the hint that says
what would read them, and the notes kept in the database for `status --files`.

`seen = indexed + unchanged + skipped + failed`. Skipped files were left out by a rule (a format we do not read,
binary data, hidden, a symlink out of the folder, too large...): the run is a success. Failed files should have been
read and could not be (corrupt, unreadable, vanished): `ingest` exits 3 after committing the rest.
"""

from __future__ import annotations

import os
from collections import Counter

# kinds that do not say "llara-search could not read this": the user's own rules, or entries that are no files
RULE_KINDS = {"excluded", "hidden", "symlink-loop", "link", "index-file"}
LABELS = {
    "unsupported": "unsupported format", "binary": "binary", "empty": "empty", "too-large": "too large",
    "no-text": "no text to index", "needs-extra": "needs an optional extra", "hidden": "hidden",
    "excluded": "ignored by rule (--include/--exclude)", "symlink-outside": "symlink outside the folder",
    "symlink-loop": "symlink loop or second link to a folder", "broken-symlink": "broken symlink",
    "special-file": "not a regular file", "link": "only points to another file", "index-file": "Info index file",
    "encrypted": "encrypted",
}
SUPPORTED = "md, rst, txt, html, pdf, ipynb, docx, man pages, texinfo/info (and .gz/.bz2/.xz of the text ones)"


def one_line(exc: BaseException) -> str:
    """An exception as one short line: its type, and the first line of its message."""
    msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def group_skipped(skipped: list[dict]) -> list[tuple[str, int]]:
    """("unsupported format .foo", 12), ("binary", 4)...: most files first; unsupported formats by extension."""
    counts: Counter[str] = Counter()
    for s in skipped:
        kind = s.get("kind") or "other"
        if kind == "unsupported":
            ext = os.path.splitext(s["path"])[1].lower() or "(no extension)"
            counts[f"unsupported format {ext}"] += 1
        else:
            counts[LABELS.get(kind, kind)] += 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def skipped_hint(report) -> str | None:
    """One line when most files met were skipped for a reason the user may not have meant, and what reads them."""
    meant = [s for s in report.skipped if s.get("kind") not in RULE_KINDS]
    if not report.files_seen or len(meant) * 2 <= report.files_seen:
        return None
    kinds = Counter(s.get("kind") for s in meant)
    ways = []
    if kinds.get("unsupported"):
        ways.append(f"llara-search reads {SUPPORTED}")
    extras = sorted({s["reason"].split("pip install", 1)[1].strip() for s in meant
                     if s.get("kind") == "needs-extra" and "pip install" in s["reason"]})
    if extras:
        ways.append(", ".join(f"pip install {e}" for e in extras) + " reads the files that need an extra")
    if kinds.get("symlink-outside"):
        ways.append("--follow-symlinks reads symlinks that leave the folder")
    if kinds.get("too-large"):
        ways.append("--max-file-mb raises the size limit")
    what = "; ".join(ways) or "see `--json` for every file and its reason"
    return f"most files were skipped ({len(meant)} of {report.files_seen}): {what}"


def record_file_notes(store, roots: list[str], run_id: int | None, report) -> None:
    """Keep this run's skipped and failed files (replacing the notes of the folders it walked)."""
    notes = [{"path": s["path"], "state": "skipped", "reason": s["reason"], "kind": s.get("kind") or "other"}
             for s in report.skipped]
    notes += [{"path": f["path"], "state": "failed", "reason": f["error"], "kind": f.get("kind") or "error"}
              for f in report.files_failed]
    store.replace_file_notes(roots, run_id, notes)


def notes_by_kind(notes: list[dict]) -> tuple[dict[str, int], int]:
    """(skipped files per kind, failed files) of `Store.file_notes()`, for `status`."""
    kinds = Counter(n["kind"] for n in notes if n["state"] == "skipped")
    return dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))), sum(n["state"] == "failed" for n in notes)


__all__ = ["LABELS", "RULE_KINDS", "group_skipped", "notes_by_kind", "one_line", "record_file_notes",
           "skipped_hint"]
