"""The correctness phase in the pipeline (correctness/phase.py), in two tasks:

- the `reference answers` task, beside the endpoint's creation and before the deploy: reads
  and checks the team's expectations, resolves the reference model (`artifact`: the deployed
  model's own artifactUri), loads it and saves its greedy answers; a reference that cannot
  be loaded or an expectations file with a bad line fails it before anything is deployed;
- the load-test task, before its load: sends the prompts, compares (the `tokenizers`
  library only: no model, no torch there).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

# `reference_model` = ARTIFACT: the deployed model's own artifactUri (Model Registry).
ARTIFACT = "artifact"
# In the reference task's output folder when parity is not measured: {"skipped": why}.
SKIPPED_JSON = "skipped.json"


def model_artifact_uri(model: str, location: str, api_endpoint: str) -> str:
    """The Model Registry model's artifactUri ("" when it has none, as a model whose
    container carries its own weights)."""
    from components.vertex_clients import model_client

    return model_client(location, api_endpoint).get_model(name=model).artifact_uri or ""


def resolve_reference(reference_model: str, artifact_uri: Callable[[], str]) -> tuple[str, str]:
    """(the reference model's folder or gs:// URI, or "" for none; why none)."""
    from correctness.phase import NONE

    if not reference_model or reference_model == NONE:
        return "", ""
    if reference_model != ARTIFACT:
        return reference_model, ""
    uri = artifact_uri()
    if not uri:
        return "", "the deployed model has no artifactUri (its container holds the weights)"
    return uri, ""


def reference_answers(
    *,
    model: str,
    location: str,
    api_endpoint: str,
    api: str,
    reference_model: str,
    expectations: str,
    tokens: int,
    reference_max_mb: float,
    out_dir: str | os.PathLike,
    cache: str = "",
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> str:
    """The reference task's work: write the answers (or why there are none) into `out_dir`;
    return a line saying what it did. ValueError (an InputError or ExpectationError) for
    what must stop the run before the deploy. `cache`: a local folder keeping the answers
    of local reference models between runs (see `cache_key`); "" for none."""
    from correctness.expectations import read_expectations
    from correctness.phase import Plan, prepare_reference
    from correctness.reference import REFERENCE_JSON

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if expectations:
        checks = read_expectations(expectations)
        log(f"[correctness] {len(checks)} expectations read from {expectations}")
    reference, why = resolve_reference(
        reference_model, lambda: model_artifact_uri(model, location, api_endpoint)
    )
    if not reference:
        if why:
            (out / SKIPPED_JSON).write_text(json.dumps({"skipped": why}) + "\n")
        line = f"no parity check: {why or 'no reference model asked for'}"
        log(f"[correctness] {line}")
        return line
    key = cache_key(reference, api, tokens) if cache and not reference.startswith("gs://") else ""
    cached = Path(cache, key) if key else None
    if cached is not None and (cached / REFERENCE_JSON).is_file():
        shutil.copytree(cached, out, dirs_exist_ok=True)
        line = f"reference answers of {reference} from the cache ({cached})"
        log(f"[correctness] {line}")
        return line
    log(f"[correctness] greedy answers of {reference} (float32) ...")
    got = prepare_reference(Plan(reference, (), tokens, reference_max_mb), api, out / "work")
    shutil.rmtree(out / "work", ignore_errors=True)  # a gs:// model's copy
    if isinstance(got, str):
        (out / SKIPPED_JSON).write_text(json.dumps({"skipped": got}) + "\n")
        log(f"[correctness] parity not measured: {got}")
        return f"parity not measured: {got}"
    got.save(out)
    if cached is not None:  # written aside, then renamed: a reader never sees half of it
        tmp = Path(cache, f".{key}-{os.getpid()}")
        shutil.copytree(out, tmp, dirs_exist_ok=True)
        try:
            os.replace(tmp, cached)
        except OSError:  # another run cached it first
            shutil.rmtree(tmp, ignore_errors=True)
    line = f"{len(got.answers)} reference answers of {reference}, {tokens} tokens each"
    log(f"[correctness] {line}")
    return line


def cache_key(reference: str, api: str, tokens: int) -> str:
    """What the reference answers depend on: the local model folder's files (names, sizes,
    modification times), the prompts, K, whether the chat template applies, and the versions
    of torch and transformers that decode. Only local folders are cached."""
    import hashlib
    from importlib.metadata import version

    from correctness.phase import PROMPTS_FILE

    h = hashlib.sha256()
    folder = Path(reference)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(PROMPTS_FILE.read_bytes())
    h.update(f"{tokens}\0{api == 'openai-chat'}\0{version('torch')}\0".encode())
    h.update(version("transformers").encode())
    return h.hexdigest()[:32]


def run_correctness(
    *,
    url: str,
    api: str,
    auth: str,
    reference_dir: str,
    expectations: str,
    tokens: int,
    out_dir: str | os.PathLike,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> dict[str, Any]:
    """The load-test task's phase, from the reference task's folder; metrics.json's
    correctness fields ({} when there is nothing to check)."""
    from correctness.expectations import read_expectations
    from correctness.phase import Plan, run_phase
    from correctness.reference import REFERENCE_JSON, ReferenceAnswers

    folder = Path(reference_dir) if reference_dir else None
    answers, skipped, reference = None, "", ""
    if folder is not None and (folder / REFERENCE_JSON).is_file():
        answers = ReferenceAnswers.load(folder)
        reference = answers.reference
    elif folder is not None and (folder / SKIPPED_JSON).is_file():
        skipped = str(json.loads((folder / SKIPPED_JSON).read_text())["skipped"])
        reference = "skipped"
    checks = tuple(read_expectations(expectations)) if expectations else ()
    plan = Plan(reference, checks, tokens, answers=answers, skipped=skipped)
    if not plan.active:
        return {}
    log(f"[correctness] phase against {url} ...")
    return run_phase(url, api, auth, plan, out_dir, log=log)
