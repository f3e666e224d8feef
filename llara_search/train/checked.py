"""A retrain that proves itself: the held-out check set aside before training, checkpoints scored on a cheap
subset of it (and the best one kept on request), and the verdict on the whole check at the end.

The CLI's `train` and `finetune` call this; the training loop itself (trainer.py) only offers a checkpoint hook.
"""

from __future__ import annotations

import gc
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Sequence

from . import verdict as verdicts
from .heldout import DEFAULT_SHARE, MIN_PAIRS, HeldOutCheck

CHECKPOINT_QUERIES = 50  # a checkpoint is scored on this many held-out pairs, dense only


def check_cost(check: HeldOutCheck) -> str:
    """What the check will cost, said before training: texts encoded by each of the two models."""
    chars = sum(len(u) for u in check.units) + sum(len(q) for q in check.queries)
    return (f"the check encodes {len(check.units)} held-out passages and {len(check.queries)} queries with the "
            f"current and the new model (~{chars // 4:,} tokens each), not the whole index")


def _encoder_fn(enc):
    return lambda texts, kind: enc.encode(list(texts), kind)


def load_encoder(base: str, adapter: str | None, dtype: str | None, full_model: str | None = None):
    from ..encoder import LlaraEncoder

    if full_model:
        return LlaraEncoder.from_pretrained(full_model, dtype=dtype, show_progress=False)
    return LlaraEncoder.from_pretrained(base, adapter=adapter, dtype=dtype, show_progress=False)


class CheckpointJudge:
    """The trainer's checkpoint hook: scores the model in memory on a subset of the check; keeps the best."""

    def __init__(self, check: HeldOutCheck, output: Path, keep_best: bool, base: str, quiet: bool):
        self.check = check.subset(CHECKPOINT_QUERIES)
        self.output = Path(output)
        self.keep_best = keep_best
        self.base = base
        self.quiet = quiet
        self.scores: list[dict] = []
        self.best: dict | None = None

    def __call__(self, step: int, model, tokenizer, final: bool = False) -> None:
        from ..encoder import LlaraEncoder
        from .trainer import _decoder

        decoder = _decoder(model)
        p = next(decoder.parameters())
        enc = LlaraEncoder(decoder, tokenizer, name=self.base, device=p.device, dtype=p.dtype, show_progress=False)
        try:
            score = verdicts.score_model(_encoder_fn(enc), self.check)["dense"]["ndcg@10"].mean()
        finally:
            model.train()
        row = {"step": step, "ndcg@10": round(float(score), 4), "final": final}
        self.scores.append(row)
        if not self.quiet:
            print(f"step {step}: held-out nDCG@10 {row['ndcg@10']:.4f} on {len(self.check.queries)} pairs",
                  file=sys.stderr, flush=True)
        if self.best is None or row["ndcg@10"] > self.best["ndcg@10"]:
            self.best = row
            if self.keep_best and not final:
                best = self.output / "best"
                shutil.rmtree(best, ignore_errors=True)
                model.save_pretrained(best)
                tokenizer.save_pretrained(best)

    def restore_best(self, card: dict) -> dict | None:
        """With --keep-best: the best checkpoint's weights replace the final ones when it scored higher."""
        best_dir = self.output / "best"
        kept = None
        if self.keep_best and self.best and not self.best["final"] and best_dir.is_dir():
            for f in best_dir.iterdir():
                if f.is_file():
                    shutil.copy2(f, self.output / f.name)
            kept = dict(self.best)
        shutil.rmtree(best_dir, ignore_errors=True)
        card["checkpoint_scores"] = self.scores
        card["kept_best"] = kept
        return kept


def final_verdict(check: HeldOutCheck, *, base: str, current_adapter: str | None, current_model: str | None,
                  output: Path, full: bool, dtype: str | None, seed: int) -> dict:
    """Current model vs the new one on the whole check; recorded with the new adapter (verdict.json)."""
    if not check.enough:
        v = verdicts.judge(None, None, check)  # not judged: says why
    else:
        gc.collect()
        current = load_encoder(base, current_adapter, dtype, current_model)
        cur_scores = _scores(current, check)
        del current
        gc.collect()
        new = load_encoder(base, None if full else str(output), dtype, str(output) if full else None)
        new_scores = _scores(new, check)
        del new
        v = verdicts.decide(cur_scores, new_scores, seed=seed)
        v["check"] = check.report
    v["current"] = {"model": current_model or base, "adapter": current_adapter}
    v["new"] = str(Path(output).resolve())
    verdicts.save(output, v)
    card_path = Path(output) / "training_card.json"
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        card["verdict"] = v
        card_path.write_text(json.dumps(card, indent=2) + "\n")
    return v


def _scores(enc, check: HeldOutCheck) -> dict:
    bm25 = verdicts.bm25_rankings(check.units, check.queries)
    return verdicts.score_model(_encoder_fn(enc), check, bm25)


# ---------------------------------------------------------------------------------------------------- finetune
def split_examples(examples: Sequence, share: float = DEFAULT_SHARE, seed: int = 0) -> tuple[list, HeldOutCheck]:
    """Fine-tuning's check: a seeded-hash share of the labelled queries held out; each is searched among the
    held-out queries' positives and negatives (mined from the index, so they are the hard ones)."""
    from .heldout import MIN_DOCUMENTS

    def rank(e) -> str:
        return hashlib.sha256(f"{seed}\0{e.query}".encode("utf-8", "surrogatepass")).hexdigest()

    check = HeldOutCheck()
    n = round(share * len(examples)) if len(examples) >= MIN_DOCUMENTS else 0
    held_ids: set[int] = set()
    if n >= MIN_PAIRS:  # fewer could not give a verdict: every labelled query trains instead
        held_ids = set(sorted(range(len(examples)), key=lambda i: rank(examples[i]))[:n])
    where: dict[str, int] = {}
    for i in sorted(held_ids):
        e = examples[i]
        rel = set()
        for text, relevant in [(p, True) for p in e.pos] + [(x, False) for x in e.neg]:
            if text not in where:
                where[text] = len(check.units)
                check.units.append(text)
            if relevant:
                rel.add(where[text])
        check.queries.append(e.query)
        check.relevant.append(rel)
    train = [e for i, e in enumerate(examples) if i not in held_ids]
    check.report = {"of": "labelled queries", "documents": len(examples), "heldout_documents": len(held_ids), "share": share, "seed": seed,
                    "pairs": len(check.queries), "units": len(check.units), "enough": check.enough,
                    "sources": ["held-out labelled queries"] if held_ids else [], "dropped": {}}
    return train, check


__all__ = ["CheckpointJudge", "check_cost", "final_verdict", "split_examples"]


def run_checked(cfg, examples: Sequence, check: HeldOutCheck, *, keep_best: bool, current_adapter: str | None,
                current_model: str | None, show_progress: bool, quiet: bool) -> dict:
    """Train with the check: say what it is and costs first, judge checkpoints, end with the verdict in the card."""
    from .trainer import train

    if not quiet:
        print(check.summary(), file=sys.stderr, flush=True)
        if check.enough:
            print(check_cost(check), file=sys.stderr, flush=True)
    judge = None
    if check.enough and (cfg.save_every or keep_best):
        judge = CheckpointJudge(check, cfg.output, keep_best, cfg.base, quiet)
    card = train(cfg, examples, show_progress=show_progress, on_checkpoint=judge)
    if judge is not None:
        judge.restore_best(card)
    card["heldout"] = check.report
    card["verdict"] = final_verdict(check, base=cfg.base, current_adapter=current_adapter,
                                    current_model=current_model, output=Path(cfg.output), full=cfg.full,
                                    dtype=cfg.dtype, seed=cfg.seed)
    return card


__all__ += ["run_checked"]
