"""BEIR evaluation: ingest `corpus.jsonl` into an index, run the judged queries, score the run with pytrec_eval.

Chunk hits are collapsed to documents by their best chunk (MaxP), and a hit whose id equals the query id is
dropped, as BEIR does (some datasets, e.g. ArguAna and Quora, contain the query among the documents). Every judged
query counts in the averages; one with no result scores 0.
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np

METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
QUERY_BATCH = 64
T = TypeVar("T")


class BeirError(ValueError):
    """The folder is not a BEIR dataset, or a file in it is malformed; the message names the file and the fix."""


@dataclass
class BeirData:
    root: Path
    name: str
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def corpus(self) -> Iterator[tuple[str, str, str]]:
        """`(doc_id, title, text)` streamed from corpus.jsonl, so a large corpus is never held in memory."""
        return read_jsonl(self.root / "corpus.jsonl",
                          lambda row: (str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or "")),
                          'a JSON object with "_id", "title" and "text"', BeirError)


def read_jsonl(path: Path, convert: Callable[[dict], T], expected: str, error: type[Exception] = ValueError
               ) -> Iterator[T]:
    """`convert(row)` for each non-blank line; a bad line raises `error` naming file:line and what was expected."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield convert(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise error(f"{path}:{n}: expected {expected} ({type(exc).__name__}: {exc})") from None


def load_beir(root: str | os.PathLike, split: str = "test") -> BeirData:
    root = Path(root)
    if not root.is_dir():
        raise BeirError(f"no BEIR dataset at {root}: expected a folder with corpus.jsonl, queries.jsonl and qrels/")
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (root / name).is_file():
            raise BeirError(f"{root} has no {name}; is it a BEIR dataset folder (corpus.jsonl, queries.jsonl, "
                            "qrels/<split>.tsv)?")
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise BeirError(f"{root} has no qrels/{split}.tsv; available splits: {', '.join(have) or 'none'}")
    return BeirData(root, root.resolve().name, split, _read_queries(root / "queries.jsonl"), _read_qrels(qrels_path))


def _read_queries(path: Path) -> dict[str, str]:
    return dict(read_jsonl(path, lambda row: (str(row["_id"]), str(row["text"])),
                           'a JSON object with "_id" and "text"', BeirError))


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not row or (n == 1 and not _is_int(row[-1])):
                continue  # blank line or the "query-id corpus-id score" header
            if len(row) < 3 or not _is_int(row[-1]):
                raise BeirError(f"{path}:{n}: expected 'query-id<TAB>corpus-id<TAB>score'")
            out.setdefault(row[0], {})[row[1]] = int(row[-1])
    if not out:
        raise BeirError(f"{path} has no judgements")
    return out


def _is_int(s: str) -> bool:
    return bool(re.fullmatch(r"-?\d+", s.strip()))


# ---------------------------------------------------------------------------------------------------- running
def run_queries(search_many: Callable[[list[str], int], list[list]], data: BeirData, k: int
                ) -> dict[str, list[tuple[str, float]]]:
    """Top-k documents per judged query. Chunks are fetched deeper than k so that k documents survive MaxP."""
    depth = min(1000, max(3 * k, k + 20))
    run: dict[str, list[tuple[str, float]]] = {}
    for part, hits in _batches(search_many, data, depth):
        for qid, h in zip(part, hits):
            run[qid] = _max_passage(h, qid, k)
    return run


def _batches(search_many: Callable[[list[str], int], list[list]], data: BeirData, depth: int):
    """(query ids, chunk hits) per batch of judged queries, `depth` chunks each."""
    qids = [q for q in data.qrels if q in data.queries]
    for i in range(0, len(qids), QUERY_BATCH):
        part = qids[i:i + QUERY_BATCH]
        yield part, search_many([data.queries[q] for q in part], depth)


def _max_passage(hits: list, qid: str, k: int) -> list[tuple[str, float]]:
    """A document scores as its best chunk (MaxP); the query's own id is not an answer."""
    best: dict[str, float] = {}
    for h in hits:
        doc = h.doc_key
        if doc is None or doc == qid:
            continue
        if doc not in best or h.score > best[doc]:
            best[doc] = h.score
    return sorted(best.items(), key=lambda x: (-x[1], x[0]))[:k]


def _reranked_documents(reranked: list, tail: list, qid: str, k: int) -> list[tuple[str, float]]:
    """MaxP over the re-ranked chunks (reranker scores), then the first stage's documents below the re-ranked depth
    in their first-stage order, scored below every re-ranked one, so that a run re-ranked to a depth under k still
    holds k documents and Recall@k compares like with like."""
    docs = _max_passage(reranked, qid, k)
    seen = {d for d, _ in docs}
    floor = min((s for _, s in docs), default=0.0)
    for h in tail:
        if len(docs) >= k:
            break
        if h.doc_key is None or h.doc_key == qid or h.doc_key in seen:
            continue
        seen.add(h.doc_key)
        floor -= 1.0
        docs.append((h.doc_key, floor))
    return docs


def write_trec(run: dict[str, list[tuple[str, float]]], path: Path, tag: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for qid, docs in run.items():
            for rank, (doc, score) in enumerate(docs, start=1):
                f.write(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n")
    os.replace(tmp, path)


def read_trec(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            qid, _, doc, _, score, _ = line.split()
            run.setdefault(qid, {})[doc] = float(score)
    return run


def score_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """nDCG@10, Recall@100, MRR@10 and MAP@100 by pytrec_eval, averaged over every judged query (missing = 0).

    trec_eval has no cut-off for reciprocal rank, so MRR@10 is its `recip_rank` over each query's top 10.
    """
    import pytrec_eval

    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map_cut.100"}).evaluate(run)
    top10 = {q: dict(sorted(d.items(), key=lambda x: (-x[1], x[0]))[:10]) for q, d in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = len(qrels)

    def mean(table, key):
        return float(sum(v[key] for v in table.values()) / n) if n else 0.0

    return {"ndcg@10": mean(per_query, "ndcg_cut_10"), "recall@100": mean(per_query, "recall_100"),
            "mrr@10": mean(rr, "recip_rank"), "map@100": mean(per_query, "map_cut_100")}


def evaluate(engine, data: BeirData, *, mode: str = "dense", k: int = 100, run_file: Path | None = None,
             progress: Callable[[str, int, int], None] | None = None, reranker=None,
             rerank_depth: int | None = None) -> dict:
    """Run the judged queries of `data` against `engine` and score them; the corpus must already be ingested.

    With a `reranker`, the same first-stage hits are also re-ranked (their top `rerank_depth` chunks, every query
    of a batch in one length-sorted pass) and scored as a second run, reported under "rerank" beside the first
    stage's metrics; both TREC runs are written."""
    depth = min(1000, max(3 * k, k + 20))
    if reranker is not None:
        from ..rerank import DEFAULT_DEPTH

        rerank_depth = int(rerank_depth or DEFAULT_DEPTH)
        depth = min(1000, max(depth, rerank_depth))
    run: dict[str, list[tuple[str, float]]] = {}
    reranked: dict[str, list[tuple[str, float]]] = {}
    seconds = rerank_seconds = 0.0
    t = time.perf_counter()
    for part, hits in _batches(lambda qs, d: engine.search_many(qs, k=d, mode=mode, collapse=False), data, depth):
        seconds += time.perf_counter() - t
        for qid, h in zip(part, hits):
            run[qid] = _max_passage(h, qid, k)
        if reranker is not None:
            t = time.perf_counter()
            texts = [data.queries[q] for q in part]
            outcomes = engine.rerank(texts, [h[:rerank_depth] for h in hits], rerank_depth, reranker)
            for qid, h, o in zip(part, hits, outcomes):
                reranked[qid] = _reranked_documents(o.results, h[rerank_depth:], qid, k)
            rerank_seconds += time.perf_counter() - t
        t = time.perf_counter()
    run_file = run_file or engine.paths.root / "runs" / f"{_slug(data.name)}-{_slug(data.split)}-{mode}.trec"
    write_trec(run, run_file, f"llara-search-{mode}")
    scores = score_run(data.qrels, {q: dict(d) for q, d in run.items()})
    n_results = [len(d) for d in run.values()]
    out = {**{m: round(v, 4) for m, v in scores.items()}, "queries": len(data.qrels), "mode": mode,
           "dataset": data.name, "run_file": str(run_file), "seconds": round(seconds, 2),
           "ms_per_query": round(1000 * seconds / max(1, len(run)), 2),
           "mean_results": round(float(np.mean(n_results)), 1) if n_results else 0.0}
    if reranker is not None:
        rr_file = run_file.with_name(f"{run_file.stem}-rerank-{_slug(Path(reranker.name).name)}{run_file.suffix}")
        write_trec(reranked, rr_file, f"llara-search-{mode}-rerank")
        rr = score_run(data.qrels, {q: dict(d) for q, d in reranked.items()})
        out["rerank"] = {"model": reranker.name, "family": reranker.family, "depth": rerank_depth,
                         **{m: round(v, 4) for m, v in rr.items()},
                         "delta": {m: round(rr[m] - scores[m], 4) for m in METRICS}, "run_file": str(rr_file),
                         "seconds": round(rerank_seconds, 2),
                         "ms_per_query": round(1000 * rerank_seconds / max(1, len(reranked)), 2)}
    return out


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-") or "x"


__all__ = ["BeirData", "BeirError", "METRICS", "evaluate", "load_beir", "read_trec", "run_queries", "score_run",
           "write_trec"]
