"""A proxy and its fake upstreams on a background trio thread, for synchronous SDK clients.

The official SDKs' sync clients block, so they cannot share the test's trio loop. This
module owns one context manager, `proxy_thread`, that runs the fakes and the Engine under
their own `trio.run` in a worker thread and hands back the proxy URL and the fakes.

Rules:
- No sleeps for synchronisation: the thread reports "started" (or its startup error)
  through a `threading.Event`, and stopping posts a cancel into trio through the
  `TrioToken`; the thread is joined and any error it raised is re-raised in the test.
- Only 127.0.0.1: the fakes and the proxy bind loopback; `loopback_only` (a pytest
  fixture body) makes any other connect or name lookup fail loudly in the test.
- Scripts go on the `FakeUpstream`s before the thread starts; what the fakes recorded
  and the access log are read after it stopped, so nothing races the trio thread.
- Also shared by the SDK test files: `sdk_offline` (environment + loopback guard), sample
  loaders (`json_file`, `sse_file`) and one client factory per SDK (no retries, 5 s).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import trio
from google import genai
from google.genai import types as genai_types

from core.accesslog import AccessLog
from core.engine import Engine
from tests.fakes import FakeUpstream, Reply, make_config, start_fake

UPSTREAM_KEY = "upstream-secret-key-0001"
CLIENT_KEY = "client-key-never-forwarded"
# Where each provider's real API lives below its host, as the SDKs' default base URLs say.
_BASE_SUFFIX = {"anthropic": "", "openai": "/v1", "openai-responses": "/v1", "gemini": ""}


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    """One configured upstream: its provider dialect, its fake server and the models it serves."""

    provider: str
    fake: FakeUpstream
    name: str = "up1"
    models: tuple[str, ...] = ()
    model: str | None = None  # the upstream's model: makes another dialect a candidate
    priority: int | None = None


@dataclass(slots=True, kw_only=True)
class RunningProxy:
    url: str
    engine: Engine
    fakes: dict[str, FakeUpstream]  # by upstream name
    log: list[dict[str, Any]] = field(default_factory=list)  # filled once stopped


def config_yaml(upstreams: list[Upstream], urls: dict[str, str], routing: str = "") -> str:
    """The config text; `routing` is the body of a `routing:` section (YAML flow mapping)."""
    lines = ["upstreams:"]
    for up in upstreams:
        lines += [
            f"  - name: {up.name}",
            f"    provider: {up.provider}",
            f"    base_url: {urls[up.name]}{_BASE_SUFFIX[up.provider]}",
            f"    api_key: {UPSTREAM_KEY}",
        ]
        if up.models:
            lines.append(f"    models: [{', '.join(up.models)}]")
        if up.model:
            lines.append(f"    model: {up.model}")
        if up.priority is not None:
            lines.append(f"    priority: {up.priority}")
    if routing:
        lines.append(f"routing: {routing}")
    return "\n".join(lines) + "\n"


class _Handoff:
    """What the trio thread tells the test thread: started (with a token) or failed."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.running: RunningProxy | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        self.stop: Callable[[], None] | None = None
        self.error: BaseException | None = None


async def _serve(upstreams: list[Upstream], handoff: _Handoff, routing: str = "") -> None:
    async with trio.open_nursery() as nursery:
        urls = {}
        for up in upstreams:
            urls[up.name] = (await start_fake(nursery, up.fake)).url
        engine = Engine(
            make_config(config_yaml(upstreams, urls, routing)),
            access_log=AccessLog(keep_recent=100),
        )
        info = await nursery.start(partial(engine.run, host="127.0.0.1", port=0))
        handoff.running = RunningProxy(
            url=info.url, engine=engine, fakes={up.name: up.fake for up in upstreams}
        )
        handoff.token = trio.lowlevel.current_trio_token()
        handoff.stop = nursery.cancel_scope.cancel
        handoff.ready.set()


def _thread_main(upstreams: list[Upstream], handoff: _Handoff, routing: str = "") -> None:
    try:
        trio.run(_serve, upstreams, handoff, routing)
    except BaseException as exc:  # handed to the test thread, re-raised there
        handoff.error = exc
    finally:
        handoff.ready.set()


@contextmanager
def proxy_thread(
    *upstreams: Upstream, start_timeout: float = 10.0, routing: str = ""
) -> Iterator[RunningProxy]:
    """Run fakes + Engine in a worker thread; yield the running proxy; stop and join."""
    handoff = _Handoff()
    thread = threading.Thread(
        target=_thread_main,
        args=(list(upstreams), handoff, routing),
        name="sdk-proxy",
        daemon=True,
    )
    thread.start()
    if not handoff.ready.wait(start_timeout):
        raise RuntimeError("the proxy thread did not start")
    if handoff.running is None or handoff.token is None or handoff.stop is None:
        thread.join(start_timeout)
        raise RuntimeError("the proxy thread failed to start") from handoff.error
    running = handoff.running
    try:
        yield running
    finally:
        with suppress(trio.RunFinishedError):  # it already ended (an error): join reports it
            handoff.token.run_sync_soon(handoff.stop)
        thread.join(start_timeout)
        if thread.is_alive():
            raise RuntimeError("the proxy thread did not stop")
    if handoff.error is not None:
        raise handoff.error
    running.log = list(running.engine.access_log.recent)


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every non-loopback name lookup or connect fail; returns what was refused."""
    refused: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK and host not in (None, b"127.0.0.1"):
            refused.append(f"lookup {host}")
            raise OSError(f"test refused a lookup of {host!r}: loopback only")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in _LOOPBACK:
            refused.append(f"connect {host}")
            raise OSError(f"test refused a connection to {host!r}: loopback only")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return refused


# ---------------------------------------------------------------- shared by the SDK tests

SDK_ENV = (
    "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_GENAI_API_VERSION", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "HTTP_PROXY",
    "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
)  # fmt: skip


def sdk_offline(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Loopback only, no SDK settings from the environment, no Google ADC lookups.

    Returns the check to run after the test: nothing was refused, nothing asked for ADC."""
    for name in SDK_ENV:
        monkeypatch.delenv(name, raising=False)
    adc_calls: list[Any] = []

    def no_adc(*args: Any, **kwargs: Any) -> Any:
        adc_calls.append(args)
        raise AssertionError("google-genai asked for ADC credentials")

    monkeypatch.setattr("google.auth.default", no_adc)
    refused = loopback_only(monkeypatch)

    def check() -> None:
        assert adc_calls == [] and refused == []

    return check


def json_file(path: Path) -> Reply:
    return Reply(headers=[(b"content-type", b"application/json")], body=path.read_bytes())


def sse_file(path: Path) -> Reply:
    """The sample stream, one chunk per event (CRLF-separated for Gemini, as Google sends)."""
    raw = path.read_bytes()
    sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    chunks: list[bytes | trio.Event] = [e + sep for e in raw.split(sep) if e.strip()]
    return Reply(headers=[(b"content-type", b"text/event-stream")], chunks=chunks)


def anthropic_client(proxy: RunningProxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=CLIENT_KEY, max_retries=0, timeout=5)


def openai_client(proxy: RunningProxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=5)


def genai_client(proxy: RunningProxy, api_version: str | None = None) -> genai.Client:
    options = genai_types.HttpOptions(
        base_url=proxy.url,
        api_version=api_version,
        timeout=5000,  # milliseconds
        retry_options=genai_types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=CLIENT_KEY, http_options=options)
