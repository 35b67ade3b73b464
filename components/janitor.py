"""The janitor: finds endpoints that runs left behind and takes them down.

An endpoint is the janitor's when it carries `deploytest-managed=true` (never otherwise)
and either its `deploytest-expires-at` (unix seconds) has passed or, without a readable
expiry, it is older than the maximum age. Each one found is a leak: a run that did not
clean up after itself, which is a bug. It is logged as one JSON line on stdout
(`"event": "deploytest-leak"`) that Cloud Logging parses into `jsonPayload` for the
log-based metric and alert in `infra/` (Cloud Run writes a JSON stdout line as a
structured entry), then cleaned the way a run's exit task cleans (`components/runtime/cleanup.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from components.runtime.cleanup import (
    CleanupRecord,
    clean_endpoint,
    list_run_endpoints,
    unix_seconds,
    with_retries,
)
from components.runtime.make_labels import EXPIRES_LABEL_KEY, MANAGED_LABEL_KEY, RUN_LABEL_KEY
from components.vertex_clients import endpoint_client, location_path

LEAK_EVENT = "deploytest-leak"
DEFAULT_MAX_AGE_S = 24 * 3600


@dataclass
class Expired:
    """A managed endpoint past its time, and why the janitor thinks so."""

    name: str
    run: str
    reason: str


def find_expired(client, project: str, location: str, now: float, max_age_s: float) -> list:
    """Every `deploytest-managed=true` endpoint past its expiry (or, without one, older
    than `max_age_s`), as `Expired`. Changes nothing."""
    request = {
        "parent": location_path(project, location),
        "filter": f'labels.{MANAGED_LABEL_KEY}="true"',
    }
    found = []
    for endpoint in client.list_endpoints(request=request):  # the pager follows pages
        labels = dict(endpoint.labels)
        if labels.get(MANAGED_LABEL_KEY) != "true":  # never trust the filter alone
            continue
        run = labels.get(RUN_LABEL_KEY, "")
        raw = labels.get(EXPIRES_LABEL_KEY, "")
        if raw.isdigit():
            if int(raw) <= now:
                found.append(Expired(endpoint.name, run, f"expired at {raw}"))
            continue
        created = unix_seconds(endpoint.create_time)
        if created is not None and now - created >= max_age_s:
            what = f"invalid {EXPIRES_LABEL_KEY}={raw!r}" if raw else f"no {EXPIRES_LABEL_KEY}"
            found.append(Expired(endpoint.name, run, f"{what}, {int(now - created)} s old"))
    return found


def clean_expired(
    project: str,
    location: str,
    api_endpoint: str = "",
    max_age_s: float = DEFAULT_MAX_AGE_S,
    timeout_s: float = 900.0,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
    now: float | None = None,
) -> tuple[list[Expired], CleanupRecord]:
    """Find the expired managed endpoints, report each as a leak and clean it (unless
    `dry_run`). Returns what was found and the clean-up record (its `left` names any
    expired endpoint still there)."""
    client = endpoint_client(location, api_endpoint)
    start = time.monotonic()
    deadline = start + timeout_s
    now = time.time() if now is None else now
    record = CleanupRecord("expired", project, location, started_at=time.time())
    expired = with_retries(
        lambda: find_expired(client, project, location, now, max_age_s),
        "list endpoints",
        deadline,
        log,
    )
    log(f"janitor: {len(expired)} expired managed endpoint(s) in {project}/{location}")
    for leak in expired:
        if dry_run:
            log(f"  would clean {leak.name} (run {leak.run or '?'}: {leak.reason})")
            continue
        log(json.dumps({"severity": "ERROR", "event": LEAK_EVENT, **leak.__dict__}))
        record.endpoints.append(clean_endpoint(client, leak.name, deadline, log))
    if not dry_run and expired:
        still = set(
            with_retries(
                lambda: list_run_endpoints(client, project, location, "true", MANAGED_LABEL_KEY),
                "list endpoints",
                deadline,
                log,
            )
        )
        record.left = [leak.name for leak in expired if leak.name in still]
    record.seconds = round(time.monotonic() - start, 3)
    return expired, record
