"""BM25: our lexical index against bm25s in one run, one query at a time, on SQLite and (with --pg) PostgreSQL.

    pip install -e '.[bench]'        # bm25s
    python -m benchmarks.bm25 [--pg postgresql+psycopg://USER@HOST:PORT/DB] [--big-chunks 100000]

--pg names a server this benchmark may create (and then drop) scratch databases on. Parts:

1. BEIR SciFact (5,183 abstracts, the 300 judged test claims): nDCG@10 and p50/p99 latency of ours (whole
   `Engine.search(mode="bm25", k=10)` with texts, and its ranking step alone: query string to chunk ids and
   scores) and of bm25s (default Lucene BM25, its English stopwords and PyStemmer's English stemmer, as its README
   does; `retrieve` on the tokenized query, and tokenize + retrieve from the string).
2. Long queries, 100-300 words: 300 SciFact abstracts of 200-600 words cut in two; the first half is the query, the
   second half (with the title) replaces the abstract in the corpus, and finding it is the judgement (known item).
3. Analyzer choices measured on SciFact (each variant built in memory from the same chunk rows) and on code
   identifiers from the JAX documentation (queries `foo_bar` and "foo bar" for identifiers in at most 3 chunks).
4. Memory and disk of the lexical index; at --big-chunks chunks (SciFact repeated): query latency again, the time
   to add one file (ten times, one file each), against rebuilding the lexical index and re-indexing with bm25s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .common import RESULTS_JSON, SHARED, machine, record

K = 10


# ---------------------------------------------------------------------------------------------------- data
def long_query_set(corpus: list[tuple[str, str, str]], n: int = 300, seed: int = 1):
    """(corpus with the chosen abstracts halved, {qid: first half}, {qid: {doc: 1}})."""
    rng = random.Random(seed)
    cand = [i for i, (_, _, text) in enumerate(corpus) if 200 <= len(text.split()) <= 600]
    chosen = set(rng.sample(cand, min(n, len(cand))))
    docs, queries, qrels = [], {}, {}
    for i, (doc, title, text) in enumerate(corpus):
        if i in chosen:
            words = text.split()
            half = len(words) // 2
            queries["q" + doc] = " ".join(words[:half])
            qrels["q" + doc] = {doc: 1}
            text = " ".join(words[half:])
        docs.append((doc, title, text))
    return docs, queries, qrels


def pct(lat: list[float], p: float) -> float:
    return round(1000 * float(np.percentile(lat, p)), 3)


def timed(fn, items, warm: int = 20) -> tuple[list, list[float]]:
    for x in items[:warm]:
        fn(x)
    out, lat = [], []
    for x in items:
        t = time.perf_counter()
        out.append(fn(x))
        lat.append(time.perf_counter() - t)
    return out, lat


# ---------------------------------------------------------------------------------------------------- bm25s
class Bm25s:
    def __init__(self, docs: list[tuple[str, str, str]]):
        import bm25s
        import Stemmer

        self.bm25s, self.stemmer = bm25s, Stemmer.Stemmer("english")
        self.ids = [d for d, _, _ in docs]
        t = time.perf_counter()
        tokens = bm25s.tokenize([f"{title} {text}" for _, title, text in docs], stopwords="en", stemmer=self.stemmer,
                                show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(tokens, show_progress=False)
        self.index_s = time.perf_counter() - t

    def tokens(self, q: str) -> list[str]:
        return self.bm25s.tokenize(q, stopwords="en", stemmer=self.stemmer, return_ids=False,
                                   show_progress=False)[0]

    def retrieve(self, tokens: list[str], k: int = K):
        if not tokens:
            return np.zeros((1, 0), np.int64), np.zeros((1, 0))
        return self.retriever.retrieve([tokens], k=min(k, len(self.ids)), show_progress=False, n_threads=1)

    def run(self, queries: dict[str, str], k: int = 100) -> dict[str, dict[str, float]]:
        out = {}
        for qid, q in queries.items():
            docs, scores = self.retrieve(self.tokens(q), k + 1)
            hits = [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]
            out[qid] = dict([h for h in hits if h[0] != qid][:k])
        return out

    def latency(self, queries: list[str]) -> dict:
        toks, _ = timed(self.tokens, queries)
        _, retrieve = timed(self.retrieve, toks)
        _, whole = timed(lambda q: self.retrieve(self.tokens(q)), queries)
        sc = self.retriever.scores

        def core(t):  # its scoring arrays directly: sum the query tokens' rows, pick the top k
            ids = [self.retriever.vocab_dict[w] for w in t if w in self.retriever.vocab_dict]
            s = np.zeros(sc["num_docs"], np.float32)
            for i in ids:
                a, b = sc["indptr"][i], sc["indptr"][i + 1]
                np.add.at(s, sc["indices"][a:b], sc["data"][a:b])
            return np.argpartition(s, -K)[-K:]

        _, raw = timed(core, toks)
        return {"retrieve_p50_ms": pct(retrieve, 50), "retrieve_p99_ms": pct(retrieve, 99),
                "tokenize_retrieve_p50_ms": pct(whole, 50), "tokenize_retrieve_p99_ms": pct(whole, 99),
                "core_p50_ms": pct(raw, 50)}

    def memory_bytes(self) -> int:
        sc = self.retriever.scores
        vocab = self.retriever.vocab_dict
        return int(sum(sc[k].nbytes for k in ("data", "indices", "indptr")) + sys_size(vocab))

    def disk_bytes(self) -> int:
        with tempfile.TemporaryDirectory() as d:
            self.retriever.save(d)
            return sum(f.stat().st_size for f in Path(d).rglob("*") if f.is_file())


def sys_size(d: dict) -> int:
    import sys

    return sys.getsizeof(d) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in d.items())


# ---------------------------------------------------------------------------------------------------- ours
@contextmanager
def pg_database(server: str | None):
    """A scratch PostgreSQL database on `server`, dropped afterwards (None: yield None)."""
    if not server:
        yield None
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"llara_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def our_latency(engine, queries: list[str]) -> dict:
    searcher = engine.searcher
    _, rank = timed(lambda q: searcher.bm25(q, K), queries)
    _, whole = timed(lambda q: engine.search(q, k=K, mode="bm25"), queries)
    return {"rank_p50_ms": pct(rank, 50), "rank_p99_ms": pct(rank, 99), "search_p50_ms": pct(whole, 50),
            "search_p99_ms": pct(whole, 99)}


def lexical_size(engine) -> dict:
    gen = engine.store.current_generation().id
    d = engine.searcher.lexical.describe(gen)
    snap = engine.searcher.lexical.snapshot(gen)
    arrays = sum(v.seg.nbytes() + v.norm.nbytes for v in snap.views)
    return {"segments": d["segments"], "chunks": d["chunks"], "postings": d["postings"], "disk_bytes": d["bytes"],
            "memory_bytes": int(arrays)}


def ingest(root: Path, name: str, records, db_url: str | None):
    from llara_search import Engine

    engine = Engine.open(root / name, create=True, db_url=db_url)
    t = time.perf_counter()
    rep = engine.ingest_records(records, "beir:" + name, model="none")
    return engine, time.perf_counter() - t, rep


# ---------------------------------------------------------------------------------------------------- analyzer
def analyzer_variants(engine, data) -> dict:
    """SciFact nDCG@10 of the shipped analysis and of each alternative, over the same chunk rows."""
    from llara_search.eval.beir import run_queries, score_run
    from llara_search.lexical import analyzer as A
    from llara_search.lexical import segment as S
    from llara_search.lexical import snapshot as P
    from llara_search.lexical.segment import build_segment
    from llara_search.lexical.snapshot import SegmentView, Snapshot
    from llara_search.store.stopwords import STOPWORDS

    porter = None

    def porter_stem(words):
        nonlocal porter
        if porter is None:
            import Stemmer

            porter = Stemmer.Stemmer("porter")
        return porter.stemWords(words)

    plain_words = lambda t: A._WORD.findall(A.fold(t))  # noqa: E731  (no identifier parts)
    no_stop = lambda ws: [w for w in ws if w not in STOPWORDS]  # noqa: E731
    variants = {
        "shipped (snowball, every word indexed, query stopwords dropped, identifiers split, repeats count)":
            (A.document_terms, A.query_terms),
        "no stemming": (lambda t: A._words(t), lambda q: no_stop(A._words(q)) or A._words(q)),
        "porter stemming": (lambda t: porter_stem(A._words(t)), lambda q: porter_stem(no_stop(A._words(q)))),
        "stopwords dropped from chunks too": (lambda t: A._finish(no_stop(A._words(t))), A.query_terms),
        "no identifier splitting": (lambda t: A._finish(plain_words(t)),
                                    lambda q: A._finish(no_stop(plain_words(q)))),
        "each query term once": (A.document_terms, lambda q: list(dict.fromkeys(A.query_terms(q)))),
        "numbers dropped": (lambda t: [w for w in A.document_terms(t) if not w.isdigit()],
                            lambda q: [w for w in A.query_terms(q) if not w.isdigit()]),
    }
    gen = engine.store.current_generation().id
    rows = list(engine.store.visible_chunk_texts(gen))
    keys = {}
    out = {}
    for name, (doc_fn, query_fn) in variants.items():
        S.document_terms, P.query_terms = doc_fn, query_fn
        try:
            snap = Snapshot(gen, [SegmentView(build_segment(rows), None)])

            def search_many(qs, depth):
                hits = [snap.search(q, depth) for q in qs]
                need = {i for h in hits for i, _ in h if i not in keys}
                keys.update({i: r.doc_key for i, r in engine.store.chunk_records(sorted(need)).items()})
                return [[_Hit(keys[i], s) for i, s in h] for h in hits]

            run = run_queries(search_many, data, 100)
            out[name] = round(score_run(data.qrels, {q: dict(d) for q, d in run.items()})["ndcg@10"], 4)
        finally:
            S.document_terms, P.query_terms = A.document_terms, A.query_terms
    return out


class _Hit:
    __slots__ = ("doc_key", "score")

    def __init__(self, doc_key, score):
        self.doc_key, self.score = doc_key, score


def identifier_queries(root: Path, n: int = 200, seed: int = 0) -> dict | None:
    """MRR@10 of queries for code identifiers of the JAX docs, written `foo_bar`/`fooBar` and as "foo bar"."""
    docs = SHARED / "data" / "docs-jax" / "docs"
    if not docs.is_dir():
        return None
    from llara_search import Engine
    from llara_search.lexical import analyzer as A
    from llara_search.lexical import segment as S
    from llara_search.lexical import snapshot as P
    from llara_search.lexical.segment import build_segment
    from llara_search.lexical.snapshot import SegmentView, Snapshot
    from llara_search.store.stopwords import STOPWORDS

    engine = Engine.open(root / "jax", create=True)
    engine.ingest([str(docs)], model="none")
    gen = engine.store.current_generation().id
    rows = list(engine.store.visible_chunk_texts(gen))
    ident = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b|\b[a-z][a-z0-9]*(?:[A-Z][a-z0-9]+)+\b")
    where: dict[str, set[int]] = {}
    for cid, _, heading, text in rows:
        for m in set(ident.findall(f"{heading}\n{text}")):
            where.setdefault(m, set()).add(cid)
    pool = sorted(w for w, ids in where.items() if len(ids) <= 3 and len(A._PARTS.findall(w)) > 1)
    chosen = random.Random(seed).sample(pool, min(n, len(pool)))
    forms = {"as written (foo_bar, fooBar)": {w: w for w in chosen},
             "as words (foo bar)": {w: " ".join(A._PARTS.findall(w)).lower() for w in chosen}}
    plain = lambda t: A._WORD.findall(A.fold(t))  # noqa: E731
    analyses = {"shipped (identifiers indexed whole and by parts)": (A.document_terms, A.query_terms),
                "identifiers whole only": (lambda t: A._finish(plain(t)),
                                           lambda q: A._finish([w for w in plain(q) if w not in STOPWORDS] or
                                                               plain(q)))}
    out = {"identifiers": len(chosen), "chunks": len(rows)}
    for name, (doc_fn, query_fn) in analyses.items():
        S.document_terms, P.query_terms = doc_fn, query_fn
        try:
            snap = Snapshot(gen, [SegmentView(build_segment(rows), None)])
            for form, queries in forms.items():
                rr = []
                for w, q in queries.items():
                    ranked = [i for i, _ in snap.search(q, K)]
                    rr.append(next((1 / (r + 1) for r, i in enumerate(ranked) if i in where[w]), 0.0))
                out[f"{name}, query {form}"] = round(float(np.mean(rr)), 4)
        finally:
            S.document_terms, P.query_terms = A.document_terms, A.query_terms
    engine.close()
    return out


# ---------------------------------------------------------------------------------------------------- scale
def big_index(root: Path, corpus, target: int, queries: list[str], long_queries: list[str]) -> dict:
    """A ~`target`-chunk text-only index (SciFact repeated): latency, adding one file, rebuilding."""
    from llara_search import Engine
    from llara_search.lexical import LexicalIndex

    probe = Engine.open(root / "probe", create=True)
    per_copy = probe.ingest_records(corpus[:500], "beir:probe", model="none").chunks_total / 500 * len(corpus)
    probe.close()
    copies = max(1, math.ceil(target / per_copy))
    records = [(f"{d}-{c}", title, text) for c in range(copies) for d, title, text in corpus]
    engine = Engine.open(root / "big", create=True)
    t = time.perf_counter()
    rep = engine.ingest_records(records, "beir:big", model="none")
    out = {"chunks": rep.chunks_total, "ingest_s": round(time.perf_counter() - t, 1),
           "ingest_lexical_s": round(rep.stages.get("lexical", 0.0), 2)}
    out["lexical"] = lexical_size(engine)
    out["ours_short"] = our_latency(engine, queries)
    out["ours_long"] = our_latency(engine, long_queries)
    docs = root / "new-files"
    adds = []
    for i in range(10):
        f = docs / f"note{i}" / "note.md"
        f.parent.mkdir(parents=True)
        f.write_text(f"# Note {i}\n\nA new finding, code name quokka{i}, about protein folding.\n\n" +
                     " ".join(corpus[i][2].split()[:150]) + "\n")
        t = time.perf_counter()
        r = engine.ingest([str(f.parent)])
        adds.append({"s": time.perf_counter() - t, "lexical_s": r.stages.get("lexical", 0.0),
                     "merge_s": r.stages.get("lexical_merge", 0.0), "chunks": r.chunks_added})
    assert engine.search("quokka7 folding", k=1, mode="bm25")[0].path.endswith("note7/note.md")
    out["add_one_file"] = {
        "median_s": round(float(np.median([a["s"] for a in adds])), 3),
        "max_s": round(max(a["s"] for a in adds), 3),
        "lexical_median_ms": round(1000 * float(np.median([a["lexical_s"] for a in adds])), 1),
        "lexical_max_ms": round(1000 * max(a["lexical_s"] for a in adds), 1),
        "segments_after": engine.searcher.lexical.describe(engine.store.current_generation().id)["segments"]}
    gen = engine.store.current_generation().id
    t = time.perf_counter()
    LexicalIndex(root / "rebuild").rebuild(gen, engine.store.visible_chunk_texts(gen))
    out["lexical_rebuild_s"] = round(time.perf_counter() - t, 2)
    texts = [(str(i), h or "", t) for i, _, h, t in engine.store.visible_chunk_texts(gen)]
    base = Bm25s(texts)
    out["bm25s_index_s"] = round(base.index_s, 2)
    out["bm25s_short"] = base.latency(queries)
    out["bm25s_long"] = base.latency(long_queries)
    out["bm25s_memory_bytes"] = base.memory_bytes()
    engine.close()
    return out


# ---------------------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    from llara_search.eval import evaluate, load_beir, score_run
    from llara_search.eval.beir import BeirData

    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default=None, help="a PostgreSQL server URL: scratch databases are created there")
    ap.add_argument("--big-chunks", type=int, default=100_000, help="size of the scale index (0: skip)")
    ap.add_argument("--skip-variants", action="store_true", help="skip the analyzer measurements")
    args = ap.parse_args(argv)
    root = SHARED / "data" / "beir-scifact"
    if not (root / "corpus.jsonl").is_file():
        raise SystemExit("benchmarks.bm25 needs ../shared/data/beir-scifact (or LLARA_SEARCH_SHARED)")
    data = load_beir(root, "test")
    corpus = list(data.corpus())
    short = {q: data.queries[q] for q in data.qrels if q in data.queries}
    halved, long_q, long_qrels = long_query_set(corpus)
    long_data = BeirData(root, "scifact-halves", "long", long_q, long_qrels)
    res: dict = {"data": {"short": "BEIR SciFact test: 300 claims, 5,183 abstracts",
                          "long": f"{len(long_q)} SciFact abstracts halved: first half the query (median "
                                  f"{int(np.median([len(q.split()) for q in long_q.values()]))} words), "
                                  "second half the judged document"},
                 "k": K, "machine": machine(), "bm25s": {}, "ours": {}}
    base = {"short": Bm25s(corpus), "long": Bm25s(halved)}
    for name, qs, qrels in (("short", short, data.qrels), ("long", long_q, long_qrels)):
        b = base[name]
        res["bm25s"][name] = {"ndcg@10": round(score_run(qrels, b.run(qs))["ndcg@10"], 4), **b.latency(list(qs.values())),
                              "index_s": round(b.index_s, 2)}
    res["bm25s"]["memory_bytes"] = base["short"].memory_bytes()
    res["bm25s"]["disk_bytes"] = base["short"].disk_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for backend in ["sqlite"] + (["postgresql"] if args.pg else []):
            with pg_database(args.pg if backend == "postgresql" else None) as url_a, \
                    pg_database(args.pg if backend == "postgresql" else None) as url_b:
                mine: dict = {}
                for name, docs, bd, qs, url in (("short", corpus, data, short, url_a),
                                                ("long", halved, long_data, long_q, url_b)):
                    engine, ingest_s, rep = ingest(tmp / backend, name, docs, url)
                    full = evaluate(engine, bd, mode="bm25", k=100, run_file=tmp / f"{backend}-{name}.trec")
                    mine[name] = {"ndcg@10": full["ndcg@10"], "recall@100": full["recall@100"],
                                  **our_latency(engine, list(qs.values())), "chunks": rep.chunks_total,
                                  "ingest_s": round(ingest_s, 1),
                                  "ingest_lexical_s": round(rep.stages.get("lexical", 0.0), 2)}
                    if name == "short":
                        mine["lexical"] = lexical_size(engine)
                        if backend == "sqlite" and not args.skip_variants:
                            res["analyzer_scifact_ndcg@10"] = analyzer_variants(engine, data)
                    engine.close()
                res["ours"][backend] = mine
        if not args.skip_variants:
            res["identifier_mrr@10"] = identifier_queries(tmp)
        if args.big_chunks:
            res["scale"] = big_index(tmp, corpus, args.big_chunks, list(short.values()), list(long_q.values()))
    for backend, mine in res["ours"].items():
        for name in ("short", "long"):
            m, b = mine[name], res["bm25s"][name]
            m["rank_vs_bm25s_retrieve"] = round(m["rank_p50_ms"] / b["retrieve_p50_ms"], 2)
            m["rank_vs_bm25s_tokenize_retrieve"] = round(m["rank_p50_ms"] / b["tokenize_retrieve_p50_ms"], 2)
            m["ndcg@10_minus_bm25s"] = round(m["ndcg@10"] - b["ndcg@10"], 4)
    res["command"] = "python -m benchmarks.bm25" + (" --pg postgresql+psycopg://USER@HOST:PORT/DB" if args.pg else "")
    if args.big_chunks != 100_000:
        res["command"] += f" --big-chunks {args.big_chunks}"
    if RESULTS_JSON.exists():  # the FTS5 / SQL figures these rows held are gone with the engine they measured
        old = json.loads(RESULTS_JSON.read_text())
        stale = [old.pop(key, None) for key in ("bm25_scifact", "bm25_scifact_postgresql")]
        if any(x is not None for x in stale):
            RESULTS_JSON.write_text(json.dumps(old, indent=2))
    record("bm25", res)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
