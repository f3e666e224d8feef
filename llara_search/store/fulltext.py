"""Path filters and housekeeping in the database's own dialect (GLOB on SQLite, a regular expression on PostgreSQL).

BM25 itself is not computed in SQL any more: it is llara_search.lexical, one engine over files in the index folder
for both databases, so they rank alike. The `--where` glob means the same everywhere: here for dense search, and in
the lexical index (which matches the same regular expression against the paths it stores).
"""

from __future__ import annotations

import re

from sqlalchemy import text


def path_glob(where: str) -> str:
    """A user's `--where` glob matched against absolute paths: `api/*.md` means any `.../api/*.md`."""
    where = where.strip()
    if where.startswith(("/", "*")):
        return where
    return "*/" + where


def glob_regex(glob: str) -> str:
    """A glob as an anchored POSIX regular expression (`*` and `?` match `/` too, as SQLite's GLOB does)."""
    out, i = ["^"], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and "]" in glob[i + 2:] + glob[i + 1:i + 2]:
            j = glob.index("]", i + 2 if glob[i + 1:i + 2] in ("!", "]") else i + 1)
            body = glob[i + 1:j]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out) + "$"


class FullText:
    """One dialect's path matching and maintenance."""

    def path_condition(self, column, where: str):
        raise NotImplementedError

    def optimize(self, engine) -> None:
        """Give back the space of purged rows (after `compact`); each backend knows how."""


class SqliteFullText(FullText):
    def path_condition(self, column, where: str):
        return column.op("GLOB")(path_glob(where))

    def optimize(self, engine):
        """Rewrite the file without free pages, and empty the WAL. VACUUM needs no other transaction on its
        connection; readers on other connections keep their snapshot meanwhile."""
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


class PostgresFullText(FullText):
    def path_condition(self, column, where: str):
        return column.op("~")(glob_regex(path_glob(where)))


def fulltext_for(dialect: str) -> FullText:
    if dialect == "sqlite":
        return SqliteFullText()
    if dialect == "postgresql":
        return PostgresFullText()
    raise ValueError(f"llara-search keeps its metadata in SQLite or PostgreSQL, not {dialect}")
