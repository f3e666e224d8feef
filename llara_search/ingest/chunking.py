"""Chunking: by structure first (sections, blocks), then packed to a token budget of the encoder's own tokenizer.

A section becomes one chunk when it fits. A longer section is packed block by block; only there do consecutive
chunks overlap (the previous chunk's last block, when short), so an answer that straddles the cut is still found.
A block longer than the budget is cut at line boundaries, and a single over-long line at token boundaries.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence

from .parsers import Block, ParsedDocument

CHUNKER_VERSION = "1"
DEFAULT_CHUNK_TOKENS = 256
SEP = "\n\n"
_WORD = re.compile(r"\w")


@dataclass
class ChunkData:
    ordinal: int
    heading: str
    text: str
    start_line: int | None
    end_line: int | None
    page: int | None
    char_start: int
    char_end: int
    n_tokens: int
    content_hash: str = ""

    @property
    def passage(self) -> str:
        return passage_text(self.heading, self.text)


def passage_text(heading: str | None, text: str) -> str:
    """What the encoder sees: heading path, then the text (BEIR's "title + text" convention)."""
    return f"{heading}{SEP}{text}" if heading else text


def content_hash(heading: str, text: str) -> str:
    return hashlib.sha256(f"{CHUNKER_VERSION}\0{heading}\0{text}".encode()).hexdigest()


class Chunker:
    def __init__(self, tokenizer, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, max_length: int = 512,
                 overlap_tokens: int | None = None):
        if chunk_tokens < 8:
            raise ValueError("--chunk-tokens must be at least 8")
        self.tokenizer = tokenizer
        self.budget = min(int(chunk_tokens), int(max_length))
        self.max_length = int(max_length)
        self.overlap = self.budget // 8 if overlap_tokens is None else int(overlap_tokens)

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return [len(x) for x in enc]

    def chunk(self, doc: ParsedDocument) -> list[ChunkData]:
        chunks: list[ChunkData] = []
        headings = [" > ".join(h for h in s.heading if h) for s in doc.sections]
        head_tokens = dict(zip(set(headings), self.count(list(set(headings)))))
        measured: list[bool] = []  # the chunk is one block whose count was taken on exactly its text
        for section, heading in zip(doc.sections, headings):
            budget = max(8, min(self.budget, self.max_length - head_tokens[heading] - 2))
            pieces = self._pieces(section.blocks, budget)
            whole = {id(b) for b in section.blocks}  # (a block cut in pieces makes new ones)
            for group in self._pack(pieces, budget):
                chunks.append(self._make(len(chunks), heading, group))
                measured.append(len(group) == 1 and id(group[0][0]) in whole)
        return self._enforce(chunks, measured)

    # ------------------------------------------------------------------------------------------------ steps
    def _pieces(self, blocks: list[Block], budget: int) -> list[tuple[Block, int]]:
        counts = self.count([b.text for b in blocks])
        out: list[tuple[Block, int]] = []
        for block, n in zip(blocks, counts):
            if n <= budget:
                out.append((block, n))
            else:
                out.extend(self._split_block(block, budget))
        return out

    def _split_block(self, block: Block, budget: int) -> list[tuple[Block, int]]:
        lines = block.text.split("\n")
        counts = self.count(lines)
        out: list[tuple[Block, int]] = []
        cur: list[str] = []
        cur_n, cur_start, offset = 0, 0, 0
        line_no = block.start_line

        def flush(end_idx: int) -> None:
            nonlocal cur, cur_n
            if cur:
                text = "\n".join(cur)
                start = None if line_no is None else line_no + cur_start
                end = None if line_no is None else line_no + end_idx
                out.append((Block(text, start, end, block.page, block.char_start + offset_of[cur_start]), cur_n))
            cur, cur_n = [], 0

        offset_of = []
        for line in lines:
            offset_of.append(offset)
            offset += len(line) + 1
        for i, (line, n) in enumerate(zip(lines, counts)):
            if n > budget:
                flush(i - 1)
                ln = None if line_no is None else line_no + i
                for text, start_char, m in self._split_tokens(line, budget):
                    out.append((Block(text, ln, ln, block.page, block.char_start + offset_of[i] + start_char), m))
                cur_start = i + 1
                continue
            if cur and cur_n + 1 + n > budget:
                flush(i - 1)
                cur_start = i
            if not cur:
                cur_start = i
            cur.append(line)
            cur_n += n + (1 if len(cur) > 1 else 0)
        flush(len(lines) - 1)
        return out

    def _split_tokens(self, line: str, budget: int) -> list[tuple[str, int, int]]:
        enc = self.tokenizer(line, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        budget = max(1, budget - 2)  # a cut-out piece may re-tokenize a token longer (word-boundary marker)
        step = max(1, budget - min(self.overlap, budget // 2))
        out = []
        for a in range(0, len(offsets), step):
            window = offsets[a:a + budget]
            if not window:
                break
            s, e = window[0][0], window[-1][1]
            out.append((line[s:e], s, len(window)))
            if a + budget >= len(offsets):
                break
        return out

    def _pack(self, pieces: list[tuple[Block, int]], budget: int) -> list[list[tuple[Block, int]]]:
        groups: list[list[tuple[Block, int]]] = []
        cur: list[tuple[Block, int]] = []
        cur_n = 0
        for block, n in pieces:
            if cur and cur_n + 2 + n > budget:
                groups.append(cur)
                last_block, last_n = cur[-1]
                # overlap only inside a split section: repeat a short last block at the start of the next chunk
                if last_n <= self.overlap and last_n + 2 + n <= budget and len(cur) > 1:
                    cur, cur_n = [(last_block, last_n)], last_n
                else:
                    cur, cur_n = [], 0
            cur.append((block, n))
            cur_n += n + (2 if len(cur) > 1 else 0)
        if cur:
            groups.append(cur)
        return groups

    def _make(self, ordinal: int, heading: str, group: list[tuple[Block, int]]) -> ChunkData:
        blocks = [b for b, _ in group]
        text = SEP.join(b.text for b in blocks)
        starts = [b.start_line for b in blocks if b.start_line is not None]
        ends = [b.end_line for b in blocks if b.end_line is not None]
        pages = [b.page for b in blocks if b.page is not None]
        return ChunkData(ordinal, heading, text, min(starts) if starts else None, max(ends) if ends else None,
                         pages[0] if pages else None, blocks[0].char_start,
                         blocks[-1].char_start + len(blocks[-1].text), sum(n for _, n in group))

    def _enforce(self, chunks: list[ChunkData], measured: list[bool]) -> list[ChunkData]:
        """Measure the packed texts exactly; re-cut the rare chunk whose joins tokenized longer than estimated. A
        chunk that is one whole block was measured already, on the same text (a third of chunking's time went to
        counting such chunks twice)."""
        again = self.count([c.text for c, done in zip(chunks, measured) if not done])[::-1]
        counts = [c.n_tokens if done else again.pop() for c, done in zip(chunks, measured)]
        out: list[ChunkData] = []
        for c, n in zip(chunks, counts):
            if n <= self.budget:
                c.n_tokens = n
                out.append(c)
                continue
            for text, start, m in self._fit(c.text):
                out.append(ChunkData(0, c.heading, text, c.start_line, c.end_line, c.page, c.char_start + start,
                                     c.char_start + start + len(text), m))
        out = [c for c in out if _WORD.search(c.text)]  # a piece cut off as a lone "}" or "----" is not content
        for i, c in enumerate(out):
            c.ordinal = i
            c.content_hash = content_hash(c.heading, c.text)
        return out

    def _fit(self, text: str) -> list[tuple[str, int, int]]:
        """Cut `text` at token boundaries into pieces that measure within the budget on their own.

        A cut-out piece can tokenize longer than its share of the whole (a word-start marker, or the byte-fallback
        tokens of a rare character split across the cut), so each cut is re-measured and the window narrowed until
        every piece fits.
        """
        window = self.budget
        while True:
            pieces = self._split_tokens(text, window)
            counts = self.count([t for t, _, _ in pieces])
            if all(n <= self.budget for n in counts) or window <= 3:
                return [(t, s, n) for (t, s, _), n in zip(pieces, counts) if t.strip()]
            window = max(3, window * 3 // 4)

