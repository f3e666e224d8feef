"""Tiny random LLaRA models for tests, benchmarks and trying the pipeline without downloading 27 GB.

Random weights give meaningless rankings but exercise exactly the code paths (and time exactly like) a real
checkpoint of the same shape.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SHARED_TOKENIZER = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / "llama2-llara-tokenizer"

_CORPUS = """
The quick brown fox jumps over the lazy dog. A llama is a domesticated South American camelid.
Search engines index documents and answer queries with ranked passages. Vectors are compared by dot product.
Installation requires Python and a recent version of pip. The configuration file sets the port and the host.
Neural networks learn representations from data; transformers use attention over tokens.
HAProxy is a load balancer; JAX transforms numerical functions with grad, jit and vmap.
""".strip()


def shared_tokenizer_dir() -> Path | None:
    env = os.environ.get("LLARA_SEARCH_TOKENIZER")
    for cand in ([Path(env)] if env else []) + [SHARED_TOKENIZER, Path.cwd().parent / "shared" / "models" /
                                                 "llama2-llara-tokenizer"]:
        if (cand / "tokenizer.model").is_file() or (cand / "tokenizer.json").is_file():
            return cand
    return None


def train_fallback_tokenizer(out_dir: str | os.PathLike, vocab_size: int = 600, llara_tokens: bool = True):
    """A small SentencePiece-like BPE tokenizer with the 16 LLaRA tokens (`llara_tokens=False`: without them, like
    a base model's), for clones without ../shared."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from .encoder.prompts import EBAE_SUFFIX, EBAR_SUFFIX, LLARA_TOKENS, add_llara_tokens

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + 259, special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens,
                                  show_progress=False)
    text = _CORPUS + "\n" + EBAE_SUFFIX + "\n" + EBAR_SUFFIX
    tok.train_from_iterator([text.replace("<s", " ")] * 3, trainer)
    bos = tok.token_to_id("<s>")  # LLaMA's tokenizer puts <s> before every text it encodes; so must this one
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   padding_side="left")
    assert not set(LLARA_TOKENS) & set(fast.get_vocab())
    if llara_tokens:
        add_llara_tokens(fast)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def make_tiny_llara(out_dir: str | os.PathLike, *, tokenizer_dir: str | os.PathLike | None = None,
                    hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4, intermediate_size: int | None = None,
                    seed: int = 0, tie_embeddings: bool = False) -> Path:
    """Write a random Llama with the LLaRA tokenizer to `out_dir` (loadable by AutoModel / AutoModelForCausalLM)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(tokenizer_dir) if tokenizer_dir else shared_tokenizer_dir()
    if src is None:
        tokenizer = train_fallback_tokenizer(out / "_tokenizer")
    else:
        tokenizer = AutoTokenizer.from_pretrained(src)
    tokenizer.padding_side = "left"
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size or hidden_size * 3,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=0, tie_word_embeddings=tie_embeddings,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------------------------- rerankers
def _words() -> list[str]:
    import re

    return sorted(set(re.findall(r"[a-z]+", _CORPUS.lower())) | {"query", "document", "passage", "llama", "what"})


def make_tiny_cross_encoder(out_dir: str | os.PathLike, *, kind: str = "bert", hidden_size: int = 32,
                            num_layers: int = 2, num_heads: int = 4, num_labels: int = 1, seed: int = 0) -> Path:
    """A random cross-encoder with a small real tokenizer, loadable by AutoModelForSequenceClassification:
    `kind="bert"` (WordPiece, token types, the ms-marco MiniLM layout) or `"xlm-roberta"` (Unigram, `<s> q </s></s>
    p </s>`, the bge-reranker layout)."""
    import torch
    from transformers import (BertConfig, BertForSequenceClassification, BertTokenizer, XLMRobertaConfig,
                              XLMRobertaForSequenceClassification, XLMRobertaTokenizer)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    words, chars = _words(), list("abcdefghijklmnopqrstuvwxyz0123456789.,:;?!'\"()-")
    common = dict(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
                  intermediate_size=hidden_size * 2, num_labels=num_labels, initializer_range=0.2)
    if kind == "bert":
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + chars + [f"##{c}" for c in chars]
        tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))})
        config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512, type_vocab_size=2,
                            pad_token_id=0, **common)
        cls = BertForSequenceClassification
    elif kind == "xlm-roberta":
        pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
        pieces += [(f"▁{w}", -float(i) / 10 - 1) for i, w in enumerate(words)]
        pieces += [(c, -30.0) for c in chars + ["▁"]] + [("<mask>", 0.0)]
        tokenizer = XLMRobertaTokenizer(vocab=pieces)
        config = XLMRobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=514, type_vocab_size=1,
                                  pad_token_id=1, bos_token_id=0, eos_token_id=2, **common)
        cls = XLMRobertaForSequenceClassification
    else:
        raise ValueError(f"kind must be bert or xlm-roberta, not {kind!r}")
    torch.manual_seed(seed)
    cls(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def make_tiny_rankllama(out_dir: str | os.PathLike, base_dir: str | os.PathLike, *, r: int = 8, seed: int = 0,
                        merged: bool = False) -> Path:
    """A random RankLLaMA-style reranker over the tiny Llama at `base_dir`: a SEQ_CLS LoRA adapter (r, alpha 2r,
    the seven projections, the score head saved beside it) naming `base_dir` as its base, as
    castorini/rankllama-v1-7b-lora-passage names meta-llama/Llama-2-7b-hf; `merged=True` writes the merged
    LlamaForSequenceClassification instead (with the tokenizer)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_dir = Path(base_dir).resolve()
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft_model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=r, lora_alpha=2 * r, target_modules=targets))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)  # peft starts B at zero (a no-op adapter); a trained one is not
            elif "modules_to_save" in name:
                p.normal_(0.0, 0.5)
    if merged:
        peft_model.merge_and_unload().save_pretrained(out)
        AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    else:
        peft_model.save_pretrained(out)
    return out


@contextmanager
def scratch_pg_database(server: str, prefix: str = "llara_scratch") -> Iterator[str]:
    """A fresh PostgreSQL database on `server` (a URL whose user may CREATE DATABASE), dropped afterwards even
    when connections are still open: tests and benchmarks get an empty schema without touching the server's own."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
