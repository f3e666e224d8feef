"""Every format a real docs folder holds, parsed from files the tests write: PDFs (a font with more than 256
widths, no text layer, an outline), man pages (roff man and mdoc sources, nroff output with overstrikes and
terminal escapes), Texinfo and Info, rst and MyST markdown with directives and roles. Then through the CLI: the
parse report, and near-copies of one manual in several formats collapsed at query time."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import by_heading, make_pdf, make_wide_font_pdf
from llara_search.cli import app
from llara_search.ingest.parsers import ParseError, SkipFile, parse_file

runner = CliRunner()
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# a line that is only markup of one of the formats (what must never reach a chunk)
MARKUP_LINE = re.compile(r"^\s*(\.\.\s+[\w:.-]+::|\.\.\s+_[\w-]+:|:[\w-]+:\s*$|```+\s*\{|:::|\+\+\+\s*$|"
                         r"\([\w-]+\)=\s*$|\.(TH|SH|SS|TP|PP|IP|B|I|BR|nf|fi|Dt|Sh|Op|Fl)\b|'\\\"|"
                         r"@(node|chapter|section|end|example|item|c|menu|cindex)\b|\* Menu:)", re.M)


def parse(path: Path, data: bytes | str):
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return parse_file(path, path.read_bytes())


def texts(doc) -> list[str]:
    return [b.text for s in doc.sections for b in s.blocks]


def assert_clean(doc) -> None:
    for s in doc.sections:
        assert not any(CONTROL.search(h) for h in s.heading)
        for b in s.blocks:
            assert not CONTROL.search(b.text), repr(b.text)
            assert unicodedata.is_normalized("NFC", b.text)
            assert re.search(r"\w", b.text)
            assert not MARKUP_LINE.search(b.text), b.text


# ------------------------------------------------------------------------------------------------ PDF
def test_pdf_whose_font_has_more_than_256_widths_is_read_page_by_page(tmp_path):
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    f = tmp_path / "groff.pdf"
    make_wide_font_pdf(f, ["Groff page one about llamas.", "Second page covers shearing."])
    with pytest.raises(LimitReachedError):  # the fixture is what breaks pypdf 7 ...
        PdfReader(str(f)).pages[0].extract_text()
    doc = parse_file(f, f.read_bytes())  # ... and it is read anyway
    assert [(b.page, b.text) for s in doc.sections for b in s.blocks] == [
        (1, "Groff page one about llamas."), (2, "Second page covers shearing.")]
    assert doc.format == "pdf" and doc.warnings == []


def test_pdf_extractor_chain_falls_back_and_says_so(tmp_path):
    from llara_search.ingest.formats.pdf import EXTRACTORS, parse_pdf

    f = tmp_path / "m.pdf"
    make_pdf(f, ["Manual page one.", "Page two."])

    def unreadable(data):
        raise ValueError("this reader gives up")

    doc = parse_pdf(f, f.read_bytes(), extractors=(("first", unreadable),) + EXTRACTORS[1:])
    assert texts(doc) == ["Manual page one.", "Page two."]
    assert doc.warnings == ["read with pypdf; first: ValueError: this reader gives up"]
    with pytest.raises(ParseError, match=r"^corrupt PDF \(first: ValueError"):
        parse_pdf(f, b"%PDF-1.4\nnot really", extractors=(("first", unreadable),))


def test_pdf_without_text_layer_is_skipped_with_a_warning_and_outline_gives_headings(tmp_path):
    from reportlab.pdfgen import canvas

    scan = tmp_path / "scan.pdf"
    c = canvas.Canvas(str(scan))
    c.rect(72, 72, 400, 600, fill=1)  # a page that is only a picture
    c.showPage()
    c.save()
    with pytest.raises(SkipFile, match="no text layer; OCR is not supported") as exc:
        parse_file(scan, scan.read_bytes())
    assert exc.value.warn

    book = tmp_path / "book.pdf"
    c = canvas.Canvas(str(book))
    for n, (title, body) in enumerate([("Installing", "Run the installer."), ("Tuning", "Raise the limits.")]):
        c.bookmarkPage(f"p{n}")
        c.addOutlineEntry(title, f"p{n}", level=0)
        c.drawString(72, 760, title)
        c.drawString(72, 740, body)
        c.showPage()
    c.save()
    doc = parse_file(book, book.read_bytes())
    assert [(s.heading, [(b.page, b.text) for b in s.blocks]) for s in doc.sections] == [
        (["Installing"], [(1, "Run the installer.")]), (["Tuning"], [(2, "Raise the limits.")])]


# ------------------------------------------------------------------------------------------------ man pages
ROFF = r"""'\" t
.\" A comment that is not text
.de Nx
\fB\\$1\fP(\\$2)
..
.ds Pn llamactl
.TH LLAMACTL 1 "2024-05-01" "llamactl 2.0" "User Commands"
.SH NAME
llamactl \- feed and shear llamas
.SH SYNOPSIS
.B llamactl
[\fB\-v\fR]
.I herd
.SH OPTIONS
.TP
.BR \-f ", " \-\-feed
Feed the \fIherd\fP now\(em even at night.
See
.Nx llama 7
for the rules.
.SS Shearing
.if n The \*(Pn tool shears once a year.
.if t This line is only for typesetters.
.ie n .ds Qq terminal
.el .ds Qq typeset
Output goes to the \*(Qq.
.PP
Example:
.nf
.RS
llamactl \-\-feed alpacas
  \-\-twice
.RE
.fi
.TS
tab(;);
l l.
Animal;Hay
Llama;2 kg
.TE
.SH "SEE ALSO"
.BR alpaca (1)
"""

MDOC = """.Dd May 1, 2024
.Dt SHEAR 8
.Os
.Sh NAME
.Nm shear
.Nd cut the wool of a llama
.Sh SYNOPSIS
.Nm
.Op Fl n Ar count
.Ar llama
.Sh DESCRIPTION
The
.Nm
utility shears
.Ar llama .
See
.Xr llamactl 1 .
.Bl -tag -width Ds
.It Fl n Ar count
Shear at most
.Ar count
animals.
.El
"""


def test_roff_man_page_is_sectioned_and_free_of_macros(tmp_path):
    doc = parse(tmp_path / "llamactl.1", ROFF)
    assert doc.format == "man" and doc.title == "LLAMACTL(1)"
    sec = by_heading(doc)
    assert list(sec) == ["LLAMACTL(1) > NAME", "LLAMACTL(1) > SYNOPSIS", "LLAMACTL(1) > OPTIONS",
                         "LLAMACTL(1) > OPTIONS > Shearing", "LLAMACTL(1) > SEE ALSO"]
    assert sec["LLAMACTL(1) > NAME"] == "llamactl - feed and shear llamas"
    assert sec["LLAMACTL(1) > SYNOPSIS"] == "llamactl [-v] herd"
    # .TP tag on its own line, fonts and escapes gone, a macro the page defines expanded
    assert sec["LLAMACTL(1) > OPTIONS"] == "-f, --feed\nFeed the herd now— even at night. See llama(7) for the rules."
    shearing = sec["LLAMACTL(1) > OPTIONS > Shearing"]
    assert "The llamactl tool shears once a year." in shearing  # .ds string, nroff branch of .if
    assert "typesetters" not in shearing and "Output goes to the terminal." in shearing
    assert "llamactl --feed alpacas\n  --twice" in shearing  # .nf example keeps its lines
    assert "Animal | Hay\nLlama | 2 kg" in shearing  # tbl rows
    assert sec["LLAMACTL(1) > SEE ALSO"] == "alpaca(1)"
    assert_clean(doc)
    assert not any("\\" in t for t in texts(doc))


def test_man_page_found_by_content_mdoc_pages_and_link_pages(tmp_path):
    doc = parse(tmp_path / "llamactl-page.txt", ROFF)  # the name says text, the content says man page
    assert doc.format == "man" and doc.sections[0].heading == ["LLAMACTL(1)", "NAME"]
    mdoc = parse(tmp_path / "shear.8", MDOC)
    sec = by_heading(mdoc)
    assert sec["SHEAR(8) > NAME"] == "shear — cut the wool of a llama"
    assert sec["SHEAR(8) > SYNOPSIS"] == "shear [-n count] llama"
    assert sec["SHEAR(8) > DESCRIPTION"] == ("The shear utility shears llama. See llamactl(1).\n\n"
                                             "-n count\nShear at most count animals.")
    assert_clean(mdoc)
    with pytest.raises(SkipFile, match=r"only points to another one \(\.so man1/llamactl\.1\)") as exc:
        parse(tmp_path / "feed.1", ".so man1/llamactl.1\n")
    assert exc.value.warn
    assert parse(tmp_path / "notes-1.2", "Release notes.\n").format == "text"  # a version, not a section


def _overstrike(s: str, style: str) -> str:
    if style == "bold":
        return "".join(f"{c}\b{c}" if c.strip() else c for c in s)
    return "".join(f"_\b{c}" if c.strip() else c for c in s)


def formatted_page(ansi: bool) -> str:
    def bold(s):
        return f"\x1b[1m{s}\x1b[0m" if ansi else _overstrike(s, "bold")

    def ul(s):
        return f"\x1b[4m{s}\x1b[24m" if ansi else _overstrike(s, "under")

    return "\n".join([
        "LLAMACTL(1)                  User Commands                 LLAMACTL(1)", "", "",
        bold("NAME"), "       llamactl - feed and shear llamas", "",
        bold("OPTIONS"), f"       {bold('-f')}, {bold('--feed')}", f"              Feed the {ul('herd')} now. The ani-",
        "              mals like it.", "",
        f"   {bold('Shearing')}", "       Shear once a year; the animals stay calm.", "",
        "\f", "llamactl 2.0                 2024-05-01                    LLAMACTL(1)", ""])


@pytest.mark.parametrize("name,ansi", [("llamactl.0", False), ("llamactl.cat", True), ("llamactl-page.txt", False)])
def test_nroff_output_loses_overstrikes_and_escapes_and_keeps_headings(tmp_path, name, ansi):
    doc = parse(tmp_path / name, formatted_page(ansi))
    assert doc.format == "man-formatted" and doc.title == "LLAMACTL(1)"
    assert by_heading(doc) == {
        "LLAMACTL(1) > NAME": "llamactl - feed and shear llamas",
        "LLAMACTL(1) > OPTIONS": "-f, --feed\n       Feed the herd now. The animals\n       like it.",
        "LLAMACTL(1) > OPTIONS > Shearing": "Shear once a year; the animals stay calm."}
    assert_clean(doc)


# ------------------------------------------------------------------------------------------------ GNU manuals
TEXI = r"""\input texinfo   @c -*-texinfo-*-
@setfilename llamas.info
@set VERSION 2.4
@settitle Llama Keeper @value{VERSION}

@copying
Copyright @copyright{} 2024 The Llama Keepers.
@end copying

@titlepage
@title Llama Keeper
@end titlepage

@ifnottex
@node Top
@top Llama Keeper
This manual documents @command{keeper} version @value{VERSION}.
@end ifnottex

@menu
* Feeding::        How to feed.
@end menu

@node Feeding
@chapter Feeding the herd
@cindex feeding
Llamas eat hay.  ``Fresh hay,'' says the caf@'e owner.
See @ref{Invoking} and @pxref{Schedules,,Feeding schedules}.@footnote{Older herds eat less.}

@iftex
Only in print.
@end iftex

@section Schedules
@example
keeper --feed @var{herd} @dots{}
@end example

@table @option
@item --feed=@var{herd}
@itemx -f @var{herd}
Feed the named @var{herd} now.
@end table

@multitable @columnfractions .5 .5
@headitem Animal @tab Hay
@item Cria @tab 0.5 kg
@end multitable
@bye
Ignored after bye.
"""

INFO = ("This is llamas.info, produced by makeinfo version 7.0 from llamas.texi.\n\n"
        "INFO-DIR-SECTION Animals\nSTART-INFO-DIR-ENTRY\n* Llamas: (llamas).  Keeping llamas.\nEND-INFO-DIR-ENTRY\n\n"
        "\x1f\nFile: llamas.info,  Node: Top,  Next: Feeding,  Up: (dir)\n\n"
        "Llama Keeper\n************\n\nThis manual documents 'keeper'.\n\n* Menu:\n\n* Feeding::   How to feed.\n\n"
        "\x1f\nFile: llamas.info,  Node: Feeding,  Prev: Top,  Up: Top\n\n"
        "1 Feeding the herd\n******************\n\nLlamas eat hay.  *Note Schedules::, and *note the options:"
        " Invoking.\n\n1.1 Schedules\n=============\n\n     keeper --feed HERD\n\n"
        "\x00\x08[index\x00\x08]\n* Menu:\n\n* feeding:                        Feeding.   (line 6)\n\n"
        "\x1f\nTag Table:\nNode: Top200\n\x1f\nEnd Tag Table\n\n\x1f\nLocal Variables:\ncoding: utf-8\nEnd:\n")


def test_texinfo_source_is_sectioned_with_commands_resolved(tmp_path):
    doc = parse(tmp_path / "llamas.texi", TEXI)
    assert doc.format == "texinfo" and doc.title == "Llama Keeper 2.4"
    sec = by_heading(doc)
    assert sec["Llama Keeper 2.4"] == "This manual documents keeper version 2.4."
    feeding = sec["Llama Keeper 2.4 > Feeding the herd"]
    assert feeding == ("Llamas eat hay. “Fresh hay,” says the café owner.\n"
                       "See Invoking and see Feeding schedules. (Older herds eat less.)")
    assert sec["Llama Keeper 2.4 > Feeding the herd > Schedules"] == (
        "keeper --feed herd …\n\n--feed=herd\n-f herd\nFeed the named herd now.\n\nAnimal | Hay\nCria | 0.5 kg")
    joined = "\n".join(texts(doc))
    assert "Copyright" not in joined and "Only in print" not in joined and "Ignored" not in joined
    assert_clean(doc)


def test_info_nodes_become_sections_without_menus(tmp_path):
    doc = parse(tmp_path / "llamas.info", INFO.encode())  # index markers hold NUL bytes: not "binary"
    assert doc.format == "info" and doc.title == "Llama Keeper"
    assert by_heading(doc) == {
        "Llama Keeper": "This manual documents 'keeper'.",
        "Llama Keeper > 1 Feeding the herd": "Llamas eat hay. see Schedules, and see the options",
        "Llama Keeper > 1 Feeding the herd > 1.1 Schedules": "keeper --feed HERD"}
    assert_clean(doc)
    with pytest.raises(SkipFile, match="Info index file; its text is in llamas.info-1"):
        parse(tmp_path / "split.info", "This is llamas.info, produced by makeinfo.\n\x1f\nIndirect:\n"
                                       "llamas.info-1: 100\n\x1f\nTag Table:\n(Indirect)\n")


# ------------------------------------------------------------------------------------------------ rst, markdown
RST = """:orphan:

.. _api-page:

``llamas.core`` module
======================

.. currentmodule:: llamas.core

.. |project| replace:: Llama Keeper

Welcome to |project|. Use :func:`~llamas.core.feed` or :ref:`the guide <guide>`, *gently*.
See `the site <https://llamas.example>`_ and footnote [#f1]_.

.. note::
   Llamas spit when :class:`Herd` is **crowded**.

.. autofunction:: shear

.. autosummary::
   :toctree: generated

   feed
   Herd.count

.. code-block:: python
   :caption: feeding

   feed(herd, hay=2)  # :func:`not a role in code`

.. versionadded:: 2.1
   The ``twice`` flag.

.. toctree::
   :maxdepth: 2

   install
   usage

.. This is a comment that must not be indexed.
   It goes on here.

.. image:: llama.png
   :alt: A llama at rest

.. js:function:: core.register(name, func)

   :param string name: the action name.
   :returns: nothing.

An example::

    $ keeper --feed

.. raw:: html

   <div class="hint"><b>Tip:</b> feed at dawn</div>

.. raw:: latex

   \\newpage

.. [#f1] Llamas are camelids.
"""

MYST = """---
title: Feeding guide
jupytext:
  formats: ipynb,md:myst
---

(feeding-guide)=
# Feeding guide

Use {func}`llamas.feed` for **daily** feeding, see [the docs](https://example.org).

```{note}
Hay is best at dawn.
```

:::{warning}
Never feed chocolate.
:::

+++

```{code-cell} ipython3
:tags: [hide-input]
%matplotlib inline
feed(herd)
```

% a MyST comment, not text

```{eval-rst}
.. autofunction:: llamas.shear
```

```{toctree}
install
```

```python
print("plain code stays")
```
"""


def test_rst_renders_roles_and_directives_to_their_text(tmp_path):
    doc = parse(tmp_path / "api.rst", RST)
    assert doc.title == "llamas.core module"
    [body] = by_heading(doc).values()
    assert body.split("\n\n") == [
        "Welcome to Llama Keeper. Use llamas.core.feed or the guide, gently.\nSee the site and footnote.",
        "Note: Llamas spit when Herd is crowded.",
        "llamas.core.shear",
        "llamas.core.feed\nllamas.core.Herd.count",
        "feed(herd, hay=2)  # :func:`not a role in code`",
        "New in version 2.1: The `twice` flag.",
        "A llama at rest",
        "core.register(name, func)", "param string name: the action name.\nreturns: nothing.",
        "An example:", "$ keeper --feed",
        "Tip:\nfeed at dawn",
        "[#f1] Llamas are camelids."]
    assert_clean(doc)


def test_myst_markdown_front_matter_title_directives_and_roles(tmp_path):
    doc = parse(tmp_path / "guide.md", MYST)
    assert doc.title == "Feeding guide"
    [(heading, body)] = by_heading(doc).items()
    assert heading == "Feeding guide"  # the front matter's title; the repeated # heading is not a second level
    assert body.split("\n\n") == [
        "Use llamas.feed for daily feeding, see the docs.",
        "Note: Hay is best at dawn.", "Warning: Never feed chocolate.",
        "%matplotlib inline\nfeed(herd)",
        "llamas.shear",
        'print("plain code stays")']
    assert "jupytext" not in body
    assert_clean(doc)


def test_every_format_drops_control_characters_and_normalises_unicode(tmp_path):
    raw = "Cafe\u0301 menu\x0b\x1b[31m red\x1b[0m\x07 bell\x7f\u0085 end\r\nnext line\u2028third\n"
    for name in ("menu.txt", "menu.md", "menu.rst"):
        doc = parse(tmp_path / name, raw)
        assert_clean(doc)
        assert "Café menu" in texts(doc)[0] and "bell" in texts(doc)[0]


# ------------------------------------------------------------------------------------------------ ingest
def test_parse_report_and_one_manual_in_many_formats_answers_once(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "llamactl.1").write_text(ROFF)
    (docs / "llamactl.0").write_text("\n".join([  # what nroff makes of the same page
        "LLAMACTL(1)                  User Commands                 LLAMACTL(1)", "",
        _overstrike("OPTIONS", "bold"), f"       {_overstrike('-f', 'bold')}, {_overstrike('--feed', 'bold')}",
        "              Feed the herd now— even at night.  See llama(7) for",
        "              the rules.", ""]))
    (docs / "llamactl.md").write_text("# OPTIONS\n\n-f, --feed\nFeed the herd now— even at night. See llama(7) for "
                                      "the rules.\n")
    (docs / "llamas.texi").write_text(TEXI)
    (docs / "api.rst").write_text(RST)
    (docs / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n   api\n")
    c_pdf = docs / "scan.pdf"
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(c_pdf))
    c.rect(72, 72, 200, 200, fill=1)
    c.showPage()
    c.save()
    make_wide_font_pdf(docs / "groff.pdf", ["Groff page one about llamas."])
    index = tmp_path / "idx"
    r = runner.invoke(app, ["ingest", str(docs), "--index", str(index), "--model", "none", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["files_failed"] == []
    assert rep["formats"] == {"man": 1, "man-formatted": 1, "markdown": 1, "pdf": 1, "rst": 1, "texinfo": 1}
    warnings = {Path(w["path"]).name: w["warning"] for w in rep["warnings"]}
    assert warnings == {"scan.pdf": "skipped: no text layer; OCR is not supported",
                        "index.rst": "skipped: no text to index (only markup or whitespace)"}
    human = runner.invoke(app, ["ingest", str(docs), "--index", str(index)])
    assert "documents per format: man 1, man-formatted 1, markdown 1" in " ".join(human.output.split())
    assert "warning:" in human.output and "no text layer" in human.output

    q = runner.invoke(app, ["query", "feed the herd now even at night rules", "--index", str(index), "--mode",
                            "bm25", "-k", "5", "--json"])
    hits = json.loads(q.stdout)["results"]
    same = [h for h in hits if "Feed the herd now" in h["text"]]
    assert len(same) == 1  # roff, nroff output and markdown copies: one result ...
    assert sorted(Path(p).name for p in same[0]["also_in"]) == sorted(
        {"llamactl.1", "llamactl.0", "llamactl.md"} - {Path(same[0]["path"]).name})  # ... naming the others
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    from llara_search.engine import Engine

    raw = Engine.open(index).search("feed the herd now even at night rules", k=5, mode="bm25", collapse=False)
    assert len([h for h in raw if "Feed the herd now" in h.text]) == 3

    import sqlite3

    con = sqlite3.connect(index / "meta.sqlite")
    chunks = [t for (t,) in con.execute("SELECT text FROM chunks")]
    heads = [h for (h,) in con.execute("SELECT c.heading FROM chunks c JOIN documents d ON d.id = c.document_id "
                                       "WHERE d.path LIKE '%llamactl.1'")]
    con.close()
    assert all(h.startswith("LLAMACTL(1) > ") for h in heads)
    assert not any(CONTROL.search(t) or MARKUP_LINE.search(t) for t in chunks)


def test_real_docs_folders_parse_clean(tmp_path):
    """A slice of the HAProxy and JAX folders of ../shared: the man page, the PDFs, Sphinx rst and MyST."""
    import os
    import shutil

    shared = Path(os.environ.get("LLARA_SEARCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    haproxy, jax = shared / "data" / "docs-haproxy" / "doc", shared / "data" / "docs-jax" / "docs"
    if not (haproxy.is_dir() and jax.is_dir()):
        pytest.skip("../shared/data docs folders are not present")
    docs = tmp_path / "docs"
    docs.mkdir()
    for src in [haproxy / "haproxy.1", haproxy / "lua-api" / "index.rst", *sorted(haproxy.rglob("*.pdf")),
                jax / "jax.numpy.rst", jax / "array_refs.md", jax / "faq.rst", jax / "notebooks" / "shard_map.md"]:
        if src.is_file():
            shutil.copy(src, docs / f"{src.parent.name}-{src.name}")
    index = tmp_path / "idx"
    r = runner.invoke(app, ["ingest", str(docs), "--index", str(index), "--model", "none", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["files_failed"] == []
    import sqlite3

    con = sqlite3.connect(index / "meta.sqlite")
    rows = con.execute("SELECT d.path, c.heading, c.text FROM chunks c JOIN documents d ON d.id = c.document_id")
    rows = rows.fetchall()
    con.close()
    man = [h for p, h, _ in rows if p.endswith("haproxy.1")]
    assert man and all(h.startswith("HAPROXY(1) > ") for h in man)
    assert {"HAPROXY(1) > OPTIONS", "HAPROXY(1) > SIGNALS"} <= set(man)
    assert not [t for _, _, t in rows if CONTROL.search(t) or MARKUP_LINE.search(t)]
    assert any("jax.numpy.argmax" in t for _, _, t in rows)  # autosummary names, qualified by currentmodule


def test_collapse_keeps_templated_passages_and_drops_copies():
    from llara_search.collapse import collapse_duplicates
    from llara_search.search import SearchResult

    def hit(i: int, path: str, text: str) -> SearchResult:
        return SearchResult(i, 1.0 / i, i, path, None, None, None, None, text)

    rows = [f"Zebra paragraph {j} of page {p}, item {p * 50 + j}. Zebra paragraph {j + 1} of page {p}, item "
            f"{p * 50 + j + 1}." for p in range(6) for j in (2,)]
    templated = [hit(i + 1, f"p{i}.md", t) for i, t in enumerate(rows)]
    assert [h.path for h in collapse_duplicates(templated, 10)] == [f"p{i}.md" for i in range(6)]  # facts differ
    text = "Brace expansion is a mechanism by which arbitrary strings may be generated, similar to pathname expansion."
    copies = [hit(1, "bash.1", text), hit(2, "other.md", "Unrelated words about llamas and their hay, long enough."),
              hit(3, "bash.pdf", text.replace("generated,", "generated,\n")), hit(4, "bash.html", "Brace " + text)]
    kept = collapse_duplicates(copies, 5)
    assert [(h.rank, h.path) for h in kept] == [(1, "bash.1"), (2, "other.md")]
    assert kept[0].also_in == ["bash.pdf", "bash.html"]


def test_collapse_finds_long_copies_cut_and_wrapped_differently_and_split_over_two_results():
    import textwrap

    from llara_search.collapse import collapse_duplicates
    from llara_search.search import SearchResult

    def hit(i: int, path: str, text: str) -> SearchResult:
        return SearchResult(i, 1.0 / i, i, path, None, None, None, None, text)

    a = ("The balance algorithm decides which server receives a new connection. Round robin gives each server its "
         "turn in proportion to its weight, and weights may change at run time. Least connections prefers the server "
         "with the fewest established connections, which suits long sessions such as LDAP or SQL.")
    b = ("Source hashing divides a hash of the client address by the total weight of the running servers, so that "
         "the same client reaches the same server while no server goes down or up. URI hashing does the same with "
         "the left part of the URI, which raises the cache hit rate of a farm of proxy caches.")
    pdf_page = textwrap.fill(a[40:] + " " + b[:120], width=24)  # cut elsewhere, and in short lines
    results = [hit(1, "config.html#a", a + " Unrelated closing words about the stats page."),
               hit(2, "intro.md", "Llamas carry packs across the Andes; alpacas are shorn for their fleece, which "
                                  "is finer than sheep's wool and holds no lanolin, so it needs little washing."),
               hit(3, "config.html#b", b),
               hit(4, "haproxy.pdf", pdf_page),
               hit(5, "management.txt", a.replace("server", "peer").replace("connection", "stream"))]
    kept = collapse_duplicates(results, 10)
    assert [h.path for h in kept] == ["config.html#a", "intro.md", "config.html#b", "management.txt"]
    assert kept[0].also_in == ["haproxy.pdf"] and [h.rank for h in kept] == [1, 2, 3, 4]


def test_quote_macros_of_bash1_and_closing_braces_leave_no_stray_dots(tmp_path):
    """bash.1 defines `.Q` (quote the first argument, append the second) with a groff branch (`\\n(.g`) and an
    `.el \\{ ... .\\}` block; the closing `.\\}` used to become a lone "." in the text."""
    page = (".TH BASH 1\n.de Q\n.ie \\n(.g \\(lq\\\\$1\\(rq\\\\$2\n.el \\{\n.  if t ``\\\\$1''\\\\$2\n"
            ".  if n \"\\\\$1\"\\\\$2\n.\\}\n..\n.SH DESCRIPTION\nThe word\n.Q function\nis reserved; see\n"
            ".Q \"set -o\" ,\nand\n.if n \\{\\\nterminal only\n.\\}\ndone.\n")
    doc = parse(tmp_path / "bash.1", page)
    text = " ".join(b.text for s in doc.sections for b in s.blocks)
    assert "The word “function” is reserved; see “set -o”, and terminal only done." in text
    assert " ." not in text


def test_html_headings_lose_their_permalink_marks(tmp_path):
    html = ("<html><body><h1>Intro<a class='headerlink' href='#i'>¶</a></h1><p>one</p>"
            "<h2 id='F'><span>1 Foo<a class='copiable-link' href='#F'> &para;</a></span></h2><p>two</p>"
            "<h3 id='x'>Bar <a href='#x'>§</a></h3><p>three</p><h3>Baz ¶</h3><p>four</p>"
            "<h3>C#</h3><p>five</p></body></html>")
    doc = parse(tmp_path / "page.html", html)
    assert [s.heading[-1] for s in doc.sections] == ["Intro", "1 Foo", "Bar", "Baz", "C#"]
