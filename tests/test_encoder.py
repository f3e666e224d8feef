"""The encoder against an independent implementation of llara-spec §1 (the README's own recipe)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from llara_search.encoder import (
    EBAE_SUFFIX,
    EBAR_SUFFIX,
    LlaraEncoder,
    MissingLlaraTokensError,
    add_llara_tokens,
)

EBAE_IDS = [9162, 19138, 675, 278, 2038, 13382, 2629, 9475, 3838, 29901, 29871,
            32008, 32011, 32004, 32013, 32007, 32005, 32002, 32014]
EBAR_IDS = [9162, 8500, 278, 1494, 13382, 2629, 9475, 3838, 29901, 29871,
            32000, 32009, 32012, 32001, 32010, 32003, 32006, 32015]
TV3_TEXT = ("The llama is a domesticated South American camelid, widely used as a meat and pack animal by "
            "Andean cultures since the pre-Columbian era.")
TV3_TEXT_IDS = [450, 11148, 3304, 338, 263, 21849, 630, 4275, 3082, 3949, 295, 333, 29892, 17644, 1304, 408, 263,
                27654, 322, 4870, 13019, 491, 1126, 29872, 273, 4185, 1973, 1951, 278, 758, 29899, 1625, 3774, 713,
                3152, 29889]


def reference_embeddings(model, tokenizer, texts, kind, max_length=512):
    """Spec §1 written the way the LLaRA README does it: separate pieces, tokenizer.pad, hidden_states[-1]."""
    suffix = EBAE_SUFFIX if kind == "passage" else EBAR_SUFFIX
    prefix_ids = tokenizer('"')["input_ids"]
    suffix_ids = tokenizer(suffix)["input_ids"][1:]
    feats = []
    for t in texts:
        ids = tokenizer(t, max_length=max_length, truncation=True, add_special_tokens=False,
                        split_special_tokens=True)["input_ids"]
        ids = prefix_ids + ids + suffix_ids
        feats.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    tokenizer.pad_token = tokenizer.unk_token
    tokenizer.padding_side = "left"
    batch = tokenizer.pad(feats, padding=True, pad_to_multiple_of=8, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True, return_dict=True)
    emb = out.hidden_states[-1][:, -8:, :].mean(dim=1)
    return torch.nn.functional.normalize(emb, dim=-1).numpy(), batch


def _texts(tokenizer, n, seed=0):
    """Texts from 1 to over 600 tokens."""
    rng = random.Random(seed)
    words = ("retrieval llama passage vector index the of and query search model token camelid JAX HAProxy "
             "configuration gradient 42 3.14 naïve café — «quotes» 東京 emoji 🦙").split()
    out = ["x"]
    while len(out) < n:
        k = rng.choice([1, 3, 10, 40, 120, 300, 700])
        out.append(" ".join(rng.choice(words) for _ in range(k)))
    return out


@pytest.fixture(scope="module")
def ref_model(tiny_model):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(tiny_model).eval(), AutoTokenizer.from_pretrained(tiny_model)


def test_prompt_ids_match_spec_tv1(encoder, real_tokenizer_dir):
    assert encoder.prompt.prefix == [1, 376]
    assert encoder.prompt.ebae_suffix == EBAE_IDS
    assert encoder.prompt.ebar_suffix == EBAR_IDS
    assert encoder.prompt.pad_id == 0


def test_query_and_passage_layout_match_spec_tv2_tv3(ref_model, real_tokenizer_dir):
    model, tok = ref_model
    _, batch = reference_embeddings(model, tok, ["What is llama?"], "query")
    assert batch["input_ids"][0].tolist() == [0] * 7 + [1, 376, 1724, 338, 11148, 3304, 29973] + EBAR_IDS
    assert batch["attention_mask"][0].tolist() == [0] * 7 + [1] * 25
    _, batch = reference_embeddings(model, tok, [TV3_TEXT], "passage")
    assert batch["input_ids"][0].tolist() == [0] * 7 + [1, 376] + TV3_TEXT_IDS + EBAE_IDS


def test_our_sequences_equal_spec_layout(encoder, real_tokenizer_dir):
    from llara_search.encoder.prompts import build_inputs, tokenize_texts

    [q] = build_inputs(encoder.prompt, tokenize_texts(encoder.tokenizer, ["What is llama?"], 512), "query")
    assert q == [1, 376, 1724, 338, 11148, 3304, 29973] + EBAR_IDS
    [p] = build_inputs(encoder.prompt, tokenize_texts(encoder.tokenizer, [TV3_TEXT], 512), "passage")
    assert p == [1, 376] + TV3_TEXT_IDS + EBAE_IDS


@pytest.mark.parametrize("kind", ["passage", "query"])
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_equals_independent_reference(encoder, ref_model, kind, batch_size):
    model, tok = ref_model
    texts = _texts(tok, 24, seed=batch_size)
    lengths = [len(x) for x in tok(texts, add_special_tokens=False)["input_ids"]]
    assert min(lengths) <= 1 and max(lengths) > 600
    ref = np.concatenate([reference_embeddings(model, tok, [t], kind)[0] for t in texts])
    ours = encoder.encode(texts, kind, batch_size=batch_size)
    assert ours.dtype == np.float32 and ours.shape == (len(texts), encoder.dim)
    assert np.abs(ours - ref).max() <= 1e-4
    # any order: shuffled input gives the same rows, shuffled
    perm = np.random.default_rng(batch_size).permutation(len(texts))
    shuffled = encoder.encode([texts[i] for i in perm], kind, batch_size=batch_size)
    assert np.abs(shuffled - ref[perm]).max() <= 1e-4


def test_reference_batched_matches_too(encoder, ref_model):
    """The README recipe batching everything at once (one long pad) agrees with our length-sorted batches."""
    model, tok = ref_model
    texts = _texts(tok, 12, seed=7)
    ref, _ = reference_embeddings(model, tok, texts, "passage")
    assert np.abs(encoder.encode_passages(texts) - ref).max() <= 1e-4


def test_embedding_independent_of_batch_partners(encoder):
    q = "What is llama?"
    alone = encoder.encode_queries([q])[0]
    for partners in (["Who domesticated the llama and when did it happen in South America?"],
                     ["x " * 300, "short"], ["a"] * 9):
        together = encoder.encode_queries(partners + [q] + partners, batch_size=len(partners) * 2 + 1)
        assert np.abs(together[len(partners)] - alone).max() <= 1e-5


def test_small_token_budget_gives_same_vectors(tiny_model, encoder):
    texts = ["alpha beta " * k for k in (1, 5, 50, 200)]
    small = LlaraEncoder.from_pretrained(str(tiny_model), max_batch_tokens=64, show_progress=False)
    assert np.abs(small.encode_passages(texts) - encoder.encode_passages(texts)).max() <= 1e-5


def test_vectors_are_normalized_and_prompts_differ(encoder):
    p = encoder.encode_passages(["a passage about llamas"])
    q = encoder.encode_queries(["a passage about llamas"])
    assert np.allclose(np.linalg.norm(p, axis=1), 1, atol=1e-5)
    assert np.abs(p - q).max() > 1e-3  # EBAE and EBAR prompts give different vectors


def test_truncation_to_max_length(tiny_model):
    enc = LlaraEncoder.from_pretrained(str(tiny_model), max_length=16, show_progress=False)
    base = "word " * 16
    a = enc.encode_passages([base + "tail one two three"])
    b = enc.encode_passages([base + "something entirely different " * 40])
    assert np.abs(a - b).max() <= 1e-6  # only the first 16 text tokens count
    c = enc.encode_passages(["word " * 3])
    assert np.abs(a - c).max() > 1e-4


def test_literal_special_token_strings_stay_text(encoder):
    from llara_search.encoder.prompts import tokenize_texts

    [ids] = tokenize_texts(encoder.tokenizer, ["a <s1> b </s> c <s> <s16>"], 512)
    special = set(encoder.tokenizer.all_special_ids)
    assert not special & set(ids)
    literal = encoder.encode_passages(["see <s1> here"])
    assert np.isfinite(literal).all()


def test_empty_input_and_wrong_types(encoder):
    assert encoder.encode_passages([]).shape == (0, encoder.dim)
    with pytest.raises(TypeError):
        encoder.encode_passages("a single string")
    with pytest.raises(TypeError):
        encoder.encode_passages(["ok", None])


def test_missing_llara_tokens_is_a_clear_error():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    t.train_from_iterator(["hello world"], trainers.BpeTrainer(vocab_size=50, special_tokens=["<unk>", "<s>", "</s>"]))
    base = PreTrainedTokenizerFast(tokenizer_object=t, bos_token="<s>", eos_token="</s>", unk_token="<unk>")

    def llama(vocab):
        return LlamaModel(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2))

    n = len(base)
    with pytest.raises(MissingLlaraTokensError, match="my-base-model.*add_llara_tokens"):
        LlaraEncoder(llama(n), base, name="my-base-model", device=torch.device("cpu"), dtype=torch.float32)
    model = llama(n)
    assert add_llara_tokens(base, model) == 16
    assert model.get_input_embeddings().weight.shape[0] == n + 16
    assert add_llara_tokens(base, model) == 0
    enc = LlaraEncoder(model, base, name="fixed", device=torch.device("cpu"), dtype=torch.float32)
    assert enc.encode_passages(["hello world"]).shape == (1, 32)


def test_nan_output_is_reported(tiny_model):
    enc = LlaraEncoder.from_pretrained(str(tiny_model), show_progress=False)
    with torch.no_grad():
        enc.model.norm.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="NaN"):
        enc.encode_passages(["text"])


def test_fingerprint_is_stable_and_tracks_weights_and_settings(tiny_model, other_tiny_model, encoder):
    again = LlaraEncoder.from_pretrained(str(tiny_model), show_progress=False)
    assert again.fingerprint == encoder.fingerprint
    other = LlaraEncoder.from_pretrained(str(other_tiny_model), show_progress=False)
    assert other.fingerprint != encoder.fingerprint
    shorter = LlaraEncoder.from_pretrained(str(tiny_model), max_length=128, show_progress=False)
    assert shorter.fingerprint != encoder.fingerprint


def test_adapter_changes_embeddings_and_fingerprint(tmp_path, tiny_model, encoder):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"]))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = LlaraEncoder.from_pretrained(str(tiny_model), adapter=tmp_path / "adapter", show_progress=False)
    assert adapted.fingerprint != encoder.fingerprint
    texts = ["llamas carry packs", "What is llama?"]
    assert np.abs(adapted.encode_passages(texts) - encoder.encode_passages(texts)).max() > 1e-3
    # the merged weights are what the adapter says: compare with peft's own (unmerged) forward
    peft_model.eval()
    ref = reference_embeddings(peft_model.base_model.model.model, adapted.tokenizer, texts, "passage")[0]
    assert np.abs(adapted.encode_passages(texts) - ref).max() <= 1e-4


def test_missing_adapter_folder_is_clear(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        LlaraEncoder.from_pretrained(str(tiny_model), adapter=tmp_path)


def test_dtype_and_hidden_size(tmp_path, tokenizer_dir):
    from llara_search.testing import make_tiny_llara

    d = make_tiny_llara(tmp_path / "m", tokenizer_dir=tokenizer_dir, hidden_size=48, num_heads=2)
    enc = LlaraEncoder.from_pretrained(str(d), dtype="bfloat16", show_progress=False)
    assert enc.dim == 48 and enc.dtype == torch.bfloat16
    v = enc.encode_passages(["bf16 still returns float32"])
    assert v.dtype == np.float32 and v.shape == (1, 48)
    fp32 = LlaraEncoder.from_pretrained(str(d), show_progress=False).encode_passages(["bf16 still returns float32"])
    assert np.abs(v - fp32).max() < 0.05  # bf16 is close, not equal
    with pytest.raises(ValueError, match="unknown dtype"):
        LlaraEncoder.from_pretrained(str(d), dtype="int3")


def test_offline_hub_id_fails_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(OSError, match="cannot load model 'BAAI/LLARA-passage'"):
        LlaraEncoder.from_pretrained("BAAI/LLARA-passage")


def test_bare_clone_fallback_tokenizer_model(fallback_model):
    enc = LlaraEncoder.from_pretrained(str(fallback_model), show_progress=False)
    v = enc.encode_queries(["what is a llama", "x"])
    assert v.shape == (2, enc.dim) and np.isfinite(v).all()
    assert len(enc.prompt.ebae_suffix) > 8 and enc.prompt.ebae_suffix[-8:] != enc.prompt.ebar_suffix[-8:]
