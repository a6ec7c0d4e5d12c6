"""The exception tree of the engine. Each HTTP-facing error carries the status to answer with.

    CcxError                      status 500, kind "internal"
    ├── ConfigError               a bad config file: file, line, field, what was expected
    ├── RequestError              the client's request is at fault (4xx, the proxy answers)
    │   ├── BadRequest            400 invalid_request
    │   ├── AuthError             401 authentication
    │   ├── NotFound              404 not_found
    │   └── PayloadTooLarge       413 request_too_large
    ├── NoCapacity                429 rate_limited / 503 overloaded, with retry_after seconds
    └── UpstreamError             502 upstream transport failure (no HTTP answer from upstream)
        ├── UpstreamConnectError  could not connect
        ├── UpstreamTimeout       504; phase: connect, first_byte, idle or total
        └── UpstreamProtocolError 502; broken HTTP or broken stream

`kind` is dialect-neutral; each dialect maps it to its own error type name
(core/dialects/*.error_body). Messages never contain secrets: callers mask keys first.
"""

from __future__ import annotations

from typing import Literal


class CcxError(Exception):
    status: int = 500
    kind: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CcxError):
    """A config file that cannot be used. `str()` is the line shown to the user."""

    kind = "config"

    def __init__(
        self, message: str, *, file: str = "", line: int | None = None, field: str = ""
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        where = file or "<config>"
        if line is not None:
            where += f":{line}"
        prefix = f"{where}: " + (f"{field}: " if field else "")
        super().__init__(prefix + message)
        self.detail = message


class RequestError(CcxError):
    status = 400
    kind = "invalid_request"


class BadRequest(RequestError):
    status = 400
    kind = "invalid_request"


class AuthError(RequestError):
    status = 401
    kind = "authentication"


class NotFound(RequestError):
    status = 404
    kind = "not_found"


class PayloadTooLarge(RequestError):
    status = 413
    kind = "request_too_large"


class NoCapacity(CcxError):
    """No upstream can take the request now. 429 when rate limited, 503 when unhealthy."""

    def __init__(
        self, message: str, *, status: Literal[429, 503] = 503, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = "rate_limited" if status == 429 else "overloaded"
        self.retry_after = retry_after


class UpstreamError(CcxError):
    status = 502
    kind = "upstream"


class UpstreamConnectError(UpstreamError):
    kind = "upstream_connect"


TimeoutPhase = Literal["connect", "first_byte", "idle", "total"]


class UpstreamTimeout(UpstreamError):
    status = 504
    kind = "upstream_timeout"

    def __init__(self, message: str, *, phase: TimeoutPhase) -> None:
        super().__init__(message)
        self.phase = phase


class UpstreamProtocolError(UpstreamError):
    kind = "upstream_protocol"
