"""The command line, run in-process: --version, check, init, and the headless hand-off."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from ccx_tray import paths
from ccx_tray.cli import main

KEY = "sk-ant-api03-VERYSECRET-abcd"
VALID = """\
upstreams:
  - name: claude-prod
    provider: anthropic
    api_key: ${CLI_TEST_KEY}
    rate_limit: 100 requests/min
    token_limit: 50k tpm
  - name: local
    provider: openai
    base_url: http://127.0.0.1:11434/v1
    api_key: sk-local-plaintext-9999
    models: ["llama*"]
    model_map: {llama: llama3.1:8b}
    weight: 2
    priority: 1
  - name: gemini-dev
    provider: google
    api_key: ${CLI_TEST_UNSET_KEY}
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLI_TEST_KEY", KEY)
    monkeypatch.delenv("CLI_TEST_UNSET_KEY", raising=False)
    # Never touch the real user's config.
    monkeypatch.setenv(paths.CONFIG_ENV, str(tmp_path / "default" / "config.yaml"))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == "ccx-tray 0.1.0"


def test_check_shows_each_upstream_with_masked_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(VALID)
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert KEY not in out and "sk-local-plaintext-9999" not in out
    assert "sk-…abcd" in out and "sk-…9999" in out
    assert "claude-prod [enabled]" in out
    assert "requests 100/min, tokens 50000/min" in out
    assert "base_url: http://127.0.0.1:11434/v1" in out
    assert "models: llama*" in out and "llama -> llama3.1:8b" in out
    assert "weight: 2  priority: 1" in out
    assert "gemini-dev [DISABLED: CLI_TEST_UNSET_KEY is not set]" in out
    assert "line 10: api_key: key written in plain text" in out


def test_check_reads_the_config_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "from-env.yaml"
    config.write_text(VALID)
    monkeypatch.setenv(paths.CONFIG_ENV, str(config))
    assert paths.default_config_path() == config
    assert main(["check"]) == 0
    assert str(config) in capsys.readouterr().out


def test_check_of_a_bad_config_exits_1_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(VALID.replace("rate_limit: 100 requests/min", "rate_limit: lots"))
    assert main(["--config", str(config), "check"]) == 1  # --config before the command works
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{config}:5: upstreams[0].rate_limit: expected a rate like" in captured.err


def test_check_of_a_missing_file_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--config", str(tmp_path / "absent.yaml")]) == 1
    assert "absent.yaml: file not found" in capsys.readouterr().err


def test_init_writes_the_template_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "new" / "config.yaml"
    assert main(["init", "--config", str(target)]) == 0
    template = paths.resource_path("config.example.yaml").read_text()
    assert target.read_text() == template
    capsys.readouterr()

    target.write_text("# my edits\n")
    assert main(["init", "--config", str(target)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert target.read_text() == "# my edits\n"

    assert main(["init", "--config", str(target), "--force"]) == 0
    assert target.read_text() == template


def test_the_init_template_passes_check_with_its_variables_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "config.yaml"
    assert main(["init", "--config", str(target)]) == 0
    for name in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.setenv(name, f"sk-{name.lower()}-0123456789")
    capsys.readouterr()
    assert main(["check", "--config", str(target)]) == 0
    out = capsys.readouterr().out
    assert "DISABLED" not in out
    assert "plain text" not in out  # the template keeps keys in the environment
    assert "sk-anthropic_api_key-0123456789" not in out


def test_the_template_documents_every_option() -> None:
    from core.config_parse import ROUTING_KEYS, TOP_KEYS, UPSTREAM_KEYS

    template = paths.resource_path("config.example.yaml").read_text()
    for key in (*TOP_KEYS, *UPSTREAM_KEYS, *ROUTING_KEYS, "failure_threshold", "max_cooldown"):
        assert f"{key}:" in template, key
    for key in ("level", "stdout", "file", "max_bytes", "backups", "connect", "first_byte"):
        assert f"{key}:" in template, key


def test_run_hands_the_config_path_to_the_headless_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(VALID)
    calls: list[str] = []
    fake = types.ModuleType("core.engine")

    def run_headless(config_path: str) -> int:
        calls.append(config_path)
        return 7

    fake.run_headless = run_headless  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "core.engine", fake)
    assert main(["--headless", "--config", str(config)]) == 7
    assert calls == [str(config)]
    assert capsys.readouterr().err == ""
    # Without --headless the tray is announced as not ready, and headless runs anyway.
    assert main(["--config", str(config)]) == 7
    assert "tray is not available yet" in capsys.readouterr().err
    assert calls == [str(config), str(config)]


def test_run_without_a_config_points_at_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--headless", "--config", str(tmp_path / "none.yaml")]) == 1
    assert "ccx-tray init" in capsys.readouterr().err


def test_resource_path_prefers_the_pyinstaller_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "config.example.yaml").write_text("bundled")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert paths.resource_path("config.example.yaml").read_text() == "bundled"
    # Files only in the checkout are still found.
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "elsewhere"), raising=False)
    assert paths.resource_path("config.example.yaml").name == "config.example.yaml"
    with pytest.raises(FileNotFoundError):
        paths.resource_path("no-such-asset.png")


def test_first_run_on_the_default_path_writes_the_template_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    default = tmp_path / "conf" / "config.yaml"
    monkeypatch.delenv("CCX_TRAY_CONFIG", raising=False)
    monkeypatch.setattr(paths, "default_config_path", lambda env=None: default)
    calls: list[str] = []
    fake = types.ModuleType("core.engine")
    fake.run_headless = lambda config_path: calls.append(config_path) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "core.engine", fake)
    assert main(["--headless"]) == 0
    assert calls == [str(default)]
    assert default.read_text().startswith("# ccx-tray configuration")
    assert f"wrote {default}" in capsys.readouterr().err
