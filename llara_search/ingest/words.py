"""A word-level stand-in for the encoder's tokenizer, for text-only (BM25) indexes built with `--model none`.

Such an index has no encoder, yet the chunker still needs something to count and cut by; words and punctuation
marks are the honest unit (a LLaMA tokenizer makes roughly 1.3 tokens per English word).
"""

from __future__ import annotations

import re
from typing import Sequence

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class WordTokenizer:
    """Answers the two calls the chunker makes on a Hugging Face tokenizer, with one id per word."""

    name_or_path = "words"

    def __call__(self, text: str | Sequence[str], add_special_tokens: bool = False, split_special_tokens: bool = True,
                 return_offsets_mapping: bool = False):
        if isinstance(text, str):
            spans = [m.span() for m in _WORD.finditer(text)]
            out = {"input_ids": list(range(len(spans)))}
            if return_offsets_mapping:
                out["offset_mapping"] = spans
            return out
        return {"input_ids": [range(len(_WORD.findall(t))) for t in text]}  # only counted: no list of ids
