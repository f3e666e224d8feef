"""Finding the files to ingest: the folders given are the boundary; globs, hidden entries, symlinks, loops and
unreadable folders are handled, and every entry left out is said with its reason.

A symlink whose target resolves outside every folder (or file) given is not followed unless `follow_symlinks`:
a cloned repository or an unpacked archive can hold `notes.txt -> /etc/passwd` or `home -> /`, and whatever is
indexed can be searched by anyone who may search the index (over HTTP and MCP too). Symlinks that stay inside are
followed; folders reached a second time (a loop, or a second link to one) are walked once. Every other walker
(training data, a folder watcher) calls `walk` so that the rule lives in one place.

Hard links and bind mounts cannot be told from ordinary entries (a hard link *is* a name in the folder; a bind
mount is a folder): their content is read as if it were there. README.md says so.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

# kinds of skipped entries (grouped in the ingest report; SkipFile kinds from the parsers join them)
HIDDEN = "hidden"
EXCLUDED = "excluded"
SYMLINK_OUTSIDE = "symlink-outside"
SYMLINK_LOOP = "symlink-loop"
BROKEN_SYMLINK = "broken-symlink"
SPECIAL = "special-file"


@dataclass
class Walk:
    files: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): could not be read
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason, kind): left out by a rule

    @property
    def hidden_skipped(self) -> int:
        return sum(1 for _, _, kind in self.skipped if kind == HIDDEN)

    @property
    def seen(self) -> int:
        """Every entry the walk met: files to read, entries skipped by a rule, and failures."""
        return len(self.files) + len(self.skipped) + len(self.failures)


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


def _inside(real: str, bounds: list[str]) -> bool:
    return any(real == b or real.startswith(b.rstrip("/") + "/") for b in bounds)


def boundary(paths: list[Path]) -> list[str]:
    """The real locations (symlinks resolved) of the folders and files given: what a symlink may point into."""
    out = []
    for p in paths:
        for cand in (os.path.abspath(p), os.path.realpath(p)):
            if cand not in out:
                out.append(cand)
    return out


def leaves(path: Path, within: list[Path]) -> bool:
    """True when `path` is a symlink whose target resolves outside `within` (a watcher's single changed file)."""
    return path.is_symlink() and not _inside(os.path.realpath(path), boundary(within))


def walk(paths: list[Path], include: list[str] | None = None, exclude: list[str] | None = None,
         hidden: bool = False, follow_symlinks: bool = False, within: list[Path] | None = None) -> Walk:
    """Files under `paths` (or the files themselves, followed even when they are symlinks: they were named),
    sorted, each path once; what is left out is in `skipped` (by a rule) or `failures` (could not be read).
    `within`: the boundary when it is wider than `paths` (a watcher walking one changed folder of its roots)."""
    out = Walk()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    include, exclude = include or [], exclude or []
    bounds = boundary(within or paths)

    def consider(f: Path, root: Path) -> None:
        key = os.path.abspath(f)
        if key in seen_files or is_editor_temp(f.name):
            return
        seen_files.add(key)
        if include and not _matches(f, root, include):
            out.skipped.append((key, "not matched by --include", EXCLUDED))
            return
        if exclude and _matches(f, root, exclude):
            out.skipped.append((key, "matched by --exclude", EXCLUDED))
            return
        out.files.append(Path(key))

    def link_target(p: Path) -> str | None:
        """None when the symlink `p` may be followed; else the reason it is not (and the entry is recorded)."""
        try:
            real = os.path.realpath(p, strict=True)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                out.skipped.append((str(p), "symlink loop", SYMLINK_LOOP))
            else:
                out.skipped.append((str(p), f"broken symlink (-> {os.readlink(p) if p.is_symlink() else '?'})",
                                    BROKEN_SYMLINK))
            return "skipped"
        if not follow_symlinks and not _inside(real, bounds):
            out.skipped.append((str(p), f"symlink outside the folder (-> {real}); --follow-symlinks reads it",
                                SYMLINK_OUTSIDE))
            return "skipped"
        return None

    for root in paths:
        root = Path(os.path.abspath(root))
        if root.is_file():
            consider(root, root.parent)
            continue
        stack, deferred = [root], []
        while stack or deferred:
            if not stack:  # folders reached through symlinks come last: their real path is walked first
                stack, deferred = deferred[::-1], []
            d = stack.pop()
            try:
                st = d.stat()
            except OSError as exc:
                out.failures.append((str(d), f"cannot read folder: {exc.strerror or exc}"))
                continue
            if (st.st_dev, st.st_ino) in seen_dirs:
                if d.is_symlink():
                    out.skipped.append((str(d), "symlink to a folder already walked (a loop, or a second link to "
                                                "it)", SYMLINK_LOOP))
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError as exc:
                out.failures.append((str(d), f"cannot read folder: {exc.strerror or exc}"))
                continue
            subdirs, linked = [], []
            for e in entries:
                p = Path(e.path)
                if e.name.startswith(".") and not hidden:
                    out.skipped.append((str(p), "hidden (--hidden reads it)", HIDDEN))
                    continue
                try:
                    is_link = e.is_symlink()
                    if is_link and link_target(p) is not None:
                        continue
                    is_dir = e.is_dir()
                    is_file = e.is_file()
                except OSError as exc:
                    out.failures.append((str(p), f"cannot stat: {exc.strerror or exc}"))
                    continue
                if is_dir:
                    (linked if is_link else subdirs).append(p)
                elif is_file:
                    consider(p, root)
                else:  # reading a named pipe would block the ingest forever; devices and sockets are not documents
                    out.skipped.append((str(p), f"not a regular file ({_kind(p)})", SPECIAL))
            stack.extend(reversed(subdirs))
            deferred.extend(linked)
    out.files.sort()
    return out


def _kind(p: Path) -> str:
    try:
        mode = p.stat().st_mode
    except OSError:
        return "unknown"
    for test, name in ((stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"
