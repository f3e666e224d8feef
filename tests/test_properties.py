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
EXTENSIONS = [".md", ".rst", ".txt", ".html", ".ipynb", ".pdf", ".docx", ".json", "", ".1", ".3pm", ".0", ".cat",
              ".texi", ".info", ".info-2", ".1.gz", ".adoc", ".ms", ".me", ".mm", ".mom", ".org", ".tex", ".pod",
              ".pm", ".epub", ".odt", ".odp", ".ods", ".pptx", ".xlsx", ".rtf"]
MARKUP_EXTENSIONS = [".md", ".rst", ".txt", "", ".1", ".8", ".0", ".cat", ".texi", ".info", ".ipynb", ".adoc", ".ms",
                     ".me", ".mm", ".mom", ".roff", ".org", ".tex", ".pod", ".pm", ".rtf"]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# fragments of every markup we parse (roff, nroff output, Texinfo, Info, rst, MyST), control characters, words:
# hypothesis strings them together into documents that walk the parsers' odd corners
FRAGMENTS = [
    ".TH LLAMA 1", "'\\\" t", ".SH NAME", ".SS Sub", ".TP", ".B bold", ".BR a (1)", ".I", "\\fBx\\fP", "\\(em",
    "\\*(Pn", ".ds Pn name", ".de XX", "..", ".XX a b", ".if n \\{\\", ".ie t", ".el", "\\}", ".nf", ".fi",
    ".TS", "tab(;);", "l l.", "a;b", "T{", "T}", ".TE", ".so man1/x.1", ".Dt X 1", ".Sh NAME", ".It Fl v", ".Op Ar f",
    ".\\\"", "\\c", "\\", "N\bNA\bAM\bME\bE", "_\bx", "\x1b[1m", "\x1b[0m", "X(1)   Manual   X(1)",
    "\\input texinfo", "@node Top", "@top T", "@chapter C", "@section S", "@example", "@end example", "@code{x}",
    "@xref{N,,T}", "@{", "@}", "@@", "@c comment", "@menu", "@end menu", "@item", "@itemx", "@tab", "@multitable",
    "@end multitable", "@ignore", "@end ignore", "@footnote{f", "}", "{", "@value{V}", "@set V 1", "@deffn C n a",
    "\x1f\nFile: x.info,  Node: Top,  Up: (dir)\n", "Title\n*****", "* Menu:", "*Note x::", "\x00\x08[index\x00\x08]",
    "..", ".. note::", ".. code-block:: python", ".. autofunction:: f", ".. autosummary::", ".. toctree::",
    ".. |s| replace:: t", "|s|", ".. _t:", ":func:`~a.b`", ":ref:`t <x>`", "``lit``", "`l <u>`_", "::", ":param x:",
    "+--+--+", "| a | b |", "=====", "-----", "   ", "* ", "1. ", ".. [#f] note", ".. raw:: html", "<b>x</b>",
    "```{note}", "```{code-cell}", "```{eval-rst}", "```", ":::{warning}", ":::", "---", "title: T", "+++",
    "(lbl)=", "{func}`f`", "% c", "# H", "## H2", "[l](u)", "![a](i.png)",
    # AsciiDoc, -ms/-me/-mm/-mom, Org, LaTeX, POD, RTF
    "= Title", "== Sec", "Title\n=====", ":attr: v", "{attr}", "include::f.adoc[]", "include::../../etc/passwd[]",
    "ifdef::x[]", "endif::[]", "----", "....", "****", "////", "++++", "|===", "|a |b", "[source,python]",
    "[[id]]", "<<id,label>>", "linkgit:git-x[1]", "link:u[t]", "term::", "NOTE: n", ".Title", "*b* _i_ `c`",
    ".NH 1", ".TL", ".AU", ".AB", ".AE", ".DS", ".DE", ".sh 1 T", ".pp", ".(l", ".)l", ".H 1 \"T\"", ".HU x",
    ".LI", ".HEADING 1 \"T\"", ".PRINTSTYLE TYPESET", ".START",
    "* TODO h :tag:", ":PROPERTIES:", ":END:", "#+TITLE: t", "#+BEGIN_SRC py", "#+END_SRC", "[[l][d]]", "| a |",
    "\\section{S}", "\\begin{document}", "\\end{document}", "\\emph{x", "$x^2$", "\\href{u}{t}",
    "\\begin{verbatim}", "\\end{verbatim}", "\\newcommand{\\x}{y}", "\\x", "%", "\\item",
    "=head1 NAME", "=over", "=item x", "=back", "=cut", "=begin html", "=end html", "B<x>", "C<< a >>", "E<gt>",
    "{\\rtf1", "\\par", "{\\*\\x y}", "\\'e9", "\\u9731?", "\\cell",
    "\x00", "\x07", "\x0b", "\x0c", "\x7f", "\x85", "\u2028", "\ufeff", "e\u0301", "llama", "hay", "Feed", "42"]
MARKUP_TEXT = st.lists(st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(["\n", " ", "", "\n\n", "\n   "])),
                       max_size=60).map(lambda parts: "".join(a + b for a, b in parts))
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
    assert not any(ch.isalnum() for ch in lost)  # nothing but whitespace and lone punctuation falls between chunks
    assert all(n <= BUDGET for n in chunker.count([c.text for c in chunks]))


@SETTINGS
@given(text=MARKUP_TEXT, ext=st.sampled_from(MARKUP_EXTENSIONS))
@example(text=".de XX\n.XX\n..\n.XX\n", ext=".1")  # a macro that calls itself
@example(text="@footnote{@code{x", ext=".texi")  # unbalanced braces
def test_markup_of_every_format_parses_without_exceptions_or_control_characters(chunker, text, ext):
    data = text.encode("utf-8", "surrogatepass")
    if ext == ".ipynb":
        import json

        data = json.dumps({"cells": [{"cell_type": "markdown", "source": text}, {"cell_type": "code",
                                                                                  "source": text}]}).encode()
    try:
        doc = parse_file(Path("f" + ext), data)
    except (ParseError, SkipFile) as exc:
        assert "\n" not in str(exc)
        return
    for section in doc.sections:
        assert not any(CONTROL.search(h) for h in section.heading)
        for b in section.blocks:
            assert not CONTROL.search(b.text) and re.search(r"\w", b.text)
    chunks = chunker.chunk(doc)
    assert all(n <= BUDGET for n in chunker.count([c.text for c in chunks]))
    for c in chunks:
        assert not CONTROL.search(c.text) and not CONTROL.search(c.heading)
        assert re.search(r"\w", c.text)  # no chunk is only markup or whitespace
