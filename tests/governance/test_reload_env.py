"""A key exported after the first run is redacted once the default redactor reloads the env."""

from __future__ import annotations

import pytest

from agentnb.governance import default_redactor


def test_reload_env_updates_the_shared_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    """`default_redactor(reload_env=True)` teaches the same object, so its holders see it."""
    held = default_redactor()
    monkeypatch.setenv("LATE_SERVICE_TOKEN", "tok-late-abcdef-123")
    assert "tok-late-abcdef-123" in held.redact("x tok-late-abcdef-123")
    again = default_redactor(reload_env=True)
    assert again is held
    assert held.redact("x tok-late-abcdef-123") == "x [REDACTED:env:LATE_SERVICE_TOKEN]"
    assert held.reload_env() == 0
