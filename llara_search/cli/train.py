"""`train` (LLaRA's unsupervised adaptation), `finetune` (contrastive, labelled) and `reencode` (an index's
chunks encoded again with what training wrote)."""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import List, Optional

import typer
from rich.text import Text

from .. import terminal as term
from .common import (DbUrlOpt, DtypeOpt, ForceOpt, IndexOpt, IngestProgress, JsonOpt, check_switch, err, fail, guard,
                     open_engine, out, parse_dtype, print_json, with_encode_pool)

LoraR = typer.Option(64, "--lora-r", min=1, help="LoRA rank")
LoraAlpha = typer.Option(16, "--lora-alpha", min=1, help="LoRA alpha")
LoraDropout = typer.Option(0.1, "--lora-dropout", min=0.0, max=0.9, help="LoRA dropout")
FullOpt = typer.Option(False, "--full", help="Train every weight and write a whole model (use it with --model); "
                       "for small or new models, which learn little through LoRA")
LrOpt = typer.Option(None, "--lr", help="Peak learning rate [LoRA: 1e-4; --full: by model size, 1e-5 at 7B, up "
                     "to 2e-3 for a few million parameters]")
HeldOutOpt = typer.Option(0.1, "--heldout-share", min=0.0, max=0.9, help="Share of the documents kept out of "
                          "training to judge the new model on (0: no check)")
QueriesOpt = typer.Option(None, "--queries", help="Your own judged queries for the check: JSONL {query, pos: "
                          "[relevant passage texts]}")
KeepBestOpt = typer.Option(False, "--keep-best", help="Keep the checkpoint that scored best on the held-out check "
                           "(scored at every --save-every), not the last one")


def _train_config(output, base, task, **kw):
    from ..train.trainer import TrainConfig, default_bow_weight, default_lr

    if kw.get("lr") is None:
        kw["lr"] = default_lr(base, kw.get("full", False))
    if "bow_weight" in kw and kw["bow_weight"] is None:
        kw["bow_weight"] = default_bow_weight(base, kw.get("full", False))
    return TrainConfig(output=Path(output), base=base, task=task, **kw)


def _train_dtype(value: str | None) -> str | None:
    dtype = parse_dtype(value)
    if dtype == "float16":
        fail("--dtype float16 cannot train: its gradients underflow without loss scaling, which llara-search does "
             "not do; use bfloat16 (same memory) or float32", 2)
    return dtype


def _check_training(cfg) -> None:
    """The training memory check, before any output or side index is written (the trainer checks again)."""
    from ..train.trainer import check_training_memory

    check_training_memory(cfg)


def _train_report(card: dict, output: Path, as_json: bool) -> None:
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only the first process reports
        return
    if as_json:
        print_json({k: v for k, v in card.items() if k != "history"} | {"output": str(output)})
        return
    out.print(f"[bold]{card['task']}[/]: {card['steps']} steps, loss {card['loss_first']:.4f} → "
              f"{card['loss_last']:.4f}, {card['tokens_per_second']:.0f} tokens/s, {card['seconds']:.0f}s")
    out.print(term.text(f"adapter: {output} · card: {output / 'TRAINING.md'}"))
    if card.get("verdict"):
        from ..train.verdict import sentence

        out.print(term.text(sentence(card["verdict"], output, bool(card.get("full")))))


@guard
def train(
    output: Path = typer.Option(..., "--output", help="Folder for the adapter, checkpoints and training card"),
    index: Optional[Path] = typer.Option(None, "--index", help="Train on the chunks of this index"),
    corpus: List[Path] = typer.Option([], "--corpus", help="...or on these files/folders (repeatable)"),
    base: Optional[str] = typer.Option(None, "--base", help="Base model [default: the index's model, else "
                                       "$LLARA_SEARCH_MODEL or BAAI/LLARA-passage]"),
    lora_r: int = LoraR, lora_alpha: int = LoraAlpha, lora_dropout: float = LoraDropout,
    full: bool = FullOpt,
    loss: str = typer.Option("llara", "--loss", help="llara (EBAE + EBAR + next-token, the method) | causal "
                             "(next-token alone: the plain-LLM baseline, for comparisons)"),
    lr: Optional[float] = LrOpt,
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the pairs (ignored with --max-steps)"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    cutoff_len: int = typer.Option(128, "--cutoff-len", min=48, help="Tokens per training sequence (spec: 128)"),
    keep_stopwords: bool = typer.Option(False, "--keep-stopwords", help="Keep stopwords in the bag-of-words targets"),
    ebar_target: str = typer.Option("next", "--ebar-target", help="next (EBAR predicts the next chunk, as the "
                                    "released data) | following (the text after what the model reads: the rest of "
                                    "the chunk, then the next one; for corpora of one short chunk per document)"),
    bow_weight: Optional[float] = typer.Option(None, "--bow-weight", min=0.0, help="Weight of each bag-of-words "
                                               "loss (EBAE, EBAR) against the next-token loss [the released 0.1; "
                                               "3 with --full on a model under 1B parameters, as measured by "
                                               "benchmarks/adapt.py]"),
    save_every: int = typer.Option(100, "--save-every", min=0, help="Checkpoint every N steps (0: only at the end)"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --output"),
    merge: bool = typer.Option(False, "--merge", help="Also write a merged model to <output>/merged"),
    seed: int = typer.Option(42, "--seed"),
    heldout_share: float = HeldOutOpt, queries: Optional[Path] = QueriesOpt, keep_best: bool = KeepBestOpt,
    dtype: str = DtypeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Adapt the encoder to your corpus without labels (LLaRA's EBAE + EBAR pretext task), then judge it against
    the current model on held-out documents of the same corpus."""
    from ..encoder import DEFAULT_MODEL, load_tokenizer
    from ..identity import TEXT_ONLY
    from ..train.data import TrainDataError, pairs_from_passages
    from ..train.heldout import build_check, documents_from_corpus, documents_from_index

    dtype = _train_dtype(dtype)
    if (index is None) == (not corpus):
        fail("give either --index DIR (train on its chunks) or --corpus PATH... (train on files)", 2)
    if loss not in ("llara", "causal"):
        fail(f"--loss must be llara or causal, not {loss!r}", 2)
    if ebar_target not in ("following", "next"):
        fail(f"--ebar-target must be following or next, not {ebar_target!r}", 2)
    current_adapter = current_model = None
    if index is not None:
        engine = open_engine(index, None)
        model = engine.info.get("model")
        base = base or (model if model and model != TEXT_ONLY else None)
        if base == model:  # judged against what the index encodes with today
            current_adapter = engine.info.get("adapter")
        docs = documents_from_index(engine)
        source = f"index {engine.paths.root}"
    else:
        missing = [str(p) for p in corpus if not p.exists()]
        if missing:
            fail(f"no such file or folder: {missing[0]}", 2)
        base = base or os.environ.get("LLARA_SEARCH_MODEL") or DEFAULT_MODEL
        _check_training(_train_config(output, base, "pretext", lora_r=lora_r, batch_size=batch_size,
                                      cutoff_len=cutoff_len, dtype=dtype))  # before the tokenizer is fetched
        docs = documents_from_corpus(corpus, load_tokenizer(base))
        source = "corpus " + ", ".join(str(p) for p in corpus)
    if not base:
        fail("this index has no model (text-only); name the model to adapt with --base", 2)
    try:
        train_docs, check = build_check(docs, share=heldout_share, seed=seed, queries_file=queries)
    except (TrainDataError, ValueError) as exc:
        fail(str(exc), 2)
    pairs = pairs_from_passages([d.passages() for d in train_docs])
    if not pairs:
        fail("no text to train on: the index or corpus has no chunks", 2)
    cfg = _train_config(output, base, "pretext", lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                        lr=lr, epochs=epochs, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum,
                        cutoff_len=cutoff_len, remove_stopwords=not keep_stopwords, save_every=save_every,
                        resume=resume, merge=merge, seed=seed, data_source=source, dtype=dtype, full=full, loss=loss,
                        ebar_target=ebar_target, bow_weight=bow_weight)
    _check_training(cfg)
    from ..train.checked import run_checked

    card = run_checked(cfg, pairs, check, keep_best=keep_best, current_adapter=current_adapter,
                       current_model=current_model, show_progress=not as_json and err.is_terminal, quiet=as_json)
    _train_report(card, output, as_json)


@guard
def finetune(
    train_data: Path = typer.Option(..., "--train", help="JSONL {query, pos: [...], neg: [...]} or a BEIR folder"),
    output: Path = typer.Option(..., "--output", help="Folder for the adapter, checkpoints and training card"),
    split: str = typer.Option("train", "--split", help="BEIR qrels split to train on"),
    index: Optional[Path] = typer.Option(None, "--index", help="Mine hard negatives from this index [BEIR default: "
                                         "a BM25 index of the corpus]"),
    base: Optional[str] = typer.Option(None, "--base", help="Base model [default: the index's model, else "
                                       "$LLARA_SEARCH_MODEL or BAAI/LLARA-passage]"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="Continue from this adapter (e.g. `train`'s)"),
    lora_r: int = LoraR, lora_alpha: int = LoraAlpha, lora_dropout: float = LoraDropout,
    full: bool = FullOpt,
    lr: Optional[float] = LrOpt,
    epochs: float = typer.Option(1.0, "--epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Queries per step and process"),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    group_size: int = typer.Option(16, "--group-size", min=1, help="1 positive + N-1 hard negatives per query"),
    temperature: float = typer.Option(0.01, "--temperature", min=1e-4),
    query_max_len: int = typer.Option(64, "--query-max-len", min=24),
    passage_max_len: int = typer.Option(160, "--passage-max-len", min=24),
    save_every: int = typer.Option(100, "--save-every", min=0),
    resume: bool = typer.Option(False, "--resume"),
    merge: bool = typer.Option(False, "--merge"),
    seed: int = typer.Option(42, "--seed"),
    heldout_share: float = HeldOutOpt, keep_best: bool = KeepBestOpt,
    dtype: str = DtypeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Contrastive fine-tuning (InfoNCE, τ=0.01) on labelled queries, with hard negatives mined from an index."""
    from ..encoder import DEFAULT_MODEL
    from ..identity import TEXT_ONLY
    from ..eval import BeirError
    from ..train.data import TrainDataError, examples_from_beir, examples_from_jsonl

    dtype = _train_dtype(dtype)
    if not train_data.exists():
        fail(f"no such file or folder: {train_data}", 2)
    engine = open_engine(index, None, dtype=dtype) if index is not None else None
    if engine is not None and not base:
        m = engine.info.get("model")
        base = m if m and m != TEXT_ONLY else None
    base = base or os.environ.get("LLARA_SEARCH_MODEL") or DEFAULT_MODEL
    current_adapter = str(adapter) if adapter else None
    if engine is not None and adapter is None and engine.info.get("model") == base:
        current_adapter = engine.info.get("adapter")
    shape = dict(batch_size=batch_size, group_size=group_size, query_max_len=query_max_len,
                 passage_max_len=passage_max_len, lora_r=lora_r, dtype=dtype)
    _check_training(_train_config(output, base, "contrastive", **shape))  # before hard negatives are mined
    try:
        if train_data.is_dir():
            if engine is None:  # BM25 hard negatives, as for the LLARA-beir checkpoint
                from ..eval import load_beir
                from ..layout import default_index_dir

                data = load_beir(train_data, split)
                engine = open_engine(default_index_dir().parent / "eval" / f"{data.name}-bm25", None, create=True,
                                     model=TEXT_ONLY)
                engine.ingest_records(data.corpus(), f"beir:{data.name}", model=TEXT_ONLY)
            mode = "bm25" if engine.info.get("model") == TEXT_ONLY else "dense"

            def search(queries, k):
                return [list(dict.fromkeys(h.doc_key for h in hits if h.doc_key))
                        for hits in engine.search_many(queries, k=min(1000, 3 * k), mode=mode, collapse=False)]

            examples = examples_from_beir(train_data, split, search)
            source = f"BEIR {train_data} ({split}), negatives mined by {mode} from {engine.paths.root}"
        else:
            examples = examples_from_jsonl(train_data)
            source = f"JSONL {train_data}"
    except (TrainDataError, BeirError) as exc:
        fail(str(exc), 2)
    cfg = _train_config(output, base, "contrastive", adapter=str(adapter) if adapter else None, lora_r=lora_r,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, lr=lr, epochs=epochs, max_steps=max_steps,
                        batch_size=batch_size, grad_accum=grad_accum, group_size=group_size,
                        temperature=temperature, query_max_len=query_max_len, passage_max_len=passage_max_len,
                        save_every=save_every, resume=resume, merge=merge, seed=seed, data_source=source, dtype=dtype,
                        full=full)
    from ..train.checked import run_checked, split_examples

    examples, check = split_examples(examples, heldout_share, seed)
    card = run_checked(cfg, examples, check, keep_best=keep_best, current_adapter=current_adapter,
                       current_model=None, show_progress=not as_json and err.is_terminal, quiet=as_json)
    _train_report(card, output, as_json)


@guard
def reencode(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
             adapter: Optional[Path] = typer.Option(None, "--adapter", help="peft adapter folder (omit: the base "
                                                    "model alone)"),
             model: Optional[str] = typer.Option(None, "--model", help="Another whole model of the same tokenizer "
                                                 "and width, e.g. what `train --full` wrote [the index's own]"),
             force: bool = ForceOpt, dtype: str = DtypeOpt, as_json: bool = JsonOpt) -> None:
    """Re-encode every chunk with the index's model (or --model) and an adapter into a new generation; queries
    follow."""
    dtype = parse_dtype(dtype)
    check_switch(adapter or model, force)

    def run(pool, device):
        engine = open_engine(index, db_url, dtype=dtype)  # rank 0 alone: the other processes only encode
        engine.pool, engine.device = pool, device
        with (nullcontext() if as_json or not err.is_terminal else IngestProgress()) as progress:
            return engine, engine.reencode(str(adapter) if adapter else None, progress, model=model)

    engine, r = with_encode_pool(run)
    if as_json:
        print_json(r.to_dict() | {"fingerprint": engine.info.get("fingerprint")})
    else:
        out.print(f"re-encoded {r.chunks_encoded} chunks into generation {r.generation} ({r.index_type}) in "
                  f"{r.seconds:.1f}s; fingerprint {engine.info.get('fingerprint')}")
        for w in r.index_warnings:
            out.print(Text(f"warning: {w}", style="yellow"))
