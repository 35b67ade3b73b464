"""Parity with the model artifact: the same prompts decoded greedily by `transformers` from
the artifact, in float32, and compared token by token with the endpoint's answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Parity:
    """One prompt's comparison over the first `k` tokens of reference and answer."""

    common_prefix: int  # tokens equal from the start
    match_ratio: float  # tokens equal at the same position / k
    matched: bool  # the first k tokens (or both whole answers, if shorter) are equal

    def to_json(self) -> dict:
        return {
            "common_prefix": self.common_prefix,
            "match_ratio": round(self.match_ratio, 4),
            "matched": self.matched,
        }


def compare(reference: list[int], answer: list[int], k: int) -> Parity:
    """Compare two token lists over their first `k` tokens."""
    ref, ans = reference[:k], answer[:k]
    prefix = 0
    for a, b in zip(ref, ans, strict=False):
        if a != b:
            break
        prefix += 1
    same = sum(1 for a, b in zip(ref, ans, strict=False) if a == b)
    return Parity(prefix, same / k if k else 1.0, ref == ans)


class Reference:
    """The artifact's model and tokenizer, loaded once (local files only, never the hub)."""

    def __init__(self, model_dir: str | Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, local_files_only=True, dtype=torch.float32
        ).eval()

    def tokens(self, text: str) -> list[int]:
        """The token ids of `text` (no special tokens added)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def greedy(self, prompt: str, max_new_tokens: int, chat: bool = False) -> str:
        """The greedy continuation of `prompt`, one prompt at a time (no padding), as text:
        it is compared with an answer's text through one tokenization of both. `chat`: the
        prompt is one user message under the tokenizer's chat template, as a chat server
        renders it (vLLM: `add_generation_prompt` true by default)."""
        if chat:
            prompt = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=not chat)
        eos = self.tokenizer.eos_token_id
        with self._torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=eos
                if self.tokenizer.pad_token_id is None
                else self.tokenizer.pad_token_id,
                eos_token_id=eos,
            )
        new = out[0, enc["input_ids"].shape[1] :].tolist()
        return self.tokenizer.decode(new, skip_special_tokens=True)
