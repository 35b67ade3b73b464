"""API errors in the `google.rpc.Status` JSON shape that Vertex AI answers with.

The HTTP status follows the canonical gRPC-to-HTTP mapping (google/rpc/code.proto), so
`google.api_core` raises the matching exception: 404 -> NotFound, 400 -> BadRequest
(InvalidArgument / FailedPrecondition arrive as BadRequest over REST, because api_core picks
the class from the HTTP code; the `status` string in the body names the canonical code).
"""

from __future__ import annotations

# canonical code name -> (numeric gRPC code, HTTP status)
CODES: dict[str, tuple[int, int]] = {
    "OK": (0, 200),
    "CANCELLED": (1, 499),
    "UNKNOWN": (2, 500),
    "INVALID_ARGUMENT": (3, 400),
    "DEADLINE_EXCEEDED": (4, 504),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "PERMISSION_DENIED": (7, 403),
    "RESOURCE_EXHAUSTED": (8, 429),
    "FAILED_PRECONDITION": (9, 400),
    "ABORTED": (10, 409),
    "OUT_OF_RANGE": (11, 400),
    "UNIMPLEMENTED": (12, 501),
    "INTERNAL": (13, 500),
    "UNAVAILABLE": (14, 503),
    "DATA_LOSS": (15, 500),
    "UNAUTHENTICATED": (16, 401),
}

# HTTP status -> canonical code name, for errors that start from an HTTP code
# (fault injection, a model server's own error answer).
_HTTP_TO_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def status_for_http(http_code: int) -> str:
    """Canonical status name for an HTTP code (UNKNOWN/INTERNAL-ish fallbacks)."""
    if http_code in _HTTP_TO_STATUS:
        return _HTTP_TO_STATUS[http_code]
    if 400 <= http_code < 500:
        return "FAILED_PRECONDITION"
    return "UNKNOWN" if http_code < 500 else "INTERNAL"


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message", "status"}}`."""

    def __init__(
        self, status: str, message: str, http_code: int | None = None, details: list | None = None
    ):
        super().__init__(message)
        self.details = details
        if status not in CODES:
            raise ValueError(f"unknown status {status!r}")
        self.status = status
        self.message = message
        self.http_code = http_code if http_code is not None else CODES[status][1]

    def body(self) -> dict:
        """The JSON body Vertex AI answers for this error."""
        error = {"code": self.http_code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def rpc_status(self) -> dict:
        """The `google.rpc.Status` shape used in a failed operation's `error` field."""
        return rpc_status(self.status, self.message)


def rpc_status(status: str, message: str) -> dict:
    """`google.rpc.Status` JSON (numeric code + message), as in `Operation.error`."""
    return {"code": CODES[status][0], "message": message}


def not_found(what: str) -> ApiError:
    """404 NOT_FOUND for a missing resource."""
    return ApiError("NOT_FOUND", f"{what} not found.")


def invalid(message: str) -> ApiError:
    """400 INVALID_ARGUMENT."""
    return ApiError("INVALID_ARGUMENT", message)


def failed_precondition(message: str) -> ApiError:
    """400 FAILED_PRECONDITION."""
    return ApiError("FAILED_PRECONDITION", message)
