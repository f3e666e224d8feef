"""Full-text search and path filters in the database's own dialect: FTS5 on SQLite, tsvector on PostgreSQL.

Both rank chunks of one committed generation by their words; the scores live on different scales (FTS5's bm25()
versus PostgreSQL's ts_rank_cd, which has no BM25), which is why hybrid search fuses by rank (RRF), never by
score. User text never reaches either query language: it is reduced to `\\w+` words first.
"""

from __future__ import annotations

import re

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection

from .stopwords import STOPWORDS

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 64


def query_terms(q: str) -> list[str]:
    """Lower-cased distinct words of the query, stopwords dropped (unless nothing else is left)."""
    words = [w.lower() for w in _WORD.findall(q)]
    return list(dict.fromkeys([w for w in words if w not in STOPWORDS] or words))[:MAX_TERMS]


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
    """One dialect's BM25-style ranking and path matching."""

    def path_condition(self, column, where: str):
        raise NotImplementedError

    def search(self, conn: Connection, query: str, k: int, gen: int, where: str | None) -> list[tuple[int, float]]:
        raise NotImplementedError

    def indexed_ids(self, conn: Connection) -> np.ndarray | None:
        """Chunk ids the full-text index holds, for `doctor`; None where it cannot differ from the rows."""
        return None


_VISIBLE = "c.added_gen <= :g AND (c.removed_gen IS NULL OR c.removed_gen > :g)"


class SqliteFullText(FullText):
    """External-content FTS5 table `chunks_fts` (porter stemming), kept in step with `chunks` by triggers."""

    def path_condition(self, column, where: str):
        return column.op("GLOB")(path_glob(where))

    def search(self, conn, query, k, gen, where):
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        sql = ("SELECT c.id, -bm25(chunks_fts, 1.0, 1.0) AS score FROM chunks_fts "
               "JOIN chunks c ON c.id = chunks_fts.rowid ")
        params: dict[str, object] = {"q": " OR ".join('"' + w + '"' for w in terms), "g": gen, "k": int(k)}
        if where:
            sql += "JOIN documents d ON d.id = c.document_id "
        sql += f"WHERE chunks_fts MATCH :q AND {_VISIBLE} "
        if where:
            sql += "AND d.path GLOB :glob "
            params["glob"] = path_glob(where)
        sql += "ORDER BY score DESC, c.id LIMIT :k"
        return [(int(i), float(s)) for i, s in conn.execute(text(sql), params)]

    def indexed_ids(self, conn):
        return np.fromiter((r[0] for r in conn.execute(text("SELECT id FROM chunks_fts_docsize ORDER BY id"))),
                           dtype=np.int64)


class PostgresFullText(FullText):
    """A generated `tsvector` column with a GIN index (migration 0002); ts_rank_cd with length normalization."""

    def path_condition(self, column, where: str):
        return column.op("~")(glob_regex(path_glob(where)))

    def search(self, conn, query, k, gen, where):
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        sql = ("SELECT c.id, ts_rank_cd(c.fts, q, 1) AS score FROM chunks c "
               "CROSS JOIN to_tsquery('english', :q) AS q ")
        params: dict[str, object] = {"q": " | ".join(terms), "g": gen, "k": int(k)}
        if where:
            sql += "JOIN documents d ON d.id = c.document_id "
        sql += f"WHERE c.fts @@ q AND {_VISIBLE} "
        if where:
            sql += "AND d.path ~ :regex "
            params["regex"] = glob_regex(path_glob(where))
        sql += "ORDER BY score DESC, c.id LIMIT :k"
        return [(int(i), float(s)) for i, s in conn.execute(text(sql), params)]


def fulltext_for(dialect: str) -> FullText:
    if dialect == "sqlite":
        return SqliteFullText()
    if dialect == "postgresql":
        return PostgresFullText()
    raise ValueError(f"llara-search keeps its metadata in SQLite or PostgreSQL, not {dialect}")
