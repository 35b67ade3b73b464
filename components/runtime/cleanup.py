"""Clean-up of a run's endpoints: the reason this product exists.

Finds every endpoint labelled with the run (never only the one a task reported: a task
that died half-way may not have written its output). First cancels every deploy still in
flight on the endpoint (a GPU deploy may outlast any clean-up bound: never wait it out),
then undeploys every deployed model (from the endpoint's deployed models, not only its
traffic split) and deletes the endpoint. If the endpoint is still busy (a cancellation
Vertex has not finished), it waits for the operations, bounded, then undeploys what they
added. Treats NotFound as done, retries transient errors with backoff, and reports what it
did, with the operations' own timestamps that the run's cost is computed from
(`components.cost`). It raises if anything is left.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from components.runtime.make_labels import BILLING_LABEL_KEY, RUN_LABEL_KEY, label_filter
from components.vertex_clients import endpoint_client, location_path

DEPLOY_METADATA = "DeployModelOperationMetadata"
# A listing longer than this many pages is a runaway, not an endpoint's history.
MAX_OPERATION_PAGES = 100


class CleanupIncomplete(RuntimeError):
    """Raised when resources of the run are still there after clean-up gave up."""


@dataclass
class EndpointRecord:
    """What clean-up did to one endpoint, and the facts its cost is computed from.

    Times are unix seconds from Vertex's own timestamps (the endpoint's `createTime`, the
    deploy and delete operations' `genericMetadata`); None where Vertex gave none.
    `deployed` lists each model that was deployed when clean-up came (the billed ones)
    with its resources and the start of the deploy that put it there.
    """

    name: str
    display_name: str = ""
    undeployed_models: list[str] = field(default_factory=list)
    cancelled_operations: list[str] = field(default_factory=list)
    deleted: bool = False
    seconds: float = 0.0
    error: str = ""
    created_at: float | None = None
    deleted_at: float | None = None
    deployed: list[dict] = field(default_factory=list)
    billing_id: str = ""


@dataclass
class CleanupRecord:
    run_label: str
    project: str
    location: str
    endpoints: list[EndpointRecord] = field(default_factory=list)
    started_at: float = 0.0
    seconds: float = 0.0
    left: list[str] = field(default_factory=list)
    # The Vertex AI Pipelines run's `vertex-ai-pipelines-run-billing-id` label, if any.
    billing_id: str = ""

    @property
    def ok(self) -> bool:
        return not self.left

    def to_json(self) -> str:
        data = asdict(self)
        data["ok"] = self.ok
        data["schema_version"] = 1
        return json.dumps(data, indent=2)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying as is: the service or the network hiccupped."""
    from google.api_core import exceptions as gexc

    transient = (
        gexc.ServiceUnavailable,
        gexc.InternalServerError,
        gexc.DeadlineExceeded,
        gexc.TooManyRequests,
        gexc.BadGateway,
        gexc.GatewayTimeout,
        ConnectionError,
        TimeoutError,
    )
    return isinstance(exc, transient)


def is_busy(exc: BaseException) -> bool:
    """Vertex's answer while another operation (a deploy) holds the endpoint.

    Over gRPC that is FailedPrecondition or Aborted; over REST google-api-core picks the
    class from the HTTP code alone, so FAILED_PRECONDITION arrives as BadRequest (400) and
    only the body's status names it.
    """
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.FailedPrecondition | gexc.Aborted | gexc.Conflict):
        return True
    if isinstance(exc, gexc.BadRequest):
        return "FAILED_PRECONDITION" in (_rest_status(exc) or str(exc))
    return False


def _rest_status(exc: BaseException) -> str | None:
    try:
        return exc.response.json()["error"]["status"]
    except Exception:
        return None


def is_transient_or_busy(exc: BaseException) -> bool:
    return is_transient(exc) or is_busy(exc)


def with_retries(
    call: Callable[[], object],
    what: str,
    deadline: float,
    log: Callable[[str], None],
    retry_if: Callable[[BaseException], bool] = is_transient,
    first_delay: float = 0.5,
    max_delay: float = 8.0,
):
    """Run `call`, retrying errors `retry_if` accepts, with exponential backoff, until
    `deadline` (a `time.monotonic()` value)."""
    delay = first_delay
    while True:
        try:
            return call()
        except Exception as exc:
            if not retry_if(exc) or time.monotonic() + delay > deadline:
                raise
            log(f"{what}: {type(exc).__name__}: {exc}; retrying in {delay:.1f}s")
            time.sleep(delay)
            delay = min(delay * 2, max_delay)


def _undeploy_all(client, endpoint, record: EndpointRecord, deadline: float, log) -> None:
    from google.api_core import exceptions as gexc

    remaining = [dm.id for dm in endpoint.deployed_models]
    # Undeploy the models without traffic first, so each request leaves a valid split.
    traffic = dict(endpoint.traffic_split)
    remaining.sort(key=lambda dm_id: traffic.get(dm_id, 0))
    while remaining:
        dm_id = remaining.pop(0)
        split = {remaining[0]: 100} if remaining else {}
        log(f"undeploying model {dm_id} from {endpoint.name}")

        def undeploy(dm_id=dm_id, split=split):
            op = client.undeploy_model(
                endpoint=endpoint.name, deployed_model_id=dm_id, traffic_split=split
            )
            return op.result(timeout=max(1.0, deadline - time.monotonic()))

        try:
            with_retries(undeploy, f"undeploy {dm_id}", deadline, log, is_transient_or_busy)
        except gexc.NotFound:
            log(f"model {dm_id} already gone")
        record.undeployed_models.append(dm_id)


def list_operations(client, name: str) -> list:
    """Every operation on resource `name` (`google.longrunning.Operation`), every page."""
    ops, token = [], ""
    for _ in range(MAX_OPERATION_PAGES):
        request = {"name": name, "page_token": token} if token else {"name": name}
        page = client.list_operations(request=request)
        ops.extend(page.operations)
        token = page.next_page_token
        if not token:
            return ops
    raise RuntimeError(f"more than {MAX_OPERATION_PAGES} pages of operations on {name}")


def pending_operations(client, name: str) -> list[str]:
    """Names of the operations on resource `name` that are not done (e.g. a deploy)."""
    return [op.name for op in list_operations(client, name) if not op.done]


def operation_kind(op) -> str:
    """The metadata message's name, e.g. `DeployModelOperationMetadata`."""
    return op.metadata.type_url.rsplit(".", 1)[-1]


def operation_times(op) -> tuple[float | None, float | None]:
    """(start, last update) of an operation, unix seconds, from its `genericMetadata`."""
    from google.cloud.aiplatform_v1 import types

    kind = getattr(types, operation_kind(op), None)
    try:
        generic = kind.deserialize(op.metadata.value).generic_metadata
    except Exception:  # an operation type we do not know: no times, never a crash
        return None, None
    return unix_seconds(generic.create_time), unix_seconds(generic.update_time)


def unix_seconds(stamp) -> float | None:
    """A protobuf timestamp as unix seconds; None when unset."""
    if stamp is None:
        return None
    seconds = stamp.timestamp()
    return round(seconds, 3) if seconds > 0 else None


def cancel_pending_deploys(client, name: str, deadline: float, log) -> list[str]:
    """Cancel every deploy in flight on endpoint `name`; return the operations cancelled.

    Cancellation is asynchronous and best effort (google.longrunning `CancelOperation`):
    the caller still waits, bounded, for the endpoint to be free. Vertex does not document
    which of its operations honour a cancel; an error here is logged, never raised, and the
    bounded wait and the final check decide.
    """
    from google.api_core import exceptions as gexc

    cancelled = []
    try:
        ops = with_retries(lambda: list_operations(client, name), "list operations", deadline, log)
    except (gexc.NotFound, gexc.MethodNotImplemented):
        return cancelled
    for op in ops:
        if op.done or operation_kind(op) != DEPLOY_METADATA:
            continue
        log(f"cancelling the deploy in flight {op.name}")
        try:
            with_retries(
                lambda op=op: client.cancel_operation(request={"name": op.name}),
                "cancel operation",
                deadline,
                log,
            )
            cancelled.append(op.name)
        except Exception as exc:
            log(f"could not cancel {op.name}: {type(exc).__name__}: {exc}")
    return cancelled


def _deploy_starts(client, name: str, deadline: float, log) -> dict[str, float]:
    """Deployed model id -> start of the deploy operation that put it on endpoint `name`."""
    from google.cloud.aiplatform_v1 import types

    starts: dict[str, float] = {}
    try:
        ops = with_retries(lambda: list_operations(client, name), "list operations", deadline, log)
    except Exception as exc:  # the cost falls back to the deployed model's createTime
        log(f"list operations on {name}: {type(exc).__name__}: {exc}")
        return starts
    for op in ops:
        if operation_kind(op) != DEPLOY_METADATA or not op.done or not op.response.value:
            continue
        try:
            dm_id = types.DeployModelResponse.deserialize(op.response.value).deployed_model.id
        except Exception:
            continue
        start, _ = operation_times(op)
        if dm_id and start:
            starts[dm_id] = start
    return starts


def _billed_models(endpoint, starts: dict[str, float]) -> list[dict]:
    """The models deployed on `endpoint`, with their resources and deploy start."""
    billed = []
    for dm in endpoint.deployed_models:
        res = dm.dedicated_resources
        spec = res.machine_spec
        accelerator = spec.accelerator_type.name if spec.accelerator_count else ""
        billed.append(
            {
                "id": dm.id,
                "machine_type": spec.machine_type,
                "accelerator_type": accelerator,
                "accelerator_count": int(spec.accelerator_count),
                "min_replicas": int(res.min_replica_count),
                "max_replicas": int(res.max_replica_count),
                # The deploy's own start; Vertex may forget old operations, so else the
                # DeployedModel's createTime (set when the deploy was accepted).
                "deploy_started_at": starts.get(dm.id) or unix_seconds(dm.create_time),
            }
        )
    return billed


def wait_for_operations(client, name: str, deadline: float, log, poll_s: float = 2.0) -> bool:
    """Wait, until `deadline` at the latest, for the operations in flight on `name`.

    Returns True when none is left in flight. An API without ListOperations counts as none.
    """
    from google.api_core import exceptions as gexc

    try:
        pending = pending_operations(client, name)
        if pending:
            log(f"waiting for {len(pending)} operation(s) in flight on {name}")
        while pending and time.monotonic() + poll_s <= deadline:
            time.sleep(poll_s)
            pending = pending_operations(client, name)
    except (gexc.NotFound, gexc.MethodNotImplemented):
        return True
    return not pending


def clean_endpoint(client, name: str, deadline: float, log) -> EndpointRecord:
    """Undeploy everything from `name` and delete it; record, never raise."""
    from google.api_core import exceptions as gexc

    started = time.monotonic()
    record = EndpointRecord(name=name)
    delay = 0.5
    try:
        endpoint = with_retries(
            lambda: client.get_endpoint(name=name), "get endpoint", deadline, log
        )
        record.display_name = endpoint.display_name
        record.created_at = unix_seconds(endpoint.create_time)
        record.billing_id = endpoint.labels.get(BILLING_LABEL_KEY, "")
        # Never wait out a deploy in flight: cancel it, then take down what is there.
        record.cancelled_operations = cancel_pending_deploys(client, name, deadline, log)
        if record.cancelled_operations:
            wait_for_operations(client, name, deadline, log, poll_s=1.0)
        starts = _deploy_starts(client, name, deadline, log)
        seen: set[str] = set()
        while True:
            endpoint = with_retries(
                lambda: client.get_endpoint(name=name), "get endpoint", deadline, log
            )
            for billed in _billed_models(endpoint, starts):
                if billed["id"] not in seen:
                    seen.add(billed["id"])
                    record.deployed.append(billed)
            if endpoint.deployed_models:
                _undeploy_all(client, endpoint, record, deadline, log)
                continue  # re-read: a deploy in flight may have added a model meanwhile
            log(f"deleting endpoint {name}")
            try:
                op = client.delete_endpoint(name=name)
                op.result(timeout=max(1.0, deadline - time.monotonic()))
                record.deleted = True
                record.deleted_at = _operation_end(op)
                break
            except Exception as exc:
                if not is_transient_or_busy(exc) or time.monotonic() + delay > deadline:
                    raise
                # Busy: an operation holds the endpoint (a deploy that started after our
                # first look, or a cancellation Vertex has not finished). Cancel any
                # deploy, wait for the rest (bounded), then undeploy what they added.
                log(f"delete endpoint: {type(exc).__name__}: {exc}")
                if is_busy(exc):
                    for op_name in cancel_pending_deploys(client, name, deadline, log):
                        if op_name not in record.cancelled_operations:
                            record.cancelled_operations.append(op_name)
                    if not wait_for_operations(client, name, deadline, log):
                        raise
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
    except gexc.NotFound:
        record.deleted = True
        record.deleted_at = record.deleted_at or round(time.time(), 3)
    except Exception as exc:  # recorded, and the final check fails the clean-up
        record.error = f"{type(exc).__name__}: {exc}"
        log(f"could not clean {name}: {record.error}")
    record.seconds = round(time.monotonic() - started, 3)
    return record


def _operation_end(op) -> float:
    """When a finished operation (an `api_core` future) ended, by Vertex's clock if it says."""
    try:
        end = unix_seconds(op.metadata.generic_metadata.update_time)
    except Exception:
        end = None
    return end or round(time.time(), 3)


def list_run_endpoints(
    client, project: str, location: str, label: str, label_key: str = RUN_LABEL_KEY
) -> list[str]:
    """Names of every endpoint carrying the run's label (or `label_key=label`)."""
    request = {
        "parent": location_path(project, location),
        "filter": label_filter(label_key, label),
    }
    return [e.name for e in client.list_endpoints(request=request)]


def cleanup_run(
    project: str,
    location: str,
    run_label: str,
    api_endpoint: str = "",
    timeout_s: float = 900.0,
    log: Callable[[str], None] = print,
    label_key: str = RUN_LABEL_KEY,
) -> CleanupRecord:
    """Undeploy and delete every endpoint labelled with `run_label`; never raises for a
    resource, only records. Check `record.ok` (or call `cleanup_or_raise`).

    Args:
        project: the Google Cloud project (or the emulated one).
        location: the region, e.g. `us-central1`.
        run_label: the value of the `deploytest-run` label of the run.
        api_endpoint: empty on Vertex; the emulator's URL locally.
        timeout_s: bound on the whole clean-up (deploys in flight are cancelled, not waited out).
        log: where progress lines go.
        label_key: the label to select by; `deploytest-managed` (with run_label "true")
            selects every endpoint any run created, for the janitor.
    """
    client = endpoint_client(location, api_endpoint)
    start = time.monotonic()
    deadline = start + timeout_s
    record = CleanupRecord(run_label, project, location, started_at=time.time())
    log(f"clean-up: looking for endpoints labelled {label_key}={run_label}")
    seen: set[str] = set()
    # Loop: an endpoint whose creation was in flight may appear after the first listing.
    for _ in range(3):
        names = with_retries(
            lambda: list_run_endpoints(client, project, location, run_label, label_key),
            "list endpoints",
            deadline,
            log,
        )
        # each endpoint once: clean_endpoint already retries until the deadline
        todo = [n for n in names if n not in seen]
        if not todo:
            break
        for name in todo:
            seen.add(name)
            record.endpoints.append(clean_endpoint(client, name, deadline, log))
    record.left = with_retries(
        lambda: list_run_endpoints(client, project, location, run_label, label_key),
        "list endpoints",
        deadline,
        log,
    )
    record.seconds = round(time.monotonic() - start, 3)
    log(
        f"clean-up: {sum(e.deleted for e in record.endpoints)} endpoint(s) deleted, "
        f"{sum(len(e.undeployed_models) for e in record.endpoints)} model(s) undeployed, "
        f"{len(record.left)} left, {record.seconds:.1f}s"
    )
    return record


def cleanup_or_raise(**kwargs) -> CleanupRecord:
    """`cleanup_run`, raising `CleanupIncomplete` naming whatever is left."""
    record = cleanup_run(**kwargs)
    if not record.ok:
        raise CleanupIncomplete(f"clean-up left {len(record.left)} endpoint(s): {record.left}")
    return record
