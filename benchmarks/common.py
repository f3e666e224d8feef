"""Shared helpers: data from ../shared when present, synthetic otherwise; machine description; result records."""

from __future__ import annotations

import json
import os
import platform
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _shared_dir() -> Path:
    """../shared beside the checkout ($LLARA_SEARCH_SHARED first; a worktree one level deeper looks one up)."""
    env = os.environ.get("LLARA_SEARCH_SHARED")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared", ROOT.parent.parent / "shared"]:
        if cand.is_dir():
            return cand
    return ROOT.parent / "shared"


SHARED = _shared_dir()
WORK = ROOT / "benchmarks" / ".work"
RESULTS_JSON = ROOT / "benchmarks" / "results.json"  # committed: RESULTS.md is rewritten from it


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {mem:.0f} GiB RAM, {gpu}, torch {torch.__version__}"


def scifact_texts(n_docs: int, n_queries: int, seed: int = 0) -> tuple[list[str], list[str], str]:
    corpus = SHARED / "data" / "beir-scifact" / "corpus.jsonl"
    queries = SHARED / "data" / "beir-scifact" / "queries.jsonl"
    rng = random.Random(seed)
    if corpus.is_file():
        docs = [json.loads(line) for line in corpus.open()][:n_docs]
        qs = [json.loads(line)["text"] for line in queries.open()][:n_queries]
        return [f"{d['title']} {d['text']}" for d in docs], qs, "SciFact abstracts and queries"
    words = "the of protein cell cancer gene expression patients study risk increased mice".split()
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(50, 400))) for _ in range(n_docs)]
    qs = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 20))) for _ in range(n_queries)]
    return docs, qs, "synthetic texts (../shared absent)"


def record(name: str, payload: dict) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    data[name] = payload
    RESULTS_JSON.write_text(json.dumps(data, indent=2))


def start_server(app):
    """Serve an ASGI app on a free loopback port in a thread; returns (base URL, uvicorn server)."""
    import threading
    import time

    import httpx
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    assert httpx.get(base + "/healthz").status_code == 200
    return base, server
