"""The formats of issue #30, each from a file the test writes: AsciiDoc (includes that try to leave the root,
include cycles, a mis-named `.txt`), roff with -ms/-me/-mm/-mom, Org, LaTeX, POD, EPUB, ODF, .pptx, .xlsx and RTF.
Each asserts the heading path, the text, and that the format's markup is gone; then a mixed folder through the
CLI, where every file is accounted for and nothing outside the ingested root is read."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from format_files import XlsxDate, make_epub, make_odp, make_ods, make_odt, make_pptx, make_rtf, make_xlsx
from helpers import by_heading
from llara_search.cli import app
from llara_search.ingest.parsers import PARSER_VERSION, ParseError, SkipFile, parse_file

runner = CliRunner()
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
ADOC_MARKUP = re.compile(r"^(={1,6} \S|:[\w-]+:(\s|$)|\[\[|\[(source|NOTE|verse|cols)|\|===|include::|ifn?def::|"
                         r"endif::|image::|//|----$|\+\+\+\+)|linkgit:|<<[\w#:.-]+(,[^>]*)?>>|xref:|link:\S*\[",
                         re.M)
ROFF_MARKUP = re.compile(r"^[.'][A-Za-z(+$)]|\\f[BIRP(\[]|\\\*[(\[]|\\\(|\\s[-+\d]|\\[\"#]", re.M)


def parse(path: Path, data: bytes | str, roots: list[Path] | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return parse_file(path, path.read_bytes(), roots)


def everything(doc) -> str:
    return "\n\n".join(b.text for s in doc.sections for b in s.blocks)


def assert_clean(doc, markup: re.Pattern | None = None) -> None:
    for s in doc.sections:
        assert s.heading, "every section has a heading path"
        assert not any(CONTROL.search(h) for h in s.heading)
        for b in s.blocks:
            assert not CONTROL.search(b.text) and re.search(r"\w", b.text), repr(b.text)
            if markup is not None:
                assert not markup.search(b.text), b.text


# ------------------------------------------------------------------------------------------------ AsciiDoc
MANUAL = """\
= Llama Manual
:product: LlamaSearch
:toc: left
// a comment line that must not be indexed: commentsecret

Welcome to {product}. See linkgit:git-commit[1], <<feeding,the feeding chapter>>, <<grooming>> and
xref:other.adoc#top[the other page]. Visit https://example.org[the farm site] or link:faq.html[the FAQ].

[[feeding]]
== Feeding

Llamas eat *hay* and _grass_; run `pip install *.whl` first. +
A hard line break above.

NOTE: Llamas spit when angry.

[source,python]
----
def hay():  # <1>
    return "{product}"
----
<1> The callout explains the hay.

////
a block comment: blockcommentsecret
////

++++
<div>passthroughsecret</div>
++++

.Food table
[cols="1,2"]
|===
|Animal |Food

|llama
|hay

|alpaca |grass
|===

ifdef::backend-html5[]
Only in HTML: conditionaltext.
endif::[]
ifndef::never-defined[Inline conditional text.]

include::parts/shearing.adoc[leveloffset=+1]

include::../outside/secret.adoc[]

include::{partsdir}/missing.adoc[]

[[grooming]]
=== Grooming the coat

* brush daily
** nested brushing
. ordered step

--force::
--no-force::
  Forces the grooming.

Classic Title
-------------

Text under a two-line title with ``quoted'' and 'emphasis' words.
"""


def test_asciidoc_manual_heading_path_attributes_macros_blocks_and_tables(tmp_path):
    root = tmp_path / "docs"
    (root / "parts").mkdir(parents=True)
    (root / "parts" / "shearing.adoc").write_text("= Shearing\n\nShear in spring with {product}.\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.adoc").write_text("outsidesecret text\n")
    doc = parse(root / "manual.adoc", MANUAL, [root])
    assert doc.format == "asciidoc" and doc.title == "Llama Manual"
    h = by_heading(doc)
    assert set(h) == {"Llama Manual", "Llama Manual > Feeding", "Llama Manual > Shearing",
                      "Llama Manual > Shearing > Grooming the coat", "Llama Manual > Classic Title"}
    intro = h["Llama Manual"]
    assert "Welcome to LlamaSearch." in intro  # attribute substituted
    assert "git-commit(1)" in intro and "the feeding chapter" in intro and "Grooming the coat" in intro
    assert "the other page" in intro and "the farm site" in intro and "the FAQ" in intro
    feeding = h["Llama Manual > Feeding"]
    assert "Llamas eat hay and grass; run pip install *.whl first." in feeding  # code span kept as written
    assert "Note: Llamas spit when angry." in feeding
    assert 'def hay():\n    return "{product}"' in feeding  # a listing keeps its lines (and its braces)
    assert "Animal | Food\nllama | hay\nalpaca | grass" in feeding
    assert "conditionaltext" in feeding and "Inline conditional text." in feeding
    assert "Shear in spring with LlamaSearch." in h["Llama Manual > Shearing"]  # included, levels shifted
    groom = h["Llama Manual > Shearing > Grooming the coat"]
    assert "- brush daily\n- nested brushing\n- ordered step" in groom
    assert "--force\n--no-force\nForces the grooming." in groom
    assert "Text under a two-line title with “quoted” and emphasis words." in h["Llama Manual > Classic Title"]
    text = everything(doc)
    for secret in ("commentsecret", "blockcommentsecret", "passthroughsecret", "outsidesecret", ":toc:"):
        assert secret not in text
    assert any("outside the ingested folders" in w and "secret.adoc" in w for w in doc.warnings)
    assert any("undefined attribute" in w for w in doc.warnings)
    assert_clean(doc, ADOC_MARKUP)


def test_asciidoc_include_cycles_and_escapes_are_refused_and_the_rest_is_read(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "one.adoc").write_text("== One\n\nText one.\n\ninclude::two.adoc[]\n")
    (root / "a" / "two.adoc").write_text("== Two\n\nText two.\n\ninclude::one.adoc[]\n\ninclude::two.adoc[]\n")
    (tmp_path / "passwd").write_text("root:x:0:0 outsideroot\n")
    link = root / "a" / "escape.adoc"
    link.symlink_to(tmp_path / "passwd")
    doc = parse(root / "book.adoc", "= Book\n\ninclude::a/one.adoc[]\n\ninclude::a/escape.adoc[]\n\n"
                                    "include::/etc/passwd[]\n\ninclude::../passwd[]\n", [root])
    h = by_heading(doc)
    assert h["Book > One"] == "Text one." and h["Book > Two"] == "Text two."  # each once: cycles stop
    assert "outsideroot" not in everything(doc) and "root:x" not in everything(doc)
    assert sum("include cycle" in w for w in doc.warnings) == 2
    assert sum("outside the ingested folders" in w for w in doc.warnings) == 3  # symlink, absolute, ../
    # without roots, the file's own folder is the root: a sibling folder's file is still refused
    doc = parse(root / "a" / "three.adoc", "Three.\n\ninclude::../book.adoc[]\n")
    assert "Text one" not in everything(doc)


def test_antora_resource_ids_are_followed_inside_the_component(tmp_path):
    root = tmp_path / "docs"
    pages, partials = root / "modules" / "ROOT" / "pages", root / "modules" / "ROOT" / "partials"
    other = root / "modules" / "admin" / "examples"
    for d in (pages, partials, other):
        d.mkdir(parents=True)
    (partials / "intro.adoc").write_text("Shared intro about llamas.\n")
    (other / "conf.yml").write_text("hay: daily\n")
    doc = parse(pages / "index.adoc", "= Index\n\ninclude::partial$intro.adoc[]\n\n[source,yaml]\n----\n"
                                      "include::admin:example$conf.yml[]\n----\n", [root])
    assert by_heading(doc)["Index"] == "Shared intro about llamas.\n\nhay: daily" and not doc.warnings


def test_asciidoc_saved_as_txt_is_detected_and_plain_text_is_not(tmp_path):
    git_style = ("git-llama(1)\n============\n\nNAME\n----\ngit-llama - Feed the llamas\n\nSYNOPSIS\n--------\n"
                 "[verse]\n'git llama' [--hay]\n\nOPTIONS\n-------\n--hay::\n\tFeed hay, see linkgit:git-feed[1].\n")
    doc = parse(tmp_path / "git-llama.txt", git_style)
    assert doc.format == "asciidoc" and doc.title == "git-llama(1)"
    h = by_heading(doc)
    assert h["git-llama(1) > NAME"] == "git-llama - Feed the llamas"
    assert h["git-llama(1) > OPTIONS"] == "--hay\nFeed hay, see git-feed(1)."
    assert_clean(doc, ADOC_MARKUP)
    plain = parse(tmp_path / "notes.txt", "Shopping list\n=============\n\nHay: two bales.\nWater: lots.\n")
    assert plain.format == "text"


def test_asciidoctor_table_cells_holding_blocks_smart_quotes_and_titles_of_empty_blocks(tmp_path):
    doc = parse(tmp_path / "compare.adoc", """= Compare
:uri-home: https://example.org

Termed "`flavors`" and '`single`'. See {uri-home}/docs[the docs] and {undefined-uri}/x[Compat].

.Result: an example whose content was not included
====
include::{partialsdir}/missing.adoc[]
====

After the example.

[cols="1,2"]
|===
|Feature |Syntax

|Bold
a|
[source,asciidoc]
----
*bold*
----
|===
""")
    h = by_heading(doc)["Compare"]
    assert "Termed “flavors” and ‘single’. See the docs and Compat." in h
    assert "After the example." in h and "Result:" not in h  # the title of an empty block goes with it
    assert "Feature | Syntax\nBold |\nbold" in h
    assert_clean(doc, ADOC_MARKUP)


def test_asciidoc_fragment_without_title_is_headed_by_its_file_name(tmp_path):
    doc = parse(tmp_path / "diff-options.adoc", "--stat::\n\tShow a diffstat.\n")
    assert [s.heading for s in doc.sections] == [["diff-options"]]
    with pytest.raises(SkipFile, match="PGP") as exc:  # .asc is also an armored signature
        parse(tmp_path / "release.tar.gz.asc", "-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n-----END PGP "
                                                "SIGNATURE-----\n")
    assert exc.value.kind == "binary"


# ------------------------------------------------------------------------------------------------ roff
MS = r""".\" an -ms article
.TL
Making Llamas With GNU Roff
.AU
A. Person
.AB
Llamas are \fBimportant\fP animals.
.AE
.NH 1
Introduction
.PP
The \fIllama\fR eats \(em mostly \*(lqhay\*(rq.
.NH 2
Feeding
.LP
Feed them \s-2twice\s0 a day.
.DS
  display line one
  display line two
.DE
.B word ,
.SH
Unnumbered Section
.PP
Final words.
"""


def test_ms_article_has_title_headings_and_no_raw_roff(tmp_path):
    doc = parse(tmp_path / "article.ms", MS)
    assert doc.format == "roff-ms" and doc.title == "Making Llamas With GNU Roff"
    h = by_heading(doc)
    t = "Making Llamas With GNU Roff"
    assert "Llamas are important animals." in h[f"{t} > Abstract"]
    assert "The llama eats — mostly “hay”." in h[f"{t} > Introduction"]
    feeding = h[f"{t} > Introduction > Feeding"]
    assert "Feed them twice a day." in feeding and "display line one\n  display line two" in feeding
    assert "word," in feeding
    assert h[f"{t} > Unnumbered Section"] == "Final words."
    assert_clean(doc, ROFF_MARKUP)


@pytest.mark.parametrize("name, source, headings, text", [
    ("paper.me", ".tp\n.sh 1 \"Llama Basics\"\n.pp\nLlamas \\fBhum\\fP.\n.uh \"Notes\"\n.lp\nA note with .b bold\n"
     ".b word ,\n.(l\nlisted line\n.)l\n",
     ["Llama Basics", "Notes"], ["Llamas hum.", "word,", "listed line"]),
    ("memo.mm", ".TL\nLlama Memo\n.AU \"A. Person\"\n.H 1 \"Feeding Plan\"\n.P\nHay \\fIdaily\\fP.\n.AL\n.LI\n"
     "first item\n.LE\n.HU \"Appendix\"\n.P\nMore.\n",
     ["Llama Memo > Feeding Plan", "Llama Memo > Appendix"], ["Hay daily.", "first item", "More."]),
    ("book.mom", ".TITLE \"Llama Book\"\n.AUTHOR \"A. Person\"\n.PRINTSTYLE TYPESET\n.START\n.HEADING 1 \"Origins\"\n"
     ".PP\nLlamas come from \\*[BD]the Andes\\*[PREV].\n.PT_SIZE 12\n.HEADING 2 \"Details\"\n.PP\nDetail text.\n",
     ["Llama Book > Origins", "Llama Book > Origins > Details"], ["Llamas come from the Andes.", "Detail text."]),
])
def test_me_mm_and_mom_documents(tmp_path, name, source, headings, text):
    doc = parse(tmp_path / name, source)
    h = by_heading(doc)
    for heading in headings:
        assert heading in h, (heading, list(h))
    body = everything(doc)
    for t in text:
        assert t in body
    assert_clean(doc, ROFF_MARKUP)


def test_roff_saved_as_txt_is_read_as_roff(tmp_path):
    doc = parse(tmp_path / "article.txt", MS)
    assert doc.format == "roff-ms" and "Introduction" in " ".join(" ".join(s.heading) for s in doc.sections)
    page = parse(tmp_path / "tool.roff", ".TH TOOL 1\n.SH NAME\ntool \\- does things\n.SH DESCRIPTION\n.PP\nIt works.\n")
    assert page.format == "man" and by_heading(page)["TOOL(1) > DESCRIPTION"] == "It works."  # a man page stays one


# ------------------------------------------------------------------------------------------------ Org
ORG = """#+TITLE: Llama Notes
#+AUTHOR: someone
#+OPTIONS: toc:nil

* TODO [#A] Feeding the llamas [1/2] :farm:animals:
  SCHEDULED: <2024-01-02 Tue>
  :PROPERTIES:
  :ID: propertysecret
  :END:
Llamas eat *hay* and /grass/, see [[https://example.org][the farm site]] and =code=.
# a comment: orgcommentsecret
- [X] checked item
- term :: the description
** Recipes
#+BEGIN_SRC python
def hay():
    return 1
#+END_SRC
| name   | food  |
|--------+-------|
| alpaca | grass |
#+BEGIN_COMMENT
blockcommentsecret
#+END_COMMENT
#+BEGIN_EXPORT html
<div>exportsecret</div>
#+END_EXPORT
* COMMENT Hidden tree
subtreesecret
* Last words
Visible[fn:1].
"""


def test_org_outline_blocks_links_and_drawers(tmp_path):
    doc = parse(tmp_path / "notes.org", ORG)
    assert doc.format == "org" and doc.title == "Llama Notes"
    h = by_heading(doc)
    assert set(h) == {"Llama Notes > Feeding the llamas", "Llama Notes > Feeding the llamas > Recipes",
                      "Llama Notes > Last words"}
    assert ("Llamas eat hay and grass, see the farm site and code.\n- checked item\n- term: the description"
            in h["Llama Notes > Feeding the llamas"])
    recipes = h["Llama Notes > Feeding the llamas > Recipes"]
    assert "def hay():\n    return 1" in recipes and "name | food\nalpaca | grass" in recipes
    text = everything(doc)
    for secret in ("propertysecret", "orgcommentsecret", "blockcommentsecret", "exportsecret", "subtreesecret",
                   "SCHEDULED", ":END:", "#+", "[[", "[fn:"):
        assert secret not in text
    assert_clean(doc)


# ------------------------------------------------------------------------------------------------ LaTeX
LATEX = r"""\documentclass{article}
\usepackage{amsmath} % preamblesecret
\newcommand{\proj}{LLaRA}
\title{Llamas in \LaTeX}
\author{A. Person}
\begin{document}
\maketitle
\begin{abstract}
We study \proj{} llamas.
\end{abstract}
\section{Introduction}\label{sec:intro}
Hello \emph{world} with \textbf{bold \textit{nested}}, inline math $x^2 + y$ and
display math \[ \alpha = \frac{1}{2} \]. Caf\'e na\"ive.
See \cite{knuth84,lamport94} and Section~\ref{sec:intro}. \href{http://y.org}{the link text} % commentsecret
\begin{verbatim}
raw \code{kept} as is
\end{verbatim}
\begin{itemize}
\item first point
\item[Label] second point
\end{itemize}
\begin{equation} E = mc^2 \label{eq:e} \end{equation}
Text with a note\footnote{the footnote}.
\begin{tabular}{ll}
\hline
Animal & Food \\
llama & hay \\
\end{tabular}
\subsection*{Deeper \emph{stuff}}
More text \unknowncommand{keeps its argument}.
\begin{tikzpicture}\draw (0,0) -- (1,1) node {tikzsecret};\end{tikzpicture}
\end{document}
"""


def test_latex_sections_commands_math_and_preamble(tmp_path):
    doc = parse(tmp_path / "paper.tex", LATEX)
    assert doc.format == "latex" and doc.title == "Llamas in LaTeX"
    h = by_heading(doc)
    assert set(h) == {"Llamas in LaTeX > Abstract", "Llamas in LaTeX > Introduction",
                      "Llamas in LaTeX > Introduction > Deeper stuff"}
    assert h["Llamas in LaTeX > Abstract"] == "We study LLaRA llamas."
    intro = h["Llamas in LaTeX > Introduction"]
    assert "Hello world with bold nested, inline math $x^2 + y$ and" in intro
    assert "\\alpha = \\frac{1}{2}" in intro and "Café naïve." in intro  # math as its source, accents as letters
    assert "See [knuth84, lamport94] and Section" in intro and "the link text" in intro
    assert "raw \\code{kept} as is" in intro  # verbatim keeps its backslashes
    assert "- first point\n- Label: second point" in intro
    assert "E = mc^2" in intro and "Text with a note (the footnote)." in intro
    assert "Animal | Food\nllama | hay" in intro
    assert "More text keeps its argument." in h["Llamas in LaTeX > Introduction > Deeper stuff"]
    text = everything(doc)
    for secret in ("preamblesecret", "commentsecret", "tikzsecret", "\\label", "\\section", "\\begin", "\\emph",
                   "usepackage", "A. Person"):
        assert secret not in text
    assert_clean(doc)


# ------------------------------------------------------------------------------------------------ POD
POD_MODULE = """package Llama::Farm;
use strict;
my $code = "codesecret";

=head1 NAME

Llama::Farm - feeds the llamas

=head1 SYNOPSIS

    use Llama::Farm;
    my $farm = Llama::Farm->new;

=head1 DESCRIPTION

Feeds B<llamas> with I<hay>, see L<the docs|Llama::Docs>, C<< $x->feed >> and E<lt>tagE<gt>.X<indexsecret>

=head2 Methods

=over 4

=item feed($amount)

Feeds them.

=back

=begin html

<p>htmlsecret</p>

=end html

=cut

sub feed { return "subsecret" }
1;
"""


def test_pod_inside_a_perl_module(tmp_path):
    doc = parse(tmp_path / "Farm.pm", POD_MODULE)
    assert doc.format == "pod" and doc.title == "Llama::Farm"
    h = by_heading(doc)
    assert h["Llama::Farm > NAME"] == "Llama::Farm - feeds the llamas"
    assert h["Llama::Farm > SYNOPSIS"] == "use Llama::Farm;\nmy $farm = Llama::Farm->new;"
    assert h["Llama::Farm > DESCRIPTION"] == "Feeds llamas with hay, see the docs, $x->feed and <tag>."
    assert h["Llama::Farm > DESCRIPTION > Methods"] == "feed($amount)\n\nFeeds them."
    text = everything(doc)
    for secret in ("codesecret", "subsecret", "htmlsecret", "indexsecret", "=head", "=item", "B<", "L<"):
        assert secret not in text
    with pytest.raises(SkipFile) as exc:
        parse(tmp_path / "plain.pl", "print 'no docs here';\n")
    assert exc.value.kind == "no-text"
    assert_clean(doc)


# ------------------------------------------------------------------------------------------------ books, office
def test_epub_chapters_in_spine_order_with_the_book_title(tmp_path):
    f = make_epub(tmp_path / "book.epub", "The Llama Book",
                  [("Chapter One", ["Llamas are tall."]), ("Chapter Two", ["Alpacas are small."]),
                   ("Chapter Three", ["Vicuñas are wild."])], spine_order=[2, 0, 1])
    doc = parse_file(f, f.read_bytes())
    assert doc.format == "epub" and doc.title == "The Llama Book"
    assert [s.heading for s in doc.sections] == [["The Llama Book", "Chapter Three"],
                                                 ["The Llama Book", "Chapter One"],
                                                 ["The Llama Book", "Chapter Two"]]
    assert everything(doc) == "Vicuñas are wild.\n\nLlamas are tall.\n\nAlpacas are small."  # no nav page
    assert_clean(doc)


def test_odf_text_presentation_and_spreadsheet(tmp_path):
    odt = make_odt(tmp_path / "report.odt", "Llama Report", [(1, "Intro", ["Hay is food."]),
                                                             (2, "Details", ["Grass is food too."])],
                   table=[["name", "food"], ["alpaca", "grass"]])
    doc = parse_file(odt, odt.read_bytes())
    h = by_heading(doc)
    assert h["Llama Report > Intro"] == "Hay is food."
    assert h["Llama Report > Intro > Details"] == "Grass is food too.\n\nname | food\nalpaca | grass"
    odp = make_odp(tmp_path / "talk.odp", [("Welcome", ["first point"], "say hello"), ("Second", ["more"], "")])
    h = by_heading(parse_file(odp, odp.read_bytes()))
    assert h == {"Slide 1: Welcome": "first point\n\nNotes: say hello", "Slide 2: Second": "more"}
    ods = make_ods(tmp_path / "feed.ods", {"Feed": [["animal", "kg"], ["llama", "3"]], "Empty": []})
    h = by_heading(parse_file(ods, ods.read_bytes()))
    assert h == {"Feed": "animal | kg\n\nllama | 3"}


def test_pptx_slides_in_presentation_order_with_titles_and_notes(tmp_path):
    f = make_pptx(tmp_path / "deck.pptx", [("Welcome", ["first point", "second point"], "say hello"),
                                           ("Second", ["more"], "")], order=[1, 0])
    doc = parse_file(f, f.read_bytes())
    assert doc.format == "pptx"
    assert by_heading(doc) == {"Slide 1: Second": "more",
                               "Slide 2: Welcome": "first point\nsecond point\n\nNotes: say hello"}
    assert "slide image" not in everything(doc)  # placeholders of the notes page are not notes


def test_xlsx_sheets_with_shared_strings_and_bounded_rows(tmp_path, monkeypatch):
    from llara_search.ingest.formats import xlsx

    f = make_xlsx(tmp_path / "feed.xlsx", {"Feed": [["animal", "kg"], ["llama", 3], ["alpaca", 1.5]],
                                           "Notes": [["hay is good", XlsxDate(45306)]]})
    doc = parse_file(f, f.read_bytes())
    assert by_heading(doc) == {"Feed": "animal | kg\n\nllama | 3\n\nalpaca | 1.5",
                               "Notes": "hay is good | 2024-01-15"}  # a date cell reads as a date
    monkeypatch.setattr(xlsx, "MAX_ROWS", 2)
    doc = parse_file(f, f.read_bytes())
    assert by_heading(doc)["Feed"] == "animal | kg\n\nllama | 3"
    assert doc.warnings == ["sheet Feed: only the first 2 rows indexed"]


def test_rtf_text_headings_tables_and_skipped_destinations(tmp_path):
    f = make_rtf(tmp_path / "letter.rtf", "Llama Letter", ["Café au lait with \u2603 snow.", "Second {para}."],
                 table=[["cell a", "cell b"]])
    doc = parse_file(f, f.read_bytes())
    assert doc.format == "rtf"
    assert by_heading(doc) == {"Llama Letter": "Café au lait with ☃ snow.\n\nSecond {para}.\n\ncell a | cell b"}
    assert "secret" not in everything(doc) and "Helvetica" not in everything(doc)


def test_hostile_containers_fail_with_one_line_and_bounded_cost(tmp_path):
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", b"<workbook>" + b" " * (80 * 2**20) + b"</workbook>")
    with pytest.raises(ParseError, match="larger than|zip bomb"):
        parse_file(bomb, bomb.read_bytes())
    laughs = tmp_path / "laughs.odt"
    with zipfile.ZipFile(laughs, "w") as z:
        z.writestr("content.xml", '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                                  '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>')
    with pytest.raises(ParseError, match="entities"):
        parse_file(laughs, laughs.read_bytes())
    deep = tmp_path / "deep.pptx"
    with zipfile.ZipFile(deep, "w") as z:
        z.writestr("ppt/presentation.xml", "<a>" * 5000 + "</a>" * 5000)
    with pytest.raises(ParseError, match="deeper"):
        parse_file(deep, deep.read_bytes())
    for name in ("x.epub", "x.odt", "x.pptx", "x.xlsx"):
        with pytest.raises(ParseError, match="corrupt"):
            parse_file(tmp_path / name, b"PK\x03\x04 not really a zip")
    with pytest.raises(ParseError):
        parse_file(tmp_path / "x.rtf", b"{\\rtf1" + b"{" * 5000)


def test_docx_without_its_extra_is_skipped_naming_the_pip_install(tmp_path, monkeypatch):
    import sys

    f = make_odt(tmp_path / "x.odt", "T", [(1, "H", ["text"])])  # any zip: the import fails first
    docx = tmp_path / "report.docx"
    docx.write_bytes(f.read_bytes())
    monkeypatch.setitem(sys.modules, "docx", None)  # python-docx not installed
    with pytest.raises(SkipFile) as exc:
        parse_file(docx, docx.read_bytes())
    assert exc.value.kind == "needs-extra" and "pip install 'llara-search[docx]'" in str(exc.value)


def test_legacy_office_and_unknown_files_are_skipped_with_a_reason_and_kind(tmp_path):
    for name, kind, words in (("old.doc", "unsupported", "save it as .docx"), ("x.foo", "unsupported",
                                                                            "unsupported format .foo"),
                              ("pic.png", "binary", "binary file type (.png)")):
        with pytest.raises(SkipFile) as exc:
            parse_file(tmp_path / name, b"data")
        assert exc.value.kind == kind and words in str(exc.value)


# ------------------------------------------------------------------------------------------------ through the CLI
def test_a_mixed_folder_is_indexed_through_the_cli_and_includes_stay_inside_the_root(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (tmp_path / "private.adoc").write_text("privatesecret words\n")
    (docs / "manual.adoc").write_text("= Manual\n\n== Intro\n\nllamaword intro.\n\ninclude::../private.adoc[]\n")
    (docs / "article.ms").write_text(MS)
    (docs / "notes.org").write_text(ORG)
    (docs / "paper.tex").write_text(LATEX)
    (docs / "Farm.pm").write_text(POD_MODULE)
    make_epub(docs / "book.epub", "Book", [("One", ["epubword here."])])
    make_odt(docs / "r.odt", "R", [(1, "H", ["odtword here."])])
    make_pptx(docs / "d.pptx", [("T", ["pptxword here."], "")])
    make_xlsx(docs / "s.xlsx", {"S": [["xlsxword"]]})
    make_rtf(docs / "l.rtf", "L", ["rtfword here."])
    (docs / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0 legacy")
    index = tmp_path / "idx"
    r = runner.invoke(app, ["ingest", str(docs), "--index", str(index), "--model", "none", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["files_seen"] == 11 and rep["documents"] == 10 and rep["files_skipped"] == 1
    assert not rep["files_failed"]
    assert any("outside the ingested folders" in w["warning"] for w in rep["warnings"])
    for word in ("llamaword", "Introduction", "grass", "lamport94", "Llama::Farm", "epubword", "odtword",
                 "pptxword", "xlsxword", "rtfword"):
        r = runner.invoke(app, ["query", word, "--index", str(index), "--mode", "bm25", "--json"])
        assert r.exit_code == 0 and word.lower() in r.stdout.lower(), (word, r.output)
    r = runner.invoke(app, ["query", "privatesecret", "--index", str(index), "--mode", "bm25", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["results"] == []


def test_parser_version_was_bumped_for_the_new_readers():
    assert PARSER_VERSION not in ("1", "2", "3")
