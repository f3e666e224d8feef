"""Property tests: no exception escapes the parsers on arbitrary bytes; the chunker covers a document's text in
order and never exceeds the token budget, whatever the text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llara_search.ingest.chunking import Chunker
from llara_search.ingest.parsers import ParseError, SkipFile, parse_file, parse_underlined

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EXTENSIONS = [".md", ".rst", ".txt", ".html", ".ipynb", ".pdf", ".docx", ".json", ""]
BUDGET = 24

# plain prose: letters, digits, spaces, newlines and punctuation that never forms an rst/markdown adornment line
PROSE = st.text(alphabet=st.sampled_from(list("abcdefghij KLMNOP 0123456789 ,;!?()äöüéßçñ漢字\n\n\n")), max_size=3000)
ANY_TEXT = st.text(max_size=2000)


@pytest.fixture(scope="module")
def chunker(tokenizer_dir):
    from llara_search.encoder import load_tokenizer

    return Chunker(load_tokenizer(str(tokenizer_dir)), chunk_tokens=BUDGET, max_length=512)


@SETTINGS
@given(data=st.binary(max_size=4000), ext=st.sampled_from(EXTENSIONS))
def test_no_exception_escapes_a_parser_on_arbitrary_bytes(data, ext):
    try:
        doc = parse_file(Path("f" + ext), data)
    except (ParseError, SkipFile) as exc:
        assert "\n" not in str(exc)  # the reason is one line
        return
    for section in doc.sections:
        assert all(isinstance(b.text, str) for b in section.blocks)


@SETTINGS
@given(text=ANY_TEXT, ext=st.sampled_from([".md", ".rst", ".txt", ".html"]))
@example(text="0000\x84\x84\U00010000\U00010000\U00010000\U00010000", ext=".md")  # byte-fallback tokens cut apart
def test_chunks_of_any_text_stay_within_the_budget_and_in_order(chunker, text, ext):
    try:
        doc = parse_file(Path("f" + ext), text.encode("utf-8", "surrogatepass"))
    except (ParseError, SkipFile):
        return
    chunks = chunker.chunk(doc)
    counts = chunker.count([c.text for c in chunks])
    assert all(n <= BUDGET for n in counts)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.text.strip() for c in chunks)


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


@SETTINGS
@given(text=PROSE)
def test_chunks_cover_the_document_text_in_order(chunker, text):
    doc = parse_underlined(text, "text")
    chunks = chunker.chunk(doc)
    starts = [c.char_start for c in chunks]
    assert starts == sorted(starts)  # in document order
    covered = [False] * len(text)
    for c in chunks:
        # every chunk is the document's own text at its offsets (whitespace between blocks aside)
        assert _squash(text[c.char_start:c.char_end]) == _squash(c.text)
        for i in range(c.char_start, c.char_end):
            covered[i] = True
    lost = "".join(ch for ch, ok in zip(text, covered) if not ok and not ch.isspace())
    assert lost == ""  # nothing but whitespace falls between chunks
    assert all(n <= BUDGET for n in chunker.count([c.text for c in chunks]))
