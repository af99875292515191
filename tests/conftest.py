"""Test-wide set-up: loopback only, clean environment, a temp AGENTNB_HOME, instant sim models."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> None:
    if isinstance(address, tuple) and address and address[0] not in _LOOPBACK:
        msg = f"Tests never leave loopback; attempted connection to {address!r}."
        raise RuntimeError(msg)
    _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse sockets to anything but loopback."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Clear AGENTNB_*, provider and proxy variables; point AGENTNB_HOME at a temp folder."""
    for name in list(os.environ):
        provider = name.startswith(("AGENTNB_", "OPENAI_", "ANTHROPIC_"))
        if provider or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTNB_HOME", str(tmp_path / ".agentnb"))
    monkeypatch.setenv("AGENTNB_SIM_LATENCY", "0")
    monkeypatch.chdir(tmp_path)
