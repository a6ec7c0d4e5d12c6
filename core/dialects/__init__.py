"""The four API dialects the proxy serves and speaks upstream.

A provider in config.yaml names the dialect its upstream speaks; `google` is an alias of
`gemini`. One module per dialect owns its paths, auth header, error bodies, stream markers
and usage extraction (see core/dialects/base.py for the contract).
"""

from __future__ import annotations

from enum import StrEnum


class Dialect(StrEnum):
    ANTHROPIC = "anthropic"
    OPENAI_CHAT = "openai"
    OPENAI_RESPONSES = "openai-responses"
    GEMINI = "gemini"


PROVIDER_ALIASES: dict[str, Dialect] = {
    "anthropic": Dialect.ANTHROPIC,
    "claude": Dialect.ANTHROPIC,
    "openai": Dialect.OPENAI_CHAT,
    "openai-chat": Dialect.OPENAI_CHAT,
    "openai-responses": Dialect.OPENAI_RESPONSES,
    "gemini": Dialect.GEMINI,
    "google": Dialect.GEMINI,
}

DEFAULT_BASE_URLS: dict[Dialect, str] = {
    Dialect.ANTHROPIC: "https://api.anthropic.com",
    Dialect.OPENAI_CHAT: "https://api.openai.com/v1",
    Dialect.OPENAI_RESPONSES: "https://api.openai.com/v1",
    Dialect.GEMINI: "https://generativelanguage.googleapis.com",
}
