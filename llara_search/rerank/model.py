"""Rerankers: a (query, passage) pair in, one relevance score out, computed as the released models' reference
usage computes it.

Two families, told apart by the model's head (or named with `family=`):

- **cross-encoders** (the bge-reranker family, ms-marco MiniLM, ...): `AutoModelForSequenceClassification` over
  the tokenizer's own pair template (`[CLS] q [SEP] p [SEP]`, `<s> q </s></s> p </s>`, with token types where the
  tokenizer makes them), the logit as the score, optionally its sigmoid (FlagReranker's `normalize=True`).
  Truncation as FlagReranker does it: the query to 3/4 of `max_length` tokens, then the passage to what is left.
- **RankLLaMA** (`castorini/rankllama-v1-7b-lora-passage`): a peft LoRA over LLaMA-2 loaded as
  `AutoModelForSequenceClassification(num_labels=1)` and merged; the pair `query: {q}` / `document: {title}
  {passage}` through the LLaMA tokenizer's pair template (`<s> q <s> d`), the score `logits[0][0]` read at the last
  token. **No trailing `</s>`**: Tevatron's training code for this checkpoint (examples/rankllama/data.py,
  `RerankerTrainDataset.create_one_example`) builds `[bos] + query` / `[bos] + document` with the eos commented out
  ("adding eos results in loss overflow in fp16"), pads on the right with unk = `config.pad_token_id`, so the
  score head was trained on the hidden state of the last document token, never on a `</s>`; the current model
  card tokenizes exactly that way (an earlier revision appended `</s>`).

Speed without changing a value: every pair is tokenized once, pairs are sorted by length and batched by a token
budget with right padding (a causal decoder never attends to trailing pads, an encoder masks them), one forward
per batch, bf16 on CUDA. A decoder's score head is applied to the last real token's hidden state only, which is
what `GenericForSequenceClassification` pools, without relying on the pad id to find it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..encoder.batching import forward_in_batches, round_up
from ..errors import first_line
from ..encoder.model import resolve_device, resolve_dtype
from .stage import FAMILIES, NotARerankerError, RerankError, RerankerOutputError, RerankTimeout

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 512  # FlagReranker's default; RankLLaMA's passages (MS MARCO) are far shorter
HEAD_NAMES = ("score", "classifier")


class Reranker:
    """Scores (query, passage) pairs with a sequence-classification model; higher is more relevant.

    Thread-safe: one forward runs at a time (the server shares one warm reranker between requests), and a
    `deadline` also bounds the wait for that turn.
    """

    def __init__(self, model, tokenizer, *, name: str, family: str = "auto", device: torch.device | None = None,
                 dtype: torch.dtype | None = None, max_length: int | None = None, query_max_length: int | None = None,
                 normalize: bool = False, max_batch_tokens: int | None = None, max_batch: int = 256):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.device = device or next(model.parameters()).device
        self.dtype = dtype or next(model.parameters()).dtype
        head = getattr(model, "score", None)
        self.decoder = isinstance(head, torch.nn.Linear)  # decoder-only LMs pool their last token (Llama, Mistral)
        if family not in FAMILIES:
            raise RerankError(f"reranker family must be one of {', '.join(FAMILIES)}, not {family!r}")
        self.family = family if family != "auto" else ("rankllama" if self.decoder else "cross-encoder")
        self.max_length = int(max_length or DEFAULT_MAX_LENGTH)
        self.query_max_length = int(query_max_length or self.max_length * 3 // 4)
        if self.max_length < 8 or not 1 <= self.query_max_length < self.max_length:
            raise RerankError(f"reranker max_length {self.max_length} / query_max_length {self.query_max_length} "
                              "leave no room for the passage")
        self.normalize = bool(normalize)
        self.max_batch_tokens = max_batch_tokens or (32768 if self.device.type == "cuda" else 8192)
        self.max_batch = max_batch
        self.pad_id = _pad_id(tokenizer, model)
        self.pad_to = 8 if self.device.type == "cuda" else 1  # tensor-core tiles; on a CPU padding is only waste
        self.uses_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
        self._pairs = _PairTokenizer(tokenizer, self.max_length, self.query_max_length)
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------------------- inputs
    def pair(self, query: str, title: str | None, text: str) -> tuple[str, str]:
        """The two texts the model was trained on for one candidate (titles are the chunk's heading path)."""
        if self.family == "rankllama":
            return f"query: {query}", f"document: {title or ''} {text}"
        return query, f"{title} {text}" if title else text

    def tokenize(self, queries: Sequence[str], passages: Sequence[str], titles: Sequence[str | None] | None = None
                 ) -> list[tuple[list[int], list[int]]]:
        """(input ids, token type ids) of each pair, special tokens included, truncated as described above."""
        titles = list(titles) if titles is not None else [None] * len(passages)
        if not len(queries) == len(passages) == len(titles):
            raise ValueError("queries, passages and titles must have the same length")
        firsts, seconds = zip(*(self.pair(q, t, p) for q, p, t in zip(queries, passages, titles))) if passages \
            else ((), ())
        return self._pairs(list(firsts), list(seconds))

    # ----------------------------------------------------------------------------------------------- scoring
    def score(self, query: str, passages: Sequence[str], titles: Sequence[str | None] | None = None, *,
              deadline: float | None = None) -> np.ndarray:
        """Scores of `passages` for one query (float32, input order). `deadline`: a `time.monotonic()` past which
        `RerankTimeout` is raised instead of starting another batch."""
        return self.score_pairs([query] * len(passages), passages, titles, deadline=deadline)

    def score_pairs(self, queries: Sequence[str], passages: Sequence[str],
                    titles: Sequence[str | None] | None = None, *, deadline: float | None = None) -> np.ndarray:
        """Scores of many (query, passage) pairs at once, batched across queries (what an evaluation wants)."""
        if isinstance(passages, str):
            raise TypeError("pass a list of passages, not a single string")
        seqs = self.tokenize(list(queries), list(passages), titles)
        out = np.zeros(len(seqs), dtype=np.float32)
        if not seqs:
            return out
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._lock.acquire(timeout=-1 if wait is None else wait):
            raise RerankTimeout(f"the time budget ran out waiting for the reranker (busy with other requests); "
                                f"0 of {len(seqs)} candidates scored")
        try:
            self._score_sorted(seqs, out, deadline)
        finally:
            self._lock.release()
        if self.normalize:
            out = (1.0 / (1.0 + np.exp(-out.astype(np.float64)))).astype(np.float32)
        return out

    def _score_sorted(self, seqs: list[tuple[list[int], list[int]]], out: np.ndarray, deadline: float | None) -> None:
        def in_time(done: int) -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise RerankTimeout(f"the time budget ran out after scoring {done} of {len(seqs)} candidates")

        forward_in_batches([len(s[0]) for s in seqs], lambda idx: self._forward([seqs[i] for i in idx]), out,
                           max_tokens=self.max_batch_tokens, max_batch=self.max_batch, pad_to=self.pad_to,
                           before_batch=in_time)

    @torch.inference_mode()
    def _forward(self, seqs: list[tuple[list[int], list[int]]]) -> np.ndarray:
        lengths = [len(ids) for ids, _ in seqs]
        width = round_up(max(lengths), self.pad_to)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        types = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, ((tok, typ), n) in enumerate(zip(seqs, lengths)):
            ids[row, :n] = torch.tensor(tok)
            types[row, :n] = torch.tensor(typ)
            mask[row, :n] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        if self.decoder:
            backbone = getattr(self.model, self.model.base_model_prefix)
            # use_cache=False: transformers otherwise keeps every layer's keys and values (GBs for 7B x 20k tokens)
            hidden = backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            rows = torch.arange(len(seqs), device=hidden.device)
            last = hidden[rows, torch.tensor(lengths, device=hidden.device) - 1]
            logits = self.model.score(last)
        else:
            kw = {"token_type_ids": types.to(self.device)} if self.uses_token_types else {}
            logits = self.model(input_ids=ids, attention_mask=mask, **kw).logits
        scores = logits[:, 0].float().cpu().numpy()
        if not np.isfinite(scores).all():
            raise RerankerOutputError(f"reranker {self.name} produced NaN/inf scores (dtype "
                                      f"{str(self.dtype).replace('torch.', '')}); its weights may be broken, or "
                                      "load it in float32")
        return scores


class _PairTokenizer:
    """FlagReranker's pair building on the tokenizer's own Rust backend: both texts tokenized without special
    tokens, the query cut to `query_max_length`, the passage to what is left of `max_length` after the tokenizer's
    special tokens, then the tokenizer's pair template. An own copy of the backend, so the truncation and padding
    state transformers keeps on the shared one cannot leak in."""

    def __init__(self, tokenizer, max_length: int, query_max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.query_max_length = query_max_length
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.backend = None
        if backend is not None:
            from tokenizers import Tokenizer

            self.backend = Tokenizer.from_str(backend.to_str())
            self.backend.no_truncation()
            self.backend.no_padding()
            pp = self.backend.post_processor
            self.n_special = pp.num_special_tokens_to_add(True) if pp is not None else 0

    def __call__(self, firsts: list[str], seconds: list[str]) -> list[tuple[list[int], list[int]]]:
        if not firsts:
            return []
        if self.backend is None:  # a Python-only tokenizer: its own pair truncation
            enc = self.tokenizer(firsts, seconds, truncation="only_second", max_length=self.max_length)
            types = enc.get("token_type_ids") or [[0] * len(x) for x in enc["input_ids"]]
            return list(zip(enc["input_ids"], types))
        qs = self.backend.encode_batch(firsts, add_special_tokens=False)
        ps = self.backend.encode_batch(seconds, add_special_tokens=False)
        out = []
        for q, p in zip(qs, ps):
            if len(q.ids) > self.query_max_length:
                q.truncate(self.query_max_length)
            room = self.max_length - len(q.ids) - self.n_special
            if len(p.ids) > room:
                p.truncate(max(1, room))
            pair = self.backend.post_process(q, p, add_special_tokens=True)
            out.append((list(pair.ids), list(pair.type_ids)))
        return out


# --------------------------------------------------------------------------------------------------- loading
def load_reranker(name_or_path: str, *, base: str | None = None, family: str = "auto",
                  device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                  normalize: bool = False, max_length: int | None = None, query_max_length: int | None = None,
                  max_batch_tokens: int | None = None) -> Reranker:
    """Load a reranker from a hub id or a local folder (offline with HF_HUB_OFFLINE=1 and the model cached).

    A folder with `adapter_config.json` is a peft adapter (RankLLaMA): its base (`base_model_name_or_path`, or
    `base=`) is loaded as a one-label sequence classifier and the LoRA merged in, as the model card does.
    `dtype`: auto = bf16 on CUDA, float32 on CPU.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialized score weights" is expected under an adapter; checked below
    hf_logging.disable_progress_bar()
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    model_dir = _resolve(name_or_path, f"reranker {name_or_path!r}")
    if (model_dir / "adapter_config.json").is_file():
        model, tokenizer = _load_adapter(name_or_path, model_dir, base, dt)
    else:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        archs = list(getattr(config, "architectures", None) or [])
        if not any(a.endswith("ForSequenceClassification") for a in archs):
            what = archs[0] if archs else f"a {config.model_type} model"
            raise NotARerankerError(
                f"{name_or_path} is not a reranker: its checkpoint is {what}, with no classification head to score "
                "a pair; --rerank needs a cross-encoder (…ForSequenceClassification, e.g. BAAI/bge-reranker-v2-m3) "
                "or a RankLLaMA LoRA adapter (e.g. castorini/rankllama-v1-7b-lora-passage)")
        try:
            model, info = AutoModelForSequenceClassification.from_pretrained(
                model_dir, dtype=dt, local_files_only=True, output_loading_info=True)
        except (ValueError, KeyError) as exc:
            raise NotARerankerError(f"{name_or_path} cannot be loaded as a sequence classifier: "
                                    f"{first_line(exc)}") from None
        missing = [k for k in info.get("missing_keys", ()) if k.split(".")[0] in HEAD_NAMES]
        if missing:
            raise NotARerankerError(f"{name_or_path} is not a reranker: its checkpoint has no trained "
                                    f"classification head (missing {missing[0]})")
        tokenizer = _tokenizer(model_dir)
    labels = int(getattr(model.config, "num_labels", 1))
    if labels != 1:
        raise NotARerankerError(f"{name_or_path} is not a reranker: its classification head has {labels} labels "
                                f"({', '.join(map(str, (model.config.id2label or {}).values()))}); a reranker "
                                "scores a pair with one logit")
    model.to(dev)
    return Reranker(model, tokenizer, name=str(name_or_path), family=family, device=dev, dtype=dt,
                    max_length=max_length, query_max_length=query_max_length, normalize=normalize,
                    max_batch_tokens=max_batch_tokens)


def _load_adapter(name: str, adapter_dir: Path, base: str | None, dt: torch.dtype):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    task = cfg.get("task_type")
    if task != "SEQ_CLS":
        raise NotARerankerError(f"{name} is a peft adapter for {task or 'an unknown task'}, not a reranker: "
                                "--rerank needs a sequence-classification (SEQ_CLS) adapter such as "
                                "castorini/rankllama-v1-7b-lora-passage")
    if not _adapter_has_head(adapter_dir):
        raise NotARerankerError(f"{name} is not a reranker: the adapter holds no trained score head "
                                "(modules_to_save score/classifier)")
    base_name = base or cfg.get("base_model_name_or_path")
    if not base_name:
        raise RerankError(f"adapter {name} does not name its base model; pass it with --rerank-base")
    base_dir = _resolve(base_name, f"base model {base_name!r} of reranker adapter {name}")
    tokenizer = _tokenizer(adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_dir)
    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1, dtype=dt,
                                                               local_files_only=True)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = 0  # as Tevatron's RerankerModel.load and the training run set it
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5: noise on a user's stderr
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    return model, tokenizer


def _adapter_has_head(adapter_dir: Path) -> bool:
    st = adapter_dir / "adapter_model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as f:
            keys = list(f.keys())
    elif (adapter_dir / "adapter_model.bin").is_file():
        keys = list(torch.load(adapter_dir / "adapter_model.bin", map_location="cpu", weights_only=True))
    else:
        raise RerankError(f"{adapter_dir} has adapter_config.json but no adapter_model.safetensors or .bin")
    return any(f".{h}." in f".{k}" for k in keys for h in HEAD_NAMES)


def _tokenizer(directory: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory, local_files_only=True)


def _resolve(name_or_path: str, what: str) -> Path:
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p.resolve()
    from ..encoder.checkpoint import local_files_only

    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name_or_path), local_files_only=local_files_only()))
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; one clear line is what the user needs
        raise RerankError(f"cannot load {what}: not a local folder and not available from the Hugging Face hub "
                          f"({type(exc).__name__}); pass a local folder, or set HF_HUB_OFFLINE=1 with the model in "
                          "the HF cache") from None


def _pad_id(tokenizer, model) -> int:
    for cand in (getattr(tokenizer, "pad_token_id", None), getattr(model.config, "pad_token_id", None)):
        if cand is not None:
            return int(cand)
    return 0  # any id works: padding is on the right and masked


__all__ = ["DEFAULT_MAX_LENGTH", "Reranker", "load_reranker"]
