"""Loading weights at disk speed: safetensors bytes read straight into tensors of the target device and dtype.

Why not `from_pretrained`: it builds the model, then materialises weights through mmap'd files (whose pages count in
the process's memory while mapped) and, with a dtype or device change, through a second host copy; a 7B query
process spent most of its 16.9 s start there. Here the model is built on the `meta` device (no memory, no random
init), each tensor is allocated once where it will live and filled by `readinto` from the file (page cache is not
process memory), and a dtype change converts one tensor at a time. Host peak for a CPU load: the weights plus the
largest single tensor when a conversion is needed.

Anything this loader does not understand (no safetensors files, quantized configs, keys it cannot place) raises
`Unsupported` and the caller falls back to `from_pretrained`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger(__name__)

PROGRESS_BYTES = 1 << 30  # models over 1 GB show a progress line on stderr
CHUNK = 64 << 20  # staging buffer for device copies (two per reading thread, alternating)
THREADS = 8  # reading threads at most (cores permitting)

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


_FORCE_STAGED = False  # tests: the device path's chunked copies, run on the CPU


class Unsupported(Exception):
    """This checkpoint needs transformers' own loader (the message says why)."""


@dataclass(frozen=True)
class TensorEntry:
    name: str
    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    nbytes: int


def safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return [model_dir / f for f in sorted(set(weight_map.values()))]
    single = model_dir / "model.safetensors"
    if single.is_file():
        return [single]
    raise Unsupported(f"no safetensors weights in {model_dir}")


def read_header(path: Path) -> list[TensorEntry]:
    """The tensors of one safetensors file (format: u64 header size, JSON header, raw little-endian data)."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise Unsupported(f"{path.name} is not a safetensors file (too short)")
        (size,) = struct.unpack("<Q", head)
        if size > 100 << 20:
            raise Unsupported(f"{path.name} has an implausible header of {size} bytes")
        header = json.loads(fh.read(size))
    base = 8 + size
    out = []
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in _DTYPES:
            raise Unsupported(f"{path.name}: tensor {name} has dtype {meta['dtype']}")
        begin, end = meta["data_offsets"]
        out.append(TensorEntry(name, path, _DTYPES[meta["dtype"]], tuple(meta["shape"]), base + begin, end - begin))
    return out


class _Reader:
    """Fills tensors from files: straight `readinto` on the CPU, through two alternating staging buffers (pinned
    on CUDA) for other devices, so that reading the next chunk overlaps the copy of the last."""

    def __init__(self, device: torch.device, progress: Callable[[int], None] = lambda n: None):
        self.device = device
        self.progress = progress
        self.staged = device.type != "cpu"  # tests switch it on to run the staging loop on the CPU
        self._files: dict[Path, object] = {}
        self._stage: list[torch.Tensor] = []
        self._events: list = []

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def _fh(self, path: Path):
        if path not in self._files:
            self._files[path] = path.open("rb", buffering=0)
        return self._files[path]

    def _read_into(self, fh, view: memoryview, offset: int) -> None:
        done = 0
        while done < len(view):
            n = os.preadv(fh.fileno(), [view[done:]], offset + done)
            if n <= 0:
                raise OSError(f"{fh.name} ended early: truncated or corrupt safetensors file")
            done += n
            self.progress(n)

    def read(self, entry: TensorEntry) -> torch.Tensor:
        """A tensor of the file's dtype on the target device."""
        fh = self._fh(entry.file)
        if not self.staged:
            t = torch.empty(entry.shape, dtype=entry.dtype)
            if entry.nbytes:
                self._read_into(fh, memoryview(_bytes(t).numpy()).cast("B"), entry.start)
            return t
        t = torch.empty(entry.shape, dtype=entry.dtype, device=self.device)
        dst = _bytes(t)
        if not self._stage:
            pin = self.device.type == "cuda"
            self._stage = [torch.empty(CHUNK, dtype=torch.uint8, pin_memory=pin) for _ in range(2)]
            self._events = [None, None]
        for i, off in enumerate(range(0, entry.nbytes, CHUNK)):
            k = i % 2
            if self._events[k] is not None:
                self._events[k].synchronize()  # the copy out of this buffer is done: it may be refilled
            n = min(CHUNK, entry.nbytes - off)
            buf = self._stage[k]
            self._read_into(fh, memoryview(buf.numpy()).cast("B")[:n], entry.start + off)
            dst[off:off + n].copy_(buf[:n], non_blocking=True)
            if self.device.type == "cuda":
                ev = torch.cuda.Event()
                ev.record()
                self._events[k] = ev
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
            self._events = [None, None]
        return t


def _bytes(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1).view(torch.uint8)


class _Progress:
    """One line on stderr for big models: updated in place on a terminal, a start and an end line otherwise."""

    def __init__(self, label: str, total: int, enabled: bool):
        self.label, self.total = label, total
        self.enabled = enabled and total > PROGRESS_BYTES
        self.tty = self.enabled and sys.stderr.isatty()
        self.done, self.t0, self._last = 0, time.perf_counter(), 0.0
        self._lock = threading.Lock()
        if self.enabled and not self.tty:
            print(f"loading {self.label}: {self.total / 1e9:.1f} GB", file=sys.stderr, flush=True)

    def __call__(self, n: int) -> None:
        with self._lock:
            self.done += n
            if not (self.tty and time.perf_counter() - self._last > 0.2):
                return
            self._last = time.perf_counter()
            print(f"\rloading {self.label}: {self.done / 1e9:.1f}/{self.total / 1e9:.1f} GB "
                  f"({100 * self.done / max(1, self.total):.0f}%)", end="", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.enabled:
            took = time.perf_counter() - self.t0
            print(f"{chr(13) if self.tty else ''}loaded {self.label}: {self.total / 1e9:.1f} GB in {took:.1f} s "
                  f"({self.total / 1e9 / max(took, 1e-9):.1f} GB/s)", file=sys.stderr, flush=True)


def _skeleton(model_dir: Path, causal: bool, dtype: torch.dtype):
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    if getattr(config, "quantization_config", None):
        raise Unsupported("quantized checkpoint")
    cls = AutoModelForCausalLM if causal else AutoModel
    with torch.device("meta"):
        model = cls.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model


def _target_name(key: str, expected: set[str], prefix: str) -> str | None:
    if key in expected:
        return key
    if prefix and key.startswith(prefix + ".") and key[len(prefix) + 1:] in expected:
        return key[len(prefix) + 1:]  # a causal-LM checkpoint (model.layers...) into the bare model
    if prefix and f"{prefix}.{key}" in expected:
        return f"{prefix}.{key}"  # a bare-model checkpoint into a causal LM
    return None


def _place(model, name: str, tensor: torch.Tensor) -> None:
    owner, _, leaf = name.rpartition(".")
    module = model.get_submodule(owner) if owner else model
    if leaf in module._parameters:
        module._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=False)
    else:
        module._buffers[leaf] = tensor


def _rebuild_meta_buffers(model, device: torch.device) -> None:
    """Buffers that are computed, not stored (RoPE's inv_freq): built again on the device, as the model's own
    constructor builds them."""
    for name, module in list(model.named_modules()):
        if not any(b is not None and b.is_meta for b in module._buffers.values()):
            continue
        if not type(module).__name__.endswith("RotaryEmbedding"):
            raise Unsupported(f"buffer of {name or 'the model'} ({type(module).__name__}) is not in the checkpoint")
        with torch.device(device):
            fresh = type(module)(config=model.config)
        owner, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(owner) if owner else model, leaf, fresh)


def _read_all(plan: list[tuple[TensorEntry, str]], device: torch.device, dtype: torch.dtype, bar: _Progress,
              threads: int | None = None) -> list[tuple[str, torch.Tensor]]:
    """Every tensor of `plan`, read by a few threads (reads and copies release the GIL; one thread reaches neither
    NVMe nor PCIe speed), each with its own staging buffers and, on CUDA, its own stream. Work is balanced by bytes;
    within a thread, tensors are read in file order."""
    from concurrent.futures import ThreadPoolExecutor

    converting = any(e.dtype.is_floating_point and e.dtype != dtype for e, _ in plan)
    # on the CPU a conversion holds one source-dtype tensor per thread: one thread keeps the host peak at one tensor
    n = threads or (1 if device.type == "cpu" and converting else max(1, min(THREADS, os.cpu_count() or 1)))
    groups: list[list[tuple[TensorEntry, str]]] = [[] for _ in range(min(n, len(plan)) or 1)]
    loads = [0] * len(groups)
    for item in sorted(plan, key=lambda p: -p[0].nbytes):
        i = loads.index(min(loads))
        groups[i].append(item)
        loads[i] += item[0].nbytes

    def work(group: list[tuple[TensorEntry, str]]) -> list[tuple[str, torch.Tensor]]:
        reader = _Reader(device, bar)
        reader.staged = reader.staged or _FORCE_STAGED
        stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        out = []
        try:
            with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                for entry, target in sorted(group, key=lambda p: (str(p[0].file), p[0].start)):
                    t = reader.read(entry)
                    if t.is_floating_point() and t.dtype != dtype:
                        t = t.to(dtype)  # one tensor at a time: the source-dtype copy is freed at once
                    out.append((target, t))
                if stream is not None:
                    stream.synchronize()
        finally:
            reader.close()
        return out

    with ThreadPoolExecutor(len(groups), thread_name_prefix="llara-load") as pool:
        return [x for part in pool.map(work, groups) for x in part]


MADV_POPULATE_READ = 22  # Linux 5.14+; Python's mmap module does not name it yet


def _populate(mm) -> None:
    """Read the file in now, at disk speed, rather than page by page during the first query. Not MAP_POPULATE: on a
    private writable mapping it copies every page (a second copy of the weights); MADV_POPULATE_READ maps the page
    cache's pages as they are. Older kernels get read-ahead instead."""
    import mmap

    try:
        mm.madvise(getattr(mmap, "MADV_POPULATE_READ", MADV_POPULATE_READ))
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            mm.madvise(mmap.MADV_WILLNEED)


def _map_unconverted(plan: list[tuple[TensorEntry, str]], dtype: torch.dtype, bar: _Progress
                     ) -> tuple[list[tuple[str, torch.Tensor]], list[tuple[TensorEntry, str]]]:
    """CPU tensors that need no conversion, as views of the file mapped into memory (private, read in now): the
    page cache is then the one copy of the weights (no read into a second buffer), and a write to a weight copies
    that page only, never the file. Returns (mapped tensors, entries left to read)."""
    import mmap

    def kept(e: TensorEntry) -> bool:
        return not e.dtype.is_floating_point or e.dtype == dtype

    by_file: dict[Path, list[tuple[TensorEntry, str]]] = {}
    for e, t in plan:
        by_file.setdefault(e.file, []).append((e, t))
    mapped, rest = [], []
    for path, items in by_file.items():
        if not all(kept(e) for e, _ in items):
            rest += items
            continue
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0 or any(e.start + e.nbytes > size for e, _ in items):
                raise OSError(f"{path.name} ended early: truncated or corrupt safetensors file")
            mm = mmap.mmap(fh.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        _populate(mm)
        whole = torch.frombuffer(mm, dtype=torch.uint8)  # keeps `mm` alive as long as a tensor uses it
        for e, t in items:
            size_of = torch.empty((), dtype=e.dtype).element_size()
            if e.start % size_of:
                rest.append((e, t))  # misaligned for its dtype: read it instead
                continue
            mapped.append((t, whole[e.start:e.start + e.nbytes].view(e.dtype).view(e.shape)))
        bar(sum(e.nbytes for e, _ in items))
    return mapped, rest


def load_model(model_dir: Path, *, dtype: torch.dtype, device: torch.device, causal: bool = False,
               label: str | None = None, progress: bool = True):
    """The model of `model_dir` (AutoModel, or AutoModelForCausalLM with `causal`), in `dtype` on `device`, eval."""
    model_dir = Path(model_dir)
    files = safetensors_files(model_dir)
    entries = [e for f in files for e in read_header(f)]
    model = _skeleton(model_dir, causal, dtype)
    expected = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    expected |= set(model.state_dict().keys())
    prefix = getattr(model, "base_model_prefix", "") or ""
    plan = [(e, t) for e in entries if (t := _target_name(e.name, expected, prefix)) is not None]
    bar = _Progress(label or model_dir.name, sum(e.nbytes for e, _ in plan), progress)
    mapped, rest = _map_unconverted(plan, dtype, bar) if device.type == "cpu" and not causal and not _FORCE_STAGED \
        else ([], plan)
    for target, t in mapped + _read_all(rest, device, dtype, bar):
        _place(model, target, t)
    if getattr(model.config, "tie_word_embeddings", False) and hasattr(model, "tie_weights"):
        model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise Unsupported(f"{len(missing)} weights are not in the checkpoint (first: {missing[0]})")
    _rebuild_meta_buffers(model, device)
    bar.finish()
    return model.eval()


def load(model_dir: Path, *, dtype: torch.dtype, device: torch.device, causal: bool = False,
         label: str | None = None, progress: bool = True):
    """`load_model`, or transformers' `from_pretrained` (then moved to `device`) for what it does not support."""
    try:
        return load_model(model_dir, dtype=dtype, device=device, causal=causal, label=label, progress=progress)
    except Unsupported as exc:
        reason = str(exc)
    log.info("loading %s with transformers' loader: %s", label or model_dir, reason)
    from transformers import AutoModel, AutoModelForCausalLM

    model = (AutoModelForCausalLM if causal else AutoModel).from_pretrained(model_dir, dtype=dtype,
                                                                            local_files_only=True)
    return model.to(device).eval()
