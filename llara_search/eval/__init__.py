"""Evaluation on BEIR-format datasets (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)."""

from .beir import METRICS, BeirData, BeirError, evaluate, load_beir, read_trec, score_run

__all__ = ["BeirData", "BeirError", "METRICS", "evaluate", "load_beir", "read_trec", "score_run"]
