"""Assemble what lets Google's clients reach the emulator by environment only: the CA,
the token authority, Cloud Storage, the Artifact Registry, the HTTPS front and the proxy
(see emulator/proxy.py and emulator/front.py). `server.run` starts and stops it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path

from emulator.envfile import client_environment, write_env_file

log = logging.getLogger("emulator.google_front")


def _listening_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)  # connections wait in the backlog until the servers run
    return sock


class GoogleFront:
    """The pieces, created in `__init__` (sockets bound), served by `serve()`."""

    def __init__(
        self,
        state_dir: Path,
        gcs_dir: Path,
        vertex_app,
        vertex,
        emulator_url: str,
        project: str,
        hold_s: float,
        host: str = "127.0.0.1",
    ):
        from emulator.auth import TokenAuthority
        from emulator.ca import EmulatorCA, ca_dir
        from emulator.front import Front
        from emulator.gcs import StorageEmulator
        from emulator.registry import Registry

        self.ca = EmulatorCA(ca_dir(state_dir))
        self.authority = TokenAuthority(state_dir / "auth")
        credentials = self.authority.write_credentials()
        self.storage = StorageEmulator(state_dir / "storage", host=host).start()
        try:
            self.storage.import_dir(gcs_dir)
        except Exception:
            self.storage.stop()
            raise
        self.registry = Registry(state_dir / "registry")
        from emulator.resource_manager import ResourceManager

        self.resource_manager = ResourceManager(self.ca, self.authority, host=host)
        self.resource_manager.start()
        from emulator.pubsub import PubSub

        self.pubsub = PubSub(state_dir)
        self.front = Front(
            vertex_app, vertex, self.authority, self.storage.url, self.registry.app, hold_s,
            pubsub=self.pubsub,
        )  # fmt: skip
        self.front_sock = _listening_socket(host)
        from emulator.grpc_bridge import GrpcBridge

        # Vertex AI over gRPC: every call answered through the front (its socket is bound
        # already; connections wait in the backlog until the front serves).
        self.grpc = GrpcBridge(self.front_sock.getsockname()[1], vertex_app.state.serves, host=host)
        try:
            self.grpc.start()
        except Exception:
            self.storage.stop()
            self.resource_manager.stop()
            raise
        self.proxy_sock = _listening_socket(host)
        proxy_url = "http://{}:{}".format(*self.proxy_sock.getsockname()[:2])
        self.env = client_environment(
            proxy_url=proxy_url,
            ca_cert=self.ca.cert_path,
            credentials=credentials,
            project=project,
            emulator_url=emulator_url,
        )
        self._servers: list = []
        self._stop_requested = False

    def write_files(self, state_dir: Path, env_file: Path | None) -> None:
        """`<state-dir>/client-env.json` always, and the env file when asked for."""
        path = state_dir / "client-env.json"
        path.write_text(json.dumps(self.env, indent=1) + "\n")
        if env_file is not None:
            write_env_file(env_file, self.env)
            log.info("wrote the client environment to %s", env_file)

    async def serve(self, front_server_factory) -> None:
        """Serve the front (a uvicorn server from the factory) and the proxy until stopped."""
        from emulator.grpc_bridge import is_vertex_host
        from emulator.proxy import InterceptingProxy
        from emulator.resource_manager import HOST

        proxy = InterceptingProxy(
            self.ca.server_context(),
            self.front_sock.getsockname()[1],
            tunnels={HOST: self.resource_manager.port},
            grpc=(is_vertex_host, self.ca.server_context(("http/1.1", "h2")), self.grpc.port),
        )
        await proxy.start(sock=self.proxy_sock)
        server = front_server_factory(self.front)
        self._servers.append(server)
        server.should_exit = self._stop_requested  # a stop asked for before it existed
        try:
            await server.serve(sockets=[self.front_sock])
        finally:
            await proxy.close()

    def request_stop(self, force: bool = False) -> None:
        """Ask the front server to stop (from a signal handler)."""
        self._stop_requested = True
        self.front.stopping = True
        self.storage.begin_stop()
        for server in self._servers:
            if force:
                server.force_exit = True
            server.should_exit = True

    def close(self, state_dir: Path, env_file: Path | None) -> None:
        """Stop Cloud Storage, close sockets, remove the files that name this instance."""
        self.storage.stop()
        self.grpc.stop()
        self.resource_manager.stop()
        for sock in (self.front_sock, self.proxy_sock):
            sock.close()
        for path in (state_dir / "client-env.json", env_file):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
