"""The LLaRA prompts and how they are turned into token ids.

Everything here follows llara-spec §1: the pieces are tokenized *separately* and their ids concatenated, because
that is what the released checkpoints were trained and evaluated with; tokenizing the formatted string as a whole
gives different ids and therefore different embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

PREFIX = '"'
EBAE_SUFFIX = '", summarize the above passage within eight words: <s1><s2><s3><s4><s5><s6><s7><s8>'
EBAR_SUFFIX = '", predict the following passage within eight words: <s9><s10><s11><s12><s13><s14><s15><s16>'
LLARA_TOKENS = [f"<s{i}>" for i in range(1, 17)]
EBAE_TOKENS = LLARA_TOKENS[:8]
EBAR_TOKENS = LLARA_TOKENS[8:]
N_POOL = 8  # the embedding is the mean over the last 8 positions (the 8 special tokens)


class MissingLlaraTokensError(ValueError):
    """The tokenizer does not know the 16 LLaRA tokens, so the prompts cannot be built."""


def missing_llara_tokens(tokenizer) -> list[str]:
    vocab = tokenizer.get_vocab()
    return [t for t in LLARA_TOKENS if t not in vocab]


def add_llara_tokens(tokenizer, model=None) -> int:
    """Add `<s1>`…`<s16>` to a base tokenizer (and resize the model's embeddings) before LLaRA training.

    Returns the number of tokens added. New ids are appended in `<s1>`…`<s16>` order; the released BAAI checkpoints
    use another order, which only matters when loading their weights (and they already carry the tokens).
    """
    missing = missing_llara_tokens(tokenizer)
    if not missing:
        return 0
    from transformers import AddedToken

    added = tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing],
                                 special_tokens=True)
    if model is not None:
        model.resize_token_embeddings(len(tokenizer))
    return added


@dataclass(frozen=True)
class PromptIds:
    """Pre-tokenized prompt pieces for one tokenizer."""

    prefix: list[int]
    ebae_suffix: list[int]
    ebar_suffix: list[int]
    pad_id: int

    @classmethod
    def for_tokenizer(cls, tokenizer, name: str = "the model") -> "PromptIds":
        missing = missing_llara_tokens(tokenizer)
        if missing:
            raise MissingLlaraTokensError(
                f"the tokenizer of {name} lacks the LLaRA tokens {missing[0]}…; it is not a LLaRA checkpoint. "
                "Use a LLaRA model (e.g. BAAI/LLARA-passage), or add the tokens to a base model with "
                "llara_search.encoder.add_llara_tokens(tokenizer, model) and adapt it with `llara-search train`."
            )
        bos = tokenizer.bos_token_id
        prefix_ids = _ids(tokenizer, PREFIX)
        prefix = ([bos] if bos is not None else []) + prefix_ids
        pad = tokenizer.pad_token_id if tokenizer.unk_token_id is None else tokenizer.unk_token_id
        if pad is None:
            pad = 0
        return cls(prefix, _ids(tokenizer, EBAE_SUFFIX), _ids(tokenizer, EBAR_SUFFIX), int(pad))

    def suffix(self, kind: str) -> list[int]:
        if kind == "passage":
            return self.ebae_suffix
        if kind == "query":
            return self.ebar_suffix
        raise ValueError(f"kind must be 'passage' or 'query', not {kind!r}")


def _ids(tokenizer, text: str) -> list[int]:
    # The prompt strings contain the special tokens on purpose, so they are NOT split here.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_texts(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Tokenize user texts alone: no BOS/EOS, literal `<s1>`/`</s>` kept as text, truncated to `max_length`."""
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return [list(ids[:max_length]) for ids in enc]


def pad_left(seqs: Sequence[Sequence[int]], pad_id: int, multiple: int = 8):
    """(input_ids, attention_mask) tensors, left-padded with `pad_id` to a multiple of 8 (spec §1)."""
    import torch

    length = (max(len(s) for s in seqs) + multiple - 1) // multiple * multiple
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, length - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[row, length - len(s):] = 1
    return ids, mask


def build_inputs(prompt: PromptIds, text_ids: Sequence[Sequence[int]], kind: str) -> list[list[int]]:
    suffix = prompt.suffix(kind)
    return [prompt.prefix + list(ids) + suffix for ids in text_ids]
