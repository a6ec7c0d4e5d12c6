"""UpstreamState's readiness shortcut against the full wait computation, pure."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.state import Runtime
from tests.fakes import make_config

CONFIGS = {
    "plain": "",
    "two keys": "    api_keys: [k1, k2]\n",
    "capped": "    max_concurrent: 2\n",
    "paced": "    rate_limit: 60 requests/min\n    token_limit: 6000 tokens/min\n",
}


def runtime(extra: str) -> Runtime:
    text = (
        "upstreams:\n  - name: up\n    provider: anthropic\n"
        "    base_url: http://127.0.0.1:9\n"
        + ("    api_key: k\n" if "api_keys" not in extra else "")
        + extra
    )
    return Runtime.build(make_config(text), None, 0.0)


@settings(max_examples=300, deadline=None)
@given(
    config=st.sampled_from(sorted(CONFIGS)),
    failures=st.integers(0, 6),
    probe=st.booleans(),
    cooldown=st.floats(0, 20),
    key_cooldowns=st.lists(st.floats(0, 20), max_size=2),
    active=st.integers(0, 3),
    spent=st.integers(0, 3),
    estimate=st.sampled_from([0.0, 10.0, 10_000.0]),
    later=st.floats(0, 40),
)
def test_ready_is_wait_time_zero_whatever_the_state(
    config: str,
    failures: int,
    probe: bool,
    cooldown: float,
    key_cooldowns: list[float],
    active: int,
    spent: int,
    estimate: float,
    later: float,
) -> None:
    state = runtime(CONFIGS[config]).upstreams["up"]
    for _ in range(failures):
        state.breaker.record_failure(1.0)
    if probe:
        state.breaker.acquire(1.0 + later)  # claims the half-open probe if there is one
    state.cooldown.extend_to(1.0 + cooldown)
    for key, until in zip(state.keys, key_cooldowns, strict=False):
        key.cooldown.extend_to(1.0 + until)
    state.active = active
    for _ in range(spent):
        if state.requests_bucket is not None:
            state.requests_bucket.try_acquire(30.0, 1.0)
    now = 1.0 + later
    assert state.ready(now, estimate) == (state.wait_time(now, estimate) == 0.0)


def test_candidates_are_remembered_per_model_and_bounded() -> None:
    text = (
        "upstreams:\n"
        "  - {name: claude, provider: anthropic, base_url: 'http://127.0.0.1:9', api_key: k,"
        " models: ['claude-*']}\n"
        "  - {name: gpt, provider: openai, base_url: 'http://127.0.0.1:9/v1', api_key: k,"
        " model: gpt-x}\n"
    )
    rt = Runtime.build(make_config(text), None, 0.0)
    every = frozenset({"anthropic", "openai"})
    first = rt.candidates("claude-a", "anthropic", every)
    assert [s.name for s in first] == ["claude", "gpt"]
    assert rt.candidates("claude-a", "anthropic", every) is first  # remembered
    assert [s.name for s in rt.candidates("other", "anthropic", every)] == ["gpt"]
    assert [s.name for s in rt.candidates("claude-a", "anthropic", frozenset({"openai"}))] == [
        "gpt"
    ]
    for i in range(3000):  # model names come from clients: the memory stays bounded
        assert [s.name for s in rt.candidates(f"claude-{i}", "anthropic", every)] == [
            "claude",
            "gpt",
        ]
    assert len(rt._candidates) <= 1024
