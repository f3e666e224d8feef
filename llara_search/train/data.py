"""Training data: (chunk, next chunk) pairs for the pretext task, (query, positives, negatives) for fine-tuning.

Pretext pairs come from the user's own documents, in reading order, as in the released LLaRA data (spec §2.1:
the EBAR target is the next chunk of the same article). Fine-tuning examples come from a JSONL file or a BEIR
folder; hard negatives are mined from an index (positives and the very top ranks, often unjudged positives,
skipped).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..ingest.chunking import SEP, Chunker, passage_text
from ..ingest.parsers import ParseError, SkipFile, parse_file
from ..ingest.walk import walk


class TrainDataError(ValueError):
    """Unusable training input; the message names the file and what to change."""


def pairs_from_passages(docs: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """Each passage with the next one of the same document ("" after a document's last passage)."""
    out = []
    for passages in docs:
        for i, p in enumerate(passages):
            out.append((p, passages[i + 1] if i + 1 < len(passages) else ""))
    return out


def following_text(pairs: Sequence[tuple[str, str]], tokenizer, visible_tokens: int) -> list[tuple[str, str]]:
    """EBAR's target is the text that follows what the model reads: a chunk longer than the `visible_tokens` the
    pretext task feeds it is read only up to there, so its own remainder comes first, then the next chunk.

    The released data paired ~500-word chunks with the next one; a corpus of abstracts or short pages has one
    chunk per document, whose "next chunk" is nothing, which left the query prompt untrained on most of it.
    """
    texts = [a for a, _ in pairs]
    ids = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"] if texts else []
    out = []
    for (text, nxt), toks in zip(pairs, ids):
        if len(toks) > visible_tokens:
            rest = tokenizer.decode(toks[visible_tokens:], skip_special_tokens=True).strip()
            nxt = f"{rest}{SEP}{nxt}" if nxt else rest
        out.append((text, nxt))
    return out


def pairs_from_index(engine) -> list[tuple[str, str]]:
    """Pretext pairs from the chunks of an index's current generation, in document order."""
    from sqlalchemy import select

    from ..store import Chunk
    from ..store.store import visible

    gen = engine.store.current_generation()
    if gen is None:
        raise TrainDataError(f"index {engine.paths.root} has no committed chunks; ingest documents first")
    docs: dict[int, list[str]] = {}
    with engine.store.sessions() as s:
        rows = s.execute(select(Chunk.document_id, Chunk.heading, Chunk.text).where(visible(Chunk, gen.id))
                         .order_by(Chunk.document_id, Chunk.ordinal))
        for doc_id, heading, text in rows:
            docs.setdefault(doc_id, []).append(passage_text(heading, text))
    return pairs_from_passages(list(docs.values()))


def pairs_from_corpus(paths: Sequence[str | Path], tokenizer, chunk_tokens: int = 256) -> list[tuple[str, str]]:
    """Pretext pairs from files, parsed and chunked exactly as `ingest` would (unparseable files skipped)."""
    chunker = Chunker(tokenizer, chunk_tokens)
    found = walk([Path(p) for p in paths])
    docs = []
    for f in found.files:
        try:
            parsed = parse_file(f, f.read_bytes())
        except (ParseError, SkipFile, OSError):
            continue
        docs.append([c.passage for c in chunker.chunk(parsed)])
    return pairs_from_passages(docs)


# ---------------------------------------------------------------------------------------------------- fine-tuning
@dataclass
class Example:
    query: str
    pos: list[str]
    neg: list[str] = field(default_factory=list)


def examples_from_jsonl(path: Path) -> list[Example]:
    from ..eval.beir import read_jsonl

    def convert(row: dict) -> Example:
        return Example(str(row["query"]), [str(p) for p in row["pos"]], [str(x) for x in row.get("neg", [])])

    out = list(read_jsonl(path, convert, '{"query": str, "pos": [str, ...], "neg": [str, ...]}', TrainDataError))
    for n, ex in enumerate(out, start=1):
        if not ex.pos:
            raise TrainDataError(f"{path}: example {n} has an empty \"pos\"; every query needs at least one positive")
    if not out:
        raise TrainDataError(f"{path} has no examples")
    return out


def examples_from_beir(root: Path, split: str, search=None, n_mine: int = 30, skip_top: int = 3,
                       seed: int = 42) -> list[Example]:
    """Judged (query, positive documents) of a BEIR split, with negatives mined by `search(queries, k)`.

    `search` returns, per query, document ids best first (an index over the same corpus); without one, negatives
    are drawn at random from the corpus, which is what in-batch negatives already give, only more of them.
    """
    from ..eval.beir import load_beir

    data = load_beir(root, split)
    corpus = {doc_id: passage_text(title, text) for doc_id, title, text in data.corpus()}
    qids = [q for q in data.qrels if q in data.queries and any(s > 0 and d in corpus for d, s in data.qrels[q].items())]
    if not qids:
        raise TrainDataError(f"{root}: no judged query of split {split!r} has a positive document in the corpus")
    mined: dict[str, list[str]] = {}
    if search is not None:
        for i in range(0, len(qids), 64):
            part = qids[i:i + 64]
            for q, ranked in zip(part, search([data.queries[x] for x in part], n_mine + skip_top)):
                judged = set(data.qrels[q])
                mined[q] = [d for d in ranked[skip_top:] if d not in judged and d != q and d in corpus]
    rng = random.Random(seed)
    all_ids = list(corpus)
    out = []
    for q in qids:
        pos = [corpus[d] for d, s in data.qrels[q].items() if s > 0 and d in corpus]
        negs = mined.get(q) or [d for d in rng.sample(all_ids, min(len(all_ids), n_mine)) if d not in data.qrels[q]]
        out.append(Example(data.queries[q], pos, [corpus[d] for d in negs]))
    return out


__all__ = ["Example", "TrainDataError", "examples_from_beir", "examples_from_jsonl", "following_text",
           "pairs_from_corpus", "pairs_from_index", "pairs_from_passages"]
