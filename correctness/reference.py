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


REFERENCE_JSON = "reference.json"


class NoChatTemplate(ValueError):
    """A chat API against a model without a chat template: parity cannot be judged."""


@dataclass
class ReferenceAnswers:
    """The reference model's greedy answers to the phase's prompts, and a tokenizer for the
    endpoint's answers: computed once where the model can be loaded (the pipeline's
    `reference answers` task, beside the deploy), saved to a folder, loaded by the load
    test with the `tokenizers` library only (no torch, no model)."""

    reference: str  # the model's folder or gs:// URI, as given
    tokens: int  # K
    chat: bool  # the prompts went through the chat template
    answers: dict[str, str]  # prompt -> the reference's greedy answer
    tokenize: object = None  # text -> token ids (no special tokens)

    @classmethod
    def compute(cls, model_dir, reference: str, prompts, tokens: int, chat: bool):
        """NoChatTemplate for `chat` with a model that has no chat template."""
        model = Reference(model_dir)
        if chat and not getattr(model.tokenizer, "chat_template", None):
            raise NoChatTemplate(
                "the model has no chat template: how the server renders a chat (vLLM, for "
                "one, falls back to a template of its own) is not known here"
            )
        out = cls(reference, tokens, chat, {p: model.greedy(p, tokens, chat=chat) for p in prompts})
        out.tokenize = model.tokens
        out._tokenizer = model.tokenizer
        return out

    def save(self, folder: str | Path) -> Path:
        """reference.json and the tokenizer's files (tokenizer.json for a fast one)."""
        import json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._tokenizer.save_pretrained(str(folder))
        data = {"reference": self.reference, "tokens": self.tokens, "chat": self.chat,
                "answers": self.answers}  # fmt: skip
        (folder / REFERENCE_JSON).write_text(json.dumps(data, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path):
        """From a saved folder; ValueError when it holds no reference."""
        import json

        folder = Path(folder)
        try:
            data = json.loads((folder / REFERENCE_JSON).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"no reference answers in {folder}: {exc}") from None
        out = cls(data["reference"], int(data["tokens"]), bool(data["chat"]),
                  dict(data["answers"]))  # fmt: skip
        out.tokenize = _tokenizer_of(folder)
        return out


def _tokenizer_of(folder: Path):
    """text -> ids from tokenizer.json (the `tokenizers` library: no torch import), else
    the saved tokenizer through transformers (a slow tokenizer has no tokenizer.json)."""
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        encode = Tokenizer.from_file(str(folder / "tokenizer.json")).encode
        return lambda text: list(encode(text, add_special_tokens=False).ids)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return lambda text: list(tok(text, add_special_tokens=False)["input_ids"])
