"""What every encoder is built from: its options, models on disk, and one side's term weighter
(token ids -> a weight per vocabulary term), the base class each model's module derives from."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError, ParameterError, first_line, require
from ..vectors import Vocabulary

KINDS = ("splade", "unicoil", "idf")
DEFAULT_MODEL = "default"
EMBEDDED_MODEL = "splade-tiny"
DTYPES = ("float32", "float16", "bfloat16")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")  # either one is enough
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # either one is enough
# OpenSearch's inference-free document models ship their query weights beside the model.
MODEL_IDF_FILE = "idf.json"


@dataclass(frozen=True)
class EncoderOptions:
    """How texts become vectors; the same for every kind of encoder."""

    doc_max_length: int = field(default=256, metadata={"help": "truncate documents to this many tokens"})
    query_max_length: int = field(default=64, metadata={"help": "truncate queries to this many tokens"})
    top_k: int | None = field(default=None, metadata={"help": "keep only the k largest weights of each vector"})
    threshold: float = field(default=0.0, metadata={"help": "drop weights at or below this value"})
    quantize: float | None = field(default=None, metadata={
        "help": "store integer impacts round(weight * QUANTIZE), e.g. 100; zeros are dropped"})
    binary: bool = field(default=False, metadata={
        "help": "weight 1 for every term kept (binary codes, as UHD; with top_k: the k heaviest)"})
    dtype: str = field(default="float32", metadata={"help": "model precision: float32, float16 or bfloat16"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's choice)"})
    batch_tokens: int | None = field(default=None, metadata={
        "help": "cut batches at this many padded tokens instead of batch_size texts (suits GPUs)"})
    device: str = field(default="auto", metadata={
        "help": "auto (a CUDA GPU, else Apple mps, else the CPU), cpu, cuda, cuda:N or mps"})
    idf: str | None = field(default=None, metadata={
        "help": "term<TAB>idf file weighting query tokens (kind idf)"})

    def __post_init__(self):
        for name in ("doc_max_length", "query_max_length"):
            value = getattr(self, name)
            require(_is_int(value) and 4 <= value <= 8192, f"{name} must be an integer in [4, 8192], got {value!r}")
        require(self.top_k is None or (_is_int(self.top_k) and self.top_k >= 1),
                f"top_k must be a positive integer or None, got {self.top_k!r}")
        require(_is_number(self.threshold) and self.threshold >= 0,
                f"threshold must be a non-negative number, got {self.threshold!r}")
        require(self.quantize is None or (_is_number(self.quantize) and self.quantize > 0),
                f"quantize must be a positive scale or None, got {self.quantize!r}")
        require(isinstance(self.binary, bool), f"binary must be True or False, got {self.binary!r}")
        require(self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        require(self.threads is None or (_is_int(self.threads) and self.threads >= 1),
                f"threads must be a positive integer or None, got {self.threads!r}")
        require(self.batch_tokens is None or (_is_int(self.batch_tokens) and self.batch_tokens >= 1),
                f"batch_tokens must be a positive integer or None, got {self.batch_tokens!r}")
        require(isinstance(self.device, str) and DEVICE_PATTERN.fullmatch(self.device) is not None,
                f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return _is_int(value) or (isinstance(value, (float, np.floating)) and np.isfinite(value))


# --- models on disk -------------------------------------------------------------------

def model_directory(model: str | os.PathLike) -> Path:
    """The directory of `model`: "default" is the embedded splade-tiny, anything else a path."""
    if os.fspath(model) == DEFAULT_MODEL:
        return Path(str(resources.files("sparseir.data").joinpath("models", EMBEDDED_MODEL)))
    return Path(model)


def check_model_directory(directory: Path, required: Sequence[str | tuple[str, ...]]) -> Path:
    """Fail with one line naming the first missing file; a tuple means any one of them."""
    if not directory.is_dir():
        raise InputError("model directory not found", directory)
    for names in required:
        names = (names,) if isinstance(names, str) else names
        if not any((directory / name).is_file() for name in names):
            raise InputError(f"incomplete model directory: missing {' or '.join(names)}", directory)
    return directory


def load_tokenizer(model: str | os.PathLike):
    """A fast tokenizer from a local model directory (or "default")."""
    from transformers import AutoTokenizer

    directory = check_model_directory(model_directory(model), [TOKENIZER_FILES])
    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load the tokenizer: {first_line(e)}", directory) from None


def tokenizer_vocabulary(tokenizer, name: str) -> Vocabulary:
    """The tokenizer's terms in id order; BERT uncased gives the shared default vocabulary."""
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    if [term_id for _, term_id in by_id] != list(range(len(by_id))):
        raise InputError("tokenizer ids are not contiguous from 0", name)
    terms = [term for term, _ in by_id]
    default = Vocabulary.default()
    return default if terms == default.terms else Vocabulary(terms, name=name)


# --- one side: token ids -> one weight per vocabulary term ------------------------------

class TermWeighter(ABC):
    """Weights the terms of tokenized texts; documents and queries each use one."""

    tokenizer: object
    vocab: Vocabulary
    special_ids: np.ndarray  # never output: [CLS], [SEP], [PAD], ...

    @abstractmethod
    def term_weights(self, token_ids: list[np.ndarray]) -> np.ndarray:
        """(len(token_ids), len(vocab)) float32 non-negative weights, one row per text."""

    def tokenize(self, texts: list[str], max_length: int) -> tuple[list[np.ndarray], int]:
        """Token ids with special tokens, truncated to max_length; also how many were cut."""
        # One token of slack tells "needed truncation" apart from "exactly max_length".
        encoded = self.tokenizer(texts, truncation=True, max_length=max_length + 1)["input_ids"]
        too_long = [row for row, ids in enumerate(encoded) if len(ids) > max_length]
        if too_long:
            again = self.tokenizer([texts[row] for row in too_long], truncation=True, max_length=max_length)
            for row, ids in zip(too_long, again["input_ids"]):
                encoded[row] = ids
        return [np.asarray(ids, dtype=np.int64) for ids in encoded], len(too_long)

    def n_special_tokens(self) -> int:
        """How many tokens an empty text gets ([CLS] [SEP] for BERT)."""
        return len(self.tokenizer("")["input_ids"])


def special_token_ids(tokenizer) -> np.ndarray:
    return np.asarray(sorted(set(tokenizer.all_special_ids)), dtype=np.int64)


class TransformerWeighter(TermWeighter):
    """A torch model in a local directory; the weights load on first use.

    Checking the files and reading the tokenizer happen at once (bad input fails early);
    the model itself loads only when something is encoded, so a query-only use of an
    encoder never pays for its document model.
    """

    required_files: tuple = ("config.json", WEIGHT_FILES, TOKENIZER_FILES)

    def __init__(self, model: str | os.PathLike, options: EncoderOptions):
        self.directory = check_model_directory(model_directory(model), self.required_files)
        self.options = options
        self.tokenizer = load_tokenizer(self.directory)
        self.vocab = tokenizer_vocabulary(self.tokenizer, self.directory.name)
        self.special_ids = special_token_ids(self.tokenizer)
        self.device = resolve_device(options.device)
        self._modules = None

    @property
    def modules(self):
        if self._modules is None:
            import torch

            if self.options.threads is not None:
                torch.set_num_threads(self.options.threads)
            self._modules = self.load_modules(getattr(torch, self.options.dtype))
        return self._modules

    @abstractmethod
    def load_modules(self, dtype):
        """Load the torch modules (in eval mode, `dtype`) this weighter runs."""

    def load_pretrained(self, auto_class, dtype):
        """auto_class.from_pretrained on the directory, local files only, one-line errors."""
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its loading bar would garble our progress output
        try:
            model = auto_class.from_pretrained(self.directory, local_files_only=True, dtype=dtype)
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"cannot load the model: {first_line(e)}", self.directory) from None
        positions = getattr(model.config, "max_position_embeddings", None)
        longest = max(self.options.doc_max_length, self.options.query_max_length)
        if positions is not None and longest > positions:
            raise ParameterError(f"max length {longest} exceeds the model's {positions} positions "
                                 "(lower doc_max_length / query_max_length)")
        if getattr(model.config, "vocab_size", len(self.vocab)) < len(self.vocab):
            raise InputError(f"tokenizer/model mismatch: the tokenizer has {len(self.vocab)} terms but the model "
                             f"only {model.config.vocab_size}", self.directory)
        return model.to(self.device).eval()

    def padded(self, token_ids: list[np.ndarray]):
        """(input_ids, attention_mask) tensors on the device, padded to the longest text of this batch."""
        import torch

        width = max(len(ids) for ids in token_ids)
        input_ids = np.full((len(token_ids), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(token_ids), width), dtype=bool)
        for row, ids in enumerate(token_ids):
            input_ids[row, :len(ids)] = ids
            mask[row, :len(ids)] = True
        return torch.from_numpy(input_ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def drop_special(self, weights):
        """Zero the special-token columns of a (batch, V) tensor and return it as float32 numpy."""
        weights[:, self.special_ids] = 0
        return weights.float().cpu().numpy()


def resolve_device(name: str):
    """The torch device `name` stands for ("auto": a CUDA GPU, else mps, else the CPU);
    a one-line error when this machine has no such device."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ParameterError(f"device {name!r} is not available: torch {torch.__version__} sees "
                                 f"{count} CUDA GPU(s) here (use --device cpu or auto)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ParameterError(f"device {name!r} is not available on this machine (use --device cpu or auto)")
    return device
