"""What one request may ask of the server: the same numbers, checks and messages for every route that searches or
embeds (HTTP `/search`, `/batch_search`, `/embed`, `/v1/embeddings` and the MCP `search` tool).

Why one module: an agent calling MCP and a script calling HTTP must meet the same limits, and a limit written in
five places drifts (MCP once took `k=10**9` and a 1.2 MB query that HTTP refused). Every check here runs before
any work (no encode, no search), so a refused request costs a few microseconds.

A search's cost grows with the characters it encodes and matches (the batch's total query length) and with the
results it reads, compares for near-copies and sends (queries × k, or × the re-rank depth when that is deeper):
both are capped per request, on top of the per-value limits, so no legal combination of batch size, query length
and k is unbounded. A value out of its range is 422 (`k=0`); a request whose values are each legal but whose
total is over the budget is 413, with what to send instead. The OpenAI-compatible route answers 400 for the
former, as OpenAI does.

Standard library only: imported by the server, the MCP tool and the docs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

MAX_K = 1000  # results per query
MAX_TEXT_CHARS = 16_384  # one query or one text to embed, on every route (~4x what a 512-token model reads)
MAX_QUERIES = 256  # queries per /batch_search
MAX_QUERY_CHARS_TOTAL = 262_144  # characters of all queries of one request (e.g. 256 x 1,024 or 16 x 16,384)
MAX_RESULTS = 8192  # queries x max(k, rerank depth) per request (e.g. 8 queries at k=1000, 256 at k=32)
MAX_TEXTS = 2048  # texts per /embed or /v1/embeddings (OpenAI's own limit per request)
MAX_EMBED_CHARS_TOTAL = 1_048_576  # characters of all texts of one embeddings request
MAX_WHERE_CHARS = 1024
MAX_BODY_BYTES = 4 * 2**20  # checked while the body streams in, before JSON parsing
DEFAULT_DEADLINE_S = 10.0  # per request, `serve --request-timeout` / LLARA_SEARCH_REQUEST_TIMEOUT
SMALL_RESULTS = 200  # a request reading at most this many results with short queries takes the fast lane
SMALL_CHARS = 2048
DEADLINE_ENV = "LLARA_SEARCH_REQUEST_TIMEOUT"


class LimitError(Exception):
    """A request over a limit. `status`: 422 for one value out of range, 413 for a request over the budget."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


@dataclass(frozen=True)
class Cost:
    """What a checked request will do, for choosing its lane."""

    queries: int
    chars: int
    results: int

    @property
    def small(self) -> bool:
        return self.results <= SMALL_RESULTS and self.chars <= SMALL_CHARS


def check_k(k: object, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise LimitError(422, f"{name} must be a whole number from 1 to {MAX_K}, not {k!r}", name)
    if not 1 <= k <= MAX_K:
        raise LimitError(422, f"{name} must be from 1 to {MAX_K}, not {k}", name)
    return k


def check_texts(texts: Sequence[object], what: str, *, single: bool = False) -> list[str]:
    """Each text a non-empty string of at most MAX_TEXT_CHARS characters. `single`: the request sent one text, so the
    messages say `query` rather than `queries[3]`."""
    out = []
    for i, t in enumerate(texts):
        where = what if single else f"{what}[{i}]"
        if not isinstance(t, str):
            raise LimitError(422, f"{where} must be a string", what)
        if not t.strip():
            raise LimitError(422, f"{where} is empty: send a non-empty string", what)
        if len(t) > MAX_TEXT_CHARS:
            raise LimitError(422, f"{where} has {len(t):,} characters, more than the {MAX_TEXT_CHARS:,} a text may "
                                  "have: send a shorter text (the model reads its first 512 tokens or so anyway)", what)
        out.append(t)
    return out


def check_search(queries: Sequence[object], k: object, *, rerank_depth: int | None = None,
                 where: str | None = None, single: bool = False) -> Cost:
    """A search of `queries` for `k` results each (re-ranked from `rerank_depth` candidates when given)."""
    if not single and not 1 <= len(queries) <= MAX_QUERIES:
        raise LimitError(422, f"queries must hold 1 to {MAX_QUERIES} queries, not {len(queries)}: send them in several "
                         "requests", "queries")
    texts = check_texts(queries, "query" if single else "queries", single=single)
    k = check_k(k)
    if rerank_depth is not None:
        rerank_depth = check_k(rerank_depth, "rerank_depth")
    if where is not None and len(where) > MAX_WHERE_CHARS:
        raise LimitError(422, f"where has {len(where):,} characters, more than {MAX_WHERE_CHARS}", "where")
    chars = sum(map(len, texts))
    if chars > MAX_QUERY_CHARS_TOTAL:
        raise LimitError(413, f"the queries hold {chars:,} characters in all, more than the {MAX_QUERY_CHARS_TOTAL:,} "
                              "one request may search: send fewer or shorter queries per request", "queries")
    depth = max(k, rerank_depth or 0)
    results = len(texts) * depth
    if results > MAX_RESULTS:
        per = max(1, MAX_RESULTS // depth)
        raise LimitError(413, f"{len(texts)} queries x {depth} results is {results:,} results, more than the "
                              f"{MAX_RESULTS:,} one request may ask for: lower k"
                              f"{' (or rerank_depth)' if rerank_depth else ''}, or send at most {per} queries per "
                              "request at this k", "k")
    return Cost(len(texts), chars, results)


def check_embed(texts: Sequence[object], what: str = "texts", *, single: bool = False) -> Cost:
    if not 1 <= len(texts) <= MAX_TEXTS:
        raise LimitError(422, f"{what} must hold 1 to {MAX_TEXTS} texts, not {len(texts)}: "
                                                    "send them in several requests", what)
    texts = check_texts(texts, what, single=single)
    chars = sum(map(len, texts))
    if chars > MAX_EMBED_CHARS_TOTAL:
        raise LimitError(413, f"the texts hold {chars:,} characters in all, more than the {MAX_EMBED_CHARS_TOTAL:,} "
                              "one request may embed: send them in several requests", what)
    return Cost(len(texts), chars, len(texts))


def check_tokens(counts: Sequence[int], limit: int, model: str, what: str = "texts", *, single: bool = False,
                 truncate: bool = False) -> None:
    """A text longer than the model reads is refused unless the request says `truncate`: embedding only its start
    without saying so would hand back a vector of a text the caller did not send."""
    if truncate:
        return
    for i, n in enumerate(counts):
        if n > limit:
            where = what if single else f"{what}[{i}]"
            raise LimitError(422, f"{where} has {n} tokens, more than the {limit} that {model} reads: split it into "
                                  "shorter texts, or send \"truncate\": true to embed only its first "
                                  f"{limit} tokens", what)


def deadline_seconds(value: float | None = None) -> float | None:
    """The per-request deadline: `value` (a flag), else $LLARA_SEARCH_REQUEST_TIMEOUT, else the default; 0: none."""
    if value is None:
        raw = os.environ.get(DEADLINE_ENV, "").strip()
        try:
            value = float(raw) if raw else DEFAULT_DEADLINE_S
        except ValueError:
            raise ValueError(f"{DEADLINE_ENV}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"the request timeout must be 0 (none) or more seconds, not {value}")
    return value or None


def summary() -> dict:
    """The limits as a client sees them (`GET /info`, README, the API docs)."""
    return {"max_k": MAX_K, "max_text_chars": MAX_TEXT_CHARS, "max_queries": MAX_QUERIES,
            "max_query_chars_total": MAX_QUERY_CHARS_TOTAL, "max_results": MAX_RESULTS, "max_texts": MAX_TEXTS,
            "max_embed_chars_total": MAX_EMBED_CHARS_TOTAL, "max_body_bytes": MAX_BODY_BYTES}


LIMITS_DOC = (f"Limits per request (the same on every route and over MCP): k from 1 to {MAX_K}; each query or text "
              f"1 to {MAX_TEXT_CHARS:,} characters; up to {MAX_QUERIES} queries holding {MAX_QUERY_CHARS_TOTAL:,} "
              f"characters in all; queries x max(k, rerank_depth) at most {MAX_RESULTS:,}; up to {MAX_TEXTS} texts "
              f"holding {MAX_EMBED_CHARS_TOTAL:,} characters per embeddings request; a body of at most "
              f"{MAX_BODY_BYTES:,} bytes. A value out of range is 422 (400 on /v1), a request over a total 413. "
              "Each request has a deadline (`serve --request-timeout`, default "
              f"{DEFAULT_DEADLINE_S:g} s): past it the answer is 503, or the first stage's order when the reranker "
              "is what ran out (said in `rerank.reason`).")
