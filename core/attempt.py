"""One attempt: send the request to one upstream and decide what came back.

An attempt ends in one of three ways:
- `Answer`: a response for the client (a success, or a client error passed through);
- `Failure`: a retryable or key failure, with the response to give if no other upstream
  can answer (`fallback_response`);
- a committed stream: `Answer` whose response streams through a `RelayStream`.

Deadlines: connect is a cancel scope in the client; first byte (until headers, and for
streams until the first content event), the JSON body's total, and a committed stream's
idle and total are kept by the watchdog (core.watchdog), which aborts the upstream
connection when one passes: a cancel scope per request cost ~20 us on the latency path.
Foreign exceptions were already mapped to core.errors by core.upstream.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from core.config import UpstreamConfig
from core.dialects.base import Usage
from core.errors import TimeoutPhase, UpstreamError, UpstreamTimeout
from core.failover import Outcome, OutcomeKind, classify_error, classify_status, stream_failure
from core.http import Headers
from core.pipes import StreamPipe
from core.upstream import UpstreamClient, UpstreamResponse
from core.watchdog import Watchdog

MAX_ERROR_BODY = 256 * 1024


@dataclass(slots=True, kw_only=True)
class Outgoing:
    """The request as it goes to one upstream."""

    url: str
    headers: Headers
    body: bytes
    stream: bool


@dataclass(slots=True, kw_only=True)
class Answer:
    outcome: Outcome
    status: int
    headers: Headers  # upstream response headers, unfiltered
    body: bytes = b""
    relay: RelayStream | None = None


@dataclass(slots=True, kw_only=True)
class Failure:
    outcome: Outcome
    status: int  # what the client gets if we give up here
    body: bytes  # upstream's error body ('' for transport failures)
    headers: Headers


async def attempt(
    client: UpstreamClient,
    upstream: UpstreamConfig,
    out: Outgoing,
    make_pipe: Callable[[], StreamPipe],
    wall: Callable[[], float],
    watchdog: Watchdog,
    now: float,
) -> Answer | Failure:
    """One try of `out` on `upstream`, started at `now` (trio time)."""
    t = upstream.timeouts
    total_deadline = now + t.total
    deadline = _Deadline(now, t.first_byte, total_deadline)
    watchdog.watch(deadline)
    resp: UpstreamResponse | None = None
    pipe: StreamPipe | None = None

    def prepare() -> None:  # while the upstream works on the request, off the latency path
        nonlocal pipe
        if out.stream and pipe is None:
            pipe = make_pipe()

    try:
        resp = await client.send(
            "POST",
            out.url,
            out.headers,
            out.body,
            connect_timeout=t.connect,
            on_exchange=deadline.attach,
            on_sent=prepare,
        )
        deadline.attach(resp.abort)
        if not 200 <= resp.status < 300:
            return await _error_status(resp, wall)
        if not out.stream or not _is_sse(resp.headers):
            deadline.body_phase()  # the rest of a JSON body is bounded by the total only
            body = await resp.read()
            return Answer(outcome=_ok(resp.status), status=resp.status,
                          headers=resp.headers, body=body)  # fmt: skip
        result = await _preflight(resp, pipe or make_pipe(), t.idle, total_deadline, watchdog)
        if isinstance(result, Answer):
            resp = None  # the relay owns it now
        return result
    except UpstreamError as error:
        exc = error
        if deadline.passed is not None:  # the watchdog aborted the connection
            phase = deadline.passed
            exc = UpstreamTimeout(f"no answer in time ({phase} timeout)", phase=phase)
        return Failure(outcome=classify_error(exc), status=exc.status, body=b"", headers=[])
    finally:
        watchdog.forget(deadline)
        if resp is not None and resp.is_open:
            resp.abort()  # cancelled or failed mid-answer: never reuse that connection


class _Deadline:
    """One attempt's deadlines as the watchdog sees them: the first byte (its `idle`
    since the start), then the total. When one passes, the connection is aborted."""

    __slots__ = ("_abort", "idle", "last_activity", "passed", "total_deadline")

    def __init__(self, now: float, first_byte: float, total_deadline: float) -> None:
        self.last_activity = now
        self.idle = first_byte
        self.total_deadline = total_deadline
        self.passed: TimeoutPhase | None = None
        self._abort: Callable[[], None] | None = None

    def attach(self, abort: Callable[[], None]) -> None:
        """How to abort what the attempt waits on now (a connection, then its response)."""
        self._abort = abort
        if self.passed is not None:
            abort()  # it passed while connecting

    def body_phase(self) -> None:
        self.idle = math.inf

    def stall(self, phase: Literal["idle", "total"]) -> None:
        self.passed = "first_byte" if phase == "idle" else "total"
        if self._abort is not None:
            self._abort()


def _ok(status: int) -> Outcome:
    if status == 200:
        return _OK  # outcomes are immutable: the common one is shared
    return Outcome(kind=OutcomeKind.OK, reason="ok", status=status)


def _is_sse(headers: Headers) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"text/event-stream")
    return False


async def _error_status(resp: UpstreamResponse, wall: Callable[[], float]) -> Answer | Failure:
    body = await resp.read()
    body = body[:MAX_ERROR_BODY]
    outcome = classify_status(resp.status, resp.headers, body, wall_now=wall())
    if outcome.kind is OutcomeKind.CLIENT_ERROR:
        return Answer(outcome=outcome, status=resp.status, headers=resp.headers, body=body)
    return Failure(outcome=outcome, status=resp.status, body=body, headers=resp.headers)


async def _preflight(
    resp: UpstreamResponse,
    pipe: StreamPipe,
    idle: float,
    total_deadline: float,
    watchdog: Watchdog,
) -> Answer | Failure:
    """Hold the stream until its first content event; fail over on an error or early end."""
    held: list[bytes] = []
    chunks = resp.iter_raw().__aiter__()
    ended = False  # the upstream body ended within the preflight
    while True:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            ended = True
            if not pipe.completed and not pipe.content_started:
                return _stream_failure(pipe.error_reason or "early_close")
            break
        held.append(pipe.feed(chunk))
        if pipe.error_reason is not None:
            return _stream_failure(pipe.error_reason)
        if pipe.content_started:
            break
    relay = RelayStream(
        first=b"".join(held),
        chunks=None if ended or pipe.completed else chunks,
        resp=resp,
        pipe=pipe,
        idle=idle,
        total_deadline=total_deadline,
        watchdog=watchdog,
    )
    return Answer(
        outcome=_ok(resp.status),
        status=resp.status,
        headers=resp.headers,
        relay=relay,
    )


_OK = Outcome(kind=OutcomeKind.OK, reason="ok", status=200)


def _stream_failure(reason: str) -> Failure:
    overloaded = "overloaded" in reason or "rate_limit" in reason
    return Failure(
        outcome=stream_failure(reason), status=503 if overloaded else 502, body=b"", headers=[]
    )


class RelayStream:
    """The committed stream: the held bytes, then each upstream chunk as it arrives.

    After the first byte went to the client, a failure ends the stream with the client
    dialect's own error event (never a silent clean end). `on_done(outcome, usage)` is called
    exactly once: at the end, on failure, or when the client goes away (aclose)."""

    def __init__(
        self,
        *,
        first: bytes,
        chunks: AsyncIterator[bytes] | None,
        resp: UpstreamResponse,
        pipe: StreamPipe,
        idle: float,
        total_deadline: float,
        watchdog: Watchdog,
    ) -> None:
        self._first: bytes | None = first
        self._chunks = chunks
        self._resp = resp
        self._pipe = pipe
        self._finished = False
        self._stalled: Literal["idle", "total"] | None = None
        self._watchdog = watchdog
        self.idle = idle
        self.total_deadline = total_deadline
        self.last_activity = watchdog.now()
        self.on_done: Callable[[Outcome, Usage], None] | None = None
        self.outcome: Outcome | None = None
        if chunks is not None:
            watchdog.watch(self)

    @property
    def closed(self) -> bool:
        """Finished and accounted for (`on_done` ran): the server need not `aclose` it."""
        return self.outcome is not None

    def take_first(self) -> bytes:
        """The held-back start of the stream, for the caller to send with the head; the
        iteration then begins after it."""
        first, self._first = self._first or b"", None
        return first

    def stall(self, phase: Literal["idle", "total"]) -> None:
        """The watchdog saw no chunk in time: abort the upstream read (see core.watchdog)."""
        self._stalled = phase
        self._resp.abort()

    def __aiter__(self) -> RelayStream:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            if first:
                return first
        if self._finished:
            raise StopAsyncIteration
        if self._chunks is None:  # the stream ended within the preflight
            self._finished = True
            tail = self._pipe.close()
            ok = self._pipe.completed
            await self._finish(_OK if ok else stream_failure("early_close"))
            if tail:
                return tail
            raise StopAsyncIteration
        try:
            try:
                chunk = await self._chunks.__anext__()
            except UpstreamError:
                if self._stalled is None:
                    raise
                phase = self._stalled
                raise UpstreamTimeout(
                    f"upstream stream stalled ({phase} timeout)", phase=phase
                ) from None
            self.last_activity = self._watchdog.now()
            return self._pipe.feed(chunk)
        except StopAsyncIteration:
            tail = self._pipe.close()
            ok = self._pipe.completed
            outcome = Outcome(kind=OutcomeKind.OK, reason="ok", status=200)
            if not ok:
                outcome = stream_failure("early_close")
            self._chunks = None
            self._finished = True
            if tail:
                await self._finish(outcome)
                return tail
            await self._finish(outcome)
            raise
        except UpstreamError as exc:
            self._chunks = None
            self._finished = True
            await self._finish(classify_error(exc))
            return self._pipe.fail(exc.kind, exc.message)

    async def _finish(self, outcome: Outcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        self._watchdog.forget(self)
        if self._resp.is_open:
            self._resp.abort()  # ended early (client gone, failure): not reusable
        if self.on_done is not None:
            self.on_done(outcome, self._pipe.usage())

    async def aclose(self) -> None:
        """Called by the server when it is done, also when the client went away."""
        if self.outcome is not None:
            return
        # A client may read the last event and hang up before we ask the upstream for
        # more: if the stream already reached its end, it was served, not abandoned.
        if not self._finished:
            self._pipe.close()
        if self._pipe.completed:
            await self._finish(_OK)
            return
        await self._finish(Outcome(kind=OutcomeKind.CLIENT_GONE, reason="client_gone", status=None))
