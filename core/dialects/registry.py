"""Which dialect a client request speaks: routes, client keys, and the models-list shape.

Rules:
- `match_route` knows the POST endpoints the proxy serves; anything else is None (the
  server answers 404 or its own endpoints). Paths are compared without the query string.
- Gemini paths are `/{v1beta|v1}/models/{model}:{method}`; the model may contain '/' and
  ends at the LAST ':'. `Route.path_model` keeps `model:method` (percent-decoded), which
  `GEMINI.parse_request` splits; `Route.model` / `Route.stream` give the parts.
- Client credentials are read here only to authenticate against the proxy's own keys;
  they are never forwarded (core/headers.py drops them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import unquote

from core.dialects import Dialect
from core.dialects.anthropic import ANTHROPIC
from core.dialects.base import DialectSpec, Operation, query_value
from core.dialects.base import strip_auth_query as strip_auth_query
from core.dialects.gemini import COUNT_TOKENS, GEMINI, METHODS, STREAM_GENERATE
from core.dialects.openai_chat import OPENAI_CHAT
from core.dialects.openai_responses import OPENAI_RESPONSES

SPECS: dict[Dialect, DialectSpec] = {
    Dialect.ANTHROPIC: ANTHROPIC,
    Dialect.OPENAI_CHAT: OPENAI_CHAT,
    Dialect.OPENAI_RESPONSES: OPENAI_RESPONSES,
    Dialect.GEMINI: GEMINI,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    dialect: Dialect
    operation: Operation
    path_model: str | None  # Gemini only: "model:method"; None for body-model dialects

    @property
    def model(self) -> str | None:
        """The model named in the path (Gemini), without the method."""
        if self.path_model is None:
            return None
        return self.path_model.rpartition(":")[0]

    @property
    def stream(self) -> bool | None:
        """Gemini: whether the path asks streamGenerateContent; None where the body decides."""
        if self.path_model is None:
            return None
        return self.path_model.rpartition(":")[2] == STREAM_GENERATE


_FIXED: dict[str, tuple[Dialect, Operation]] = {
    "/v1/messages": (Dialect.ANTHROPIC, Operation.GENERATE),
    "/v1/messages/count_tokens": (Dialect.ANTHROPIC, Operation.COUNT_TOKENS),
    "/v1/chat/completions": (Dialect.OPENAI_CHAT, Operation.GENERATE),
    "/v1/responses": (Dialect.OPENAI_RESPONSES, Operation.GENERATE),
    "/v1/responses/input_tokens": (Dialect.OPENAI_RESPONSES, Operation.COUNT_TOKENS),
    # OpenAI-compatible clients configured with a base URL lacking /v1
    "/chat/completions": (Dialect.OPENAI_CHAT, Operation.GENERATE),
    "/responses": (Dialect.OPENAI_RESPONSES, Operation.GENERATE),
}
_GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")


def match_route(method: str, path: str) -> Route | None:
    """The endpoint a POST request targets, or None when it is not one the proxy serves."""
    if method.upper() != "POST":
        return None
    return _match_path(path)


# The same few paths come with every request; Gemini paths carry model names, which come
# from clients, so the memory is bounded (routes are immutable: shared safely).
@functools.lru_cache(maxsize=1024)
def _match_path(path: str) -> Route | None:
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    fixed = _FIXED.get(path)
    if fixed is not None:
        return Route(dialect=fixed[0], operation=fixed[1], path_model=None)
    for prefix in _GEMINI_PREFIXES:
        if path.startswith(prefix):
            return _gemini_route(unquote(path[len(prefix) :]))
    return None


def _gemini_route(rest: str) -> Route | None:
    model, sep, method = rest.rpartition(":")
    if not sep or not model or method not in METHODS:
        return None
    operation = Operation.COUNT_TOKENS if method == COUNT_TOKENS else Operation.GENERATE
    return Route(dialect=Dialect.GEMINI, operation=operation, path_model=rest)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def client_key(headers: list[tuple[bytes, bytes]], query: str) -> str | None:
    """The credential the client presented: x-api-key, Bearer, x-goog-api-key or ?key=."""
    value = _header(headers, b"x-api-key")
    if value:
        return value.decode("latin-1").strip()
    auth = _header(headers, b"authorization")
    if auth:
        scheme, _, token = auth.decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    value = _header(headers, b"x-goog-api-key")
    if value:
        return value.decode("latin-1").strip()
    key = query_value(query, "key")
    return unquote(key) if key else None


def is_models_path(path: str) -> bool:
    """GET paths of the models list (all dialects)."""
    return path.rstrip("/") in ("/v1/models", "/v1beta/models", "/models")


def models_dialect(headers: list[tuple[bytes, bytes]], path: str, query: str) -> Dialect:
    """Which dialect's shape GET /v1/models (or /v1beta/models) answers in."""
    if path.rstrip("/") == "/v1beta/models":
        return Dialect.GEMINI
    if _header(headers, b"x-goog-api-key") or query_value(query, "key"):
        return Dialect.GEMINI
    if _header(headers, b"x-api-key") or _header(headers, b"anthropic-version"):
        return Dialect.ANTHROPIC
    return Dialect.OPENAI_CHAT


__all__ = [
    "SPECS",
    "Route",
    "client_key",
    "is_models_path",
    "match_route",
    "models_dialect",
    "strip_auth_query",
]
