"""List filters, orderBy and pages per AIP-160/158 as each list documents them (issue 24,
part B): what is documented works, the rest is 400 INVALID_ARGUMENT naming it."""

from __future__ import annotations

import httpx
import pytest

from emulator import filters
from emulator.errors import ApiError

PARENT = "v1/projects/p/locations/us-central1"
P = "projects/p/locations/us-central1"


def _job(job_id, display, state, created, pipeline="deploy-test", labels=None, end=None):
    job = {
        "name": f"{P}/pipelineJobs/{job_id}",
        "displayName": display,
        "state": state,
        "createTime": created,
        "updateTime": created,
        "pipelineSpec": {"pipelineInfo": {"name": pipeline}},
        "labels": labels or {},
    }
    if end:
        job["endTime"] = end
    return job


JOBS = [
    _job(
        "a",
        "conf-1",
        "PIPELINE_STATE_SUCCEEDED",
        "2025-12-31T23:00:00.000000Z",
        labels={"env": "prod"},
        end="2026-01-01T01:00:00.000000Z",
    ),  # fmt: skip
    _job(
        "b",
        "conf-2",
        "PIPELINE_STATE_FAILED",
        "2026-01-02T00:00:00.000000Z",
        labels={"env": "dev", "team": "ml"},
    ),  # fmt: skip
    _job("c", "other", "PIPELINE_STATE_RUNNING", "2026-02-01T00:00:00.000000Z", "regression"),
]


def _ids(flt: str, kind: str = "pipelineJobs", items=JOBS, **query) -> list[str]:
    page = filters.select(items, "items", kind, {"filter": flt, **query}, P)
    return [r["name"].rsplit("/", 1)[-1] for r in page["items"]]


@pytest.mark.parametrize(
    "flt, ids",
    [
        ("", ["c", "b", "a"]),  # default order: create_time desc
        ('display_name:"conf-*"', ["b", "a"]),
        ("displayName:*-2", ["b"]),
        ('display_name="conf-*"', []),  # `=` is equality: no wildcard
        ('create_time>"2026-01-01T00:00:00Z"', ["c", "b"]),
        ('createTime<="2026-01-02T00:00:00+00:00"', ["b", "a"]),
        ('end_time<"2026-01-01T02:00:00Z"', ["a"]),
        ("state=PIPELINE_STATE_SUCCEEDED", ["a"]),
        ('state!="PIPELINE_STATE_SUCCEEDED"', ["c", "b"]),
        ('pipeline_name="regression"', ["c"]),
        ("pipelineName!=regression", ["b", "a"]),
        ('labels.env="prod" OR labels.team="ml"', ["b", "a"]),
        ('labels.env="dev" AND labels.team:*', ["b"]),
        ("labels:team", ["b"]),
        ('labels.env!="prod"', ["b"]),  # a job without the label has no value to compare
        ('pipeline_job_user_id:"[ab]"', []),  # `[` is literal: only `*` is a wildcard
        ("pipeline_job_user_id=c", ["c"]),
        # OR binds tighter than AND (AIP-160): a AND (b OR c)
        ('labels.env:* state=PIPELINE_STATE_FAILED OR display_name="conf-1"', ["b", "a"]),
        (
            '(state=PIPELINE_STATE_RUNNING OR labels.env="prod") AND '
            'create_time>"2026-01-01T00:00:00Z"',
            ["c"],
        ),
    ],
)
def test_pipeline_job_filters(flt, ids):
    assert _ids(flt) == ids


@pytest.mark.parametrize(
    "kind, flt, needle",
    [
        ("pipelineJobs", "NOT state=PIPELINE_STATE_FAILED", "negation"),
        ("pipelineJobs", "-labels.env=prod", "negation"),
        ("pipelineJobs", "state=DONE", "not a PipelineState"),
        ("pipelineJobs", 'create_time>"yesterday"', "RFC 3339"),
        ("pipelineJobs", 'create_time>"2026-01-01T00:00:00"', "time zone"),
        ("pipelineJobs", "state:PIPELINE_STATE_FAILED", "state supports !=, ="),
        ("pipelineJobs", 'start_time>"2026-01-01T00:00:00Z"', "'start_time'"),
        ("pipelineJobs", "conf", "text search"),
        ("pipelineJobs", "(state=PIPELINE_STATE_FAILED", "ends too early"),
        ("models", 'display_name:"conf-*"', "display_name supports !=, = in ListModels"),
        ("models", "base_model_name!=x", "base_model_name supports ="),
        ("models", 'create_time>"2026-01-01T00:00:00Z"', "'create_time'"),
        ("modelVersions", 'display_name="x"', "ListModelVersions"),
        ("endpoints", "labels.k>1", "labels support"),
        ("endpoints", "labels=x", "labels:KEY"),
    ],
)
def test_unsupported_filters_name_what(kind, flt, needle):
    with pytest.raises(ApiError) as err:
        filters.select([], "items", kind, {"filter": flt}, P)
    assert err.value.status == "INVALID_ARGUMENT" and err.value.http_code == 400
    assert needle in err.value.message, err.value.message


def test_model_and_endpoint_filters_and_quoted_label_keys():
    items = [
        {"name": f"{P}/endpoints/1", "displayName": "x", "labels": {"a key": "v"}},
        {"name": f"{P}/endpoints/2", "displayName": "y", "createTime": "2026-01-02T00:00:00Z"},
    ]
    assert _ids('labels."a key"="v"', "endpoints", items) == ["1"]
    assert _ids("endpoint=2", "endpoints", items) == ["2"]
    assert _ids("endpoint!=2 OR displayName=y", "endpoints", items) == ["1", "2"]
    assert _ids('model="1"', "models", [{"name": f"{P}/models/1", "labels": {}}]) == ["1"]
    assert _ids("", "endpoints", items, orderBy="display_name desc") == ["2", "1"]
    assert _ids("", "endpoints", items, orderBy="createTime desc, displayName") == ["2", "1"]
    for bad in ("name", "display_name up", "create_time desc asc"):
        with pytest.raises(ApiError, match="order_by"):
            _ids("", "endpoints", items, orderBy=bad)
    with pytest.raises(ApiError, match="order_by"):
        _ids("", "pipelineJobs", JOBS, orderBy="display_name")  # not documented there
    assert _ids("", "pipelineJobs", orderBy="end_time desc, create_time") == ["a", "b", "c"]


def test_pages_are_bounded_and_bound_to_their_query():
    items = [{"name": f"{P}/endpoints/{i}", "displayName": f"e{i % 2}"} for i in range(5)]
    query = {"filter": 'display_name="e0"', "pageSize": "2"}
    first = filters.select(items, "items", "endpoints", query, P)
    assert [r["name"][-1] for r in first["items"]] == ["0", "2"]
    second = filters.select(
        items, "items", "endpoints", {**query, "pageToken": first["nextPageToken"]}, P
    )
    assert [r["name"][-1] for r in second["items"]] == ["4"] and "nextPageToken" not in second
    token = {"pageToken": first["nextPageToken"]}
    for other in ({"filter": 'display_name="e1"'}, {"orderBy": "create_time"}):
        with pytest.raises(ApiError, match="another list request"):
            filters.select(items, "items", "endpoints", {**query, **other, **token}, P)
    with pytest.raises(ApiError, match="another list request"):  # another parent
        filters.select(
            items, "items", "endpoints", {**query, "pageToken": first["nextPageToken"]}, "x"
        )
    for bad in ({"pageSize": "-1"}, {"pageSize": "x"}, {"pageToken": "garbage"}):
        with pytest.raises(ApiError) as err:
            filters.select(items, "items", "endpoints", bad, P)
        assert err.value.status == "INVALID_ARGUMENT"
    many = [{"name": f"{P}/endpoints/{i}"} for i in range(1200)]
    assert len(filters.select(many, "items", "endpoints", {"pageSize": "5000"}, P)["items"]) == 1000
    assert len(filters.select(many, "items", "endpoints", {}, P)["items"]) == 100


def test_over_http_filters_pages_and_refusals(shared_emulator):
    url = shared_emulator.url
    made = []
    for name in ("conf-a", "conf-b", "other"):
        body = {"displayName": name, "labels": {"run": name.replace("-", "")}}
        op = httpx.post(f"{url}/{PARENT}/endpoints", json=body).json()
        made.append(op["response"]["name"])
    try:
        flt = 'labels.run="confa" OR labels.run="other"'
        got = httpx.get(
            f"{url}/{PARENT}/endpoints", params={"filter": flt, "orderBy": "display_name desc"}
        ).json()
        assert [e["displayName"] for e in got["endpoints"]] == ["other", "conf-a"]
        page = httpx.get(f"{url}/{PARENT}/endpoints", params={"pageSize": 2}).json()
        token = page["nextPageToken"]
        resp = httpx.get(
            f"{url}/{PARENT}/endpoints", params={"pageToken": token, "filter": "endpoint!=1"}
        )
        assert resp.status_code == 400 and "another list request" in resp.text
        for params in ({"pageSize": -1}, {"filter": "NOT endpoint=1"}, {"orderBy": "name"}):
            resp = httpx.get(f"{url}/{PARENT}/endpoints", params=params)
            assert resp.status_code == 400, (params, resp.text)
            assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"
        resp = httpx.get(f"{url}/{PARENT}/models", params={"filter": 'display_name:"x*"'})
        assert resp.status_code == 400 and "display_name supports" in resp.text
    finally:
        for name in made:
            httpx.delete(f"{url}/v1/{name}")
    assert httpx.get(f"{url}/{PARENT}/endpoints").json().get("endpoints", []) == []
