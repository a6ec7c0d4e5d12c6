"""The command line: run (tray or `--headless`), `check`, `init` and `--version`.

Rules:
- Thin: parsing and validation live in core.config; running lives in core.engine, imported
  lazily so `check`, `init` and `--version` work without the engine or a display.
- Output never shows a key: every key is printed masked (core.secrets.mask).
- Exit codes: 0 success, 1 a bad or missing config (the reason on stderr), 2 usage errors
  (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ccx_tray import paths
from core import __version__
from core.config import Config, ConfigWarning, Rate, UpstreamConfig
from core.config_parse import load_config
from core.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config_path = Path(args.config).expanduser() if args.config else paths.default_config_path()
    if args.command == "check":
        return check(config_path, out=sys.stdout, err=sys.stderr)
    if args.command == "init":
        return init(config_path, force=args.force, out=sys.stdout, err=sys.stderr)
    if not args.headless:
        # The tray app arrives in a later issue; until then the default is headless too.
        print("ccx-tray: the tray is not available yet; running headless", file=sys.stderr)
    # First run with the default path: start from the commented template, as a desktop app
    # would, rather than refusing. An explicit --config that is missing is an error.
    first_run = not (config_path.exists() or args.config or os.environ.get(paths.CONFIG_ENV))
    if first_run and init(config_path, force=False, out=sys.stderr, err=sys.stderr) != 0:
        return 1
    return run_headless(config_path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccx-tray", description="A local LLM API gateway for coding agents."
    )
    parser.add_argument("--version", action="version", version=f"ccx-tray {__version__}")
    config_help = "the config file (default: $CCX_TRAY_CONFIG or the user config folder)"
    parser.add_argument("--config", metavar="PATH", help=config_help)
    parser.add_argument(
        "--headless", action="store_true", help="run the proxy without the tray icon"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # SUPPRESS keeps a --config given before the command from being reset by the subparser.
    check_cmd = commands.add_parser("check", help="validate the config and show the upstreams")
    check_cmd.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    init_cmd = commands.add_parser("init", help="write a commented example config")
    init_cmd.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    init_cmd.add_argument("--force", action="store_true", help="overwrite an existing file")
    return parser


def run_headless(config_path: Path) -> int:
    if not config_path.exists():
        print(
            f"ccx-tray: no config at {config_path}; create one with `ccx-tray init`",
            file=sys.stderr,
        )
        return 1
    try:
        # Lazy: the engine pulls in trio and httpx, which check/init/--version do not need.
        engine_run: Callable[[str], int] = importlib.import_module("core.engine").run_headless
    except (ImportError, AttributeError) as exc:
        print(f"ccx-tray: the proxy engine is not available: {exc}", file=sys.stderr)
        return 1
    try:
        return engine_run(str(config_path))
    except KeyboardInterrupt:
        return 130


# ---------------------------------------------------------------- init


def init(path: Path, *, force: bool, out: TextIO, err: TextIO) -> int:
    if path.exists() and not force:
        print(f"ccx-tray: {path} already exists; use --force to overwrite it", file=err)
        return 1
    try:
        template = paths.resource_path("config.example.yaml").read_text(encoding="utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template, encoding="utf-8")
    except OSError as exc:
        print(f"ccx-tray: cannot write {path}: {exc.strerror or exc}", file=err)
        return 1
    print(f"wrote {path}", file=out)
    print("set the API key variables it names, then run `ccx-tray check`", file=out)
    return 0


# ---------------------------------------------------------------- check


def check(path: Path, *, out: TextIO, err: TextIO) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=err)
        return 1
    for line in describe_config(config):
        print(line, file=out)
    return 0


def describe_config(config: Config) -> list[str]:
    """The report `check` prints: one block per upstream, keys masked."""
    enabled = sum(u.enabled for u in config.upstreams)
    lines = [
        f"{config.source}: valid, {len(config.upstreams)} upstreams ({enabled} enabled)",
        f"listen: {config.listen.host}:{config.listen.port}",
        "access keys: "
        + (", ".join(k.masked for k in config.access_keys) or "none (any local client)"),
        f"routing: {config.routing.strategy.value}, "
        f"fallback {'on' if config.routing.fallback else 'off'}, "
        f"max {config.routing.max_attempts} attempts",
        "",
    ]
    for index, upstream in enumerate(config.upstreams):
        lines += _describe_upstream(upstream)
        lines += [f"    warning: {_short(w)}" for w in _warnings_for(config, index)]
        lines.append("")
    if not enabled:
        lines.append("warning: no upstream is enabled; every request will fail")
    lines += [f"warning: {w}" for w in config.warnings if not w.field.startswith("upstreams[")]
    return lines


def _describe_upstream(u: UpstreamConfig) -> list[str]:
    state = "enabled" if u.enabled else f"DISABLED: {u.disabled_reason}"
    mapping = ", ".join(f"{k} -> {v}" for k, v in u.model_map.items())
    limits = [
        f"requests {_rate(u.rate_limit)}",
        f"tokens {_rate(u.token_limit)}",
        f"concurrent {u.max_concurrent or 'unlimited'}",
    ]
    keys = ", ".join(k.masked for k in u.api_keys) or "none"
    return [
        f"  {u.name} [{state}]",
        f"    provider: {u.provider.value}  base_url: {u.base_url}",
        f"    models: {', '.join(u.models) or 'all'}",
        f"    model: {u.model or '(as requested)'}" + (f"  map: {mapping}" if mapping else ""),
        f"    limits: {', '.join(limits)}",
        f"    weight: {u.weight}  priority: {u.priority}",
        f"    keys: {keys}",
    ]


_UNIT_NAMES = {1.0: "s", 60.0: "min", 3600.0: "hour", 86400.0: "day"}


def _rate(rate: Rate | None) -> str:
    if rate is None:
        return "unlimited"
    amount = f"{rate.amount:g}"
    unit = _UNIT_NAMES.get(rate.per_seconds)
    return f"{amount}/{unit}" if unit else f"{amount} per {rate.per_seconds:g}s"


def _warnings_for(config: Config, index: int) -> list[ConfigWarning]:
    prefix = f"upstreams[{index}]."
    return [w for w in config.warnings if w.field.startswith(prefix)]


def _short(warning: ConfigWarning) -> str:
    """`line 5: api_key: ...`: the upstream block already says which upstream."""
    field = warning.field.split("].", 1)[-1]
    return f"line {warning.line}: {field}: {warning.message}"
