"""A key exported after the first run is redacted once the default redactor reloads the env."""

from __future__ import annotations

import pytest

from agentnb.governance import Redactor, default_redactor


def test_reload_env_updates_the_shared_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    """`default_redactor(reload_env=True)` teaches the same object, so its holders see it."""
    held = default_redactor()
    monkeypatch.setenv("LATE_SERVICE_TOKEN", "tok-late-abcdef-123")
    assert "tok-late-abcdef-123" in held.redact("x tok-late-abcdef-123")
    again = default_redactor(reload_env=True)
    assert again is held
    assert held.redact("x tok-late-abcdef-123") == "x [REDACTED:env:LATE_SERVICE_TOKEN]"
    assert held.reload_env() == 0


def test_reload_env_sees_every_change_after_an_unchanged_check(monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    # An unchanged os.environ is skipped by comparing its raw data; a new variable, and a new
    # value of a variable already seen, must still be learned.
    r = Redactor(env={})
    r.reload_env()
    assert r.reload_env() == 0
    monkeypatch.setenv("AGENTNB_TEST_LATE_TOKEN", "first-secret-value-123")
    assert r.reload_env() == 1
    assert r.reload_env() == 0
    monkeypatch.setenv("AGENTNB_TEST_LATE_TOKEN", "second-secret-value-456")
    assert r.reload_env() == 1
    assert r.redact("a first-secret-value-123 b second-secret-value-456") == (
        "a [REDACTED:env:AGENTNB_TEST_LATE_TOKEN] b [REDACTED:env:AGENTNB_TEST_LATE_TOKEN]")
