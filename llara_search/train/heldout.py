"""The held-out check a retrain is judged by, built from the user's own corpus before training starts.

A retrain is only worth a re-encode (hours on a large index) if it helps on *this* corpus, and the only judged
queries most users have are hidden in their documents: a heading that names exactly one section is a query whose
answer is that section (the same construction benchmarks/adapt.py measured against real judgments). A fixed share
of documents, chosen by a seeded hash of their key, is kept out of training, so the check never scores a model on
text it was trained on; its pairs are searched among the held-out documents' sections only, so the check costs
minutes of encoding, not a re-encode.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..ingest.chunking import passage_text

DEFAULT_SHARE = 0.1
MIN_SECTION_CHARS = 200  # a shorter section is a poor answer: a heading over a code sample or one line
MAX_HEADING_CHARS = 120
MIN_PAIRS = 10  # fewer judged pairs than this: no verdict, training goes on
MIN_DOCUMENTS = 5  # below this, holding documents out would starve training
_WORDS = re.compile(r"[^\W\d_]{2,}")


@dataclass
class CorpusDocument:
    """A document as training sees it: its key (path or record id) and its chunks (heading path, text) in order."""

    key: str
    chunks: list[tuple[str, str]]

    def passages(self) -> list[str]:
        return [passage_text(h, t) for h, t in self.chunks]

    def sections(self) -> list[tuple[str, str]]:
        """Consecutive chunks under one heading path, joined: (heading path, text)."""
        out: list[tuple[str, str]] = []
        for heading, text in self.chunks:
            if out and out[-1][0] == heading:
                out[-1] = (heading, out[-1][1] + "\n\n" + text)
            else:
                out.append((heading, text))
        return out


@dataclass
class HeldOutCheck:
    """Judged queries and the units (held-out sections, or the user's positives) they are searched among."""

    units: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    relevant: list[set[int]] = field(default_factory=list)  # per query: indexes into `units`
    heldout_keys: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)

    @property
    def enough(self) -> bool:
        return len(self.queries) >= MIN_PAIRS

    def subset(self, n: int) -> "HeldOutCheck":
        """The first `n` queries with every unit (a cheap check of checkpoints during training)."""
        return HeldOutCheck(self.units, self.queries[:n], self.relevant[:n], self.heldout_keys, self.report)

    def summary(self) -> str:
        r = self.report
        dropped = ", ".join(f"{n} {why}" for why, n in r.get("dropped", {}).items() if n)
        if not self.enough:
            return (f"held-out check: too few judged pairs ({r.get('pairs_found', len(self.queries))} found, need "
                    f"{MIN_PAIRS}{'; dropped: ' + dropped if dropped else ''}): training on all "
                    f"{r.get('documents', 0)} {r.get('of', 'documents')}, no verdict at the end")
        line = (f"held-out check: {r.get('heldout_documents', 0)} of {r.get('documents', 0)} {r.get('of', 'documents')} "
                f"({r.get('share', 0):.0%}, seed {r.get('seed')}) kept out of training; {len(self.queries)} judged "
                f"pairs ({', '.join(r.get('sources', []))})")
        return line + (f"; dropped: {dropped}" if dropped else "")


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()


def _relative_names(keys: Sequence[str]):
    """Keys as the split hashes them: file paths relative to the folder that holds them all, so that the same
    documents stay held out when the folder is moved or copied (record keys such as `beir:...` as they are)."""
    paths = [k for k in keys if k.startswith("/")]
    if len(paths) < 2:
        return lambda k: k
    base = os.path.commonpath(paths)
    return lambda k: os.path.relpath(k, base) if k.startswith("/") else k


def split_documents(docs: Sequence[CorpusDocument], share: float = DEFAULT_SHARE, seed: int = 0
                    ) -> tuple[list[CorpusDocument], list[CorpusDocument]]:
    """(training documents, held-out documents): a document is held out when its seeded hash falls in the first
    `share` of the hash space.

    A property of the key alone, not a shuffle or a rank: the same seed holds out the same documents on every run,
    and a document held out stays held out when the corpus grows (a later check never scores text the previous
    model was trained on)."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the held-out share must be in [0, 1), not {share}")
    if len(docs) < MIN_DOCUMENTS or share == 0.0:
        return list(docs), []
    cut = int(share * 2**64)
    name = _relative_names([d.key for d in docs])
    held = {d.key for d in docs if int(_rank(seed, name(d.key))[:16], 16) < cut}
    return [d for d in docs if d.key not in held], [d for d in docs if d.key in held]


def _norm(heading: str) -> str:
    return " ".join(heading.lower().split())


def heading_pairs(all_docs: Sequence[CorpusDocument], heldout: Sequence[CorpusDocument]) -> HeldOutCheck:
    """Heading → its section, for held-out sections whose own heading names no other section in the corpus.

    Uniqueness is counted over the whole corpus (a heading like "Examples" that recurs everywhere names nothing);
    BEIR-style records, whose heading is their title, give title → abstract the same way."""
    counts: dict[str, int] = {}
    for d in all_docs:
        for heading, _ in d.sections():
            last = heading.rsplit(" > ", 1)[-1].strip()
            if last:
                counts[_norm(last)] = counts.get(_norm(last), 0) + 1
    check = HeldOutCheck(heldout_keys=[d.key for d in heldout])
    dropped = {"without a heading": 0, "headings that name several sections": 0, "sections too short": 0,
               f"headings over {MAX_HEADING_CHARS} characters": 0, "headings without words": 0}
    for d in heldout:
        for heading, text in d.sections():
            last = heading.rsplit(" > ", 1)[-1].strip()
            check.units.append(text)
            if not last:
                dropped["without a heading"] += 1
            elif counts.get(_norm(last), 0) > 1:
                dropped["headings that name several sections"] += 1
            elif len(text) < MIN_SECTION_CHARS:
                dropped["sections too short"] += 1
            elif len(last) > MAX_HEADING_CHARS:
                dropped[f"headings over {MAX_HEADING_CHARS} characters"] += 1
            elif not _WORDS.search(last):
                dropped["headings without words"] += 1
            else:
                check.queries.append(last)
                check.relevant.append({len(check.units) - 1})
    check.report = {"dropped": dropped, "sources": ["heading → section"] if check.queries else []}
    return check


def read_queries(path: Path) -> list[tuple[str, list[str]]]:
    """The user's own judged queries: JSONL rows `{"query": ..., "pos": [passage text, ...]}` (finetune's format;
    `neg` is ignored)."""
    from .data import TrainDataError

    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainDataError(f"{path}: cannot read the queries file ({exc})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            query, pos = row["query"], row["pos"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise TrainDataError(f"{path}:{n}: expected a JSON object with \"query\" and \"pos\" "
                                 "(a list of relevant passage texts)") from None
        pos = [pos] if isinstance(pos, str) else list(pos)
        if not isinstance(query, str) or not query.strip() or not pos or not all(isinstance(p, str) for p in pos):
            raise TrainDataError(f"{path}:{n}: \"query\" must be text and \"pos\" a non-empty list of texts")
        out.append((query, pos))
    return out


def add_user_queries(check: HeldOutCheck, rows: Iterable[tuple[str, list[str]]]) -> None:
    """The user's judged queries join the check; their positives become units (deduplicated)."""
    where = {u: i for i, u in enumerate(check.units)}
    n = 0
    for query, pos in rows:
        rel = set()
        for p in pos:
            if p not in where:
                where[p] = len(check.units)
                check.units.append(p)
            rel.add(where[p])
        check.queries.append(query)
        check.relevant.append(rel)
        n += 1
    if n:
        check.report.setdefault("sources", []).append(f"{n} of your queries")


def exclude_positives(train_docs: list[CorpusDocument], rows: Sequence[tuple[str, list[str]]]
                      ) -> tuple[list[CorpusDocument], int]:
    """Training documents that contain none of the user's positive passages (those documents join the held-out
    side, so no judged answer is trained on); returns the documents kept and how many were moved."""
    needles = [" ".join(p.split()) for _, pos in rows for p in pos if p.strip()]
    if not needles:
        return train_docs, 0
    kept = []
    for d in train_docs:
        text = " ".join(" ".join(t.split()) for _, t in d.chunks)
        if not any(nd in text for nd in needles):
            kept.append(d)
    return kept, len(train_docs) - len(kept)


def build_check(docs: Sequence[CorpusDocument], *, share: float = DEFAULT_SHARE, seed: int = 0,
                queries_file: Path | None = None) -> tuple[list[CorpusDocument], HeldOutCheck]:
    """(documents to train on, the check): split, heading pairs from the held-out side, the user's queries."""
    train_docs, heldout = split_documents(docs, share, seed)
    check = heading_pairs(docs, heldout)
    moved = 0
    if queries_file is not None:
        rows = read_queries(queries_file)
        train_docs, moved = exclude_positives(train_docs, rows)
        add_user_queries(check, rows)
    if not check.enough and heldout:  # no verdict can come of them: the held-out documents train instead
        train_docs, found, heldout, moved = list(docs), len(check.queries), [], 0
        check = HeldOutCheck(report={"dropped": check.report.get("dropped", {}), "sources": [],
                                     "pairs_found": found})
    check.report.update(documents=len(docs), heldout_documents=len(heldout), share=share, seed=seed,
                        pairs=len(check.queries), units=len(check.units), moved_for_your_queries=moved,
                        enough=check.enough)
    return train_docs, check


# ---------------------------------------------------------------------------------------------------- sources
def documents_from_corpus(paths: Sequence[str | Path], tokenizer, chunk_tokens: int = 256) -> list[CorpusDocument]:
    """Files parsed and chunked exactly as `ingest` would (unreadable files left out, as training leaves them)."""
    from ..ingest.chunking import Chunker
    from ..ingest.parsers import ParseError, SkipFile, parse_file
    from ..ingest.walk import walk

    chunker = Chunker(tokenizer, chunk_tokens)
    out = []
    for f in walk([Path(p) for p in paths]).files:
        try:
            parsed = parse_file(f, f.read_bytes())
        except (ParseError, SkipFile, OSError):
            continue
        out.append(CorpusDocument(str(f), [(c.heading, c.text) for c in chunker.chunk(parsed)]))
    return out


def documents_from_index(engine) -> list[CorpusDocument]:
    """The chunks of an index's current generation, grouped by document in reading order."""
    from sqlalchemy import select

    from ..store import Chunk, Document
    from ..store.store import visible
    from .data import TrainDataError

    gen = engine.store.current_generation()
    if gen is None:
        raise TrainDataError(f"index {engine.paths.root} has no committed chunks; ingest documents first")
    docs: dict[int, CorpusDocument] = {}
    with engine.store.sessions() as s:
        rows = s.execute(select(Chunk.document_id, Document.path, Chunk.heading, Chunk.text)
                         .join(Document, Document.id == Chunk.document_id).where(visible(Chunk, gen.id))
                         .order_by(Chunk.document_id, Chunk.ordinal))
        for doc_id, path, heading, text in rows:
            docs.setdefault(doc_id, CorpusDocument(path, [])).chunks.append((heading or "", text))
    return list(docs.values())


__all__ = ["CorpusDocument", "DEFAULT_SHARE", "HeldOutCheck", "MIN_PAIRS", "build_check", "documents_from_corpus",
           "documents_from_index", "heading_pairs", "read_queries", "split_documents"]
