"""The configuration model: frozen dataclasses, built by core.config_parse.

Rules:
- Everything here is immutable: a reload builds a new Config and swaps it in whole.
- API keys are held as `Secret`, so a repr of the config never shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from core.dialects import Dialect
from core.secrets import Secret

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_CONNECTIONS = "least_connections"
    PRIORITY = "priority"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """`amount` units per `per_seconds` seconds: `100 requests/min` is Rate(100, 60)."""

    amount: float
    per_seconds: float

    @property
    def per_second(self) -> float:
        return self.amount / self.per_seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Seconds. first_byte covers the wait for response headers and, for streams, the first
    content event; idle is the longest gap between stream chunks; total bounds one attempt."""

    connect: float = 10.0
    first_byte: float = 300.0
    idle: float = 120.0
    total: float = 900.0


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    name: str
    provider: Dialect
    base_url: str  # as you would give the provider's official SDK, without trailing '/'
    api_keys: tuple[Secret, ...] = ()
    models: tuple[str, ...] = ()  # glob patterns of client model names served; () = all
    model: str | None = None  # the model sent upstream when model_map has no entry
    model_map: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    rate_limit: Rate | None = None  # requests
    token_limit: Rate | None = None  # tokens (input + output)
    max_concurrent: int | None = None
    weight: int = 1
    priority: int = 0
    timeouts: Timeouts = field(default_factory=Timeouts)
    headers: tuple[tuple[str, str], ...] = ()  # extra headers sent upstream
    enabled: bool = True
    disabled_reason: str | None = None
    line: int | None = None  # where it is defined, for messages

    def upstream_model(self, client_model: str) -> str:
        """The model name to send for a client's model name."""
        mapped = self.model_map.get(client_model)
        if mapped is not None:
            return mapped
        return self.model or client_model


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    failure_threshold: int = 3  # consecutive failures that open the circuit
    cooldown: float = 5.0  # first open period, seconds; doubles per reopen
    max_cooldown: float = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingConfig:
    strategy: Strategy = Strategy.ROUND_ROBIN
    fallback: bool = True
    max_attempts: int = 3
    queue_timeout: float = 30.0  # wait for a bucket/concurrency slot when fallback is off
    deadline: float = 120.0  # total time to find an upstream that answers (all attempts)
    backoff_base: float = 0.25  # seconds; full jitter over base * 2**attempt
    backoff_max: float = 8.0
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    level: str = "info"
    stdout: bool = True
    file: str | None = None  # None: ccx-tray.log in the platformdirs log dir; "" = no file
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigWarning:
    """Something legal but unwise (a key written in plain text); `str()` is the user's line."""

    message: str
    file: str = "<config>"
    line: int | None = None
    field: str = ""

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        return f"{where}: " + (f"{self.field}: " if self.field else "") + self.message


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    source: str = "<config>"
    listen: ListenConfig = field(default_factory=ListenConfig)
    access_keys: tuple[Secret, ...] = ()
    upstreams: tuple[UpstreamConfig, ...] = ()
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    warnings: tuple[ConfigWarning, ...] = ()
