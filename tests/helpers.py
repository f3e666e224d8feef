"""Builders for real fixture files (every format, bad inputs) used by the ingest, search and server tests."""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import numpy as np

MD = """# Llama Handbook

Intro paragraph about camelids and their history in the Andes.

## Care

Llamas need shelter, fresh water and hay. Shear them once a year.

```python
# not a heading inside code
feed(llama, hay=2)
```

## Packing

A llama carries up to a quarter of its weight on long treks.
"""

RST = """Configuration
=============

The server reads ``server.conf`` at start-up.

Ports
-----

Set ``port = 8080`` to change the listening port of the server.
"""

HTML = """<html><head><title>Proxy Guide</title><style>p{}</style></head><body>
<nav>skip me</nav><h1>Proxy Guide</h1><p>The proxy balances load across backends.</p>
<h2>Timeouts</h2><p>Timeouts protect the proxy from slow clients.</p><script>var x=1;</script></body></html>"""


def make_pdf(path: Path, pages: list[str], encrypt: str | None = None) -> None:
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), encrypt=encrypt)
    for text in pages:
        y = 800
        for line in text.split("\n"):
            c.drawString(72, y, line)
            y -= 14
        c.showPage()
    c.save()


def make_docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Release Notes", level=1)
    d.add_paragraph("Version two adds hybrid search over documents.")
    d.add_heading("Upgrading", level=2)
    d.add_paragraph("Run the migration before starting the server.")
    d.save(str(path))


def make_notebook(path: Path) -> None:
    nb = {"cells": [{"cell_type": "markdown", "source": ["# Notebook Title\n", "Some intro about gradients."]},
                    {"cell_type": "code", "source": ["import jax\n", "jax.grad(f)(1.0)"]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def make_corpus(root: Path) -> Path:
    """A folder with every supported format, an image, a hidden folder and a nested folder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "handbook.md").write_text(MD)
    (root / "config.rst").write_text(RST)
    (root / "notes.txt").write_text("Plain notes.\n\nThe backup runs nightly at two.\n")
    (root / "README").write_text("Project readme without an extension.\n\nIt explains the layout.\n")
    (root / "guide.html").write_text(HTML)
    make_pdf(root / "manual.pdf", ["Manual page one about installation.", "Page two covers troubleshooting."])
    make_notebook(root / "demo.ipynb")
    make_docx(root / "release.docx")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.md").write_text("# Secret\n\nhidden text")
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub" / "deeper" / "nested.md").write_text("# Nested\n\nA nested page about vectors and indexes.\n")
    (root / "utf16.txt").write_bytes("UTF-16 text about koalas.\n".encode("utf-16"))
    return root


def db_state(index: Path) -> dict:
    """Chunk ids and counts straight from SQLite (not through our code), and the chunk ids the generation's lexical
    index files hold."""
    from llara_search.lexical import LexicalIndex

    con = sqlite3.connect(index / "meta.sqlite")
    try:
        gen = con.execute("SELECT max(id) FROM generations").fetchone()[0]
        rows = con.execute("SELECT id, content_hash FROM chunks WHERE added_gen <= ? AND (removed_gen IS NULL OR "
                           "removed_gen > ?) ORDER BY id", (gen, gen)).fetchall()
        lexical = LexicalIndex(index / "lexical").snapshot(gen).live_ids().tolist() if gen else []
        docs = con.execute("SELECT count(*) FROM documents WHERE added_gen <= ? AND (removed_gen IS NULL OR "
                           "removed_gen > ?)", (gen, gen)).fetchone()[0]
        return {"generation": gen, "chunk_ids": [r[0] for r in rows], "hashes": sorted(r[1] for r in rows),
                "lexical": lexical, "documents": docs}
    finally:
        con.close()


def faiss_ids(index: Path, generation: int) -> np.ndarray:
    import faiss

    idx = faiss.read_index(str(index / "generations" / f"gen-{generation:08d}.faiss"))
    ivf = None
    try:
        ivf = faiss.extract_index_ivf(idx)
    except RuntimeError:
        pass
    if ivf is None:
        return np.sort(faiss.vector_to_array(idx.id_map))
    out = []
    invlists = ivf.invlists
    for lst in range(ivf.nlist):
        n = invlists.list_size(lst)
        if n:
            out.append(faiss.rev_swig_ptr(invlists.get_ids(lst), n).copy())
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


def serve_in_thread(app):
    """A real uvicorn server on a free 127.0.0.1 port, in a thread: (base URL, server); `server.should_exit = True`
    stops it."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", server


def make_wide_font_pdf(path: Path, pages: list[str], widths: int = 300) -> None:
    """A PDF whose simple font carries more /Widths entries than its 256 codes (what groff writes): valid PDF
    readers ignore the extra entries; pypdf 7 refuses the page with LimitReachedError."""
    objects: list[bytes] = []
    n = len(pages)
    font_id = 3 + 2 * n
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    for i, text in enumerate(pages):
        lines = text.split("\n")
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            esc = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({esc}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 "
                       f"{font_id} 0 R >> >> /Contents {4 + 2 * i} 0 R >>".encode())
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    objects.append(f"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding /FirstChar 0 "
                   f"/LastChar {widths - 1} /Widths [{' '.join(['556'] * widths)}] >>".encode())
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{num} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


def by_heading(doc) -> dict[str, str]:
    """A parsed document's text by heading path (sections under one path joined), for asserting on parsers."""
    out: dict[str, str] = {}
    for s in doc.sections:
        key = " > ".join(s.heading)
        out[key] = (out.get(key, "") + "\n\n" + "\n\n".join(b.text for b in s.blocks)).strip()
    return out



@contextmanager
def statements_sent(engine):
    """What `engine`'s database is sent while the context is open: `(statement, params, executemany)`, an
    executemany once per batch the driver is given."""
    from sqlalchemy import event

    sent: list[tuple[str, object, bool]] = []

    def on_execute(conn, cursor, statement, params, context, executemany):
        sent.append((statement, params, executemany))

    event.listen(engine.store.engine, "before_cursor_execute", on_execute)
    try:
        yield sent
    finally:
        event.remove(engine.store.engine, "before_cursor_execute", on_execute)

def sqlite_plans(engine, statements: list[tuple[str, object]]) -> list[str]:
    """SQLite's query plan of each `(statement, params)`, in one line each."""
    conn = sqlite3.connect(engine.paths.root / "meta.sqlite")
    try:
        return [" ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params))
                for statement, params in statements]
    finally:
        conn.close()
