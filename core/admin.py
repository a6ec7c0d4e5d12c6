"""The proxy's own endpoints: health, status snapshot, Prometheus metrics, model lists.

Rules: read-only; answers come from an immutable Snapshot; no secrets (keys are masked).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from core.dialects.registry import SPECS, models_dialect
from core.http import Request, Response

if TYPE_CHECKING:
    from core.engine import Engine

JSON = (b"content-type", b"application/json")


def _json(status: int, payload: object) -> Response:
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return Response(status=status, headers=[JSON], body=body)


def configured_models(engine: Engine) -> list[str]:
    """Concrete model names the config mentions (globs are not models), in config order."""
    names: dict[str, None] = {}
    for up in engine.runtime.config.upstreams:
        if not up.enabled:
            continue
        for name in (*up.model_map.keys(), *up.models, *([up.model] if up.model else [])):
            if not any(ch in name for ch in "*?["):
                names[name] = None
    return list(names)


async def handle_admin(engine: Engine, request: Request) -> Response | None:
    path = request.path
    if request.method not in ("GET", "HEAD"):
        return None
    if path == "/health":
        return _json(200, {"status": "ok", "upstreams": len(engine.runtime.upstreams)})
    if path == "/_ccx/status":
        return _json(200, engine.snapshot().to_json())
    if path == "/metrics":
        body = engine.metrics.render(engine.snapshot())
        return Response(
            status=200,
            headers=[(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
            body=body,
        )
    if path in ("/v1/models", "/v1beta/models"):
        dialect = models_dialect(request.headers, path, request.query)
        body = SPECS[dialect].models_body(configured_models(engine))
        return Response(status=200, headers=[JSON], body=body)
    return None
