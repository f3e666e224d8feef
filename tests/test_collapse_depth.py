"""Near-copies are found at any depth of a large k (the windows dictionary, not only the first results), and what
is not a copy is kept: a k=1000 answer collapses the same copies a k=10 answer does."""

from __future__ import annotations

import random
import textwrap

from llara_search.collapse import SMALL, collapse_duplicates
from llara_search.results import SearchResult

WORDS = [f"w{i}" for i in range(5000)]


def _prose(rng: random.Random, sentences: int = 8) -> str:
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                    for _ in range(sentences))


def _hit(rank: int, path: str, text: str) -> SearchResult:
    return SearchResult(rank, 1.0 / rank, rank, path, None, None, None, None, text)


def test_copies_deep_in_a_large_k_are_collapsed_and_others_kept():
    rng = random.Random(0)
    originals = [_prose(rng) for _ in range(600)]
    results, copies = [], {}
    for i, text in enumerate(originals):
        results.append(_hit(len(results) + 1, f"doc{i}.html", text))
        if i % 10 == 5 and i > 3 * SMALL:  # a copy a few ranks below: re-wrapped, cut after its first sentence
            cut = text[text.index(". ") + 2:]
            copy = textwrap.fill(cut, width=rng.randint(30, 70))
            copies[f"doc{i}.pdf"] = f"doc{i}.html"
            results.append(_hit(len(results) + 1, f"doc{i}.pdf", copy))
    kept = collapse_duplicates(results, 1000)
    paths = [h.path for h in kept]
    assert len(kept) == len(originals) and not any(p.endswith(".pdf") for p in paths)
    assert [h.rank for h in kept] == list(range(1, len(kept) + 1))
    by_path = {h.path: h for h in kept}
    for copy, original in copies.items():
        assert by_path[original].also_in == [copy]
    assert sum(len(h.also_in) for h in kept) == len(copies)
    # the first k of a large answer are the answer at that k
    top = collapse_duplicates([_hit(h.rank, h.path, h.text) for h in results[:40]], 10)
    assert [h.path for h in top] == paths[:10]


def test_stored_probes_collapse_as_the_texts_do(tmp_path):
    """Ingest stores each chunk's probe (the hashes collapsing looks up); a search collapses the same copies with
    the stored probes as with probes computed from the texts (rows from before migration 0008 have none)."""
    from sqlalchemy import text as sql

    from llara_search.collapse import probe
    from llara_search.engine import Engine

    rng = random.Random(4)
    records = []
    for i in range(120):
        body = _prose(rng, 6)
        records.append((f"d{i}", f"T{i}", body))
        if i % 6 == 0:
            records.append((f"d{i}-copy", f"T{i}", textwrap.fill(body, width=50)))  # the same text, re-wrapped
    engine = Engine.open(tmp_path / "idx", create=True)
    engine.ingest_records(records, "beir", model="none")
    with engine.store.sessions() as s:
        rows = s.execute(sql("SELECT text, probe FROM chunks")).all()
    assert rows and all(p == probe(t) for t, p in rows)
    query = " ".join(records[0][2].split()[:6]).rstrip(".")
    stored = engine.search(query, k=100, mode="bm25")
    with engine.store.session() as s:
        s.execute(sql("UPDATE chunks SET probe = NULL"))
    computed = engine.search(query, k=100, mode="bm25")
    assert [(h.chunk_id, h.also_in) for h in stored] == [(h.chunk_id, h.also_in) for h in computed]
    assert sum(len(h.also_in) for h in stored) >= 1  # copies were found
