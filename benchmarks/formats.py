"""Every format of issue #30 on real folders and on the fixtures the tests write: per format, files read, chunks,
chunks with the format's raw markup left, chunks with a heading; and our AsciiDoc and LaTeX readers against the
maintained libraries we did not choose (asciidoc-py renders to HTML, read back with our HTML reader; pylatexenc's
LatexNodes2Text), on the same files in the same run: files/s, failures, blocks with markup left.

    python -m benchmarks.formats [FOLDER ...]     # default: the folders under benchmarks/.work/real/

The real folders of RESULTS.md come from Debian packages (documentation nobody here wrote), unpacked under
benchmarks/.work/real/ (git-ignored) by `python -m benchmarks.formats --prepare` (apt-get download git-doc groff):
git's manual as AsciiDoc sources (git-doc ships them as .txt; a copy renamed .adoc with its include:: lines
renamed alike), groff's -ms/-me/-mm/-mom documents, TeX Live's LaTeX examples (texlive-latex-base-doc), and the
POD of the system's Perl library when present.
The comparison libraries: `pip install 'llara-search[bench]'` (asciidoc, pylatexenc).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from .common import ROOT, WORK, machine, record

REAL = WORK / "real"
# raw markup per format family: what a reader must not leave in a chunk
RAW = {
    "asciidoc": re.compile(r"^(={1,6} \S|:[\w-]+:(\s|$)|\[\[|\[(source|NOTE|TIP|verse|listing|cols)|\|===|include::|"
                           r"ifn?def::|endif::|image::|//|\+\+\+\+$)|linkgit:\S+\[|<<[\w#:./-]+(,[^>]*)?>>|xref:|"
                           r"link:\S*\[", re.M),
    "roff": re.compile(r"^[.'][A-Za-z]{1,3}\b|\\f[BIRP(\[]|\\\*[(\[]|\\\(|\\s[-+\d]|\\[\"#]", re.M),
    "org": re.compile(r"^\s*#\+\w+|^\s*:(PROPERTIES|END|LOGBOOK):|\[\[[^\]]*\](\[[^\]]*\])?\]|^\*+ (TODO|DONE)\b",
                      re.M),
    "latex": re.compile(r"\\(section|subsection|begin|end|emph|textbf|textit|cite|ref|label|usepackage|item|"
                        r"footnote|href|url)\b"),
    "pod": re.compile(r"^=(head\d|item|over|back|pod|cut|begin|end|for)\b|\b[BCILFESXZ]<\S", re.M),
    "container": re.compile(r"</?[a-z]+:[a-zA-Z]+[^>]*>|\\[a-z]{2,}-?\d* ?[\\{]|\{\\\*"),
}
FAMILY = {"asciidoc": "asciidoc", "org": "org", "latex": "latex", "pod": "pod", "epub": "container",
          "odt": "container", "odp": "container", "ods": "container", "pptx": "container", "xlsx": "container",
          "rtf": "container", "docx": "container"}


def _family(fmt: str) -> str | None:
    return "roff" if fmt.startswith("roff-") else FAMILY.get(fmt)


def _leaked(line: str, source: set[str]) -> bool:
    """A roff line in a chunk that stands in the source as it is, and not as an escaped example of itself."""
    if line not in source:
        return False
    shown = {"\\&" + line, line.replace("\\", "\\e"), "\\&" + line.replace("\\", "\\e"),
             line.replace("\\", "\\\\"), "\\&" + line.replace("\\", "\\\\")}
    return not any(x in source for x in shown) and not any(ln.endswith("\\&" + line) for ln in source)


# ------------------------------------------------------------------------------------------------ data
def prepare() -> None:
    """Debian's git-doc (git's AsciiDoc sources) and groff (its -ms/-me/-mm/-mom documents) under .work/real/."""
    import gzip

    debs = WORK / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "git-doc", "groff", "texlive-latex-base-doc"], cwd=debs, check=True)
    extract = WORK / "extract"
    for deb in debs.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(extract)], check=True)
    src = extract / "usr/share/doc/git-doc"
    for name, rename in (("git-txt", False), ("git-adoc", True)):
        out = REAL / name
        shutil.rmtree(out, ignore_errors=True)
        for f in src.rglob("*.txt"):
            rel = f.relative_to(src)
            target = out / (rel.with_suffix(".adoc") if rename else rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            text = f.read_text(errors="replace")
            if rename:
                text = re.sub(r"^(include::[^\[]*)\.txt\[", r"\1.adoc[", text, flags=re.M)
            target.write_text(text)
    roff = REAL / "roff"
    roff.mkdir(parents=True, exist_ok=True)
    groff = extract / "usr/share/doc/groff-base"
    for f in list(groff.rglob("*.ms.gz")) + list(groff.rglob("*.me.gz")):
        (roff / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    for f in list(groff.rglob("*.mom")) + list(groff.rglob("*.mm")) + list(groff.rglob("*.me")):
        shutil.copy(f, roff / f.name)
    latex = REAL / "latex"
    latex.mkdir(parents=True, exist_ok=True)
    for f in (extract / "usr/share/doc/texlive-doc").rglob("*.tex"):
        shutil.copy(f, latex / f.name)
    print(f"prepared {REAL}")


def fixtures(work: Path) -> Path:
    """One file of every format the tests write (tests/format_files.py and the sources of tests/test_formats.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import format_files as ff
    from test_formats import LATEX, MANUAL, MS, ORG, POD_MODULE

    out = work / "fixtures"
    (out / "parts").mkdir(parents=True, exist_ok=True)
    (out / "parts" / "shearing.adoc").write_text("= Shearing\n\nShear in spring with {product}.\n")
    (out / "manual.adoc").write_text(MANUAL)
    (out / "article.ms").write_text(MS)
    (out / "notes.org").write_text(ORG)
    (out / "paper.tex").write_text(LATEX)
    (out / "Farm.pm").write_text(POD_MODULE)
    ff.make_epub(out / "book.epub", "Book", [("One", ["Chapter one text."]), ("Two", ["Chapter two text."])])
    ff.make_odt(out / "report.odt", "Report", [(1, "Intro", ["Hay is food."])], [["a", "b"]])
    ff.make_odp(out / "talk.odp", [("Welcome", ["first point"], "notes")])
    ff.make_ods(out / "feed.ods", {"Feed": [["llama", "3"]]})
    ff.make_pptx(out / "deck.pptx", [("Welcome", ["first point"], "say hello")])
    ff.make_xlsx(out / "feed.xlsx", {"Feed": [["llama", 3]]})
    ff.make_rtf(out / "letter.rtf", "Letter", ["Café au lait."], [["a", "b"]])
    return out


# ------------------------------------------------------------------------------------------------ quality
def folder_formats(folder: Path, work: Path) -> dict:
    index = work / f"idx-{folder.name}"
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "llara_search", "ingest", str(folder), "--index", str(index),
                          "--model", "none", "--json"], capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"ingest of {folder} failed: {out.stderr[-2000:]}")
    rep = json.loads(out.stdout)
    con = sqlite3.connect(index / "meta.sqlite")
    try:
        rows = con.execute("SELECT d.path, d.format, c.heading, c.text FROM chunks c JOIN documents d ON "
                           "d.id = c.document_id WHERE c.removed_gen IS NULL AND d.removed_gen IS NULL").fetchall()
    finally:
        con.close()
    per: dict[str, dict] = defaultdict(lambda: {"files": set(), "chunks": 0, "raw": 0, "leaked": 0, "headed": 0,
                                                 "examples": []})
    sources: dict[str, set[str]] = {}
    for path, fmt, heading, text in rows:
        p = per[fmt]
        p["files"].add(path)
        p["chunks"] += 1
        p["headed"] += bool(heading)
        fam = _family(fmt)
        if fam and RAW[fam].search(text):
            p["raw"] += 1
            if fam == "roff":  # a manual of roff shows requests as text (`\\&.pp`, `\\efB`): a leak is a line of
                # markup copied unchanged from a source line where it was markup, not an escaped example
                if path not in sources:
                    sources[path] = {ln.strip() for ln in Path(path).read_text(errors="replace").split("\n")}
                if any(_leaked(ln.strip(), sources[path]) for ln in text.split("\n") if RAW["roff"].search(ln)):
                    p["leaked"] += 1
                    if len(p["examples"]) < 3:
                        p["examples"].append(f"{Path(path).name}: {text[:120]}")
            elif len(p["examples"]) < 3:
                p["examples"].append(f"{Path(path).name}: {text[:120]}")
    by_ext: dict[str, int] = defaultdict(int)
    for f in folder.rglob("*"):
        if f.is_file():
            by_ext[f.suffix.lower() or "(none)"] += 1
    formats = {fmt: {"files": len(p["files"]), "chunks": p["chunks"], "chunks_with_raw_markup": p["raw"],
                     "raw_share": round(p["raw"] / max(1, p["chunks"]), 4),
                     **({"chunks_with_markup_copied_from_source": p["leaked"]} if fmt.startswith("roff") else {}),
                     "headed_share": round(p["headed"] / max(1, p["chunks"]), 4), "raw_examples": p["examples"]}
               for fmt, p in sorted(per.items())}
    return {"folder": folder.name, "files_seen": rep["files_seen"], "documents": rep["documents"],
            "files_skipped": rep["files_skipped"], "files_failed": len(rep["files_failed"]),
            "failed_examples": [f"{Path(x['path']).name}: {x['error']}"[:160] for x in rep["files_failed"][:3]],
            "files_by_extension": dict(sorted(by_ext.items(), key=lambda kv: -kv[1])[:8]),
            "ingest_seconds": round(seconds, 2), "files_per_s": round(rep["files_seen"] / max(1e-9, seconds), 1),
            "formats": formats, "warnings": len(rep.get("warnings", []))}


# ------------------------------------------------------------------------------------------------ libraries
def _blocks_raw(texts: list[str], pattern: re.Pattern) -> tuple[int, int]:
    blocks = [b for t in texts for b in re.split(r"\n\s*\n", t) if b.strip()]
    return len(blocks), sum(1 for b in blocks if pattern.search(b))


def asciidoc_vs_library(files: list[Path]) -> dict:
    from llara_search.ingest.formats.html import parse_html
    from llara_search.ingest.parsers import ParseError, SkipFile, parse_file

    ours_texts, failed = [], 0
    t = time.perf_counter()
    for f in files:
        try:
            doc = parse_file(f, f.read_bytes(), [f.parent])
            ours_texts.append("\n\n".join(b.text for s in doc.sections for b in s.blocks))
        except (ParseError, SkipFile):
            failed += 1
    ours_s = time.perf_counter() - t
    result = {"files": len(files), "ours": {"seconds": round(ours_s, 3), "failed": failed}}
    n, raw = _blocks_raw(ours_texts, RAW["asciidoc"])
    result["ours"].update(blocks=n, blocks_with_raw_markup=raw, raw_share=round(raw / max(1, n), 4),
                          files_per_s=round(len(files) / max(1e-9, ours_s), 1))
    try:
        from asciidoc.api import AsciiDocAPI
    except ImportError:
        result["asciidoc_py"] = "not installed (pip install asciidoc)"
        return result
    lib_texts, failed = [], 0
    t = time.perf_counter()
    for f in files:
        api = AsciiDocAPI()
        api.options("--no-header-footer")
        out = io.StringIO()
        try:
            api.execute(str(f), out, backend="html5")
            doc = parse_html(Path(f.name + ".html"), out.getvalue().encode())
            lib_texts.append("\n\n".join(b.text for s in doc.sections for b in s.blocks))
        except BaseException:  # noqa: BLE001 - asciidoc-py exits (SystemExit) on errors; count them
            failed += 1
    lib_s = time.perf_counter() - t
    n, raw = _blocks_raw(lib_texts, RAW["asciidoc"])
    result["asciidoc_py"] = {"seconds": round(lib_s, 3), "failed": failed, "blocks": n, "blocks_with_raw_markup": raw,
                             "raw_share": round(raw / max(1, n), 4),
                             "files_per_s": round(len(files) / max(1e-9, lib_s), 1)}
    result["speedup_ours_vs_asciidoc_py"] = round(lib_s / max(1e-9, ours_s), 1)
    return result


def latex_vs_library(files: list[Path]) -> dict:
    from llara_search.ingest.parsers import ParseError, SkipFile, parse_file

    ours_texts, failed, empty = [], 0, 0
    t = time.perf_counter()
    for f in files:
        try:
            doc = parse_file(f, f.read_bytes())
            ours_texts.append("\n\n".join(b.text for s in doc.sections for b in s.blocks))
        except SkipFile:
            empty += 1  # only \\input/\\DocInput wrappers: nothing typeset here
        except ParseError:
            failed += 1
    ours_s = time.perf_counter() - t
    n, raw = _blocks_raw(ours_texts, RAW["latex"])
    result = {"files": len(files), "ours": {"seconds": round(ours_s, 4), "failed": failed,
                                            "skipped_without_text": empty, "blocks": n,
                                            "blocks_with_raw_markup": raw}}
    try:
        from pylatexenc.latex2text import LatexNodes2Text
    except ImportError:
        result["pylatexenc"] = "not installed (pip install pylatexenc)"
        return result
    conv = LatexNodes2Text(math_mode="verbatim")
    lib_texts, errors = [], []
    t = time.perf_counter()
    for f in files:
        try:
            lib_texts.append(conv.latex_to_text(f.read_text(errors="replace")))
        except Exception as exc:  # noqa: BLE001 - counting what the library cannot read
            errors.append(f"{f.name}: {type(exc).__name__}")
    lib_s = time.perf_counter() - t
    n, raw = _blocks_raw(lib_texts, RAW["latex"])
    placeholders = sum(t.count("<cit.>") + t.count("<ref>") for t in lib_texts)
    result["pylatexenc"] = {"seconds": round(lib_s, 4), "failed": len(errors), "errors": errors[:5], "blocks": n,
                            "blocks_with_raw_markup": raw, "cit_ref_placeholders": placeholders}
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="*", type=Path)
    ap.add_argument("--prepare", action="store_true", help="download and unpack the real folders first")
    ap.add_argument("--library-sample", type=int, default=120,
                    help="AsciiDoc files rendered by asciidoc-py (about 0.3 s each on 2 cores)")
    args = ap.parse_args(argv)
    if args.prepare:
        prepare()
    folders = args.folders or [p for p in (REAL / "git-adoc", REAL / "git-txt", REAL / "roff", REAL / "latex",
                                           Path("/usr/share/perl/5.36.0")) if p.is_dir()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fx = fixtures(work)
        quality = [folder_formats(f.resolve(), work) for f in folders] + [folder_formats(fx, work)]
        adoc = sorted(p for f in folders for p in f.rglob("*.adoc"))
        step = max(1, len(adoc) // max(1, args.library_sample))
        sample = (adoc[::step][:args.library_sample] if adoc else []) + [fx / "manual.adoc"]
        tex = sorted(p for f in folders for p in f.rglob("*.tex")) + [fx / "paper.tex"]
        payload = {
            "machine": machine(),
            "command": "python -m benchmarks.formats" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None
                                                                                  else argv)),
            "folders": quality,
            "asciidoc_library": asciidoc_vs_library(sample),
            "latex_library": latex_vs_library(tex),
        }
    record("formats", payload)
    print(json.dumps(payload, indent=2))
    return payload


if __name__ == "__main__":
    main()
