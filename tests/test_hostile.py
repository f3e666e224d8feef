"""A folder built to hurt, ingested through the CLI: names that are not UTF-8 or hold terminal escapes and newlines,
symlinks out of the folder and in loops, stray bytes, legacy code pages, UTF-16, empty, truncated and huge files.
Every valid file is searchable by its own words, nothing outside the folder is read, the report adds up, and no
control byte reaches the terminal. Hypothesis for the decoding and the stored names."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from llara_search.cli import app
from llara_search.ingest.decode import decode_notes, decode_text
from llara_search.ingest.walk import walk
from llara_search.pathnames import from_stored, to_stored
from llara_search.store import Store
from llara_search.terminal import clean

runner = CliRunner()
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # all but "\n"
BAD_NAME = b"caf\xe9-latin1-name.txt"  # a name that is not UTF-8
ESC_NAME = "esc\x1b[2J\x1b]0;pwned\x07[bold]x[red].md"
NL_NAME = "new\nline.txt"

# file (relative name) -> a word only that file holds
WORDS = {
    "good.md": "aardvark",
    os.fsdecode(BAD_NAME): "bandicoot",
    ESC_NAME: "capybara",
    NL_NAME: "dugong",
    "stray.txt": "crème",  # UTF-8 with a stray byte
    "legacy.txt": "écureuil",  # cp1252
    "wide.txt": "wombat",  # UTF-16 with BOM
    "oneline.txt": "quokka",  # one 300 kB line
    "sub/deep.md": "narwhal",
    "link-inside.md": "aardvark",  # a symlink to good.md: inside the folder, followed
}


def build(tmp_path: Path, *, truncated: bool = True) -> tuple[Path, Path]:
    root, outside = tmp_path / "hostile", tmp_path / "outside"
    root.mkdir()
    (root / "sub").mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("root:x:0:0:root:/root:/bin/bash passwdsecret nologin\n")
    (root / "good.md").write_text("# Good\n\nThe aardvark sleeps in its burrow.\n")
    with open(os.path.join(os.fsencode(root), BAD_NAME), "wb") as f:
        f.write(b"The bandicoot digs tunnels at night.\n")
    (root / ESC_NAME).write_text("# Red \x1b[31m title \x1b[0m\n\nThe capybara swims in the river.\n")
    (root / NL_NAME).write_text("The dugong grazes on seagrass.\n")
    (root / "stray.txt").write_bytes("Le café brûlé et la crème fraîche.".encode() + b" \xff " + "Déjà vu, élan.".encode())
    (root / "legacy.txt").write_bytes("La forêt où vit l'écureuil naïf, près du château.\n".encode("cp1252"))
    (root / "wide.txt").write_bytes("The wombat burrows under the eucalyptus.\n".encode("utf-16"))
    (root / "oneline.txt").write_text(" ".join(f"w{i} quokka" for i in range(30_000)))
    (root / "too-big.txt").write_text("x " * 400_000)  # over --max-file-mb 0.5: skipped
    (root / "sub" / "deep.md").write_text("# Deep\n\nThe narwhal lives in the Arctic.\n")
    (root / "empty.md").write_bytes(b"")
    (root / "nul.md").write_bytes(b"\x00\x01binary" * 100)
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    (root / ".hidden.md").write_text("secret hidden words\n")
    os.mkfifo(root / "pipe.md")
    os.symlink(root / "good.md", root / "link-inside.md")
    os.symlink(outside / "secret.txt", root / "passwd.txt")  # out of the folder: not read
    os.symlink(outside, root / "outdir")
    os.symlink(root, root / "sub" / "loop")  # back to the root
    os.symlink(root / "nowhere.md", root / "broken.md")
    if truncated:
        (root / "truncated.txt.gz").write_bytes(gzip.compress(b"The truncated tarsier text. " * 200)[:40])
    if os.geteuid() != 0:  # root reads a mode-000 file anyway: there, the truncated file is the failure tested
        (root / "unreadable.md").write_text("locked")
        os.chmod(root / "unreadable.md", 0)
    return root, outside


def cli(index: Path, *args: str | Path):
    r = runner.invoke(app, [*map(str, args), "--index", str(index)])
    return r.exit_code, r.stdout, r.stderr


def test_hostile_folder_through_the_cli(tmp_path):
    root, outside = build(tmp_path)
    index = tmp_path / "idx"
    code, out, err = cli(index, "ingest", root, "--model", "none", "--max-file-mb", "0.5", "--json")
    assert code == 3, err  # a file failed; everything else committed
    r = json.loads(out)
    assert r["files_seen"] == r["files_indexed"] + r["files_unchanged"] + r["files_skipped"] + len(r["files_failed"])
    assert r["files_skipped"] == len(r["skipped"])
    kinds = {}
    for s in r["skipped"]:
        kinds.setdefault(s["kind"], []).append(Path(s["path"]).name)
    assert sorted(kinds["symlink-outside"]) == ["outdir", "passwd.txt"]
    assert kinds["symlink-loop"] == ["loop"] and kinds["broken-symlink"] == ["broken.md"]
    assert kinds["too-large"] == ["too-big.txt"] and kinds["empty"] == ["empty.md"]
    assert sorted(kinds["binary"]) == ["image.png", "nul.md"]  # by its name, and by its bytes
    assert kinds["hidden"] == [".hidden.md"] and kinds["special-file"] == ["pipe.md"]
    failed = {Path(f["path"]).name: f for f in r["files_failed"]}
    assert failed["truncated.txt.gz"]["error"].startswith("corrupt gz")
    assert set(failed) == {"truncated.txt.gz"} | ({"unreadable.md"} if os.geteuid() != 0 else set())
    assert r["files_indexed"] == len(WORDS)
    assert any("replaced by U+FFFD" in w["warning"] and w["path"].endswith("stray.txt") for w in r["warnings"])

    # every valid file is found by its own word (the default mode of a text-only index is BM25)
    for name, word in WORDS.items():
        code, out, err = cli(index, "query", word, "-k", "20", "--json")
        assert code == 0, err
        found = [p for h in json.loads(out)["results"] for p in [h["path"], *(h.get("also_in") or [])]]
        assert to_stored(root / name) in found, (name, found)
    for word in ("passwdsecret", "nologin", "hidden", "tarsier"):
        assert json.loads(cli(index, "query", word, "--json")[1])["results"] == []
    store = Store(f"sqlite:///{index / 'meta.sqlite'}", create=False)
    try:
        from sqlalchemy import select

        from llara_search.store import Document

        with store.sessions() as s:
            paths = list(s.scalars(select(Document.path)))
        assert paths and all(p.startswith(str(root) + "/") for p in paths)
        assert to_stored(os.path.join(os.fsdecode(os.fsencode(root)), os.fsdecode(BAD_NAME))) in paths
        notes = store.file_notes()
    finally:
        store.close()
    assert {n["kind"] for n in notes if n["state"] == "skipped"} >= {"symlink-outside", "too-large", "binary"}
    assert [n["kind"] for n in notes if n["state"] == "failed"][:1] == ["corrupt"]

    # the terminal sees no control byte, and one result is one line pair whatever the name holds
    for args in (("ingest", root, "--max-file-mb", "0.5"), ("query", "capybara dugong bandicoot", "-k", "5"),
                 ("query", "capybara"), ("status", "--files"), ("doctor",)):
        code, out, err = cli(index, *args)
        assert not RAW_CONTROL.search(out + err), (args, out + err)
    out = cli(index, "query", "dugong")[1]
    first = out.splitlines()[0]
    assert "new\\nline.txt" in first and "dugong" in out.splitlines()[1]
    out = cli(index, "query", "capybara")[1]
    assert "esc\\e[2J\\e]0;pwned\\x07[bold]x[red].md" in out.splitlines()[0]  # markup shown, not applied
    human = cli(index, "ingest", root, "--max-file-mb", "0.5")[1]
    assert "symlink outside the folder: 2 files" in human and "failed: " in human
    assert "caf\\xe9-latin1-name.txt" not in human  # unchanged files are not listed...

    listed = cli(index, "status", "--files")[1]
    assert "skipped [symlink-outside]" in listed and "passwd.txt: symlink outside the folder" in listed
    assert listed.index("failed [corrupt]") < listed.index("skipped [")  # failures first
    status = json.loads(cli(index, "status", "--json")[1])
    assert status["files_skipped_by_kind"]["symlink-outside"] == 2 and status["files_failed"] >= 1

    # --where and delete find the file whose name is not UTF-8, by its real bytes or its escaped spelling
    hits = json.loads(cli(index, "query", "bandicoot", "--where", "*caf*", "--json")[1])["results"]
    assert [Path(h["path"]).name for h in hits] == ["caf\\xe9-latin1-name.txt"]
    code, out, err = cli(index, "delete", os.path.join(os.fsdecode(os.fsencode(root)), os.fsdecode(BAD_NAME)),
                         "--json")
    assert code == 0 and json.loads(out)["files_removed"] == 1
    assert json.loads(cli(index, "query", "bandicoot", "--json")[1])["results"] == []
    # a re-ingest finds it again, and the one after sees it unchanged (not removed and added)
    (root / "truncated.txt.gz").unlink()
    if os.geteuid() != 0:
        (root / "unreadable.md").unlink()
    code, out, err = cli(index, "ingest", root, "--max-file-mb", "0.5", "--json")
    assert code == 0, err  # every file indexed or skipped by a rule
    r = json.loads(out)
    assert r["files_new"] == 1 and r["files_failed"] == []
    code, out, err = cli(index, "ingest", root, "--max-file-mb", "0.5", "--json")
    r = json.loads(out)
    assert code == 0 and r["files_unchanged"] == len(WORDS) and r["files_indexed"] == r["files_removed"] == 0
    notes = json.loads(cli(index, "status", "--files", "--json")[1])["files"]
    assert not [n for n in notes if n["state"] == "failed"]  # the notes of the folder were replaced


def test_follow_symlinks_reads_what_leaves_the_folder(tmp_path):
    root, outside = build(tmp_path, truncated=False)
    index = tmp_path / "idx"
    code, out, err = cli(index, "ingest", root, "--model", "none", "--follow-symlinks", "--max-file-mb", "0.5",
                         "--json")
    assert code in (0, 3), err
    r = json.loads(out)
    assert not [s for s in r["skipped"] if s["kind"] == "symlink-outside"]
    hits = json.loads(cli(index, "query", "passwdsecret", "--json")[1])["results"]
    found = [p for h in hits for p in [h["path"], *(h.get("also_in") or [])]]
    assert to_stored(root / "passwd.txt") in found and to_stored(root / "outdir" / "secret.txt") in found


def test_walk_keeps_to_the_folder_and_walks_linked_folders_once(tmp_path):
    root, outside = build(tmp_path, truncated=False)
    (root / "sub" / "again").symlink_to(root / "sub")  # a second way into sub/
    w = walk([root])
    names = [str(p.relative_to(root)) for p in w.files]
    assert "sub/deep.md" in names and not any("again" in n or "outdir" in n or "loop" in n for n in names)
    assert all(os.path.realpath(p).startswith(str(root)) for p in w.files)
    assert w.seen == len(w.files) + len(w.skipped) + len(w.failures)


def test_a_most_skipped_folder_says_so_and_what_would_read_it(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(5):
        (docs / f"data{i}.foo").write_text("x")
    (docs / "readme.md").write_text("# Read me\n\nThe only page.\n")
    code, out, _ = cli(tmp_path / "idx", "ingest", docs, "--model", "none")
    assert code == 0
    assert "unsupported format .foo: 5 files" in out
    assert "most files were skipped (5 of 6)" in out and "llara-search reads md" in out


# ------------------------------------------------------------------------------------------------ properties
_words = st.lists(st.text(st.characters(categories=["Ll", "Lu", "Lo"]), min_size=1, max_size=8), min_size=1,
                  max_size=30)


@settings(max_examples=200, deadline=None)
@given(words=_words, data=st.data())
def test_utf8_with_a_few_bad_bytes_keeps_every_other_word(words, data):
    """Corruptions inside some words (never more than the text's valid non-ASCII characters: "a few bad bytes"):
    every word without one decodes exactly as written."""
    non_ascii = sum(1 for w in words for c in w if ord(c) > 0x7F)
    budget = non_ascii if non_ascii else len(words)
    n = data.draw(st.integers(0, min(budget, len(words), 8)))
    hit = set(data.draw(st.lists(st.integers(0, len(words) - 1), min_size=n, max_size=n, unique=True)))
    parts = []
    for i, w in enumerate(words):
        b = w.encode()
        if i in hit:  # one byte that cannot start or continue a character here, at a character boundary
            cut = data.draw(st.integers(0, len(w)))
            bad = data.draw(st.sampled_from([0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xFF, 0xFE]))
            b = w[:cut].encode() + bytes([bad]) + w[cut:].encode()
        parts.append(b)
    with decode_notes() as notes:
        text = decode_text(b" ".join(parts))
    tokens = set(text.split(" "))
    for i, w in enumerate(words):
        if i not in hit:
            assert w in tokens, (w, text)
    assert bool(hit) == bool(notes) or not non_ascii  # a repair is said; a legacy guess may be confident


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\x00" not in b))
def test_stored_names_round_trip_and_are_printable(name):
    fs = os.fsdecode(b"/tmp/" + name)
    stored = to_stored(fs)
    stored.encode("utf-8")  # a database text column takes it
    assert from_stored(stored) == fs and os.fsencode(from_stored(stored)) == b"/tmp/" + name
    assert not RAW_CONTROL.search(clean(stored)) and "\n" not in clean(stored)


@pytest.mark.parametrize("raw,expected", [
    ("Le café est très naïve, à côté de la forêt.".encode("cp1252"), "café"),
    ("Привет мир, как дела сегодня".encode("cp1251"), "Привет"),
    ("Привет мир, как дела сегодня".encode("koi8_r"), "Привет"),
    ("Καλημέρα κόσμε, τι κάνεις".encode("cp1253"), "Καλημέρα"),
    ("Größe und Übermaß sind schön".encode("latin-1"), "Übermaß"),
])
def test_legacy_code_pages_decode_right(raw, expected):
    assert expected in decode_text(raw)


def test_forecast_counts_text_not_embedded_images(tmp_path):
    """A notebook page carrying megabytes of base64 images yields a few chunks: the forecast must not expect
    thousands from it (nor, once read, think every other page sparse)."""
    import base64

    from llara_search.ingest.forecast import ChunkForecast, text_bytes

    page = "# Plots\n\nSome words about the plot.\n\n" * 20
    image = "![png](data:image/png;base64," + base64.b64encode(os.urandom(1_500_000)).decode() + ")\n"
    heavy = (page + image).encode()
    (tmp_path / "heavy.md").write_bytes(heavy)
    fc = ChunkForecast()
    fc.observe("a.md", 8_000, 10)  # a plain page: 10 chunks from 8 kB
    assert fc.remaining([(str(tmp_path / "heavy.md"), len(heavy))]) < 10
    fc.observe("heavy.md", text_bytes(heavy), 1)
    assert fc.remaining([("b.md", 8_000)]) >= 8  # the next plain page still looks like ~10 chunks


def test_hostile_names_in_postgresql(tmp_path):
    """PostgreSQL's text columns refuse what SQLite's took silently (lone surrogates): the same folder, the same
    escaped names, found and deleted by their real bytes."""
    from llara_search.testing import scratch_pg_database

    base = os.environ.get("LLARA_SEARCH_TEST_PG")
    if not base:
        pytest.skip("set LLARA_SEARCH_TEST_PG=postgresql+psycopg://USER@HOST:PORT/DB to run against PostgreSQL")
    root, _ = build(tmp_path)
    with scratch_pg_database(base, "llara_hostile") as url:
        def pg(*args):
            r = runner.invoke(app, [*map(str, args), "--index", str(tmp_path / "idx"), "--db-url", url])
            return r.exit_code, r.stdout, r.stderr

        code, out, err = pg("ingest", root, "--model", "none", "--max-file-mb", "0.5", "--json")
        assert code == 3, err
        assert json.loads(out)["files_indexed"] == len(WORDS)
        for name in (os.fsdecode(BAD_NAME), ESC_NAME, NL_NAME):
            hits = json.loads(pg("query", WORDS[name], "--json")[1])["results"]
            assert [h["path"] for h in hits] == [to_stored(root / name)]
        real = os.path.join(os.fsdecode(os.fsencode(root)), os.fsdecode(BAD_NAME))
        assert json.loads(pg("delete", real, "--json")[1])["files_removed"] == 1
        assert json.loads(pg("status", "--files", "--json")[1])["files_skipped_by_kind"]["symlink-outside"] == 2


def test_files_that_need_an_extra_are_grouped_with_the_command_that_reads_them():
    from llara_search.ingest.notes import group_skipped, skipped_hint
    from llara_search.ingest.pipeline import IngestReport

    need = "an .epub file needs the epub extra: pip install 'llara-search[epub]'"
    r = IngestReport(files_seen=4, files_new=1, files_skipped=3, skipped=[
        {"path": f"/d/b{i}.epub", "reason": need, "kind": "needs-extra"} for i in range(3)])
    assert group_skipped(r.skipped) == [("needs an optional extra", 3)]
    assert "pip install 'llara-search[epub]'" in skipped_hint(r) and "3 of 4" in skipped_hint(r)


def test_the_watcher_keeps_to_the_folder_too(tmp_path):
    """A symlink out of a watched folder, created while it is watched, is not read (a single file or in a folder)."""
    from llara_search.ingest.pipeline import IngestOptions
    from llara_search.watch.filters import PathFilter
    from llara_search.watch.sync import expand

    root, outside = build(tmp_path, truncated=False)
    (root / "new").mkdir()
    os.symlink(outside / "secret.txt", root / "new" / "leak.txt")
    (root / "new" / "fine.md").write_text("# Fine\n\nInside.\n")
    filt = PathFilter([root])
    files, _ = expand([str(root / "passwd.txt"), str(root / "new"), str(root / "good.md")], filt, IngestOptions())
    assert sorted(p.name for p in files) == ["fine.md", "good.md"]
    files, _ = expand([str(root / "passwd.txt")], filt, IngestOptions(follow_symlinks=True))
    assert [p.name for p in files] == ["passwd.txt"]
