"""Header filtering: what crosses the proxy towards the upstream and back to the client."""

from __future__ import annotations

from core.headers import client_response_headers, upstream_request_headers, with_defaults

CLAUDE_CODE = [
    (b"host", b"127.0.0.1:8787"),
    (b"connection", b"keep-alive, x-trace-hop"),
    (b"x-trace-hop", b"1"),
    (b"content-type", b"application/json"),
    (b"content-length", b"512"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"x-api-key", b"sk-ant-client-secret"),
    (b"authorization", b"Bearer sk-client"),
    (b"x-goog-api-key", b"AIza-client"),
    (b"api-key", b"azure-client"),
    (b"cookie", b"session=1"),
    (b"proxy-authorization", b"Basic eA=="),
    (b"te", b"trailers"),
    (b"anthropic-version", b"2023-06-01"),
    (b"anthropic-beta", b"interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"),
    (b"user-agent", b"claude-cli/2.0.14 (external, cli)"),
    (b"x-stainless-lang", b"js"),
    (b"x-stainless-retry-count", b"0"),
]


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def test_upstream_gets_the_clients_headers_without_credentials_or_hop_by_hop() -> None:
    out = upstream_request_headers(CLAUDE_CODE, auth=[(b"x-api-key", b"sk-ant-upstream")], extra=[])
    assert out == [
        (b"content-type", b"application/json"),
        (b"anthropic-version", b"2023-06-01"),
        (
            b"anthropic-beta",
            b"interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
        ),
        (b"user-agent", b"claude-cli/2.0.14 (external, cli)"),
        (b"x-stainless-lang", b"js"),
        (b"x-stainless-retry-count", b"0"),
        (b"x-api-key", b"sk-ant-upstream"),
        (b"accept-encoding", b"identity"),
    ]
    assert not any(b"client" in value for _, value in out)  # no client credential leaks


def test_extra_headers_override_same_named_ones() -> None:
    out = upstream_request_headers(
        CLAUDE_CODE,
        auth=[(b"Authorization", b"Bearer sk-up")],
        extra=[(b"Anthropic-Version", b"2024-01-01"), (b"x-ccx-extra", b"1")],
    )
    assert (b"anthropic-version", b"2024-01-01") in out
    assert (b"anthropic-version", b"2023-06-01") not in out
    assert names(out).count(b"anthropic-version") == 1
    assert (b"authorization", b"Bearer sk-up") in out  # names normalised to lowercase
    assert out[-1] == (b"x-ccx-extra", b"1")


def test_client_response_headers_drop_framing_and_add_ours() -> None:
    upstream = [
        (b"date", b"Tue, 10 Jun 2025 12:00:00 GMT"),
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"transfer-encoding", b"chunked"),
        (b"content-length", b"10"),
        (b"connection", b"keep-alive"),
        (b"keep-alive", b"timeout=5"),
        (b"request-id", b"req_011CSHoEeqs5C35K2UUqR7Fy"),
        (b"anthropic-ratelimit-requests-remaining", b"49"),
        (b"retry-after", b"3"),
        (b"alt-svc", b'h3=":443"; ma=86400'),
        (b"x-ccx-upstream", b"spoofed"),
    ]
    out = client_response_headers(upstream, request_id="r-42", upstream="claude-main")
    assert out == [
        (b"date", b"Tue, 10 Jun 2025 12:00:00 GMT"),
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"request-id", b"req_011CSHoEeqs5C35K2UUqR7Fy"),
        (b"anthropic-ratelimit-requests-remaining", b"49"),
        (b"retry-after", b"3"),
        (b"x-ccx-request-id", b"r-42"),
        (b"x-ccx-upstream", b"claude-main"),
    ]


def test_with_defaults_adds_only_missing_headers() -> None:
    headers = [(b"anthropic-version", b"2023-06-01")]
    out = with_defaults(
        headers, [(b"anthropic-version", b"x"), (b"content-type", b"application/json")]
    )
    assert out == [(b"anthropic-version", b"2023-06-01"), (b"content-type", b"application/json")]
