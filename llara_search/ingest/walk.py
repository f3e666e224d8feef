"""Finding the files to ingest: globs, hidden folders, symlink loops and unreadable folders handled."""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Walk:
    files: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    hidden_skipped: int = 0


_TEMP_SUFFIXES = (".swp", ".swo", ".swn", ".swx", ".swpx", ".kate-swp", ".tmp", ".temp", ".crdownload", ".part",
                  "___jb_tmp___", "___jb_old___")


def is_editor_temp(name: str) -> bool:
    """Editors' swap, backup, lock and atomic-save files (vim's `.x.swp` and `4913` probe, emacs' `#x#` and `.#x`,
    `x~` backups, Office's `~$x`, downloads in progress): never documents, and usually gone a moment later, so
    neither `ingest` nor `watch` reads them."""
    return (name.endswith("~") or name == "4913" or name.startswith((".#", "~$", ".~lock.", ".goutputstream-"))
            or (name.startswith("#") and name.endswith("#")) or name.lower().endswith(_TEMP_SUFFIXES))


def _matches(path: Path, root: Path, patterns: list[str]) -> bool:
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(path.name, p) for p in patterns)


def walk(paths: list[Path], include: list[str] | None = None, exclude: list[str] | None = None,
         hidden: bool = False) -> Walk:
    """Files under `paths` (or the files themselves), sorted, each real file once."""
    out = Walk()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    include, exclude = include or [], exclude or []

    def consider(f: Path, root: Path) -> None:
        key = os.path.abspath(f)
        if key in seen_files or is_editor_temp(f.name):
            return
        if include and not _matches(f, root, include):
            return
        if exclude and _matches(f, root, exclude):
            return
        seen_files.add(key)
        out.files.append(Path(key))

    for root in paths:
        root = Path(os.path.abspath(root))
        if root.is_file():
            consider(root, root.parent)
            continue
        stack = [root]
        while stack:
            d = stack.pop()
            try:
                st = d.stat()
            except OSError as exc:
                out.failures.append((str(d), f"cannot read folder: {exc.strerror or exc}"))
                continue
            if (st.st_dev, st.st_ino) in seen_dirs:
                if d.is_symlink():
                    out.failures.append((str(d), "symlink loop (folder already visited)"))
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError as exc:
                out.failures.append((str(d), f"cannot read folder: {exc.strerror or exc}"))
                continue
            subdirs = []
            for e in entries:
                p = Path(e.path)
                if e.name.startswith(".") and not hidden:
                    out.hidden_skipped += 1
                    continue
                try:
                    is_dir = e.is_dir()
                    is_file = e.is_file()
                except OSError as exc:
                    out.failures.append((str(p), f"cannot stat: {exc.strerror or exc}"))
                    continue
                if is_dir:
                    subdirs.append(p)
                elif is_file:
                    consider(p, root)
                elif e.is_symlink():
                    out.failures.append((str(p), "broken or looping symlink"))
                else:  # reading a named pipe would block the ingest forever; devices and sockets are not documents
                    out.failures.append((str(p), f"not a regular file ({_kind(p)}); skipped"))
            stack.extend(reversed(subdirs))
    out.files.sort()
    return out


def _kind(p: Path) -> str:
    try:
        mode = p.lstat().st_mode
    except OSError:
        return "unknown"
    for test, name in ((stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"
