"""Plain HTTP message types shared by the server, the upstream client and the proxy.

Header names are lowercase bytes (the server and client lowercase them); values are
bytes. A response body is either `body` (bytes, sent with Content-Length) or `stream` (an
async iterator of chunks, sent chunked). The server always closes `stream` (`aclose`) when
it is done with it, also on client disconnect, so a generator's `finally` is the place to
release upstream resources. `after`, if set, is called once when the server is done with the
response (sent, failed or abandoned): bookkeeping that must not delay the client. With a
`stream`, a non-empty `body` is the stream's first bytes, already at hand: they go out in
one write with the head.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

Headers = list[tuple[bytes, bytes]]


def get_header(headers: Headers, name: bytes) -> bytes | None:
    """First value of `name` (lowercase) or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


@dataclass(slots=True)
class Request:
    method: str
    path: str  # without the query string, percent-decoding not applied
    query: str  # raw query string without '?', '' when absent
    headers: Headers
    body: bytes = b""
    client: str = ""  # "host:port" of the peer, for logs

    def header(self, name: bytes) -> bytes | None:
        return get_header(self.headers, name)

    def query_params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))


@dataclass(slots=True)
class Response:
    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    after: Callable[[], None] | None = None
