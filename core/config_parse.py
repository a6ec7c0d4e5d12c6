"""Parsing config.yaml into the model of core.config: `parse_config` and `load_config`.

Rules:
- `parse_config(text, env, source=...)` is pure: no file or environment access of its own;
  the caller passes the text and the environment mapping.
- Errors raise `ConfigError` naming the file, line, field and what was expected; unknown
  keys are errors with a did-you-mean.
- An upstream whose `${VAR}` key is unset loads disabled (`enabled=False`,
  `disabled_reason` says which variable), it does not fail the config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

from core.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    BreakerConfig,
    Config,
    ConfigWarning,
    ListenConfig,
    LoggingConfig,
    Rate,
    RoutingConfig,
    Strategy,
    Timeouts,
    UpstreamConfig,
)
from core.config_yaml import (
    Entries,
    Reader,
    UnsetVariableError,
    YNode,
    compose,
    parse_rate,
    references,
)
from core.dialects import DEFAULT_BASE_URLS, PROVIDER_ALIASES, Dialect
from core.errors import ConfigError
from core.secrets import Secret

TOP_KEYS = ("listen", "access_keys", "upstreams", "routing", "logging")
UPSTREAM_KEYS = (
    "name", "provider", "base_url", "api_key", "api_keys", "models", "model", "model_map",
    "rate_limit", "token_limit", "max_concurrent", "weight", "priority", "timeouts",
    "headers", "enabled",
)  # fmt: skip
ROUTING_KEYS = (
    "strategy", "fallback", "max_attempts", "queue_timeout", "deadline", "backoff_base",
    "backoff_max", "breaker",
)  # fmt: skip
LOG_LEVELS = ("debug", "info", "warning", "error")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RATE_EXAMPLE = {"requests": "'100 requests/min'", "tokens": "'100000 tokens/min'"}


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and parse a config file; env defaults to os.environ. Raises ConfigError."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError("file not found (create one with `ccx-tray init`)", file=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"cannot read the file: {reason}", file=source) from None
    return parse_config(text, os.environ if env is None else env, source=source)


def parse_config(text: str, env: Mapping[str, str], *, source: str = "<config>") -> Config:
    """Parse and validate config.yaml text. Raises ConfigError."""
    parser = _Parser(Reader(source, env))
    root = compose(text, source)
    if root is None:
        raise ConfigError("the file is empty: expected a mapping with 'upstreams'", file=source)
    return parser.config(root)


class _Parser:
    """One parse: the reader plus the warnings collected on the way."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader
        self.warnings: list[ConfigWarning] = []

    def warn(self, node: YNode, field: str, message: str) -> None:
        self.warnings.append(
            ConfigWarning(message=message, file=self.r.source, line=node.line, field=field)
        )

    def config(self, root: YNode) -> Config:
        top = self.r.mapping(root, "", TOP_KEYS, required=("upstreams",))
        upstream_nodes = self.r.sequence(
            top.values["upstreams"], "upstreams", "a list of upstreams"
        )
        if not upstream_nodes:
            self.r.fail(top.values["upstreams"], "upstreams", "expected at least one upstream")
        upstreams = tuple(self.upstream(n, f"upstreams[{i}]") for i, n in enumerate(upstream_nodes))
        self.check_unique_names(upstream_nodes, upstreams)
        listen, access, routing, logging = (top.get(k) for k in TOP_KEYS if k != "upstreams")
        return Config(
            source=self.r.source,
            listen=self.listen(listen) if listen else ListenConfig(),
            access_keys=self.access_keys(access) if access else (),
            upstreams=upstreams,
            routing=self.routing(routing) if routing else RoutingConfig(),
            logging=self.logging(logging) if logging else LoggingConfig(),
            warnings=tuple(self.warnings),
        )

    def check_unique_names(self, nodes: tuple[YNode, ...], ups: tuple[UpstreamConfig, ...]) -> None:
        first: dict[str, int] = {}
        for i, (node, up) in enumerate(zip(nodes, ups, strict=True)):
            if up.name in first:
                name_node = dict((k.text, v) for k, v in node.entries)["name"]
                self.r.fail(
                    name_node,
                    f"upstreams[{i}].name",
                    f"duplicate upstream name '{up.name}' (first used by "
                    f"upstreams[{first[up.name]}]); names must be unique",
                )
            first[up.name] = i

    # -- upstreams

    def upstream(self, node: YNode, f: str) -> UpstreamConfig:
        u = self.r.mapping(node, f, UPSTREAM_KEYS, required=("name", "provider"))
        name = self.r.string(u.values["name"], f"{f}.name").strip()
        if not name:
            self.r.expected(u.values["name"], f"{f}.name", "a non-empty name")
        if not name.isprintable():  # it goes into x-ccx-upstream headers, logs and the tray
            self.r.expected(u.values["name"], f"{f}.name", "a name without control characters")
        provider = self.provider(u.values["provider"], f"{f}.provider")
        keys, reason = self.api_keys(u, f)
        enabled = self.r.boolean(n, f"{f}.enabled") if (n := u.get("enabled")) else True
        if not enabled:
            reason = "disabled in config"
        return UpstreamConfig(
            name=name,
            provider=provider,
            base_url=self.base_url(u.get("base_url"), f"{f}.base_url", provider),
            api_keys=keys,
            models=self.models(u.get("models"), f"{f}.models"),
            model=self.r.string(n, f"{f}.model") if (n := u.get("model")) else None,
            model_map=self.string_map(u.get("model_map"), f"{f}.model_map"),
            rate_limit=self.rate(u.get("rate_limit"), f"{f}.rate_limit", "requests"),
            token_limit=self.rate(u.get("token_limit"), f"{f}.token_limit", "tokens"),
            max_concurrent=self.r.integer(n, f"{f}.max_concurrent", minimum=1)
            if (n := u.get("max_concurrent"))
            else None,
            weight=self.r.integer(n, f"{f}.weight", minimum=1) if (n := u.get("weight")) else 1,
            priority=self.r.integer(n, f"{f}.priority") if (n := u.get("priority")) else 0,
            timeouts=self.timeouts(u.get("timeouts"), f"{f}.timeouts"),
            headers=tuple(self.headers(u.get("headers"), f"{f}.headers")),
            enabled=reason is None,
            disabled_reason=reason,
            line=node.line,
        )

    def provider(self, node: YNode, f: str) -> Dialect:
        text = self.r.string(node, f).strip().lower()
        if text not in PROVIDER_ALIASES:
            self.r.expected(node, f, "one of " + ", ".join(PROVIDER_ALIASES))
        return PROVIDER_ALIASES[text]

    def base_url(self, node: YNode | None, f: str, provider: Dialect) -> str:
        if node is None:
            return DEFAULT_BASE_URLS[provider]
        url = self.r.string(node, f).strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.r.expected(node, f, "an http(s) URL like 'https://api.example.com/v1'")
        return url

    def api_keys(self, u: Entries, f: str) -> tuple[tuple[Secret, ...], str | None]:
        """The key pool, and why the upstream is disabled if no key could be expanded."""
        one, pool = u.get("api_key"), u.get("api_keys")
        if one and pool:
            self.r.fail(pool, f"{f}.api_keys", "use either api_key (one key) or api_keys (a list)")
        nodes: tuple[YNode, ...]
        if one:
            nodes, fields = (one,), [f"{f}.api_key"]
        elif pool:
            nodes = self.r.sequence(pool, f"{f}.api_keys", "a list of keys")
            fields = [f"{f}.api_keys[{i}]" for i in range(len(nodes))]
        else:
            return (), None
        keys: list[Secret] = []
        missing: list[str] = []
        empty: list[str] = []
        for node, field_ in zip(nodes, fields, strict=True):
            try:
                value = self.r.string_or_unset(node, field_, secret=True).strip()
            except UnsetVariableError as exc:
                missing.append(f"{exc.name} is not set")
                continue
            if not value:
                if not references(node.text):
                    self.r.expected(node, field_, "a non-empty key", secret=True)
                # Empty on purpose (`${KEY_2:-}`): an optional pool member, no warning.
                empty.append(" and ".join(references(node.text)) + " is empty")
                continue
            if not references(node.text):
                self.warn(node, field_, "key written in plain text; prefer ${ENV_VAR}")
            keys.append(Secret(value))
        if missing and keys:
            self.warn(nodes[0], fields[0], "some keys skipped: " + ", ".join(missing))
        reason = ", ".join(missing or empty) if not keys else None
        return tuple(keys), reason

    def models(self, node: YNode | None, f: str) -> tuple[str, ...]:
        if node is None:
            return ()
        items = (node,) if node.kind == "scalar" else self.r.sequence(node, f, "a list of models")
        models = tuple(self.r.string(n, f"{f}[{i}]").strip() for i, n in enumerate(items))
        for i, (n, model) in enumerate(zip(items, models, strict=True)):
            if not model:
                self.r.expected(n, f"{f}[{i}]", "a model name or glob pattern like 'claude-*'")
        return models

    def string_map(self, node: YNode | None, f: str) -> Mapping[str, str]:
        if node is None:
            return MappingProxyType({})
        if node.kind != "map":
            self.r.expected(node, f, "a mapping of client model -> upstream model")
        return MappingProxyType(
            {k.text: self.r.string(v, f"{f}.{k.text}").strip() for k, v in node.entries}
        )

    def headers(self, node: YNode | None, f: str) -> list[tuple[str, str]]:
        if node is None:
            return []
        if node.kind != "map":
            self.r.expected(node, f, "a mapping of header name -> value")
        result = []
        for k, v in node.entries:
            if not _HEADER_NAME.fullmatch(k.text):
                self.r.fail(k, f"{f}.{k.text}", "expected a valid HTTP header name")
            # Header values often carry credentials: never quote them in messages.
            result.append((k.text, self.r.string(v, f"{f}.{k.text}", secret=True)))
        return result

    def rate(self, node: YNode | None, f: str, counted: str) -> Rate | None:
        if node is None:
            return None
        example = _RATE_EXAMPLE[counted]
        number = self.r.number(node)
        if number is not None:
            parsed: tuple[float, float, str | None] | None = (number, 60.0, counted)
        elif node.kind == "scalar":
            parsed = parse_rate(self.r.string(node, f))
        else:
            parsed = None
        if parsed is None:
            self.r.expected(node, f, f"a rate like {example}")
        amount, per, what = parsed
        if what is not None and what != counted:
            other = "token_limit" if what == "tokens" else "rate_limit"
            self.r.fail(node, f, f"this counts {counted}, got a rate of {what} (use {other})")
        if amount <= 0:
            self.r.expected(node, f, f"a positive rate like {example}")
        return Rate(amount=amount, per_seconds=per)

    def timeouts(self, node: YNode | None, f: str) -> Timeouts:
        if node is None:
            return Timeouts()
        t = self.r.mapping(node, f, ("connect", "first_byte", "idle", "total"))
        values = {k: self.r.duration(n, f"{f}.{k}") for k, n in t.values.items() if not n.is_null}
        return Timeouts(**values)

    # -- top-level sections

    def listen(self, node: YNode) -> ListenConfig:
        if node.kind == "scalar":
            text = self.r.string(node, "listen").strip()
            host, sep, port_text = text.rpartition(":")
            host = host.removeprefix("[").removesuffix("]")
            if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
                self.r.expected(node, "listen", "'host:port' like '127.0.0.1:8787'")
            return ListenConfig(host=host, port=int(port_text))
        m = self.r.mapping(node, "listen", ("host", "port"))
        host = self.r.string(n, "listen.host").strip() if (n := m.get("host")) else DEFAULT_HOST
        if not host:
            self.r.expected(m.values["host"], "listen.host", "a host name or address")
        port = self.r.integer(n, "listen.port", minimum=0) if (n := m.get("port")) else DEFAULT_PORT
        if port > 65535:
            self.r.expected(m.values["port"], "listen.port", "a port from 0 to 65535")
        return ListenConfig(host=host, port=port)

    def access_keys(self, node: YNode) -> tuple[Secret, ...]:
        items = self.r.sequence(node, "access_keys", "a list of keys")
        keys = []
        for i, n in enumerate(items):
            value = self.r.string(n, f"access_keys[{i}]", secret=True).strip()
            if not value:
                self.r.expected(n, f"access_keys[{i}]", "a non-empty key", secret=True)
            keys.append(Secret(value))
        return tuple(keys)

    def routing(self, node: YNode) -> RoutingConfig:
        m = self.r.mapping(node, "routing", ROUTING_KEYS)
        values: dict[str, object] = {}
        for key, n in m.values.items():
            if n.is_null:
                continue
            f = f"routing.{key}"
            if key == "strategy":
                values[key] = Strategy(self.r.choice(n, f, [s.value for s in Strategy]))
            elif key == "fallback":
                values[key] = self.r.boolean(n, f)
            elif key == "max_attempts":
                values[key] = self.r.integer(n, f, minimum=1)
            elif key == "breaker":
                values[key] = self.breaker(n)
            else:
                values[key] = self.r.duration(n, f, allow_zero=key.startswith("backoff"))
        routing = RoutingConfig(**values)  # type: ignore[arg-type]
        if routing.backoff_max < routing.backoff_base:
            n = m.values.get("backoff_max") or m.values["backoff_base"]
            self.r.fail(n, "routing.backoff_max", "expected backoff_max >= backoff_base")
        return routing

    def breaker(self, node: YNode) -> BreakerConfig:
        f = "routing.breaker"
        m = self.r.mapping(node, f, ("failure_threshold", "cooldown", "max_cooldown"))
        values: dict[str, object] = {}
        for key, n in m.values.items():
            if n.is_null:
                continue
            if key == "failure_threshold":
                values[key] = self.r.integer(n, f"{f}.{key}", minimum=1)
            else:
                values[key] = self.r.duration(n, f"{f}.{key}")
        breaker = BreakerConfig(**values)  # type: ignore[arg-type]
        if breaker.max_cooldown < breaker.cooldown:
            n = m.values.get("max_cooldown") or m.values["cooldown"]
            self.r.fail(n, f"{f}.max_cooldown", "expected max_cooldown >= cooldown")
        return breaker

    def logging(self, node: YNode) -> LoggingConfig:
        m = self.r.mapping(node, "logging", ("level", "stdout", "file", "max_bytes", "backups"))
        values: dict[str, object] = {}
        if n := m.get("level"):
            values["level"] = self.r.choice(n, "logging.level", LOG_LEVELS)
        if n := m.get("stdout"):
            values["stdout"] = self.r.boolean(n, "logging.stdout")
        if "file" in m.values:
            n = m.values["file"]
            # An explicit empty value means "no log file"; absent means the default place.
            path = "" if n.is_null else self.r.string(n, "logging.file").strip()
            values["file"] = self.expand_home(path)
        if n := m.get("max_bytes"):
            values["max_bytes"] = self.r.size(n, "logging.max_bytes")
        if n := m.get("backups"):
            values["backups"] = self.r.integer(n, "logging.backups", minimum=0)
        return LoggingConfig(**values)  # type: ignore[arg-type]

    def expand_home(self, path: str) -> str:
        """`~/x` -> `$HOME/x` from the env mapping given (the parser reads no environment)."""
        home = self.r.env.get("HOME") or self.r.env.get("USERPROFILE")
        if home and (path == "~" or path.startswith(("~/", "~\\"))):
            return home.rstrip("/\\") + path[1:]
        return path
