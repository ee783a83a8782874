"""Tiny randomly initialised text encoders, saved as offline Hugging Face directories, and
the plain PyTorch computations that sparseir's encodings of them are checked against.

Every tokenizer is trained here on a few sentences with the `tokenizers` library (nothing
is downloaded) and wrapped in its family's own tokenizer class with its real special
tokens. Every model has 2 layers, hidden size 32 and 2 heads, and enough positions for
sparseir's default 256-token documents.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer, SentencePieceUnigramTokenizer, processors

DOC_MAX_LENGTH = 256  # sparseir's defaults
QUERY_MAX_LENGTH = 64
# Above 256 + 2: RoBERTa-style models number positions from padding_idx + 1.
MAX_POSITIONS = 320
HIDDEN = 32
TRAINING_VOCAB_SIZE = 400
# The MLM output bias. Random logits are centred on 0, so nearly every term has a positive
# logit somewhere in a long text; this shift leaves roughly 10% to 90% of the terms of a
# text non-zero, so the comparisons cover both present and absent terms.
OUTPUT_BIAS = -0.2

TRAINING_SENTENCES = [
    "Learned sparse retrieval expands documents and queries into weighted vocabulary terms.",
    "An inverted index stores, for every term, the documents that contain it and their impacts.",
    "The capital of France is Paris, and Paris is also its largest city.",
    "BM25 weighs a term by its frequency in the document and its rarity in the collection.",
    "Query latency depends on the length of the posting lists that must be traversed.",
    "Übersetzung, naïve café, résumé: accents and umlauts are normalised or kept.",
    "日本語の文章と中文句子也应该被正确地切分。",
    "Привет, мир! Разреженный поиск работает быстро.",
    "Ο γρήγορος καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
]

# Texts of very different lengths, so each batch is padded, and one that must be
# truncated for documents (256 tokens) and one for queries (64 tokens).
PARAGRAPH = ("Sparse retrieval models such as SPLADE weigh every vocabulary term for a text; the index "
             "then answers queries with inverted lists, like BM25 but with learned impacts. ")
TEST_TEXTS = [
    "sparse retrieval",
    "The capital of France is Paris; Paris is the capital.",
    PARAGRAPH * 2,
    "bm25",
    PARAGRAPH * 12,
    "Übersetzung naïve café — 日本語の文章 и Привет мир, ο σκύλος.",
]


# --- tokenizers -----------------------------------------------------------------------------

BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# RoBERTa's and XLM-R's own order, which gives the <pad> = 1 their configs assume.
ROBERTA_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]


def wordpiece_tokenizer(tokenizer_class):
    """BERT's pipeline (lower-casing, WordPiece) over a freshly trained vocabulary."""
    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(TRAINING_SENTENCES, vocab_size=TRAINING_VOCAB_SIZE,
                                special_tokens=BERT_SPECIAL_TOKENS)
    return tokenizer_class(vocab=trainer.get_vocab())


def trained_byte_level_bpe(special_tokens: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary and merges of a byte-level BPE trained on TRAINING_SENTENCES."""
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(TRAINING_SENTENCES, vocab_size=TRAINING_VOCAB_SIZE, special_tokens=special_tokens)
    merges = json.loads(trainer.to_str())["model"]["merges"]
    return trainer.get_vocab(), [tuple(merge) for merge in merges]


def roberta_tokenizer():
    vocab, merges = trained_byte_level_bpe(ROBERTA_SPECIAL_TOKENS + ["<mask>"])
    return transformers.RobertaTokenizerFast(vocab=vocab, merges=merges)


def xlm_roberta_tokenizer():
    """A sentencepiece-style Unigram model; like XLM-R, <mask> is the last id."""
    trainer = SentencePieceUnigramTokenizer()
    trainer.train_from_iterator(TRAINING_SENTENCES, vocab_size=TRAINING_VOCAB_SIZE,
                                special_tokens=ROBERTA_SPECIAL_TOKENS, unk_token="<unk>")
    pieces = [tuple(piece) for piece in json.loads(trainer.to_str())["model"]["vocab"]]
    return transformers.XLMRobertaTokenizerFast(vocab=pieces + [("<mask>", 0.0)])


def modernbert_tokenizer():
    """ModernBERT's layout: a byte-level BPE with BERT's special tokens appended at its end."""
    vocab, merges = trained_byte_level_bpe([])
    backend = ByteLevelBPETokenizer(vocab, merges)._tokenizer
    backend.add_special_tokens(["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"])  # the released order
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[(token, backend.token_to_id(token)) for token in ("[CLS]", "[SEP]")])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]")


# --- models -----------------------------------------------------------------------------------

BERT_SIZES = dict(hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * HIDDEN,
                  max_position_embeddings=MAX_POSITIONS)


def bert_config(tokenizer) -> transformers.BertConfig:
    return transformers.BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **BERT_SIZES)


def distilbert_config(tokenizer) -> transformers.DistilBertConfig:
    return transformers.DistilBertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                         dim=HIDDEN, hidden_dim=2 * HIDDEN, n_layers=2, n_heads=2,
                                         max_position_embeddings=MAX_POSITIONS)


def roberta_config(config_class, tokenizer):
    return config_class(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        type_vocab_size=1, **BERT_SIZES)


def modernbert_config(tokenizer) -> transformers.ModernBertConfig:
    # No attn_implementation: it is not saved in config.json, and from_pretrained picks sdpa on CPU.
    return transformers.ModernBertConfig(
        # Like the released model, the embedding is padded past the tokenizer to a multiple of 64.
        vocab_size=-(-len(tokenizer) // 64) * 64,
        hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        # Layer 0 attends globally, layer 1 within 16 tokens: the long texts cross the window.
        global_attn_every_n_layers=2, local_attention=16,
        pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id)


# architecture -> (tokenizer factory, config factory, masked-LM class)
MASKED_LMS = {
    "bert": (partial(wordpiece_tokenizer, transformers.BertTokenizerFast), bert_config,
             transformers.BertForMaskedLM),
    "distilbert": (partial(wordpiece_tokenizer, transformers.DistilBertTokenizerFast), distilbert_config,
                   transformers.DistilBertForMaskedLM),
    "roberta": (roberta_tokenizer, partial(roberta_config, transformers.RobertaConfig),
                transformers.RobertaForMaskedLM),
    "xlm-roberta": (xlm_roberta_tokenizer, partial(roberta_config, transformers.XLMRobertaConfig),
                    transformers.XLMRobertaForMaskedLM),
    "modernbert": (modernbert_tokenizer, modernbert_config, transformers.ModernBertForMaskedLM),
}


def save_tiny_masked_lm(architecture: str, directory: Path, seed: int = 0) -> Path:
    """A randomly initialised masked LM of `architecture` and its tokenizer, in `directory`."""
    make_tokenizer, make_config, model_class = MASKED_LMS[architecture]
    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    model = model_class(make_config(tokenizer)).eval()
    with torch.no_grad():
        model.get_output_embeddings().bias.fill_(OUTPUT_BIAS)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_castorini_unicoil(directory: Path, weights_file: str, seed: int = 0) -> Path:
    """castorini's uniCOIL layout: one state dict with the BERT encoder under `bert.` and
    the token head `tok_proj` (Linear(hidden, 1)), no pooler, no separate head file."""
    tokenizer = wordpiece_tokenizer(transformers.BertTokenizerFast)
    config = bert_config(tokenizer)
    config.architectures = ["UniCoilEncoder"]
    torch.manual_seed(seed)
    encoder = transformers.BertModel(config, add_pooling_layer=False)
    tok_proj = torch.nn.Linear(HIDDEN, 1)
    state = {f"bert.{name}": tensor for name, tensor in encoder.state_dict().items()}
    state.update({f"tok_proj.{name}": tensor for name, tensor in tok_proj.state_dict().items()})
    state = {name: tensor.contiguous() for name, tensor in state.items()}
    if weights_file == "model.safetensors":
        from safetensors.torch import save_file

        save_file(state, directory / weights_file)
    else:
        torch.save(state, directory / weights_file)
    config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_opensearch_idf(directory: Path, seed: int = 0) -> dict[str, float]:
    """idf.json as OpenSearch's inference-free models ship it: {token: weight}, here for every
    other token id (special tokens included, which must still weigh nothing)."""
    vocab = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True).get_vocab()
    rng = np.random.default_rng(seed)
    idf = {token: round(float(rng.uniform(0.5, 8.0)), 4) for token, token_id in vocab.items() if token_id % 2 == 0}
    (directory / "idf.json").write_text(json.dumps(idf, ensure_ascii=False), encoding="utf-8")
    return idf


# --- references -----------------------------------------------------------------------------

def load_tokenizer(directory: Path):
    return transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)


def vocabulary_size(tokenizer) -> int:
    return len(tokenizer.get_vocab())


def special_ids(tokenizer) -> list[int]:
    return sorted(set(tokenizer.all_special_ids))


def padded_batch(tokenizer, texts: list[str], max_length: int):
    return tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")


def splade_reference(directory: Path, texts: list[str], max_length: int) -> np.ndarray:
    """(len(texts), V): max over each text's real tokens of log(1 + relu(logit)), from the
    plain masked-LM forward pass over the padded batch; special tokens 0, V = the tokenizer's size."""
    tokenizer = load_tokenizer(directory)
    model = transformers.AutoModelForMaskedLM.from_pretrained(directory, local_files_only=True).eval()
    batch = padded_batch(tokenizer, texts, max_length)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # The activation is >= 0, so zeroing padded positions takes them out of the max.
    activations = torch.log1p(torch.relu(logits)) * batch["attention_mask"].unsqueeze(-1)
    weights = activations.max(dim=1).values
    weights[:, special_ids(tokenizer)] = 0
    return weights[:, :vocabulary_size(tokenizer)].numpy()


def unicoil_reference(directory: Path, texts: list[str], max_length: int) -> np.ndarray:
    """(len(texts), V): relu(tok_proj(h_t)) of each real token, max over a term's occurrences,
    from the castorini state dict loaded by hand into a pooler-less BertModel."""
    tokenizer = load_tokenizer(directory)
    state = load_state_dict(directory)
    encoder = transformers.BertModel(transformers.BertConfig.from_pretrained(directory), add_pooling_layer=False)
    encoder.load_state_dict({name.removeprefix("bert."): tensor for name, tensor in state.items()
                             if name.startswith("bert.")}, strict=True)
    tok_proj = torch.nn.Linear(encoder.config.hidden_size, 1)
    tok_proj.load_state_dict({"weight": state["tok_proj.weight"], "bias": state["tok_proj.bias"]}, strict=True)
    batch = padded_batch(tokenizer, texts, max_length)
    with torch.no_grad():
        hidden = encoder.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        token_weights = torch.relu(tok_proj(hidden)).squeeze(-1).numpy()
    weights = np.zeros((len(texts), vocabulary_size(tokenizer)), dtype=np.float32)
    for row, (token_ids, mask) in enumerate(zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist())):
        for position, (token_id, real) in enumerate(zip(token_ids, mask)):
            if real:
                weights[row, token_id] = max(weights[row, token_id], token_weights[row, position])
    weights[:, special_ids(tokenizer)] = 0
    return weights


def load_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    if (directory / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(directory / "model.safetensors")
    return torch.load(directory / "pytorch_model.bin", weights_only=True)


def idf_query_reference(directory: Path, idf: dict[str, float], texts: list[str], max_length: int) -> np.ndarray:
    """(len(texts), V): each distinct non-special query token weighs idf[token] (0 if absent)."""
    tokenizer = load_tokenizer(directory)
    weights = np.zeros((len(texts), vocabulary_size(tokenizer)), dtype=np.float32)
    specials = set(special_ids(tokenizer))
    for row, token_ids in enumerate(tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]):
        for token_id in set(token_ids) - specials:
            weights[row, token_id] = idf.get(tokenizer.convert_ids_to_tokens(token_id), 0.0)
    return weights


# --- sparseir's output ------------------------------------------------------------------------

def dense_weights(vectors) -> np.ndarray:
    """SparseVectors as a dense (len(vectors), len(vocab)) float32 array; absent terms weigh 0."""
    sizes = np.diff(vectors.offsets)
    rows = np.repeat(np.arange(len(sizes)), sizes)
    dense = np.zeros((len(sizes), len(vectors.vocab)), dtype=np.float32)
    # Accumulate, not assign: a term listed twice in a row then shows up as a wrong weight.
    np.add.at(dense, (rows, np.asarray(vectors.terms, dtype=np.int64)), vectors.weights)
    return dense


def vocabulary_terms(directory: Path) -> list[str]:
    """The tokenizer's terms in id order, which sparseir's vectors must use."""
    vocab = load_tokenizer(directory).get_vocab()
    return sorted(vocab, key=vocab.get)
