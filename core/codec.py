"""How one client request is carried to an upstream of a given dialect: a `Plan`.

Same dialect: bytes pass through untouched (only `model` when mapped). Another dialect:
bodies, errors and streams go through core.translate. The proxy talks to a Plan only, so
the attempt loop does not care which of the two it is.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from core import fastjson
from core.config import UpstreamConfig
from core.dialects import Dialect
from core.dialects.base import DialectSpec, Inbound, Operation, Usage, dumps
from core.dialects.gemini import JsonArrayFramer
from core.dialects.registry import SPECS
from core.headers import upstream_request_headers, with_defaults
from core.http import Headers
from core.pipes import PassthroughPipe, StreamPipe
from core.translate.api import (
    count_tokens_request,
    count_tokens_response,
    custom_tool_names,
    translate_error,
    translate_request,
    translate_response,
)
from core.translate.estimate import estimate_count_tokens
from core.translate.streams import StreamTranslator

ALL_DIALECTS: frozenset[Dialect] = frozenset(Dialect)
# count_tokens exists in Anthropic and Gemini; the two translate into each other.
COUNTING_DIALECTS: frozenset[Dialect] = frozenset({Dialect.ANTHROPIC, Dialect.GEMINI})
# Client headers that still mean something to an upstream of another dialect.
PORTABLE_HEADERS = frozenset({b"content-type", b"user-agent", b"accept"})
DEFAULT_UPSTREAM_HEADERS: dict[Dialect, Headers] = {
    Dialect.ANTHROPIC: [(b"anthropic-version", b"2023-06-01")],
}


def upstream_dialects(inbound: Inbound) -> frozenset[Dialect]:
    """Dialects of upstreams that can serve this request."""
    if inbound.operation is Operation.COUNT_TOKENS:
        return COUNTING_DIALECTS | {inbound.dialect}
    return ALL_DIALECTS


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
    if upstream_dialect == inbound.dialect:
        return Plan(inbound, SPECS[upstream_dialect], model)
    return TranslatingPlan(inbound, SPECS[upstream_dialect], model)


class TranslatingPlan(Plan):
    """Client dialect != upstream dialect: bodies, errors and streams go through
    core.translate; only portable client headers are forwarded, no client query."""

    def __init__(self, inbound: Inbound, spec: DialectSpec, model: str) -> None:
        super().__init__(inbound, spec, model)
        self.client = inbound.dialect
        self.upstream = spec.dialect
        self._body: bytes | None = None
        # The client's free-form tools: their calls reach it as custom calls again.
        self.custom_tools = custom_tool_names(inbound.body, src=inbound.dialect)

    def url(self, base_url: str) -> str:
        return base_url + self.spec.upstream_path(
            self.inbound.operation, self.model, self.inbound.stream
        )

    def headers(self, client_headers: Headers, key: str | None, cfg: UpstreamConfig) -> Headers:
        portable = [(k, v) for k, v in client_headers if k in PORTABLE_HEADERS]
        merged = super().headers(portable, key, cfg)
        return with_defaults(merged, DEFAULT_UPSTREAM_HEADERS.get(self.upstream, []))

    def body(self) -> bytes:
        if self._body is None:  # raises BadRequest naming the field that cannot map
            self._body = dumps(self._translated_body())
        return self._body

    def _translated_body(self) -> dict[str, Any]:
        body = self.inbound.body
        if self.inbound.operation is Operation.COUNT_TOKENS:
            return count_tokens_request(body, src=self.client, dst=self.upstream, model=self.model)
        if self.client is Dialect.GEMINI and self.inbound.stream:
            body = {**body, "stream": True}  # Gemini says "stream" in the URL, not the body
        return translate_request(
            body,
            src=self.client,
            dst=self.upstream,
            model=self.model,
            client_model=self.inbound.model,
        )

    def pipe(self) -> StreamPipe:
        include_usage = True
        if self.client is Dialect.OPENAI_CHAT:
            options = self.inbound.body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
        translator = StreamTranslator(
            src=self.upstream,
            dst=self.client,
            client_model=self.inbound.model,
            include_usage=include_usage,
            custom_tools=self.custom_tools,
        )
        pipe: StreamPipe = TranslatingPipe(translator, SPECS[self.client])
        if self.client is Dialect.GEMINI and not self.inbound.gemini_sse:
            pipe = ArrayFramed(pipe)
        return pipe

    def response_body(self, status: int, body: bytes) -> bytes:
        if not 200 <= status < 300:
            return self.error_body(status, body)
        try:
            data = fastjson.loads(body)
        except ValueError:
            return self.error_body(502, body)
        if self.inbound.operation is Operation.COUNT_TOKENS:
            return dumps(count_tokens_response(data, src=self.upstream, dst=self.client))
        translated = translate_response(
            data,
            src=self.upstream,
            dst=self.client,
            client_model=self.inbound.model,
            custom_tools=self.custom_tools,
        )
        return dumps(translated)

    def error_body(self, status: int, body: bytes) -> bytes:
        return translate_error(status, body, src=self.upstream, dst=self.client)

    def client_headers(self, headers: Headers) -> Headers:
        stream = self.inbound.stream and self.inbound.operation is Operation.GENERATE
        content_type = b"text/event-stream" if stream else b"application/json"
        kept = [(k, v) for k, v in headers if k != b"content-type"]
        return super().client_headers([*kept, (b"content-type", content_type)])


class TranslatingPipe:
    """A StreamTranslator seen as a StreamPipe (preflight signals, usage for the log)."""

    def __init__(self, translator: StreamTranslator, client_spec: DialectSpec) -> None:
        self._t = translator
        self._client_spec = client_spec

    @property
    def content_started(self) -> bool:
        return self._t.started_content

    @property
    def completed(self) -> bool:
        return self._t.completed

    @property
    def error_reason(self) -> str | None:
        error = self._t.error
        return None if error is None else _REASONS.get(error.kind, error.kind)

    def feed(self, chunk: bytes) -> bytes:
        return self._t.feed(chunk)

    def close(self) -> bytes:
        return self._t.close()

    def fail(self, kind: str, message: str) -> bytes:
        return self._t.fail(kind, message)

    def usage(self) -> Usage:
        u = self._t.usage
        return Usage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
        )


# Canonical error kinds -> the reason names failover and the log use.
_REASONS = {"overloaded": "overloaded_error", "rate_limited": "rate_limit_error"}


def local_count_tokens(inbound: Inbound) -> bytes:
    """count_tokens with no counting upstream: the documented local estimate."""
    n = estimate_count_tokens(inbound.body, src=inbound.dialect)
    if inbound.dialect is Dialect.GEMINI:
        return dumps({"totalTokens": n})
    return dumps({"input_tokens": n})
