"""Text to BM25 terms: one analysis for chunks and queries, whichever database holds the rows.

Chosen by measurement (`python -m benchmarks.bm25`, nDCG@10 with k1=1.2, b=0.75 on BEIR SciFact claims / on long
queries, 100-300 words, built from SciFact; each variant over the same chunk rows): Snowball English stemming
(0.690 / 0.959) against none (0.661 / 0.961) and Porter (0.690 / 0.959); numbers kept (dropping them: 0.686 /
0.956). Every word is indexed, stopwords included, so a query made only of stopwords or of code keywords (`where`,
`not`) still finds its chunks, but a chunk's length counts only its other words: the same scores as an index
without stopwords for every query that has another word (0.690 / 0.959, against 0.686 / 0.958 when stopwords
lengthen chunks). Queries drop NLTK's stopwords unless nothing else is left. A query word counts as often as it
occurs, as in Lucene and bm25s (counting each distinct word once: 0.687 / 0.946).

Code identifiers are indexed whole and by their parts: `foo_bar` gives `foo_bar`, `foo`, `bar`; `fooBar` gives
`foobar`, `foo`, `bar`; the parts do not count in the chunk's length either. A query for an identifier the index
holds searches that exact term; one it does not hold searches the parts, so `foo_bar`, `fooBar` and "foo bar" all
find each other, the exact spelling first. On 200 identifiers of the JAX docs that occur in at most 3 chunks, MRR@10
of the query written as the identifier is 0.96 (0.99 without parts) and written as words 0.60 (0.08 without
parts); the parts cost SciFact 0.002 nDCG@10. Accents are folded (`café` = `cafe`); a term is at most
MAX_TERM_CHARS long. Terms are 64-bit xxh3 hashes on disk: fixed width, no vocabulary to load, merges are integer
array operations.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import numpy as np

from ..store.stopwords import STOPWORDS

ANALYZER = "snowball-en+ident+fold/3"  # recorded in every lexical file: a different analysis means a rebuild
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


def _analyze(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Every word of `text` (folded, unstemmed), and each code identifier among them with its parts. Plain,
    Capitalised and UPPER-CASE words are never identifiers, so prose costs one pass of string methods."""
    raw = _WORD.findall(text)
    words = [w.lower() for w in raw] if text.isascii() else _WORD.findall(fold(text))
    idents = []
    for w in [w for w in raw if "_" in w or not (w.islower() or w.istitle() or w.isupper())]:
        if _SPLIT_AT.search(w):
            pieces = _PARTS.findall(w)
            if len(pieces) > 1:
                idents.append((fold(w), [fold(p) for p in pieces]))
    return words, idents


def _finish(words: list[str]) -> list[str]:
    if words and max(map(len, words)) > MAX_TERM_CHARS:
        words = [w[:MAX_TERM_CHARS] for w in words]
    return _stem(words)


def document_analysis(text: str) -> tuple[list[str], int]:
    """The terms of a chunk, one per occurrence, and its length for BM25: its words other than stopwords.
    Stopwords are indexed (so they can be searched) but, like an identifier's parts, do not lengthen the chunk:
    its length is that of an index without them, which is what BM25 was tuned on."""
    words, idents = _analyze(text)
    n = sum(1 for w in words if w not in STOPWORDS)
    for _, parts in idents:
        words.extend(parts)
    return _finish(words), n


def document_terms(text: str) -> list[str]:
    return document_analysis(text)[0]


def query_analysis(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The terms of a query outside identifiers (repeated as often as they occur; stopwords dropped unless only
    stopwords are left), and each identifier's term with its parts' terms. A search uses an identifier's own term
    when the index has it (the exact spelling, precise) and its parts otherwise (`fooBar` finds `foo_bar`)."""
    words, idents = _analyze(text)
    whole = {w for w, _ in idents}
    plain = [w for w in words if w not in whole]
    kept = [w for w in plain if w not in STOPWORDS]
    if not kept and not idents:
        kept = plain
    terms = _finish(kept)
    groups = []
    for w, parts in idents:
        stemmed = _finish([w] + ([p for p in parts if p not in STOPWORDS] or parts))
        groups.append((stemmed[0], stemmed[1:]))
    return terms, groups


def query_terms(text: str) -> list[str]:
    """Every term a query may search by: its words, and each identifier's term and parts' terms."""
    terms, groups = query_analysis(text)
    return terms + [t for w, parts in groups for t in [w, *parts]]


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


__all__ = ["ANALYZER", "MAX_TERM_CHARS", "document_analysis", "document_terms", "fold", "query_analysis",
           "query_terms", "term_hashes"]
