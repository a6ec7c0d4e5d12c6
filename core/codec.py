"""How one client request is carried to an upstream of a given dialect: a `Plan`.

Same dialect: bytes pass through untouched (only `model` when mapped). Another dialect:
bodies, errors and streams go through core.translate. The proxy talks to a Plan only, so
the attempt loop does not care which of the two it is.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from core.config import UpstreamConfig
from core.dialects import Dialect
from core.dialects.base import DialectSpec, Inbound, Usage
from core.dialects.gemini import JsonArrayFramer
from core.dialects.registry import SPECS
from core.headers import upstream_request_headers
from core.http import Headers
from core.pipes import PassthroughPipe, StreamPipe

SAME_DIALECT_ONLY = True  # until core.translate is wired in


def upstream_dialects(inbound: Inbound) -> frozenset[str]:
    """Dialects of upstreams that can serve this request."""
    if SAME_DIALECT_ONLY:
        return frozenset({inbound.dialect})
    return frozenset(Dialect)


def _merge_query(path: str, client_query: str) -> str:
    """Append the client's query to the upstream path; the path's own params win."""
    if not client_query:
        return path
    own = path.partition("?")[2]
    taken = {k for k, _ in parse_qsl(own, keep_blank_values=True)}
    extra = "&".join(
        part for part in client_query.split("&") if part and part.split("=", 1)[0] not in taken
    )
    if not extra:
        return path
    return f"{path}{'&' if own else '?'}{extra}"


class Plan:
    """Same-dialect pass-through."""

    def __init__(self, inbound: Inbound, spec: DialectSpec, model: str) -> None:
        self.inbound = inbound
        self.spec = spec  # the upstream's dialect
        self.model = model

    def url(self, base_url: str) -> str:
        path = self.spec.upstream_path(self.inbound.operation, self.model, self.inbound.stream)
        return base_url + _merge_query(path, self.inbound.query)

    def headers(self, client_headers: Headers, key: str | None, cfg: UpstreamConfig) -> Headers:
        auth = self.spec.auth_headers(key) if key else []
        extra = [(k.lower().encode(), v.encode()) for k, v in cfg.headers]
        return upstream_request_headers(client_headers, auth=auth, extra=extra)

    def body(self) -> bytes:
        return self.spec.with_model(self.inbound, self.model)

    def pipe(self) -> StreamPipe:
        pipe: StreamPipe = PassthroughPipe(self.spec)
        if self.inbound.dialect is Dialect.GEMINI and not self.inbound.gemini_sse:
            pipe = ArrayFramed(pipe)
        return pipe

    def response_body(self, status: int, body: bytes) -> bytes:
        return body

    def client_headers(self, headers: Headers) -> Headers:
        """Response headers for the client (the JSON-array stream form is not SSE)."""
        if (
            self.inbound.dialect is Dialect.GEMINI
            and self.inbound.stream
            and not (self.inbound.gemini_sse)
        ):
            kept = [(k, v) for k, v in headers if k != b"content-type"]
            return [*kept, (b"content-type", b"application/json")]
        return headers

    def usage(self, status: int, body: bytes) -> Usage:
        if 200 <= status < 300:
            return self.spec.usage_from_body(body)
        return Usage()

    def error_body(self, status: int, body: bytes) -> bytes:
        return body


class ArrayFramed:
    """A pipe whose client output is Gemini's JSON-array stream instead of SSE."""

    def __init__(self, inner: StreamPipe) -> None:
        self._inner = inner
        self._framer = JsonArrayFramer()

    @property
    def content_started(self) -> bool:
        return self._inner.content_started

    @property
    def completed(self) -> bool:
        return self._inner.completed

    @property
    def error_reason(self) -> str | None:
        return self._inner.error_reason

    def feed(self, chunk: bytes) -> bytes:
        return self._framer.feed(self._inner.feed(chunk))

    def close(self) -> bytes:
        return self._framer.feed(self._inner.close()) + self._framer.close()

    def fail(self, kind: str, message: str) -> bytes:
        return self._framer.feed(self._inner.fail(kind, message)) + self._framer.close()

    def usage(self) -> Usage:
        return self._inner.usage()


def plan(inbound: Inbound, upstream_dialect: Dialect, model: str) -> Plan:
    return Plan(inbound, SPECS[upstream_dialect], model)
