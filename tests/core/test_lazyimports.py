"""`defer_rfc3987_syntax`: the slow optional module stays unloaded until a check needs it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from agentnb.core._lazyimports import defer_rfc3987_syntax

HAVE_RFC3987 = importlib.util.find_spec("rfc3987_syntax") is not None


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not HAVE_RFC3987, reason="rfc3987_syntax is not installed here")
def test_importing_nbformat_through_jobs_does_not_build_the_parser() -> None:
    out = _python(
        "import sys, agentnb.jobs, nbformat, papermill\n"
        "m = sys.modules['rfc3987_syntax']\n"
        "print(getattr(m, '__agentnb_deferred__', False), 'lark' in sys.modules)")
    assert out == "True False"


@pytest.mark.skipif(not HAVE_RFC3987, reason="rfc3987_syntax is not installed here")
def test_a_format_check_that_needs_it_gets_the_real_module() -> None:
    out = _python(
        "import sys, agentnb.jobs\n"
        "from jsonschema import FormatChecker\n"
        "fc = FormatChecker()\n"
        "print(fc.conforms('http://example.com/a b', 'iri'),"
        " fc.conforms('http://example.com/\\u00e4', 'iri'),"
        " fc.conforms('http://example.com/x', 'iri'),"
        " getattr(sys.modules['rfc3987_syntax'], '__agentnb_deferred__', False))")
    assert out == "False True True False"


@pytest.mark.skipif(not HAVE_RFC3987, reason="rfc3987_syntax is not installed here")
def test_any_other_name_loads_the_real_module() -> None:
    out = _python(
        "import agentnb.jobs, sys\n"
        "from rfc3987_syntax import RFC3987_SYNTAX_TERMS\n"
        "print('iri' in RFC3987_SYNTAX_TERMS, "
        "getattr(sys.modules['rfc3987_syntax'], '__agentnb_deferred__', False))")
    assert out == "True False"


def test_does_nothing_once_imported_or_when_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rfc3987_syntax", object())
    assert defer_rfc3987_syntax() is False
    monkeypatch.delitem(sys.modules, "rfc3987_syntax")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert defer_rfc3987_syntax() is False
    assert "rfc3987_syntax" not in sys.modules
