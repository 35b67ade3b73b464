"""Long-running operations: created, finished and looked up in the store.

Operation names follow Vertex AI: `<resource name>/operations/<numeric id>`, e.g.
`projects/P/locations/L/endpoints/E/operations/O`, so the SDK's REST operations client
(which knows the `.../models/*/operations/*` and `.../endpoints/*/operations/*` paths)
polls the right URL.
"""

from __future__ import annotations

from emulator import resources as res
from emulator.errors import rpc_status
from emulator.store import Store


class Operations:
    """Create and complete operations."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, resource_name: str, metadata_type: str, extra_metadata=None) -> dict:
        """A new, not-done operation under `resource_name`."""
        op = res.operation(
            f"{resource_name}/operations/{res.new_id()}",
            metadata_type,
            res.now(),
            extra_metadata=extra_metadata,
        )
        self.store.put_operation(op)
        return op

    def done(
        self, resource_name: str, metadata_type: str, response_type: str, response=None
    ) -> dict:
        """A new operation that is already done successfully (for instant work)."""
        op = res.operation(
            f"{resource_name}/operations/{res.new_id()}",
            metadata_type,
            res.now(),
            done=True,
            response_type=response_type,
            response=response,
        )
        self.store.put_operation(op)
        return op

    def succeed(
        self,
        name: str,
        response_type: str,
        response: dict | None = None,
        metadata: dict | None = None,
    ) -> bool:
        """Finish an operation with a response (and `metadata` fields, e.g. the deploy's
        final `deploymentStage`); False if it was already done."""
        return self._finish(name, {"response": res.any_of(response_type, response)}, metadata)

    def fail(self, name: str, status: str, message: str, metadata: dict | None = None) -> bool:
        """Finish an operation with a `google.rpc.Status` error; False if already done."""
        return self._finish(name, {"error": rpc_status(status, message)}, metadata)

    def _finish(self, name: str, result: dict, metadata: dict | None = None) -> bool:
        with self.store.lock:
            op = self.store.get_operation(name)
            if op is None or op.get("done"):
                return False
            op["done"] = True
            op.pop("response", None)
            op.pop("error", None)
            op.update(result)
            op["metadata"].update(metadata or {})
            op["metadata"]["genericMetadata"]["updateTime"] = res.now()
            self.store.put_operation(op)
            return True

    def get(self, name: str) -> dict | None:
        """An operation by name, or None."""
        return self.store.get_operation(name)
