"""Cloud Resource Manager's `Projects.GetProject`, over gRPC, for the SDK's pipeline submit.

`aiplatform.PipelineJob.submit()` checks that the pipeline root's bucket belongs to the
project (a bucket-squatting guard, google-cloud-aiplatform's
`gcs_utils._verify_bucket_ownership`): it reads the bucket's `projectNumber` and asks
Resource Manager for the project's number, through `resourcemanager_v3.ProjectsClient`,
whose default transport is gRPC. Without an answer the call retries for 60 s, then the SDK
logs the failure and goes on. So the emulator answers that one method: a real gRPC server
(grpcio) on 127.0.0.1 with a TLS certificate from the emulator's CA for
`cloudresourcemanager.googleapis.com`, reached through the proxy's CONNECT tunnel (gRPC
honours `https_proxy`; `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` names the CA).

Every project has the one project number that the Cloud Storage emulator gives its buckets
(gcp-storage-emulator's `PROJECT_NUMBER`), so the ownership check passes for the project
that created the bucket; the emulator has no other notion of project ownership.
"""

from __future__ import annotations

import logging
from concurrent import futures

log = logging.getLogger("emulator.resource_manager")

HOST = "cloudresourcemanager.googleapis.com"
_SERVICE = "google.cloud.resourcemanager.v3.Projects"


def project_number() -> str:
    """The number the Cloud Storage emulator writes as every bucket's `projectNumber`."""
    from gcp_storage_emulator.settings import DEFAULT_PROJECT_NUMBER

    return str(DEFAULT_PROJECT_NUMBER)


class ResourceManager:
    """A gRPC server for `Projects.GetProject` (start/stop); `port` once started."""

    def __init__(self, ca, authority, host: str = "127.0.0.1"):
        self.ca = ca
        self.authority = authority
        self.host = host
        self.port: int | None = None
        self._server = None

    def get_project(self, request, context):
        """`projects/{id or number}` -> the project, ACTIVE; a bad token is UNAUTHENTICATED."""
        import grpc
        from google.cloud.resourcemanager_v3 import types

        metadata = dict(context.invocation_metadata())
        if not self.authority.verify_header(metadata.get("authorization")):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "Request had invalid credentials.")
        name = request.name
        if not name.startswith("projects/") or not name[len("projects/") :]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid project name {name!r}.")
        project_id = name[len("projects/") :]
        number = project_number()
        return types.Project(
            name=f"projects/{number}",
            project_id=number if project_id == number else project_id,
            display_name=project_id,
            state=types.Project.State.ACTIVE,
        )

    def start(self) -> int:
        """Listen on a free loopback port with TLS; return the port."""
        import grpc
        from google.cloud.resourcemanager_v3 import types

        handler = grpc.method_handlers_generic_handler(
            _SERVICE,
            {
                "GetProject": grpc.unary_unary_rpc_method_handler(
                    self.get_project,
                    request_deserializer=types.GetProjectRequest.deserialize,
                    response_serializer=types.Project.serialize,
                )
            },
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers((handler,))
        leaf = self.ca.issue_leaf(HOST)
        credentials = grpc.ssl_server_credentials([(leaf[1], leaf[0])])
        self.port = self._server.add_secure_port(f"{self.host}:0", credentials)
        self._server.start()
        log.info("resource manager (gRPC) on %s:%s", self.host, self.port)
        return self.port

    def stop(self) -> None:
        """Stop serving (in-flight calls get a second); idempotent."""
        if self._server is not None:
            self._server.stop(grace=1).wait(5)
            self._server = None
