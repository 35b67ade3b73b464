"""Counting output tokens with the model's own tokenizer, for answers that carry no count.

The tokenizer is the model artifact's `tokenizer.json` (a Hugging Face `tokenizers` file,
which every `transformers` model folder of a fast tokenizer holds), loaded once per process.
Nothing is downloaded: a path that is not there is an error the caller reports.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

TOKENIZER_FILE = "tokenizer.json"


def tokenizer_file(path: str) -> Path:
    """`path` itself when it is a file, else `path/tokenizer.json`; FileNotFoundError if
    neither is there."""
    candidate = Path(path)
    if candidate.is_dir():
        candidate = candidate / TOKENIZER_FILE
    if not candidate.is_file():
        raise FileNotFoundError(f"--tokenizer {path}: no {TOKENIZER_FILE} there")
    return candidate


def load_tokenizer(path: str):
    """The `tokenizers.Tokenizer` at `path` (a tokenizer.json or a model folder holding one),
    read once per process: the token counter and the workload's prompt builder share it."""
    return _read_tokenizer(str(tokenizer_file(path).resolve()))


@functools.lru_cache(maxsize=4)
def _read_tokenizer(resolved: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(resolved)


def load_counter(path: str) -> Callable[[str], int]:
    """A function text -> its number of tokens (no special tokens added), from the
    tokenizer at `path` (a tokenizer.json or a model folder holding one)."""
    encode = load_tokenizer(path).encode

    def count(text: str) -> int:
        return len(encode(text, add_special_tokens=False).ids) if text else 0

    return count


def estimate(text: str) -> int:
    """OpenAI's rule of thumb, about 4 bytes of English a token: an estimate, said so."""
    return max(1, round(len(text.encode()) / 4)) if text else 0
