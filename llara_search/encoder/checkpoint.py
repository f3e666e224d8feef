"""Where a model's files are and what they are: hub ids or folders, the fingerprint, the tokenizer.

Kept apart from the encoder itself so that commands that never encode (status, doctor, BM25 queries, delete) do
not pay for importing torch: the fingerprint is a hash of files and the tokenizer loads without the weights.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import first_line
from ..notices import emit
from .prompts import EBAE_SUFFIX, EBAR_SUFFIX, N_POOL, PREFIX

DEFAULT_MODEL = "BAAI/LLARA-passage"


def local_files_only() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def resolve_model_dir(name_or_path: str) -> Path:
    """A local directory as is; a hub id through the HF cache/download (which honours HF_HUB_OFFLINE). Before a
    download, its size and destination are announced (llara_search.notices) and HF's progress bar is shown."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p.resolve()
    try:
        return _hub_snapshot(name_or_path, local_files_only())
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; one clear line is what the user needs
        raise OSError(
            f"cannot load model {name_or_path!r}: not a local directory and not available from the Hugging Face hub "
            f"({type(exc).__name__}). Pass a local path with --model, or set HF_HUB_OFFLINE=1 with the model in "
            "the HF cache."
        ) from exc


@functools.lru_cache(maxsize=16)
def _hub_snapshot(repo_id: str, offline: bool) -> Path:
    """One resolution per process (the tokenizer, the fingerprint and the weights all ask for the folder)."""
    from huggingface_hub import snapshot_download

    if offline:
        return Path(snapshot_download(repo_id, local_files_only=True))
    listing = remote_files(repo_id)
    if listing is not None:
        plan = plan_download(repo_id, *listing)
        if plan.files:
            emit("download", plan.message(), **plan.to_dict())
    with _hub_progress_bars():
        return Path(snapshot_download(repo_id))


@dataclass
class DownloadPlan:
    """What a hub download is about to fetch: the files the HF cache lacks, their size, and where they go."""

    repo_id: str
    files: int
    bytes: int
    destination: str

    def to_dict(self) -> dict:
        return asdict(self)

    def message(self) -> str:
        return (f"downloading {self.repo_id}: {_size(self.bytes)} in {self.files} file{'s' * (self.files != 1)} to "
                f"{self.destination} (once: later runs use this cache; HF_HUB_OFFLINE=1 forbids downloads)")


def remote_files(repo_id: str) -> tuple[str, list[tuple[str, int | None]]] | None:
    """(commit, [(file, size)]) of a hub repository in one request; None when the hub cannot be asked (offline,
    no network, no such repository): the download itself then says what is wrong."""
    if local_files_only():
        return None
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(repo_id, files_metadata=True, timeout=10)
    except Exception:  # noqa: BLE001 - offline, DNS, auth, 404: fail soft, the announcement is a courtesy
        return None
    return info.sha, [(s.rfilename, s.size) for s in info.siblings or []]


def plan_download(repo_id: str, commit: str | None, files: list[tuple[str, int | None]],
                  cache_dir: str | os.PathLike | None = None) -> DownloadPlan:
    """Which of a repository's `files` the HF cache (`cache_dir`, default HF_HUB_CACHE) does not hold yet."""
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.file_download import repo_folder_name

    cache = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    missing = [(f, size) for f, size in files
               if not isinstance(try_to_load_from_cache(repo_id, f, cache_dir=cache, revision=commit), str)]
    return DownloadPlan(repo_id, len(missing), sum(size or 0 for _, size in missing),
                        str(cache / repo_folder_name(repo_id=repo_id, repo_type="model")))


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


@contextlib.contextmanager
def _hub_progress_bars():
    """HF's own download bar, even when loading code turned the library's bars off (transformers does), unless
    the user disabled them (HF_HUB_DISABLE_PROGRESS_BARS)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_off = are_progress_bars_disabled()
    if was_off and os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").lower() not in {"1", "true", "yes", "on"}:
        enable_progress_bars()
    try:
        yield
    finally:
        if was_off:
            disable_progress_bars()


def files_fingerprint(directory: Path) -> str:
    """A cheap but weight-sensitive hash of a model or adapter folder.

    Hashing 27 GB of fp32 weights would take minutes, so each file contributes its name, size and three 1 MiB
    samples (start, middle, end): enough to tell apart two checkpoints of the same architecture.
    """
    h = hashlib.sha256()
    files = sorted(f for f in directory.rglob("*") if f.is_file() and not f.name.startswith("."))
    for f in files:
        rel = f.relative_to(directory).as_posix()
        if rel.startswith(("checkpoint-", "runs/")):
            continue
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with f.open("rb") as fh:
            for off in sorted({0, max(0, size // 2 - 2**19), max(0, size - 2**20)}):
                fh.seek(off)
                h.update(fh.read(2**20))
    return h.hexdigest()[:16]


def make_fingerprint(model_hash: str, adapter_hash: str | None, max_length: int) -> str:
    h = hashlib.sha256(json.dumps({
        "model": model_hash, "adapter": adapter_hash, "prefix": PREFIX, "ebae": EBAE_SUFFIX,
        "ebar": EBAR_SUFFIX, "max_length": int(max_length), "pool": N_POOL,
    }, sort_keys=True).encode())
    return f"llara-{h.hexdigest()[:16]}"


def fingerprint_for(name_or_path: str, adapter: str | os.PathLike | None = None, max_length: int = 512) -> str:
    """The fingerprint a model would have, without loading its weights (cheap: sampled file hashes)."""
    model_dir = resolve_model_dir(str(name_or_path))
    adapter_hash = files_fingerprint(Path(adapter).expanduser().resolve()) if adapter else None
    return make_fingerprint(files_fingerprint(model_dir), adapter_hash, max_length)


def load_tokenizer(name_or_path: str, adapter: str | os.PathLike | None = None):
    """The model's tokenizer alone (chunking needs it; the weights are loaded only when something is encoded).

    One instance per folder and process, shared read-only by the chunker and the encoder: an ingest used to load
    it twice, a second or more each time. Training, which adds tokens, takes its own copy from `tokenizer_from`.
    """
    src = _tokenizer_dir(resolve_model_dir(str(name_or_path)), Path(adapter) if adapter is not None else None)
    config = src / "tokenizer_config.json"
    return _shared_tokenizer(str(src), config.stat().st_mtime_ns if config.exists() else 0)


@functools.lru_cache(maxsize=8)
def _shared_tokenizer(src: str, _stamp: int):
    return tokenizer_from(Path(src), None)


def _tokenizer_dir(model_dir: Path, adapter_dir: Path | None) -> Path:
    """An adapter folder's tokenizer wins: training may have added the LLaRA tokens to a base tokenizer."""
    if adapter_dir is not None and (adapter_dir / "tokenizer_config.json").is_file():
        return adapter_dir
    return model_dir


def _no_config(folder: Path) -> str | None:
    if not (folder / "config.json").is_file():
        return "no config.json, so it is not a Hugging Face model folder (pass the folder save_pretrained wrote)"
    return None


def _no_tokenizer_files(folder: Path) -> str | None:
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        return ("it has no tokenizer files (tokenizer.json or tokenizer.model); copy the tokenizer next to the "
                "weights (tokenizer.save_pretrained(folder))")
    return None


def model_load_error(name_or_path: str, folder: Path, exc: BaseException) -> OSError:
    """One line for a model folder whose weights transformers would not load: what the folder lacks, said plainly
    (transformers' own errors name internals), else transformers' first line."""
    return OSError(f"cannot load model {name_or_path!r}: {_no_config(folder) or first_line(exc)}")


def tokenizer_from(model_dir: Path, adapter_dir: Path | None):
    """A fresh tokenizer of the model (or of the adapter, when it has one), padding on the left."""
    from transformers import AutoTokenizer

    src = _tokenizer_dir(model_dir, adapter_dir)
    try:
        tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # transformers' many ways of saying "not a tokenizer"
        raise OSError(f"cannot load a tokenizer from {src}: {_no_tokenizer_files(src) or first_line(exc)}") from None
    tok.padding_side = "left"
    return tok
