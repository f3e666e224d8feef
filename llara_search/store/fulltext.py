"""Full-text search and path filters in the database's own dialect: FTS5 on SQLite, tsvector on PostgreSQL.

Both rank the chunks of one committed generation by BM25 (k1=1.2, b=0.75); their tokenizers differ (FTS5's
porter stemmer, PostgreSQL's english snowball configuration with its stopwords), so scores are close, not equal,
which is one more reason hybrid search fuses by rank (RRF), never by score. User text never reaches either query
language: it is reduced to `\\w+` words first.
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

    def optimize(self, engine) -> None:
        """Give back the space of purged rows (after `compact`); each backend knows how."""

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

    def optimize(self, engine):
        """Merge the FTS5 segments into one, rewrite the file without free pages, and empty the WAL. VACUUM needs
        no other transaction on its connection; readers on other connections keep their snapshot meanwhile."""
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO chunks_fts(chunks_fts) VALUES('optimize')"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    def indexed_ids(self, conn):
        return np.fromiter((r[0] for r in conn.execute(text("SELECT id FROM chunks_fts_docsize ORDER BY id"))),
                           dtype=np.int64)


class PostgresFullText(FullText):
    """BM25 (k1=1.2, b=0.75, as FTS5) computed from a generated `tsvector` column (migration 0002).

    PostgreSQL ranks with ts_rank_cd, which has no inverse document frequency: on BEIR SciFact it scores nDCG@10
    0.41 where BM25 scores 0.69. So the ranking is BM25 itself: term frequencies are the lexeme positions of
    each matched chunk, document frequencies are counted through the GIN index, and the corpus size and mean
    length of a generation are computed once and kept.
    """

    K1, B = 1.2, 0.75
    # One pass over the visible chunks that hold any query lexeme gives both each chunk's term frequencies and
    # each lexeme's document frequency (the number of those chunks holding it), so df costs no index scans of its
    # own. The path filter applies only to what is ranked: df, N and the mean length are the whole generation's,
    # as in FTS5.
    _SQL = """
        WITH terms AS MATERIALIZED (
            SELECT array_agg(DISTINCT lexeme) AS lexemes FROM unnest(to_tsvector('english', :words))),
        tf AS MATERIALIZED (
            SELECT c.id, c.document_id, c.fts_length, x.lexeme, x.tf
            FROM chunks c CROSS JOIN terms
            CROSS JOIN LATERAL (  -- only the query's lexemes of this chunk: marked with weight A, the rest dropped
                SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1)::float8 AS tf
                FROM unnest(ts_filter(setweight(c.fts, 'A', terms.lexemes), '{{a}}')) AS u) AS x
            WHERE c.fts @@ to_tsquery('english', :query) AND {visible}),
        idf AS MATERIALIZED (
            SELECT lexeme, ln(1 + (CAST(:n AS float8) - count(*) + 0.5) / (count(*) + 0.5)) AS w
            FROM tf GROUP BY lexeme)
        SELECT t.id, sum(idf.w * t.tf * (:k1 + 1) / (t.tf + :k1 * (1 - :b + :b * t.fts_length / :avgdl))) AS score
        FROM tf t JOIN idf ON idf.lexeme = t.lexeme {path}
        GROUP BY t.id ORDER BY score DESC, t.id LIMIT :k
    """

    def __init__(self) -> None:
        self._stats: dict[int, tuple[int, float]] = {}  # generation -> (chunks, mean length in words)

    def path_condition(self, column, where: str):
        return column.op("~")(glob_regex(path_glob(where)))

    def search(self, conn, query, k, gen, where):
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        if gen not in self._stats:
            n, avg = conn.execute(text(f"SELECT count(*), avg(c.fts_length) FROM chunks c WHERE {_VISIBLE}"),
                                  {"g": gen}).one()
            self._stats[gen] = (int(n), float(avg or 1.0))
        n, avgdl = self._stats[gen]
        sql = self._SQL.format(visible=_VISIBLE, path="JOIN documents d ON d.id = t.document_id AND d.path ~ :regex"
                               if where else "")
        params = {"words": " ".join(terms), "query": " | ".join(terms), "g": gen, "k": int(k), "n": float(n),
                  "avgdl": max(avgdl, 1.0), "k1": self.K1, "b": self.B}
        if where:
            params["regex"] = glob_regex(path_glob(where))
        return [(int(i), float(s)) for i, s in conn.execute(text(sql), params)]


def fulltext_for(dialect: str) -> FullText:
    if dialect == "sqlite":
        return SqliteFullText()
    if dialect == "postgresql":
        return PostgresFullText()
    raise ValueError(f"llara-search keeps its metadata in SQLite or PostgreSQL, not {dialect}")
