"""Which paths under the watched roots are documents: the same rules as `ingest` (ingest/walk.py), per event."""

from __future__ import annotations

import os
from pathlib import Path

from ..ingest.walk import _matches, is_editor_temp


class PathFilter:
    """`ingest`'s rules for one path at a time: under a root, no hidden component (unless `hidden`), not an editor's
    temporary file, matching `include` and not `exclude` (globs on the path relative to its root, or the name)."""

    def __init__(self, roots: list[Path], include: list[str] | None = None, exclude: list[str] | None = None,
                 hidden: bool = False, skip: list[Path] | None = None):
        """`skip`: folders never looked at (the index itself, when it lives under a watched root: its own writes
        would otherwise wake the watcher after every sync)."""
        self.roots = [Path(os.path.abspath(r)) for r in roots]
        self.skip = [Path(os.path.abspath(d)) for d in skip or []]
        self.include, self.exclude, self.hidden = include or [], exclude or [], hidden

    def root_of(self, path: Path) -> Path | None:
        """The (deepest) root that holds `path`, None when it is outside every root."""
        best = None
        for r in self.roots:
            if path == r or path.is_relative_to(r):
                if best is None or len(r.parts) > len(best.parts):
                    best = r
        return best

    def relevant(self, path: Path) -> bool:
        """A path whose change may matter: a document, or a folder that may hold some (no glob applied)."""
        root = self.root_of(path)
        if root is None or any(path == d or path.is_relative_to(d) for d in self.skip):
            return False
        rel = path.relative_to(root).parts if path != root else ()
        if not self.hidden and any(p.startswith(".") for p in rel):
            return False
        return not (rel and is_editor_temp(rel[-1]))

    def accepts_file(self, path: Path) -> bool:
        """A file that `ingest` of the roots would read (globs included)."""
        if not self.relevant(path):
            return False
        root = self.root_of(path)
        if root == path:  # a root that is a file is taken as it is, as `ingest FILE` does
            return True
        if self.include and not _matches(path, root, self.include):
            return False
        return not (self.exclude and _matches(path, root, self.exclude))
