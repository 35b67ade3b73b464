"""The emulator's own certificate authority, and the TLS context of its HTTPS front.

The CA (made with `trustme`) is created once per state folder and kept there:
`tls/ca.pem` (the certificate clients trust through REQUESTS_CA_BUNDLE/SSL_CERT_FILE) and
`tls/ca-key.pem` (the private key, mode 0600, never printed or logged). Every start issues
a fresh leaf certificate, held in memory only, for the intercepted Google hosts.

`DEPLOYTEST_EMULATOR_CA_DIR` names another folder for the CA, shared by every emulator that
sees it (the test suite sets it): gRPC reads its root certificates once per process
(`GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`), so one process that talks to several emulators over
gRPC (the SDK's default transport; Resource Manager, for its pipeline submit) needs them
to share one CA. The folder is created 0700 and the CA in it under a lock, so emulators
starting together agree on one.
"""

from __future__ import annotations

import fcntl
import os
import ssl
from pathlib import Path

import trustme

# One wildcard label covers `us-central1-aiplatform.googleapis.com`, `oauth2.googleapis.com`,
# `storage.googleapis.com`, `artifactregistry.googleapis.com` and `us-central1-kfp.pkg.dev`;
# which of those hosts are answered at all is the proxy's allow-list (emulator/proxy.py).
LEAF_NAMES = ("*.googleapis.com", "*.pkg.dev")


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new file readable by the owner only (0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def ca_dir(state_dir: Path) -> Path:
    """`DEPLOYTEST_EMULATOR_CA_DIR` if set (see the module docstring), else `<state>/tls`."""
    shared = os.environ.get("DEPLOYTEST_EMULATOR_CA_DIR", "").strip()
    return Path(shared) if shared else Path(state_dir) / "tls"


class EmulatorCA:
    """The CA of one state folder: load it, or create it on first use."""

    def __init__(self, tls_dir: Path):
        self.tls_dir = Path(tls_dir)
        self.cert_path = self.tls_dir / "ca.pem"
        self.key_path = self.tls_dir / "ca-key.pem"
        self._ca = self._load_or_create()

    def _load_or_create(self) -> trustme.CA:
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.tls_dir, 0o700)
        with open(self.tls_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another emulator may be creating it now
            if self.cert_path.is_file() and self.key_path.is_file():
                os.chmod(self.key_path, 0o600)
                return trustme.CA.from_pem(self.cert_path.read_bytes(), self.key_path.read_bytes())
            ca = trustme.CA(organization_name="deploytest emulator (local only)")
            _write_private(self.key_path, ca.private_key_pem.bytes())
            self.cert_path.write_bytes(ca.cert_pem.bytes())
            return ca

    def __repr__(self) -> str:  # never the key
        return f"EmulatorCA({self.cert_path})"

    def issue_leaf(self, *hosts: str) -> tuple[bytes, bytes]:
        """(certificate chain PEM, private key PEM) of a fresh leaf for `hosts` (for a
        server that takes PEM bytes, such as grpcio's)."""
        leaf = self._ca.issue_cert(*hosts)
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        return chain, leaf.private_key_pem.bytes()

    def server_context(self, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
        """A server-side TLS context with a fresh leaf certificate for the Google hosts,
        offering the `alpn` protocols in that order of preference (OpenSSL picks the first
        of the server's list that the client offers)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # HTTP/1.1 by default: the front is an HTTP/1.1 server; h2-capable clients fall
        # back. The proxy offers `h2` too for the hosts whose gRPC it serves.
        ctx.set_alpn_protocols(list(alpn))
        self._ca.issue_cert(*LEAF_NAMES).configure_cert(ctx)
        return ctx
