"""config.yaml parsing: the seed format, value grammars, interpolation and error messages."""

from __future__ import annotations

import textwrap

import pytest

from core.config import (
    Config,
    Rate,
    Strategy,
    Timeouts,
    UpstreamConfig,
)
from core.config_parse import load_config, parse_config
from core.dialects import Dialect
from core.errors import ConfigError

SEED = """\
upstreams:
  - name: claude-prod
    provider: anthropic
    model: claude-3-opus-20240229
    api_key: ${ANTHROPIC_API_KEY}
    rate_limit: 100 requests/min
  - name: gemini-dev
    provider: google
    model: gemini-1.5-pro
    api_key: ${GEMINI_API_KEY}
    rate_limit: 60 requests/min
routing:
  strategy: least_connections
  fallback: true
"""
ANTHROPIC_KEY = "sk-ant-api03-TOPSECRETvalue-9876"
GEMINI_KEY = "AIzaSyTOPSECRETgeminikey-5432"
ENV = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "GEMINI_API_KEY": GEMINI_KEY}


def one_upstream(extra: str, env: dict[str, str] | None = None) -> UpstreamConfig:
    """Parse a config with one upstream whose body gets `extra` lines (line 4 onwards)."""
    text = "upstreams:\n  - name: u\n    provider: openai\n" + textwrap.indent(
        textwrap.dedent(extra), "    "
    )
    return parse_config(text, env or {}, source="config.yaml").upstreams[0]


def error_of(text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), env or {}, source="config.yaml")
    return info.value


def test_the_seed_config_loads_as_written() -> None:
    config = parse_config(SEED, ENV, source="config.yaml")
    claude, gemini = config.upstreams
    assert claude.name == "claude-prod"
    assert claude.provider is Dialect.ANTHROPIC
    assert claude.base_url == "https://api.anthropic.com"
    assert claude.model == "claude-3-opus-20240229"
    assert [k.reveal() for k in claude.api_keys] == [ANTHROPIC_KEY]
    assert claude.rate_limit == Rate(amount=100, per_seconds=60)
    assert (claude.enabled, claude.line) == (True, 2)
    assert gemini.provider is Dialect.GEMINI  # `google` is an alias
    assert gemini.base_url == "https://generativelanguage.googleapis.com"
    assert gemini.rate_limit == Rate(amount=60, per_seconds=60)
    assert config.routing.strategy is Strategy.LEAST_CONNECTIONS
    assert config.routing.fallback is True
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8787)
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("text", "amount", "per"),
    [
        ("100 requests/min", 100, 60),
        ("100/min", 100, 60),
        ("10/s", 10, 1),
        ("5000/hour", 5000, 3600),
        ("30 req/minute", 30, 60),
        ("100 requests/minute", 100, 60),
        ("2/second", 2, 1),
        ("2 per sec", 2, 1),
        ("7/m", 7, 60),
        ("50/h", 50, 3600),
        ("1000/day", 1000, 86400),
        ("100 rpm", 100, 60),
        ("3 rps", 3, 1),
        ("0.5/s", 0.5, 1),
        ("120", 120, 60),  # a quoted bare number still means per minute
    ],
)
def test_rate_limit_formats(text: str, amount: float, per: float) -> None:
    upstream = one_upstream(f"rate_limit: '{text}'\n")
    assert upstream.rate_limit == Rate(amount=amount, per_seconds=per)


def test_bare_integers_are_per_minute_and_token_limits_have_their_own_words() -> None:
    upstream = one_upstream("rate_limit: 90\ntoken_limit: 100000 tokens/min\n")
    assert upstream.rate_limit == Rate(amount=90, per_seconds=60)
    assert upstream.token_limit == Rate(amount=100_000, per_seconds=60)
    assert one_upstream("token_limit: 80k tpm\n").token_limit == Rate(amount=80_000, per_seconds=60)
    assert one_upstream("token_limit: 40000\n").token_limit == Rate(amount=40_000, per_seconds=60)


def test_every_upstream_option_is_read() -> None:
    upstream = one_upstream(
        """\
        base_url: http://127.0.0.1:9000/v1/
        api_keys: [sk-one-aaaaaaaaaaaa, sk-two-bbbbbbbbbbbb]
        models: ["gpt-4*", o3]
        model: gpt-4o
        model_map: {gpt-4: gpt-4o-2024-08-06}
        max_concurrent: 4
        weight: 3
        priority: -1
        timeouts: {connect: 500ms, first_byte: 30s, idle: 2m, total: 600}
        headers:
          OpenAI-Organization: org-1
          anthropic-version: 2023-06-01
        """
    )
    assert upstream.base_url == "http://127.0.0.1:9000/v1"  # trailing slash stripped
    assert [k.reveal() for k in upstream.api_keys] == ["sk-one-aaaaaaaaaaaa", "sk-two-bbbbbbbbbbbb"]
    assert upstream.models == ("gpt-4*", "o3")
    assert upstream.upstream_model("gpt-4") == "gpt-4o-2024-08-06"
    assert upstream.upstream_model("gpt-4-turbo") == "gpt-4o"
    assert (upstream.max_concurrent, upstream.weight, upstream.priority) == (4, 3, -1)
    assert upstream.timeouts == Timeouts(connect=0.5, first_byte=30, idle=120, total=600)
    # A date-looking header value stays the text that was written.
    assert upstream.headers == (
        ("OpenAI-Organization", "org-1"),
        ("anthropic-version", "2023-06-01"),
    )


def test_top_level_sections() -> None:
    config = parse_config(
        textwrap.dedent(
            """\
            listen: "0.0.0.0:9999"
            access_keys: ["${CLIENT_KEY}"]
            upstreams:
              - {name: a, provider: claude}
            routing:
              strategy: priority
              max_attempts: 5
              queue_timeout: 1m
              deadline: 90
              backoff_base: 0
              backoff_max: 2s
              breaker: {failure_threshold: 2, cooldown: 1s, max_cooldown: 1h}
            logging: {level: debug, stdout: false, file: ~/logs/ccx.log, max_bytes: 5MB, backups: 0}
            """
        ),
        {"CLIENT_KEY": "client-secret-0001", "HOME": "/home/me"},
        source="config.yaml",
    )
    assert (config.listen.host, config.listen.port) == ("0.0.0.0", 9999)
    assert [k.reveal() for k in config.access_keys] == ["client-secret-0001"]
    routing = config.routing
    assert routing.strategy is Strategy.PRIORITY
    assert (routing.max_attempts, routing.queue_timeout, routing.deadline) == (5, 60, 90)
    assert (routing.backoff_base, routing.backoff_max) == (0, 2)
    assert (routing.breaker.failure_threshold, routing.breaker.max_cooldown) == (2, 3600)
    assert config.logging.level == "debug"
    assert config.logging.stdout is False
    assert config.logging.file == "/home/me/logs/ccx.log"
    assert (config.logging.max_bytes, config.logging.backups) == (5 * 1024 * 1024, 0)
    no_file = parse_config('upstreams: [{name: a, provider: openai}]\nlogging: {file: ""}\n', {})
    assert no_file.logging.file == ""
    listen_map = parse_config("listen: {port: 0}\nupstreams: [{name: a, provider: openai}]\n", {})
    assert (listen_map.listen.host, listen_map.listen.port) == ("127.0.0.1", 0)


def test_interpolation_defaults_and_escapes() -> None:
    env = {"HOST": "10.0.0.1", "EMPTY": "", "PORT": "9001"}
    upstream = one_upstream(
        """\
        base_url: http://${HOST}:${PORT}/v1
        model: ${MODEL:-gpt-4o-mini}
        max_concurrent: ${CONC:-6}
        headers:
          x-price: $$5 and $${NOT_A_VAR}
          x-empty-default: ${EMPTY:-fallback}
          x-unset-empty-default: "${NOPE:-}"
        """,
        env,
    )
    assert upstream.base_url == "http://10.0.0.1:9001/v1"
    assert upstream.model == "gpt-4o-mini"
    assert upstream.max_concurrent == 6  # a number may come from the environment too
    assert dict(upstream.headers) == {
        "x-price": "$5 and ${NOT_A_VAR}",
        "x-empty-default": "fallback",
        "x-unset-empty-default": "",
    }


def test_an_unset_key_variable_disables_only_that_upstream() -> None:
    config = parse_config(SEED, {"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, source="config.yaml")
    claude, gemini = config.upstreams
    assert claude.enabled
    assert not gemini.enabled
    assert gemini.disabled_reason == "GEMINI_API_KEY is not set"
    assert gemini.api_keys == ()


def test_a_key_pool_skips_unset_members_with_a_warning() -> None:
    upstream_text = "api_keys:\n  - ${KEY_A}\n  - ${KEY_B}\n  - ${KEY_C:-}\n"
    text = "upstreams:\n  - name: u\n    provider: openai\n" + textwrap.indent(
        upstream_text, "    "
    )
    config = parse_config(text, {"KEY_B": "sk-bbbbbbbbbbbbbbbb"}, source="c.yaml")
    (upstream,) = config.upstreams
    assert upstream.enabled
    assert [k.reveal() for k in upstream.api_keys] == ["sk-bbbbbbbbbbbbbbbb"]
    assert [str(w) for w in config.warnings] == [
        "c.yaml:5: upstreams[0].api_keys[0]: some keys skipped: KEY_A is not set"
    ]


def test_disabled_in_config_and_plain_text_keys_warn() -> None:
    text = (
        "upstreams:\n  - {name: u, provider: openai, api_key: sk-plain-1234567890, enabled: no}\n"
    )
    config = parse_config(text, {}, source="c.yaml")
    upstream = config.upstreams[0]
    assert (upstream.enabled, upstream.disabled_reason) == (False, "disabled in config")
    (warning,) = config.warnings
    assert (warning.line, warning.field) == (2, "upstreams[0].api_key")
    assert "plain text" in warning.message
    assert "sk-plain-1234567890" not in str(warning)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            SEED.replace("rate_limit: 60", "rate_limt: 60"),
            11,
            "upstreams[1].rate_limt",
            "unknown key 'rate_limt' (did you mean 'rate_limit'?)",
        ),
        (
            SEED.replace("routing:", "routng:"),
            12,
            "routng",
            "unknown key 'routng' (did you mean 'routing'?)",
        ),
        (
            SEED.replace("60 requests/min", "100 per fortnight"),
            11,
            "upstreams[1].rate_limit",
            "expected a rate like '100 requests/min', got '100 per fortnight'",
        ),
        (
            SEED.replace("fallback: true", "fallback: sometimes"),
            14,
            "routing.fallback",
            "expected true or false, got 'sometimes'",
        ),
        (
            SEED.replace("strategy: least_connections", "strategy: fastest"),
            13,
            "routing.strategy",
            "expected one of round_robin, least_connections, priority, got 'fastest'",
        ),
        (
            SEED.replace("provider: google", "provider: bard"),
            8,
            "upstreams[1].provider",
            "expected one of anthropic, claude, openai",
        ),
        (
            SEED.replace("name: gemini-dev", "name: claude-prod"),
            7,
            "upstreams[1].name",
            "duplicate upstream name 'claude-prod'",
        ),
        (
            SEED.replace("    rate_limit: 100", '    api_keys: ["${X}"]\n    rate_limit: 100'),
            6,
            "upstreams[0].api_keys",
            "use either api_key (one key) or api_keys (a list)",
        ),
        (
            SEED + "  max_attempts: [3]\n",
            15,
            "routing.max_attempts",
            "expected an integer >= 1, got a list",
        ),
        (
            SEED.replace("    model: gemini", "    weight: 0\n    model: gemini"),
            9,
            "upstreams[1].weight",
            "expected an integer >= 1, got 0",
        ),
        (
            SEED.replace(
                "  - name: gemini-dev\n", "  - name: gemini-dev\n    timeouts: {idle: soon}\n"
            ),
            8,
            "upstreams[1].timeouts.idle",
            "expected a duration like 30 (seconds), '30s', '2m' or '500ms', got 'soon'",
        ),
        (
            SEED.replace("    model: gemini", "    base_url: ${GEMINI_URL}\n    model: gemini"),
            9,
            "upstreams[1].base_url",
            "environment variable GEMINI_URL is not set",
        ),
        (
            SEED.replace("    model: gemini", "    base_url: api.example.com\n    model: gemini"),
            9,
            "upstreams[1].base_url",
            "expected an http(s) URL",
        ),
        (
            SEED.replace("    provider: google\n", ""),
            7,
            "upstreams[1].provider",
            "missing required key 'provider'",
        ),
        (
            SEED.replace("100 requests/min", "100 tokens/min"),
            6,
            "upstreams[0].rate_limit",
            "(use token_limit)",
        ),
        (
            SEED.replace("  - name: gemini-dev\n", '  - name: "gemini\\r\\nx-evil: 1"\n'),
            7,
            "upstreams[1].name",
            "expected a name without control characters",
        ),
        ("listen: 127.0.0.1\n" + SEED, 1, "listen", "expected 'host:port'"),
        ("upstreams: []\n", 1, "upstreams", "expected at least one upstream"),
        ("upstreams: {name: a}\n", 1, "upstreams", "expected a list of upstreams, got a mapping"),
    ],
)
def test_errors_name_file_line_field_and_what_was_expected(
    text: str, line: int, field: str, message: str
) -> None:
    error = error_of(text, ENV)
    assert (error.file, error.line, error.field) == ("config.yaml", line, field)
    assert message in error.detail
    assert str(error).startswith(f"config.yaml:{line}: {field}: ")


def test_yaml_syntax_errors_and_duplicate_keys_name_the_line() -> None:
    syntax = error_of(SEED.replace("    model: gemini-1.5-pro", "    model: [gemini"), ENV)
    assert syntax.file == "config.yaml"
    assert syntax.line is not None and syntax.line >= 9
    assert "invalid YAML" in syntax.detail
    duplicate = error_of(SEED.replace("    rate_limit: 60", "    model: again\n    rate_limit: 60"))
    assert duplicate.line == 11
    assert "duplicate key 'model' (first at line 9)" in duplicate.detail
    empty = error_of("# nothing yet\n")
    assert "empty" in empty.detail


def test_secrets_never_appear_in_errors_or_repr() -> None:
    config = parse_config(SEED, ENV, source="config.yaml")
    shown = repr(config) + str(config)
    assert ANTHROPIC_KEY not in shown and GEMINI_KEY not in shown
    assert "sk-…9876" in shown  # masked, still recognisable

    bad_key_type = SEED.replace(
        "api_key: ${ANTHROPIC_API_KEY}", "api_key: {k: sk-abcdefghijklmnop}"
    )
    assert "sk-abcdefghijklmnop" not in str(error_of(bad_key_type))
    # A value expanded from the environment is shown as its ${...} source, never expanded.
    from_env = SEED.replace("100 requests/min", "${ANTHROPIC_API_KEY}")
    error = error_of(from_env, ENV)
    assert ANTHROPIC_KEY not in str(error)
    assert "${ANTHROPIC_API_KEY}" in str(error)
    # pyyaml's error snippets quote the source line: they are left out.
    broken = SEED.replace("api_key: ${ANTHROPIC_API_KEY}", f"api_key: {ANTHROPIC_KEY}: x")
    assert ANTHROPIC_KEY not in str(error_of(broken))
    header = (
        "upstreams:\n  - name: a\n    provider: openai\n    headers: {x-key: [sk-hdr-123456789]}\n"
    )
    assert "sk-hdr-123456789" not in str(error_of(header))


def test_load_config_reads_a_file_and_names_a_missing_one(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "config.yaml"  # type: ignore[operator]
    path.write_text(SEED)
    config = load_config(path, ENV)
    assert isinstance(config, Config)
    assert config.source == str(path)
    missing = tmp_path / "nope.yaml"  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        load_config(missing, {})
    assert info.value.file == str(missing)
    assert str(missing) in str(info.value)
