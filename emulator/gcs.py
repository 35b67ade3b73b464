"""Cloud Storage for the emulator: the `gcp-storage-emulator` package (an emulator of the
Cloud Storage JSON API) run in-process on 127.0.0.1, its state under
`<state-dir>/storage`.

Clients reach it as `https://storage.googleapis.com` through the emulator's proxy and
front (emulator/front.py). `--gcs-dir` keeps its meaning: at start each folder there is
made a bucket and its files are uploaded as objects (new or changed ones only), so
`gs://BUCKET/PATH` names `GCS_DIR/BUCKET/PATH` as before.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
from pathlib import Path

log = logging.getLogger("emulator.gcs")

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def _md5_base64(path: Path) -> str:
    """The object's `md5Hash` as Cloud Storage writes it (base64 of the MD5 digest)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


class StorageEmulator:
    """gcp-storage-emulator on a free loopback port (start/stop)."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port: int | None = None
        self._server = None
        self._stopper: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` of the storage emulator itself (plain HTTP)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> StorageEmulator:
        """Start serving in a background thread; returns self."""
        from gcp_storage_emulator.server import create_server

        from emulator.processes import free_port

        self.data_dir.mkdir(parents=True, exist_ok=True)
        logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
        self.port = free_port()
        self._server = create_server(
            self.host, self.port, in_memory=False, data_dir=str(self.data_dir)
        )
        self._server.start()
        log.info("cloud storage emulator on %s, data in %s", self.url, self.data_dir)
        return self

    def begin_stop(self) -> None:
        """Start stopping in the background (its server loop takes up to 0.5 s to notice),
        so that the wait overlaps the rest of the emulator's shutdown."""
        with self._lock:
            if self._server is not None and self._stopper is None:
                self._stopper = threading.Thread(
                    target=self._server.stop, name="gcs-stop", daemon=True
                )
                self._stopper.start()

    def stop(self) -> None:
        """Stop serving and wait until it has; idempotent."""
        self.begin_stop()
        with self._lock:
            stopper, self._stopper, self._server = self._stopper, None, None
        if stopper is not None:
            stopper.join(10)

    def client(self, project: str = "deploytest-local"):
        """A google-cloud-storage client talking to this emulator directly (no proxy)."""
        from google.auth.credentials import AnonymousCredentials
        from google.auth.transport.requests import AuthorizedSession
        from google.cloud import storage

        session = AuthorizedSession(AnonymousCredentials())
        session.trust_env = False  # loopback, whatever proxy the caller's environment names
        return storage.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
            _http=session,
        )

    def import_dir(self, gcs_dir: Path) -> int:
        """Make each folder of `gcs_dir` a bucket and upload its new or changed files.

        Returns the number of files uploaded. Folders whose names are not valid bucket
        names are skipped with a warning.
        """
        gcs_dir = Path(gcs_dir)
        if not gcs_dir.is_dir() or not any(p.is_dir() for p in gcs_dir.iterdir()):
            return 0  # nothing to import: spare the start the client's import
        client = self.client()
        uploaded = 0
        for folder in sorted(p for p in gcs_dir.iterdir() if p.is_dir()):
            if not _BUCKET.match(folder.name):
                log.warning("--gcs-dir: %s is not a valid bucket name; skipped", folder.name)
                continue
            bucket = client.lookup_bucket(folder.name) or client.create_bucket(folder.name)
            existing = {b.name: b.md5_hash for b in client.list_blobs(bucket)}
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                name = path.relative_to(folder).as_posix()
                if existing.get(name) == _md5_base64(path):
                    continue
                bucket.blob(name).upload_from_filename(str(path))
                uploaded += 1
        if uploaded:
            log.info("--gcs-dir: uploaded %d files from %s", uploaded, gcs_dir)
        return uploaded
