"""Build the offline demo model: a GPT-2 architecture with a locally trained tokenizer.

Nothing is downloaded. The tokenizer is a byte-level BPE trained with the `tokenizers`
library on a small text made here; the model is a `GPT2LMHeadModel` with seeded random
weights. Both are written with `save_pretrained`, so serving loads them through the same
`from_pretrained` code path as a real checkpoint.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

EOS = "<|endoftext|>"

# Words for the training text: enough variety for a few hundred BPE merges.
_WORDS = (
    "the model endpoint deploys answers prompt token latency request response vertex "
    "pipeline locust load test gpu cloud storage bucket region quota replica machine "
    "accelerator traffic split health predict route port container image registry "
    "artifact metric report percentile throughput failure ratio threshold budget label "
    "cleanup undeploy delete operation schedule trigger build merge version regression "
    "a an of to in on for with by from at as is are was be it this that which and or not "
    "quick brown fox jumps over lazy dog hello world language generation text sequence"
).split()


@dataclass(frozen=True)
class ModelSize:
    n_layer: int
    n_head: int
    n_embd: int
    n_positions: int
    vocab_size: int


SIZES = {
    # A few small layers: fast on a 2-core CPU, still the real GPT-2 code path.
    "tiny": ModelSize(n_layer=2, n_head=2, n_embd=64, n_positions=256, vocab_size=1024),
    # The 124M GPT-2 architecture (12 layers, 12 heads, 768 wide, 1024 positions).
    "gpt2": ModelSize(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=8192),
}


def _training_text(seed: int, sentences: int = 4000) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 16))) + "."
        for _ in range(sentences)
    ]


def _train_tokenizer(vocab_size: int, seed: int):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _training_text(seed), vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS]
    )
    return GPT2TokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,
        padding_side="left",  # decoder-only batching pads on the left
    )


def build_demo_model(out_dir: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a loadable GPT-2 model and tokenizer to `out_dir` and return the path.

    Args:
        out_dir: directory to write into (created if missing).
        size: "tiny" (2 layers, 64 wide) or "gpt2" (the 124M architecture).
        seed: seeds the tokenizer's training text and the model's weights.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = SIZES[size]
    tokenizer = _train_tokenizer(spec.vocab_size, seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=spec.n_positions,
        n_embd=spec.n_embd,
        n_layer=spec.n_layer,
        n_head=spec.n_head,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "deploytest_demo.json").write_text(
        json.dumps({"size": size, "seed": seed, "parameters": model.num_parameters()}, indent=2)
    )
    return out
