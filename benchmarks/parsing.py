"""Parsing quality on real docs folders, the PDF extractors against each other, and what collapsing near-copies
costs a query.

1. Each folder is ingested into a text-only index (`--model none`: no encoder, the parse report and chunks are
   the same as with a model); the chunks are then read straight from SQLite and checked: control characters,
   lines that are only directive markup (rst, MyST, roff, Texinfo), man page chunks without a section heading.
2. Every PDF of the folders, plus PDFs written here (one whose font carries more than 256 widths, as groff writes;
   one from ReportLab; the groff rendering of a man page when `groff -Tpdf` is installed), is read by pypdfium2 and
   by pypdf in the same run: files read, characters, seconds.
3. BM25 queries (chunk headings of the last folder) with and without the query-time collapse: p50 latency of each
   and how many results were near-copies.

    python -m benchmarks.parsing [FOLDER ...]    # default: ../shared/data/docs-haproxy/doc ../shared/data/docs-jax/docs
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import ROOT, SHARED, machine, record

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# a line that is only markup: rst directives/targets/options, MyST fences and targets, roff requests, Texinfo
DIRECTIVE_LINE = re.compile(
    r"^\s*(\.\.\s+[\w:.+-]+::.*|\.\.\s+_[^:]*:.*|\.\.\s+\|[^|]+\|\s+[\w:-]+::.*|:[\w.-]+:(\s+\S*)?|"
    r"```+\s*\{[\w:.+-]+\}.*|:::+\s*(\{[\w:.+-]+\}.*)?|\([\w.:-]+\)=|\+\+\+|"
    r"[.'](TH|SH|SS|TP|PP|IP|LP|P|B|I|BR|BI|IB|IR|RI|RB|SM|nf|fi|RS|RE|br|sp|EX|EE|Dd|Dt|Os|Sh|Ss|Pp|Bl|El|It|Nm|Nd)"
    r"(\s.*)?|@(node|chapter|section|subsection|example|end|c|cindex|findex|menu|item|itemx|table|setfilename|"
    r"settitle)(\s.*)?)\s*$")


def _chunks(index: Path) -> list[tuple[str, str, str, str]]:
    con = sqlite3.connect(index / "meta.sqlite")
    try:
        return con.execute("SELECT d.path, d.format, c.heading, c.text FROM chunks c JOIN documents d ON "
                           "d.id = c.document_id WHERE c.removed_gen IS NULL AND d.removed_gen IS NULL").fetchall()
    finally:
        con.close()


def folder_quality(folder: Path, work: Path) -> dict:
    index = work / f"idx-{folder.parent.name}-{folder.name}"
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "llara_search", "ingest", str(folder), "--index", str(index),
                          "--model", "none", "--json"], capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t
    if out.returncode not in (0, 3):  # 3: some files failed (listed in the report), the rest is indexed
        raise SystemExit(f"ingest of {folder} failed: {out.stderr}")
    rep = json.loads(out.stdout)
    rows = _chunks(index)
    ctrl = [r for r in rows if CONTROL.search(r[2] or "") or CONTROL.search(r[3])]
    directive = [r for r in rows if any(DIRECTIVE_LINE.match(line) for line in r[3].split("\n"))]
    man = [r for r in rows if r[1] in ("man", "man-formatted")]
    man_unsectioned = [r for r in man if " > " not in (r[2] or "")]
    return {
        "folder": "/".join(folder.parts[-2:]),
        "files_seen": rep["files_seen"], "documents": rep["documents"], "files_skipped": rep["files_skipped"],
        "files_failed": rep["files_failed"], "formats": rep["formats"],
        "warnings": [{"path": str(Path(w["path"]).relative_to(folder)), "warning": w["warning"]} for w in rep["warnings"]],
        "chunks": len(rows), "chunks_with_control_chars": len(ctrl),
        "chunks_with_a_directive_line": len(directive),
        "directive_share": round(len(directive) / max(1, len(rows)), 4),
        "directive_examples": [r[3][:160] for r in directive[:5]],
        "man_chunks": len(man), "man_chunks_without_section_heading": len(man_unsectioned),
        "man_headings": sorted({r[2] for r in man})[:12],
        "ingest_seconds": round(seconds, 2), "index": str(index),
    }


def _pdf_fixtures(work: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import make_pdf, make_wide_font_pdf

    out = [work / "wide-font.pdf", work / "reportlab.pdf"]
    make_wide_font_pdf(out[0], [f"Page {i} of a groff-like manual, with a font of 300 widths." for i in range(5)])
    make_pdf(out[1], [f"ReportLab page {i}: installation and troubleshooting." for i in range(5)])
    groff = shutil.which("groff")
    page = next((p for p in (Path("/usr/share/man/man1/bash.1.gz"), Path("/usr/share/man/man1/ls.1.gz"))
                 if p.exists()), None)
    if groff and page:
        import gzip

        src = work / page.stem
        src.write_bytes(gzip.decompress(page.read_bytes()))
        r = subprocess.run([groff, "-Tpdf", "-man", str(src)], capture_output=True)
        if r.returncode == 0 and r.stdout.startswith(b"%PDF"):
            out.append(work / f"{src.name}.groff.pdf")
            out[-1].write_bytes(r.stdout)
    return out


def pdf_extractors(pdfs: list[Path]) -> dict:
    from llara_search.ingest.formats.pdf import _pdfium, _pypdf

    result = {}
    for name, extract in (("pypdfium2", _pdfium), ("pypdf", _pypdf)):
        ok, chars, failed = 0, 0, []
        t = time.perf_counter()
        for p in pdfs:
            try:
                got = extract(p.read_bytes())
                ok += 1
                chars += sum(len(x.strip()) for x in got.pages)
            except Exception as exc:  # noqa: BLE001 - the point is to count what each library refuses
                failed.append(f"{p.name}: {type(exc).__name__}: {str(exc)[:80]}")
        result[name] = {"files_read": ok, "files_failed": failed, "chars": chars,
                        "seconds": round(time.perf_counter() - t, 3)}
    result["files"] = [p.name for p in pdfs]
    result["speedup_pdfium_vs_pypdf"] = round(result["pypdf"]["seconds"] / max(1e-9, result["pypdfium2"]["seconds"]),
                                              1)
    return result


def collapse_cost(index: Path, n_queries: int = 200) -> dict:
    from llara_search.engine import Engine

    engine = Engine.open(index)
    heads = [h for (_, _, h, _) in _chunks(index) if h]
    queries = list(dict.fromkeys(h.split(" > ")[-1] for h in heads))[:n_queries]
    engine.search_many(queries[:10], k=10, mode="bm25")  # warm
    lat = {True: [], False: []}
    collapsed = 0
    for q in queries:
        for flag in (False, True):
            t = time.perf_counter()
            hits = engine.search(q, k=10, mode="bm25", collapse=flag)
            lat[flag].append((time.perf_counter() - t) * 1000)
            if flag:
                collapsed += sum(len(h.also_in) for h in hits)
    p50 = {flag: statistics.median(v) for flag, v in lat.items()}
    return {"queries": len(queries), "k": 10, "p50_ms_collapse": round(p50[True], 2),
            "p50_ms_no_collapse": round(p50[False], 2), "ratio": round(p50[True] / max(1e-9, p50[False]), 2),
            "results_naming_copies": collapsed}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="*", type=Path)
    args = ap.parse_args(argv)
    folders = args.folders or [SHARED / "data" / "docs-haproxy" / "doc", SHARED / "data" / "docs-jax" / "docs"]
    folders = [f.resolve() for f in folders if f.is_dir()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        quality = [folder_quality(f, work) for f in folders]
        pdfs = sorted(p for f in folders for p in f.rglob("*.pdf")) + _pdf_fixtures(work)
        payload = {
            "machine": machine(),
            "command": "python -m benchmarks.parsing" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None
                                                                                  else argv)),
            "folders": quality,
            "pdf": pdf_extractors(pdfs),
            "collapse": collapse_cost(Path(quality[-1]["index"])) if quality else None,
        }
    for q in payload["folders"]:
        q.pop("index")
    record("parsing", payload)
    print(json.dumps(payload, indent=2))
    return payload


if __name__ == "__main__":
    main()
