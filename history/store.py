"""The history store: one sub-folder per run under a local folder or a `gs://` prefix.

Each entry holds `run.json`, `metrics.json` and `response_times.json` (Locust's response-time
histogram, {bucket ms: count}, which the per-request test reads). Entry names start with the
run's UTC start time, so a listing is in time order, and end with the run id, so two runs never
write the same entry.

Appending is safe when two runs finish at once: locally an entry is written into a hidden
temporary folder and renamed into place (atomic on one file system); on Cloud Storage every
object is created with `if_generation_match=0` (create-only), and `run.json` is written last, so
a reader never sees half an entry as a run. An entry that fails to parse is reported and skipped.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.metrics_schema import upgrade
from history.records import METRICS_JSON, RUN_JSON, RecordError, RunRecord

RESPONSE_TIMES_JSON = "response_times.json"
# Written by the gate after the rest of the entry: {"outcome": "PASS"|"FAIL", "reasons": ...}.
# An entry without it (older runs, a gate that never ran) has no known outcome.
OUTCOME_JSON = "outcome.json"
OUTCOMES = ("PASS", "FAIL")
ENTRY_FILES = (RUN_JSON, METRICS_JSON, RESPONSE_TIMES_JSON, OUTCOME_JSON)
# The numbers a verdict reads from metrics.json; the rest of the schema may grow freely.
REQUIRED_METRICS = (
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "rps",
    "output_tokens_per_s",
    "failure_ratio",
    "requests",
    "failures",
)
_ENTRY = re.compile(r"^\d{8}T\d{6}Z-[a-z0-9][a-z0-9_-]{0,62}$")
_GS = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,221}[a-z0-9])(?:/(.*))?$")
# One entry is three small JSON files; anything bigger is not ours.
MAX_FILE_BYTES = 4 * 1024 * 1024


class StoreError(Exception):
    """The history cannot be read or written (missing bucket, bad URI, duplicate entry)."""


@dataclass
class Entry:
    """One run in the history."""

    name: str
    record: RunRecord
    metrics: dict[str, Any]
    response_times: dict[float, int] | None = None
    outcome: str = ""  # the gate's word (OUTCOME_JSON), "" when unknown


@dataclass
class Listing:
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "entry: why it was skipped"


def entry_name(record: RunRecord) -> str:
    return record.started.strftime("%Y%m%dT%H%M%SZ") + "-" + record.run_id


def check_metrics(data: Any) -> dict[str, Any]:
    """The metrics.json object, if it holds every number a verdict needs; else RecordError."""
    if not isinstance(data, Mapping):
        raise RecordError("metrics.json must hold a JSON object")
    bad = []
    for name in REQUIRED_METRICS:
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad.append(name)
        elif not math.isfinite(value) or value < 0:
            bad.append(name)
    if bad:
        raise RecordError(f"metrics.json lacks valid numbers for {', '.join(bad)}")
    return dict(data)


def response_times_from_locust(stats_json: str | os.PathLike) -> dict[float, int]:
    """Merge the response-time histograms of every request entry in Locust's JSON stats."""
    entries = json.loads(Path(stats_json).read_text())
    merged: collections.Counter[float] = collections.Counter()
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict) and e.get("method") == "LLM":
            continue  # the locustfile's TTFT/TPOT/token rows are not request latencies
        for key, n in (e.get("response_times") or {}).items() if isinstance(e, dict) else ():
            merged[float(key)] += int(n)
    return dict(merged)


def check_response_times(data: Any) -> dict[float, int]:
    if not isinstance(data, Mapping):
        raise RecordError("response_times.json must hold a JSON object")
    out = {}
    for key, n in data.items():
        try:
            ms = float(key)
        except ValueError:
            raise RecordError(f"response_times.json: bucket {key!r} is not a number") from None
        if not math.isfinite(ms) or ms < 0 or not isinstance(n, int) or n < 0:
            raise RecordError(f"response_times.json: bad bucket {key!r}: {n!r}")
        out[ms] = n
    return out


def parse_entry(name: str, files: Mapping[str, bytes | None]) -> Entry:
    """An Entry from its files' bytes; RecordError names what is wrong."""
    if not _ENTRY.match(name):
        raise RecordError("not a history entry name (TIMEUTC-RUNID)")
    raw_run, raw_metrics = files.get(RUN_JSON), files.get(METRICS_JSON)
    if raw_run is None:
        raise RecordError("no run.json")
    if raw_metrics is None:
        raise RecordError("no metrics.json")
    try:
        record = RunRecord.from_json(raw_run.decode("utf-8"))
        # With schema 6's meaning of p50_ms .. mean_ms, whatever version the run wrote.
        metrics = upgrade(check_metrics(json.loads(raw_metrics.decode("utf-8"))))
        raw_times = files.get(RESPONSE_TIMES_JSON)
        times = check_response_times(json.loads(raw_times.decode("utf-8"))) if raw_times else None
        raw_outcome = files.get(OUTCOME_JSON)
        outcome = check_outcome(json.loads(raw_outcome.decode("utf-8"))) if raw_outcome else ""
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"not UTF-8 JSON: {exc}") from None
    if entry_name(record) != name:
        raise RecordError(f"run.json names run {record.run_id!r}, not this entry")
    return Entry(name=name, record=record, metrics=metrics, response_times=times, outcome=outcome)


def check_outcome(data: Any) -> str:
    """The outcome word of an outcome.json object; RecordError when it is not one."""
    if not isinstance(data, Mapping) or data.get("outcome") not in OUTCOMES:
        raise RecordError(f"outcome.json must name an outcome: one of {', '.join(OUTCOMES)}")
    return str(data["outcome"])


def outcome_file(outcome: str, reasons: str) -> bytes:
    """outcome.json's bytes; ValueError for a word that is not an outcome."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    return (json.dumps({"outcome": outcome, "reasons": reasons[:4000]}) + "\n").encode()


def entry_files(
    record: RunRecord, metrics: Mapping[str, Any], response_times: Mapping[float, int] | None
) -> dict[str, bytes]:
    """The files of one entry, validated, run.json last (readers treat it as the commit)."""
    check_metrics(metrics)
    files = {METRICS_JSON: (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode()}
    if response_times:
        times = {f"{k:g}": int(v) for k, v in sorted(response_times.items())}
        files[RESPONSE_TIMES_JSON] = json.dumps(times).encode()
    files[RUN_JSON] = record.to_json().encode()
    return files


class LocalStore:
    """A history in a local folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.uri = str(self.root)

    def append(self, record, metrics, response_times=None) -> str:
        """Write one entry; returns its location. StoreError if that run is already there."""
        files = entry_files(record, metrics, response_times)
        name = entry_name(record)
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / name
        if final.exists():
            raise StoreError(f"run {record.run_id} is already in the history at {final}")
        tmp = self.root / f".tmp-{name}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            for fname, data in files.items():
                (tmp / fname).write_bytes(data)
            try:
                os.rename(tmp, final)  # atomic; fails if another writer got there first
            except OSError:
                raise StoreError(f"run {record.run_id} is already in the history") from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return str(final)

    def write_outcome(self, name: str, outcome: str, reasons: str = "") -> str:
        """Write the gate's outcome into entry `name` (once; StoreError if written or no
        such entry)."""
        folder = self.root / name
        if not _ENTRY.match(name) or not (folder / RUN_JSON).is_file():
            raise StoreError(f"no history entry {name} in {self.root}")
        try:
            with open(folder / OUTCOME_JSON, "xb") as f:  # create-only, as on Cloud Storage
                f.write(outcome_file(outcome, reasons))
        except FileExistsError:
            raise StoreError(f"the outcome of {name} is written already") from None
        return str(folder / OUTCOME_JSON)

    def list(self) -> Listing:
        listing = Listing()
        if not self.root.is_dir():
            return listing
        for path in sorted(self.root.iterdir()):
            if path.name.startswith("."):
                continue  # an append in progress
            if not path.is_dir():
                listing.problems.append(f"{path.name}: not a folder")
                continue
            try:
                files = {}
                for fname in ENTRY_FILES:
                    f = path / fname
                    if f.is_file():
                        if f.stat().st_size > MAX_FILE_BYTES:
                            raise RecordError(f"{fname} is larger than {MAX_FILE_BYTES} bytes")
                        files[fname] = f.read_bytes()
                listing.entries.append(parse_entry(path.name, files))
            except (RecordError, OSError) as exc:
                listing.problems.append(f"{path.name}: {exc}")
        return listing


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix without slashes at either end) of a gs:// URI; StoreError if invalid."""
    m = _GS.match(uri.strip())
    if not m or ".." in (m.group(2) or "").split("/"):
        raise StoreError(f"invalid history URI {uri!r}: expected gs://BUCKET[/PREFIX]")
    return m.group(1), (m.group(2) or "").strip("/")


class GcsStore:
    """A history under a Cloud Storage prefix (google-cloud-storage).

    Create-only writes (`if_generation_match=0`) are documented Cloud Storage preconditions: a
    second writer of the same object gets 412 Precondition Failed.
    """

    def __init__(self, uri: str, client=None):
        self.bucket_name, self.prefix = parse_gs_uri(uri)
        self.uri = f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")
        if client is None:
            from google.cloud import storage

            client = storage.Client()
        self.client = client

    def _object(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _error(self, exc, doing: str) -> StoreError:
        """A StoreError that says what failed. Not bucket.exists(): that needs
        storage.buckets.get, which the runner's roles/storage.objectAdmin does not grant; a
        missing bucket shows as 404 on the object calls instead."""
        from google.api_core import exceptions

        if isinstance(exc, exceptions.NotFound):
            return StoreError(f"history bucket gs://{self.bucket_name} does not exist ({doing})")
        return StoreError(f"{doing} {self.uri}: {exc}")

    def append(self, record, metrics, response_times=None) -> str:
        from google.api_core import exceptions

        files = entry_files(record, metrics, response_times)
        name = entry_name(record)
        bucket = self.client.bucket(self.bucket_name)
        try:
            for fname, data in files.items():
                blob = bucket.blob(self._object(name, fname))
                blob.upload_from_string(
                    data, content_type="application/json", if_generation_match=0
                )
        except exceptions.PreconditionFailed:
            raise StoreError(f"run {record.run_id} is already in the history") from None
        except exceptions.GoogleAPIError as exc:
            raise self._error(exc, f"writing the history entry {name} to") from None
        return f"gs://{self.bucket_name}/{self._object(name)}"

    def write_outcome(self, name: str, outcome: str, reasons: str = "") -> str:
        """Write the gate's outcome into entry `name`, create-only."""
        from google.api_core import exceptions

        if not _ENTRY.match(name):
            raise StoreError(f"not a history entry name: {name!r}")
        blob = self.client.bucket(self.bucket_name).blob(self._object(name, OUTCOME_JSON))
        try:
            blob.upload_from_string(
                outcome_file(outcome, reasons),
                content_type="application/json",
                if_generation_match=0,
            )
        except exceptions.PreconditionFailed:
            raise StoreError(f"the outcome of {name} is written already") from None
        except exceptions.GoogleAPIError as exc:
            raise self._error(exc, f"writing the outcome of {name} to") from None
        return f"gs://{self.bucket_name}/{self._object(name, OUTCOME_JSON)}"

    def list(self) -> Listing:
        from google.api_core import exceptions

        bucket = self.client.bucket(self.bucket_name)
        base = self._object() + "/" if self.prefix else ""
        grouped: dict[str, dict[str, Any]] = collections.defaultdict(dict)
        try:
            for blob in self.client.list_blobs(bucket, prefix=base):
                rest = blob.name[len(base) :]
                entry, _, fname = rest.partition("/")
                if fname in ENTRY_FILES:
                    grouped[entry][fname] = blob
        except exceptions.GoogleAPIError as exc:
            raise self._error(exc, "listing") from None
        listing = Listing()
        for entry in sorted(grouped):
            blobs = grouped[entry]
            if RUN_JSON not in blobs:
                continue  # an append in progress (run.json is written last)
            try:
                files = {}
                for fname, blob in blobs.items():
                    if (blob.size or 0) > MAX_FILE_BYTES:
                        raise RecordError(f"{fname} is larger than {MAX_FILE_BYTES} bytes")
                    files[fname] = blob.download_as_bytes()
                listing.entries.append(parse_entry(entry, files))
            except RecordError as exc:
                listing.problems.append(f"{entry}: {exc}")
            except exceptions.GoogleAPIError as exc:
                listing.problems.append(f"{entry}: unreadable: {exc}")
        return listing


def check_uri(uri: str) -> str:
    """The URI stripped, if it is a local folder path or gs://BUCKET[/PREFIX]; else StoreError."""
    uri = (uri or "").strip()
    if not uri:
        raise StoreError("no history given (--history)")
    if uri.startswith("gs://"):
        parse_gs_uri(uri)
    elif "://" in uri:
        raise StoreError(f"invalid history URI {uri!r}: a local folder or gs://BUCKET[/PREFIX]")
    elif Path(uri).exists() and not Path(uri).is_dir():
        raise StoreError(f"history {uri} is not a folder")
    return uri


def open_store(uri: str, client=None) -> LocalStore | GcsStore:
    """The store for a local folder or a gs:// prefix; StoreError on a malformed URI."""
    uri = check_uri(uri)
    if uri.startswith("gs://"):
        return GcsStore(uri, client=client)
    return LocalStore(uri)


def read_run_folder(folder: str | os.PathLike) -> tuple[RunRecord, dict, dict | None]:
    """(record, metrics, response times) of a run folder; RecordError if it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecordError(f"{folder} is not a folder")
    run_json, metrics_json = folder / RUN_JSON, folder / METRICS_JSON
    if not run_json.is_file():
        raise RecordError(f"{folder} holds no run.json")
    if not metrics_json.is_file():
        raise RecordError(f"{folder} holds no metrics.json")
    record = RunRecord.from_json(run_json.read_text(encoding="utf-8", errors="replace"))
    try:
        metrics = check_metrics(json.loads(metrics_json.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{metrics_json} is not JSON: {exc}") from None
    times = None
    for candidate in (folder / RESPONSE_TIMES_JSON, folder / "stats" / "locust_stats.json"):
        if candidate.is_file():
            try:
                if candidate.name == RESPONSE_TIMES_JSON:
                    times = check_response_times(json.loads(candidate.read_text()))
                else:
                    times = response_times_from_locust(candidate)
            except (ValueError, TypeError, AttributeError) as exc:
                raise RecordError(f"{candidate} is unreadable: {exc}") from None
            break
    return record, metrics, times
