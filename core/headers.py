"""Header filtering between client and upstream, pure.

Rules:
- Header names are lowercase bytes (both our parsers give them so, as h11 did); values
  are kept byte-exact. Names from config (`auth`, `extra`) are lowercased here.
- Upstream requests never carry a client credential: the proxy authenticates clients
  with its own keys and upstreams with theirs (`auth`). Hop-by-hop headers (RFC 9110
  7.6.1, including any named by `Connection`) never cross the proxy, in either direction.
- Upstream requests ask `accept-encoding: identity` so the relay can read usage from the
  bytes it passes through; the body framing (content-length / chunked) is the HTTP
  layer's business on each side.
"""

from __future__ import annotations

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
CLIENT_CREDENTIALS = frozenset(
    {b"authorization", b"x-api-key", b"x-goog-api-key", b"api-key", b"cookie"}
)
# Not hop-by-hop, but set by this side's HTTP layer or by the proxy itself.
_REQUEST_DROP = HOP_BY_HOP | CLIENT_CREDENTIALS | {b"host", b"content-length", b"accept-encoding"}
REQUEST_ID_HEADER = b"x-ccx-request-id"
UPSTREAM_HEADER = b"x-ccx-upstream"
# alt-svc advertises the upstream's alternative protocols for *its* origin, not ours; the
# x-ccx headers are ours to set.
_RESPONSE_DROP = HOP_BY_HOP | {b"content-length", b"alt-svc", REQUEST_ID_HEADER, UPSTREAM_HEADER}


def _filtered(headers: Headers, drop: frozenset[bytes]) -> Headers:
    """`headers` (lowercase names, see the rules) minus `drop`, proxy-*, and the names a
    `Connection` header lists. One pass over the headers (this runs twice per request on
    every header); a second only when a Connection header named others."""
    kept: Headers = []
    listed: list[bytes] | None = None  # the Connection headers' values
    for name, value in headers:
        if name in drop or name[:6] == b"proxy-":
            if name == b"connection":
                listed = [value] if listed is None else [*listed, value]
        else:
            kept.append((name, value))
    if listed is None:
        return kept
    tokens = {t.strip().lower() for v in listed for t in v.split(b",")} - {b""}
    return [h for h in kept if h[0] not in tokens]


def _override(headers: Headers, extra: Headers) -> Headers:
    """`headers` with every name in `extra` replaced by extra's values (appended last)."""
    if not extra:
        return headers  # the common case: no configured headers, nothing to replace
    names = {name.lower() for name, _ in extra}
    return [h for h in headers if h[0].lower() not in names] + list(extra)


def upstream_request_headers(client_headers: Headers, *, auth: Headers, extra: Headers) -> Headers:
    """What goes upstream: the client's headers minus hop-by-hop, credentials and
    encoding; then the upstream's `auth`, `accept-encoding: identity`, and `extra`
    (extra replaces same-named headers, e.g. a configured anthropic-version)."""
    kept = _filtered(client_headers, _REQUEST_DROP)
    kept += [(name.lower(), value) for name, value in auth]
    kept.append((b"accept-encoding", b"identity"))
    return _override(kept, [(name.lower(), value) for name, value in extra])


def client_response_headers(
    upstream_headers: Headers, *, request_id: str, upstream: str
) -> Headers:
    """What goes to the client: the upstream's headers minus hop-by-hop and framing,
    plus x-ccx-request-id and x-ccx-upstream (the upstream's config name)."""
    kept = _filtered(upstream_headers, _RESPONSE_DROP)
    kept.append((REQUEST_ID_HEADER, request_id.encode()))
    kept.append((UPSTREAM_HEADER, upstream.encode()))
    return kept


def with_defaults(headers: Headers, defaults: Headers) -> Headers:
    """`headers` plus each default whose name is absent (e.g. anthropic-version)."""
    present = {name.lower() for name, _ in headers}
    return headers + [(n, v) for n, v in defaults if n.lower() not in present]
