"""OAuth 2.0 for the emulator's HTTPS front: the credentials file, the token endpoint and
the check of a bearer token.

The credentials file is an `authorized_user` JSON (the type `gcloud auth
application-default login` writes): google-auth refreshes it by POSTing
`grant_type=refresh_token` to its `token_uri`, `https://oauth2.googleapis.com/token`,
which the emulator's proxy intercepts and answers here. Tokens are per emulator instance:
an HMAC over the expiry time with a secret kept in `<state-dir>/auth/secret` (0600), so a
token from another emulator or one past its expiry is refused. `TokenAuthority.verify` is
the one check, for the HTTPS front and for any guard that wants it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from emulator.ca import _write_private

TOKEN_URI = "https://oauth2.googleapis.com/token"
TOKEN_LIFETIME_S = 3600  # what Google's token endpoint answers (`expires_in` 3599)
_PREFIX = "ya29.deploytest."
CLIENT_ID = "deploytest-emulator.apps.googleusercontent.com"

# Google's answers, as its services send them (observed shapes; the text is Google's).
UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def unauthenticated_body() -> dict:
    """The `google.rpc.Status` JSON of a 401 from a Google REST API (Vertex AI, AR)."""
    return {"error": {"code": 401, "message": UNAUTHENTICATED_MESSAGE, "status": "UNAUTHENTICATED"}}


def storage_unauthenticated_body() -> dict:
    """Cloud Storage's JSON API 401 (its own `errors[]` shape)."""
    return {
        "error": {
            "code": 401,
            "message": "Invalid Credentials",
            "errors": [
                {
                    "message": "Invalid Credentials",
                    "domain": "global",
                    "reason": "authError",
                    "locationType": "header",
                    "location": "Authorization",
                }
            ],
        }
    }


class TokenAuthority:
    """Issues and checks the access tokens of one emulator state folder."""

    def __init__(self, auth_dir: Path):
        self.auth_dir = Path(auth_dir)
        self.auth_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.auth_dir, 0o700)
        secret_path = self.auth_dir / "secret"
        if not secret_path.is_file():
            _write_private(secret_path, secrets.token_bytes(32))
        self._secret = secret_path.read_bytes()
        self.credentials_path = self.auth_dir / "credentials.json"

    def __repr__(self) -> str:  # never the secret
        return f"TokenAuthority({self.auth_dir})"

    def _mac(self, purpose: str, payload: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}:{payload}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")

    @property
    def refresh_token(self) -> str:
        """The refresh token of the credentials file."""
        return "1//deploytest-" + self._mac("refresh", "v1")

    @property
    def client_secret(self) -> str:
        """The OAuth client secret of the credentials file."""
        return self._mac("client", "v1")[:24]

    def write_credentials(self) -> Path:
        """Write the `authorized_user` credentials file (0600); return its path."""
        info = {
            "type": "authorized_user",
            "client_id": CLIENT_ID,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "token_uri": TOKEN_URI,
        }
        _write_private(self.credentials_path, (json.dumps(info, indent=2) + "\n").encode())
        return self.credentials_path

    def issue(self, now: float | None = None) -> tuple[str, int]:
        """A new access token and its lifetime in seconds."""
        expiry = int((time.time() if now is None else now) + TOKEN_LIFETIME_S)
        nonce = secrets.token_hex(4)
        payload = f"{expiry}.{nonce}"
        return f"{_PREFIX}{payload}.{self._mac('access', payload)}", TOKEN_LIFETIME_S - 1

    def verify(self, token: str | None, now: float | None = None) -> bool:
        """True when `token` was issued by this emulator and has not expired."""
        if not token or not token.startswith(_PREFIX) or len(token) > 256:
            return False
        try:
            expiry, nonce, mac = token[len(_PREFIX) :].split(".")
            expires = int(expiry)
        except ValueError:
            return False
        if not hmac.compare_digest(mac, self._mac("access", f"{expiry}.{nonce}")):
            return False
        return (time.time() if now is None else now) < expires

    def verify_header(self, authorization: str | None) -> bool:
        """True for an `Authorization: Bearer <token>` header with a valid token."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        return scheme.lower() == "bearer" and self.verify(token.strip())

    def token_response(self, form: dict[str, str]) -> tuple[int, dict]:
        """Answer a POST to the token endpoint: (HTTP status, JSON body).

        Only the refresh-token grant of the credentials file is served. A wrong client is
        401 `invalid_client`, a wrong refresh token 400 `invalid_grant`, as Google's token
        endpoint answers; google-auth raises `RefreshError` for both.
        """
        grant = form.get("grant_type")
        if grant != "refresh_token":
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": f"Invalid grant_type: {grant}",
            }
        if form.get("client_id") != CLIENT_ID or not hmac.compare_digest(
            form.get("client_secret", ""), self.client_secret
        ):
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        if not hmac.compare_digest(form.get("refresh_token", ""), self.refresh_token):
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        token, expires_in = self.issue()
        return 200, {
            "access_token": token,
            "expires_in": expires_in,
            "scope": form.get("scope") or "https://www.googleapis.com/auth/cloud-platform",
            "token_type": "Bearer",
        }
