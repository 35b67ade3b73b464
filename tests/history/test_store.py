"""The history store: records round-trip, concurrent appends, bad entries skipped, gs:// paths."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from google.api_core import exceptions

from history.records import RecordError, RunRecord
from history.store import (
    GcsStore,
    LocalStore,
    StoreError,
    check_uri,
    entry_name,
    open_store,
    parse_gs_uri,
)
from tests.components.conftest import REPO
from tests.history.synthetic import make_run


def test_record_round_trips_and_has_a_stable_series_key():
    record, _, _ = make_run(0, np.random.default_rng(0))
    again = RunRecord.from_json(record.to_json())
    assert again == record
    assert json.loads(record.to_json())["series_key"] == record.series.key()
    other = replace(record.series, users=16)
    assert other.key() != record.series.key()


def test_runs_on_different_workloads_never_share_a_series():
    from history.series import group
    from history.store import Entry
    from loadtests.workload import from_flags, load_workload

    record, metrics, _ = make_run(0, np.random.default_rng(0))
    # no workload: the key of a series recorded before workloads existed stays the same
    data = json.loads(record.to_json())
    del data["series"]["workload"], data["workload"]
    old = RunRecord.from_dict(data)
    assert old.series.key() == record.series.key() == data["series_key"]
    ids = [from_flags(None, 64, 16).identity(), from_flags(None, 128, 16).identity(),
           load_workload("sharegpt-mini").identity()]  # fmt: skip
    runs = [
        replace(record, run_id=f"r{i}", series=replace(record.series, workload=w))
        for i, w in enumerate(["", *ids, ids[0]])
    ]
    groups = group([Entry(r.run_id, r, metrics, None) for r in runs])
    assert sorted(len(g.entries) for g in groups.values()) == [1, 1, 1, 2]
    (same,) = [g for g in groups.values() if len(g.entries) == 2]
    assert {e.record.run_id for e in same.entries} == {"r1", "r4"}
    assert "workload " + ids[0] in same.series.describe()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"started_at": "2026-11-01T02:00:00"}, "not an ISO 8601 time"),
        ({"started_at": "2026-11-01T02:00:00+02:00"}, "not UTC"),
        ({"trigger": "cron"}, "trigger"),
        ({"run_id": "Bad Id"}, "run_id"),
        ({"schema_version": 9}, "schema_version"),
    ],
)
def test_bad_records_are_refused(change, message):
    record, _, _ = make_run(0, np.random.default_rng(0))
    data = {**json.loads(record.to_json()), **change}
    with pytest.raises(RecordError, match=message):
        RunRecord.from_dict(data)


APPEND = """
import sys, numpy as np
from history.store import LocalStore
from tests.components.conftest import REPO
from tests.history.synthetic import make_run
i = int(sys.argv[2])
LocalStore(sys.argv[1]).append(*make_run(i, np.random.default_rng(i)))
"""


def test_concurrent_appends_all_land(tmp_path):
    root = tmp_path / "history"
    procs = [
        subprocess.Popen([sys.executable, "-c", APPEND, str(root), str(i)], cwd=REPO)
        for i in range(6)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6
    listing = LocalStore(root).list()
    assert listing.problems == []
    assert [e.record.run_id for e in listing.entries] == [f"synthetic-{i:04d}" for i in range(6)]
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp")]


def test_the_same_run_cannot_be_appended_twice(tmp_path):
    store = LocalStore(tmp_path)
    run = make_run(0, np.random.default_rng(0))
    store.append(*run)
    with pytest.raises(StoreError, match="already in the history"):
        store.append(*run)


def test_bad_entries_are_reported_and_skipped(tmp_path):
    store = LocalStore(tmp_path)
    record, metrics, times = make_run(0, np.random.default_rng(0))
    store.append(record, metrics, times)
    (tmp_path / "stray.txt").write_text("x")
    foreign = tmp_path / "20260101T000000Z-foreign"
    foreign.mkdir()
    (foreign / "run.json").write_text(json.dumps({"schema_version": 1, "hello": 1}))
    (foreign / "metrics.json").write_text("{}")
    no_metrics = tmp_path / "20260102T000000Z-nometrics"
    no_metrics.mkdir()
    (no_metrics / "run.json").write_text(record.to_json())
    listing = store.list()
    assert [e.record.run_id for e in listing.entries] == [record.run_id]
    problems = "\n".join(listing.problems)
    assert "stray.txt: not a folder" in problems
    assert "20260101T000000Z-foreign: run.json: missing fields" in problems
    assert "20260102T000000Z-nometrics: no metrics.json" in problems


def test_metrics_without_the_verdict_numbers_are_refused(tmp_path):
    record, metrics, _ = make_run(0, np.random.default_rng(0))
    with pytest.raises(RecordError, match="p95_ms"):
        LocalStore(tmp_path).append(record, {**metrics, "p95_ms": float("nan")})
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    "uri, bucket, prefix",
    [
        ("gs://my-bucket", "my-bucket", ""),
        ("gs://my-bucket/", "my-bucket", ""),
        ("gs://my-bucket/deploytest/history/", "my-bucket", "deploytest/history"),
    ],
)
def test_gs_uris_parse(uri, bucket, prefix):
    assert parse_gs_uri(uri) == (bucket, prefix)


@pytest.mark.parametrize(
    "uri", ["gs://", "gs://UPPER/x", "gs://b", "gs://bucket/../x", "s3://bucket", "http://x/y"]
)
def test_bad_uris_are_refused(uri):
    with pytest.raises(StoreError, match="invalid history URI"):
        check_uri(uri)


class FakeBlob:
    def __init__(self, bucket, name):
        self.bucket, self.name = bucket, name

    @property
    def size(self):
        return len(self.bucket.objects[self.name])

    def upload_from_string(self, data, content_type, if_generation_match):
        assert if_generation_match == 0  # create-only
        if not self.bucket.exists:
            raise exceptions.NotFound("The specified bucket does not exist.")
        if self.name in self.bucket.objects:
            raise exceptions.PreconditionFailed("exists")
        self.bucket.objects[self.name] = data

    def download_as_bytes(self):
        return self.bucket.objects[self.name]


class FakeBucket:
    """Only the calls GcsStore makes, with Cloud Storage's create-only semantics."""

    def __init__(self, exists=True):
        self.objects: dict[str, bytes] = {}
        self.exists = exists

    def blob(self, name):
        return FakeBlob(self, name)


class FakeClient:
    def __init__(self, bucket):
        self._bucket = bucket

    def bucket(self, name):
        return self._bucket

    def list_blobs(self, bucket, prefix):
        if not bucket.exists:  # what Cloud Storage answers for a bucket that is not there
            raise exceptions.NotFound("The specified bucket does not exist.")
        return [FakeBlob(bucket, n) for n in sorted(bucket.objects) if n.startswith(prefix)]


def test_gcs_store_writes_object_paths_under_the_prefix_run_json_last():
    bucket = FakeBucket()
    store = open_store("gs://team-bucket/deploytest/history", client=FakeClient(bucket))
    assert isinstance(store, GcsStore)
    record, metrics, times = make_run(0, np.random.default_rng(0))
    where = store.append(record, metrics, times)
    name = entry_name(record)
    assert where == f"gs://team-bucket/deploytest/history/{name}"
    assert list(bucket.objects) == [
        f"deploytest/history/{name}/metrics.json",
        f"deploytest/history/{name}/response_times.json",
        f"deploytest/history/{name}/run.json",
    ]
    with pytest.raises(StoreError, match="already in the history"):
        store.append(record, metrics, times)
    # an entry without run.json is an append in progress: not listed, not a problem
    bucket.objects["deploytest/history/20990101T000000Z-inflight/metrics.json"] = b"{}"
    listing = store.list()
    assert [e.record.run_id for e in listing.entries] == [record.run_id]
    assert listing.problems == []
    assert listing.entries[0].response_times == times


def test_a_missing_bucket_is_a_clear_error():
    store = GcsStore("gs://no-such-bucket/h", client=FakeClient(FakeBucket(exists=False)))
    with pytest.raises(StoreError, match="gs://no-such-bucket does not exist"):
        store.list()
    with pytest.raises(StoreError, match="gs://no-such-bucket does not exist"):
        store.append(*make_run(0, np.random.default_rng(0)))
