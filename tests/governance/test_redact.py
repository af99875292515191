"""Redaction: each credential pattern, env values (canary), registered values, nested data."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agentnb.core import UsageError
from agentnb.governance import REDACTED, Redactor, default_redactor, register_secret

PLAIN = Redactor(env={})

SECRETS = [
    ("openai", "sk-" + "a1B2c3D4e5F6g7H8i9J0kLmN", REDACTED),
    ("openai project", "sk-proj-" + "Zx9_" * 12, REDACTED),
    ("anthropic", "sk-ant-api03-" + "q" * 40, REDACTED),
    ("aws", "AKIAIOSFODNN7EXAMPLE", REDACTED),
    ("github classic", "ghp_" + "A1b2" * 9, REDACTED),
    ("github fine-grained", "github_pat_11ABCDEFG0" + "x" * 40, REDACTED),
    ("slack bot", "xoxb-123456789012-abcdefABCDEF", REDACTED),
    ("slack user", "xoxp-1234-5678-abcdefghij", REDACTED),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", REDACTED),
]


@pytest.mark.parametrize(("kind", "secret", "replacement"), SECRETS, ids=[s[0] for s in SECRETS])
def test_each_key_pattern_is_redacted(kind: str, secret: str, replacement: str) -> None:
    """A key embedded in prose, JSON or a URL is replaced and no part of it survives."""
    for template in ("use {} now", '{{"k": "{}"}}', "https://x.test/?key={}&a=1", "{}"):
        out = PLAIN.redact(template.format(secret))
        assert secret not in out
        assert secret[-8:] not in out
        assert replacement in out


CONTEXT = [
    ("Authorization: Bearer abc.def-ghi_jkl", "Authorization: [REDACTED]"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "authorization=[REDACTED]"),
    ('{"Authorization": "Token 12345678"}', '{"Authorization": "[REDACTED]"}'),
    ("curl -H 'bearer 0123456789abcdef'", "curl -H 'bearer [REDACTED]'"),
    ("api_key=abc123&x=1", "api_key=[REDACTED]&x=1"),
    ('{"api_key": "abc123", "n": 1}', '{"api_key": "[REDACTED]", "n": 1}'),
    ("X-API-Key: 0f0f0f0f", "X-API-Key: [REDACTED]"),
    ("password: hunter2", "password: [REDACTED]"),
    ("client_secret='s3cr3t'", "client_secret='[REDACTED]'"),
    ("access_token=ya29.a0AfH6SM", "access_token=[REDACTED]"),
]


@pytest.mark.parametrize(("text", "expected"), CONTEXT)
def test_context_patterns_keep_their_prefix(text: str, expected: str) -> None:
    """Bearer tokens, Authorization headers and key=value pairs keep the key, lose the value."""
    assert PLAIN.redact(text) == expected


@pytest.mark.parametrize("text", [
    "The model used 1200 input tokens and 300 output tokens.",
    "max_tokens=100, temperature=0.2",
    "Ask the desk; the key point is the token budget.",
    "sk-short",
    "https://example.com/path?q=1",
    "password",
    "",
])
def test_ordinary_text_is_untouched(text: str) -> None:
    """Text without secrets comes back unchanged (and as the same object on the fast path)."""
    assert PLAIN.redact(text) == text


def test_canary_env_value_is_redacted_everywhere() -> None:
    """A value from an env var named *KEY*/*TOKEN*/*SECRET*/*PASSWORD* is replaced by its name."""
    canary = "canary-Zq81-not-a-pattern"
    r = Redactor(env={"MY_SERVICE_TOKEN": canary, "DB_PASSWORD": "p4ssw0rd!",
                      "PATH": "/usr/bin:/bin", "KEYBOARD": "us", "PWD": "/home/someone"})
    text = f"arg {canary} and {json.dumps(canary)} and {canary.replace('-', '%2D')} p4ssw0rd!"
    out = r.redact(text)
    assert canary not in out
    assert "p4ssw0rd" not in out
    assert "[REDACTED:env:MY_SERVICE_TOKEN]" in out
    assert "[REDACTED:env:DB_PASSWORD]" in out
    assert r.redact("/usr/bin:/bin us /home/someone") == "/usr/bin:/bin us /home/someone"


def test_env_values_with_special_characters_are_matched_in_escaped_forms() -> None:
    """JSON-escaped and URL-encoded forms of a secret are redacted too."""
    secret = 'a"b/c d+e&f'
    r = Redactor(env={"X_SECRET": secret})
    for form in (secret, json.dumps(secret)[1:-1], "a%22b%2Fc%20d%2Be%26f", "a%22b%2Fc+d%2Be%26f"):
        assert r.redact(f"<{form}>") == "<[REDACTED:env:X_SECRET]>"


def test_short_env_values_are_ignored() -> None:
    """Values shorter than six characters are not secrets (documented threshold)."""
    r = Redactor(env={"A_KEY": "abcde", "B_KEY": "abcdef"})
    assert r.redact("abcde abcdef") == "abcde [REDACTED:env:B_KEY]"
    assert r.secret_count >= 1


def test_default_redactor_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """default_redactor(reload_env=True) picks up a key set later and keeps registered values."""
    register_secret("registered-before-reload")
    monkeypatch.setenv("OPENAI_API_KEY", "canary-env-value-42")
    r = default_redactor(reload_env=True)
    assert r is default_redactor()
    out = r.redact("k=canary-env-value-42 v=registered-before-reload")
    assert out == "k=[REDACTED:env:OPENAI_API_KEY] v=[REDACTED]"
    monkeypatch.delenv("OPENAI_API_KEY")
    default_redactor(reload_env=True)


def test_register_validates_and_applies() -> None:
    """Registered values are redacted; too-short or non-string values are refused."""
    r = Redactor(env={}, patterns=False)
    assert r.redact("x") == "x"
    r.register("tiger-stripes")
    assert r.redact("a tiger-stripes b") == "a [REDACTED] b"
    assert r.registered_values() == ["tiger-stripes"]
    with pytest.raises(UsageError, match="3 characters"):
        r.register("abc")
    with pytest.raises(UsageError, match="int"):
        r.register(12345)  # type: ignore[arg-type]
    assert Redactor(env={}, patterns=False).redact("sk-" + "a" * 30) == "sk-" + "a" * 30


def test_longest_secret_wins() -> None:
    """When one secret contains another, the longer one is replaced whole."""
    r = Redactor(env={}, values=["abcd1234", "abcd1234-extended"])
    assert r.redact("abcd1234-extended") == "[REDACTED]"


@dataclasses.dataclass
class _Call:
    tool: str
    arguments: dict[str, str]


class _Msg(BaseModel):
    text: str


def test_redact_obj_is_deep_and_keeps_types() -> None:
    """Nested dicts/lists/tuples/sets/bytes are redacted; models and dataclasses become dicts."""
    key = "sk-ant-" + "k" * 30
    obj = {
        "args": [key, ("x", key), {key}],
        "raw": key.encode(),
        "n": 3, "ok": True, "none": None,
        "password": 123456, "api_key": None, "max_tokens": 100,
        "call": _Call(tool="t", arguments={"token": "short"}),
        "msg": _Msg(text=f"here {key}"),
        key: "as a key",
    }
    out = PLAIN.redact_obj(obj)
    assert key not in repr(out)
    assert out["args"][1] == ("x", REDACTED)
    assert out["args"][2] == {REDACTED}
    assert out["raw"] == REDACTED.encode()
    assert (out["n"], out["ok"], out["none"]) == (3, True, None)
    assert (out["password"], out["api_key"], out["max_tokens"]) == (REDACTED, None, 100)
    assert out["call"] == {"tool": "t", "arguments": {"token": REDACTED}}
    assert out["msg"] == {"text": f"here {REDACTED}"}
    assert out[REDACTED] == "as a key"


def test_redactor_is_callable() -> None:
    """A Redactor can be passed where a `str -> str` function is expected (tracing)."""
    assert PLAIN("Bearer abcdefghijkl") == "Bearer [REDACTED]"


@given(st.text())
def test_redaction_is_idempotent(text: str) -> None:
    """Redacting twice gives the same text as redacting once."""
    once = PLAIN.redact(text)
    assert PLAIN.redact(once) == once


@given(prefix=st.text(max_size=30), suffix=st.text(max_size=30))
def test_registered_canary_never_survives(prefix: str, suffix: str) -> None:
    """A registered secret is gone whatever surrounds it."""
    r = Redactor(env={}, values=["CANARY-7f3a9"])
    assert "CANARY-7f3a9" not in r.redact(prefix + "CANARY-7f3a9" + suffix)


def test_fast_path_is_cheap() -> None:
    """Ten thousand secret-free 1 KB strings take well under a second (no regex scan)."""
    r = Redactor(env={"A_TOKEN": "abcdefghijk", "B_SECRET": "zyxwvutsrq"})
    text = "The quick brown fox jumps over the lazy dog. " * 23
    start = time.perf_counter()
    for _ in range(10_000):
        r.redact(text)
    assert time.perf_counter() - start < 2.0


_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.sampled_from(["plain", "sk-live-abcdefghijklmnopqrstu", "Bearer abcdefghijklmnop",
                       "password=hunter2hunter2", "s3cr3t-registered-value"]) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.sampled_from(["a", "api_key", "Authorization", "token", "text",
                                       "s3cr3t-registered-value", "nested"]), inner, max_size=4),
    max_leaves=20)


@given(_json_like)
@settings(max_examples=300, deadline=None)
def test_the_fast_walk_matches_the_general_one(value: object) -> None:
    """`redact_obj`'s type-dispatched walk gives exactly what the general path gives."""
    r = Redactor(env={})
    r.register("s3cr3t-registered-value")
    assert r.redact_obj(value) == r._general(value)  # pyright: ignore[reportPrivateUsage]


def test_long_texts_are_memoised_until_a_secret_is_added() -> None:
    from agentnb.governance import _redact

    r = Redactor(env={})
    text = "log line with a key in it; " * 40 + "later-secret-value-99"  # > 256 characters
    first = r.redact(text)
    assert first == text
    assert r.redact(text) is first  # the second time from the memo
    r.register("later-secret-value-99")  # a new secret empties every memo
    assert r.redact(text).endswith("[REDACTED]")
    # The long memo is bounded by characters: past the budget it starts again.
    many = [f"{i:08d}" + "x" * 60_000 for i in range(_redact._LONG_BUDGET // 60_000 + 2)]
    for t in many:
        r.redact(t)
    kept = r._fast[4]
    assert kept[0] <= _redact._LONG_BUDGET
    assert sum(len(t) for t in kept[1]) == kept[0]



_WORDS = ["api", "API", "Api", "key", "Key", "KEY", "secret", "Secret", "token", "Token",
          "access", "refresh", "auth", "id", "client", "x-", "X-", "proxy-", "pass", "passwd",
          "password", "authorization", "Authorization", "bearer", "Bearer", "apikey", "_", "-",
          "sk-", "sk-proj-", "ghp_", "github_pat_", "xoxb-", "AKIA", "eyJ", "word", " "]
_SEPS = ["=", ": ", ":", " = ", '": "', "' = '", " ", ""]
_VALUES = ["abc12345", "Zx9_Zx9_Zx9_Zx9_Zx9_Zx9_", "0123456789ABCDEF0123", "Basic dXNlcjpw",
           "eyJhbGciOi.eyJzdWIiOi.sig", "x"]
_texts = st.tuples(st.text(max_size=6), st.lists(st.sampled_from(_WORDS), min_size=1, max_size=4),
                   st.sampled_from(_SEPS), st.sampled_from(_VALUES), st.text(max_size=6))


@given(_texts.map(lambda t: t[0] + "".join(t[1]) + t[2] + t[3] + t[4]))
@settings(max_examples=1500)
def test_the_trigger_probe_never_skips_a_match(text: str) -> None:
    """The substring probe in front of the regex lets through every text the regex changes."""
    regex = PLAIN._fast[0]
    assert regex is not None
    assert PLAIN.redact(text) == regex.sub(PLAIN._replace, text)


_WORDS = ["api_key", "API-Key", "apikey", "secret", "PassWord", "passwd", "authorization",
          "credential", "private_key", "access-token", "refresh_token", "auth_token", "token",
          "key", "tokens", "monkey", "\u212aey", "\u017fecret", "AUTHOR\u0130ZATION"]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=6), st.sampled_from(_WORDS) | st.text(max_size=12), st.text(max_size=6))
def test_the_sensitive_key_screen_agrees_with_the_pattern(head: str, word: str, tail: str) -> None:
    """The plain look for the pattern's words before `_SENSITIVE_KEY` never changes an answer,
    case and non-ASCII spellings included."""
    from agentnb.governance._redact import _SENSITIVE_KEY, _sensitive_key

    for key in (word, head + word, word + tail, head + word + tail, word.upper()):
        assert _sensitive_key(key) == (_SENSITIVE_KEY.fullmatch(key) is not None), key


_plain_text = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["sk-proj-" + "q" * 24, "Bearer abcdefghijkl", "hunter2hunter2",
                     "api_key=zzzzzzzz"]))
_plain_keys = st.one_of(st.text(max_size=8),
                        st.sampled_from(["token", "api_key", "password", "max_tokens", "id"]))
_plain_data = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), _plain_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(_plain_keys, inner, max_size=3)),
    max_leaves=12)


@settings(max_examples=200)
@given(st.dictionaries(_plain_keys, _plain_data, max_size=4))
def test_redact_plain_is_redact_obj_on_plain_data(data: dict[str, object]) -> None:
    for r in (Redactor(env={"MY_TOKEN": "hunter2hunter2"}), Redactor(env={}, patterns=False)):
        assert r.redact_plain(data) == r.redact_obj(data)


@pytest.mark.parametrize("data", [
    {"x": 1.5}, {"x": [1, (2, 3)]}, {"x": {1: "a"}}, {"x": 2**64}, {"x": {"y": [{"z": 0.1}]}},
    {"x": b"bytes"},
])
def test_redact_plain_says_none_for_data_that_is_not_plain(data: dict[str, object]) -> None:
    assert Redactor(env={}).redact_plain(data) is None
    assert Redactor(env={}, patterns=False).redact_plain(data) is None
