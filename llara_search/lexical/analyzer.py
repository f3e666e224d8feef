"""Text to BM25 terms: one analysis for chunks and queries, whichever database holds the rows.

Chosen by measurement on BEIR SciFact (`python -m benchmarks.bm25`, nDCG@10 with k1=1.2, b=0.75): Snowball English
stemming (0.685) beats Porter (0.683) and no stemming (0.666); numbers are kept (dropping them costs 0.003). Every
word is indexed, stopwords included, so a query made only of stopwords or of code keywords (`where`, `not`) still
finds its chunks; queries drop NLTK's stopwords unless nothing else is left (same nDCG as dropping them from the
index too, and the same query cost). A query word counts as often as it occurs (as in Lucene and bm25s): on long
queries that is worth +0.04 nDCG@10 over counting each distinct word once.

Code identifiers are indexed whole and by their parts: `foo_bar` gives `foo_bar`, `foo`, `bar`; `fooBar` gives
`foobar`, `foo`, `bar`; so `foo_bar`, `fooBar` and "foo bar" all find each other, the exact spelling first.
Accents are folded (`café` = `cafe`); a term is at most MAX_TERM_CHARS long. Terms are 64-bit xxh3 hashes on
disk: fixed width, no vocabulary to load, merges are integer array operations.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import numpy as np

from ..store.stopwords import STOPWORDS

ANALYZER = "snowball-en+ident+fold/1"  # recorded in every lexical file: a different analysis means a rebuild
MAX_TERM_CHARS = 100
_WORD = re.compile(r"\w+")
# where an identifier splits: an inner underscore (snake_case), a lower-case letter or digit before an upper-case one
# (camelCase), an acronym before a word (HTTPServer); plain words, Capitalised words and ACRONYMS stay whole
_SPLIT_AT = re.compile(r"[^\W_]_[^\W_]|[a-z0-9][A-Z]|[A-Z][A-Z][a-z]")
_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\W\d_a-zA-Z]+")
_MARKS = re.compile(r"[\u0300-\u036f]")  # combining diacritical marks, once NFKD has split them off
_CACHE_MAX = 500_000
_stemmer = None
_stems: dict[str, str] = {}
_hash_cache: dict[str, int] = {}


def _stem(words: list[str]) -> list[str]:
    """Snowball stems through a dict (PyStemmer's own cache costs more than it saves on a whole corpus)."""
    global _stemmer
    cache = _stems
    try:
        return [cache[w] for w in words]
    except KeyError:
        pass
    if _stemmer is None:
        import Stemmer

        _stemmer = Stemmer.Stemmer("english", 0)
    if len(cache) > _CACHE_MAX:
        cache.clear()
    new = list({w: None for w in words if w not in cache})
    cache.update(zip(new, _stemmer.stemWords(new)))
    return [cache[w] for w in words]


def fold(text: str) -> str:
    """Case-folded without accents (NFKD, then the combining marks dropped); ASCII text only lower-cased."""
    if text.isascii():
        return text.lower()
    return _MARKS.sub("", unicodedata.normalize("NFKD", text)).casefold()


def _words(text: str) -> list[str]:
    """Every word of `text` (folded, unstemmed), then the extra parts of its code identifiers. Plain, Capitalised
    and UPPER-CASE words are never identifiers, so prose costs one pass of string methods."""
    raw = _WORD.findall(text)
    words = [w.lower() for w in raw] if text.isascii() else _WORD.findall(fold(text))
    for w in [w for w in raw if "_" in w or not (w.islower() or w.istitle() or w.isupper())]:
        if _SPLIT_AT.search(w):
            pieces = _PARTS.findall(w)
            if len(pieces) > 1:
                words.extend(fold(p) for p in pieces)
    return words


def _finish(words: list[str]) -> list[str]:
    if words and max(map(len, words)) > MAX_TERM_CHARS:
        words = [w[:MAX_TERM_CHARS] for w in words]
    return _stem(words)


def document_terms(text: str) -> list[str]:
    """The terms of a chunk, one per occurrence (the chunk's length is their number)."""
    return _finish(_words(text))


def query_terms(text: str) -> list[str]:
    """The terms of a query, repeated as often as they occur, stopwords dropped unless only stopwords are left."""
    words = _words(text)
    kept = [w for w in words if w not in STOPWORDS]
    return _finish(kept or words)


def term_hashes(terms: Iterable[str]) -> np.ndarray:
    """Stable 64-bit ids of terms (xxh3, the same on every machine and version), as uint64."""
    import xxhash

    cache = _hash_cache
    terms = list(terms)
    try:
        return np.array([cache[t] for t in terms], dtype=np.uint64)
    except KeyError:
        pass
    if len(cache) > _CACHE_MAX:
        cache.clear()
    digest = xxhash.xxh3_64_intdigest
    cache.update({t: digest(t.encode("utf-8")) for t in terms if t not in cache})
    return np.array([cache[t] for t in terms], dtype=np.uint64)


__all__ = ["ANALYZER", "MAX_TERM_CHARS", "document_terms", "fold", "query_terms", "term_hashes"]
