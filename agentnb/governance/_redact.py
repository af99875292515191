"""Secret redaction: API keys, bearer tokens, secret env values and registered values.

One `Redactor` holds one compiled regular expression: a fixed set of credential patterns plus the
literal secret values it knows (from the environment and from `register`). `redact(text)` is a
single `re.sub` over that expression, so a string without a secret costs one scan; it runs on
every span attribute (the runtime installs it with `agentnb.tracing.set_redactor`), every audit
record and every saved output.

Replacements never contain any part of the secret: `[REDACTED]` for a pattern or a registered
value (a context prefix such as `Bearer ` or `api_key=` is kept), `[REDACTED:env:NAME]` for the
value of environment variable `NAME`.

Environment values are taken from variables whose *names* contain `KEY`, `TOKEN`, `SECRET`,
`PASSWORD` or `PASSWD` (any case), and only when the value has at least
`MIN_ENV_SECRET_CHARS` (6) characters: shorter values (`KEYBOARD=us`, `TOKENS=on`) are common
words whose removal would garble traces without protecting anything.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agentnb.core import UsageError

__all__ = [
    "MIN_ENV_SECRET_CHARS",
    "MIN_REGISTERED_CHARS",
    "REDACTED",
    "Redactor",
    "default_redactor",
    "register_secret",
]

REDACTED = "[REDACTED]"
"""What a redacted secret is replaced by."""
MIN_ENV_SECRET_CHARS = 6
"""Environment values shorter than this are not treated as secrets."""
MIN_REGISTERED_CHARS = 4
"""`register` refuses values shorter than this (they would blank out ordinary words)."""

_ENV_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD", re.IGNORECASE)

# (kind, pattern). A pattern may hold a group named `p` (a prefix that is kept); the rest of the
# match is replaced. Order matters only where two patterns start at the same position.
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("anthropic", r"\bsk-ant-[A-Za-z0-9_\-]{16,}"),
    ("openai", r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{16,}"),
    ("aws", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
    ("github", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("slack", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{6,}\.eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*"),
    (
        "header",
        r"(?P<p>(?i:\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?))"
        r"(?:(?i:bearer|basic|token|digest)\s+)?[^\s\"',;\[\]]+",
    ),
    ("bearer", r"(?P<p>(?i:\bbearer\s+))[A-Za-z0-9\-._~+/]{8,}=*"),
    (
        "assignment",
        r"(?P<p>(?i:\b(?:x-)?(?:api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|"
        r"auth[_-]?token|id[_-]?token|client[_-]?secret|secret[_-]?key|secret|password|passwd)\b"
        r"[\"']?\s*[:=]\s*[\"']?))[^\s\"',;&}\[\]]+",
    ),
)

# Lower-cased substrings one of which every pattern match contains. `redact` checks them with
# `in` (a C substring search) before running the regex: Python's regex engine cannot skip ahead
# over an alternation that starts with `\b`, so a miss costs ~0.5 ms per KB without this probe.
_TRIGGERS = (
    "sk-", "akia", "asia", "agpa", "aida", "aroa", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "github_pat_", "xox", "eyj",
    "authorization", "bearer", "api_key", "api-key", "apikey", "token", "secret", "passw",
)
# Not a bare "key": it is in ordinary prose and in JSON such as `{"key": ...}`, and every
# assignment keyword with it is an api key (listed) or a secret key (found by "secret").

_MEMO_SIZE = 8192
"""Entries in each memo (short strings, dict keys); cleared when full or a secret is added."""
_MEMO_MAX_CHARS = 256
"""Strings up to this length are memoised (names, roles, ids, schema text repeat constantly)."""
_LONG_MAX_CHARS = 65_536
"""Longer strings up to this length go to a second memo, bounded by `_LONG_BUDGET`."""
_LONG_BUDGET = 1_048_576
"""Characters the long-string memo keeps before it is emptied."""

_SENSITIVE_KEY = re.compile(
    r"(?i)(?:.*(?:api[_-]?key|apikey|secret|password|passwd|authorization|credential|"
    r"private[_-]?key|access[_-]?token|refresh[_-]?token|auth[_-]?token)|(?:.*[_-])?token)"
)
_KEY_HINTS = ("key", "secret", "passw", "authorization", "credential", "token")
"""A word every `_SENSITIVE_KEY` match contains (lower case)."""


def _sensitive_key(key: str) -> bool:
    """`_SENSITIVE_KEY.fullmatch(key)`, after a plain look for its words: the pattern's leading
    `.*` tries every position (12 us for a 70-character key), and most keys (ids, hashes, call
    signatures) hold none of the words."""
    if not key.isascii():  # case-insensitive matching beyond ASCII (the Kelvin sign is a k)
        return _SENSITIVE_KEY.fullmatch(key) is not None
    low = key.lower()
    for hint in _KEY_HINTS:
        if hint in low:
            return _SENSITIVE_KEY.fullmatch(key) is not None
    return False


class Redactor:
    """Replace secrets in text and in nested data.

    Args:
        env: Environment to take secret values from (`os.environ` by default; pass `{}` for
            none). Read once, here.
        values: Extra literal secrets, as if passed to `register`.
        patterns: Whether to apply the built-in credential patterns.

    Example:
        >>> r = Redactor(env={"MY_API_KEY": "hunter2hunter2"})
        >>> r.redact("key=hunter2hunter2, auth: Bearer abcdefghijkl")
        'key=[REDACTED:env:MY_API_KEY], auth: Bearer [REDACTED]'
        >>> r.redact_obj({"password": "x", "n": 1})
        {'password': '[REDACTED]', 'n': 1}
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        values: Iterable[str] = (),
        patterns: bool = True,
    ) -> None:
        environ = os.environ if env is None else env
        self._patterns = patterns
        self._lock = threading.Lock()  # protects _literals while register() rebuilds the regex
        self._literals: dict[str, str] = {}
        self._registered: list[str] = []
        self._env_seen: dict[Any, Any] | None = None  # os.environ's raw data at the last reload
        for name, value in environ.items():
            if _ENV_NAME.search(name) and len(value) >= MIN_ENV_SECRET_CHARS:
                self._add_literal(value, f"[REDACTED:env:{name}]")
        for value in values:
            self._check_value(value)
            self._registered.append(value)
            self._add_literal(value, REDACTED)
        self._regex, self._replacements = self._compile()
        self._probe = tuple(self._literals)
        self._fast = self._fast_state()

    def _fast_state(self) -> tuple[re.Pattern[str] | None, tuple[str, ...], dict[str, str],
                                   dict[str, tuple[str, bool]], list[Any]]:
        # (full regex, literal probe, memo of short strings, memo of dict keys, [characters
        # kept, memo of long strings]), swapped as one tuple so a reader never pairs a new
        # regex with a memo filled under the old one.
        return self._regex, tuple(self._literals), {}, {}, [0, {}]

    @property
    def memo(self) -> dict[str, str]:
        """Short strings already redacted, text -> result (read only): looking a string up here
        before calling `redact` saves a call for the names, ids and kinds that recur. A new
        secret replaces the dict (a holder's old one goes stale, never wrong for long: take
        it again per batch).

        Example:
            >>> r = Redactor(env={})
            >>> r.redact("hello")
            'hello'
            >>> r.memo["hello"]
            'hello'
        """
        return self._fast[2]

    @property
    def secret_count(self) -> int:
        """How many literal secret values (env + registered) are known, counting encodings."""
        return len(self._literals)

    def registered_values(self) -> list[str]:
        """The values passed to `register` (or `values=`), in order."""
        return list(self._registered)

    def reload_env(self, env: Mapping[str, str] | None = None) -> int:
        """Learn secret env values set since this redactor was made; return how many are new.

        The same object keeps working, so every holder of it (the runtime, tracing's hook)
        redacts the new values at once.

        Example:
            >>> r = Redactor(env={})
            >>> r.reload_env({"LATE_API_KEY": "sk-late-value-123"})
            1
            >>> r.redact("k=sk-late-value-123")
            'k=[REDACTED:env:LATE_API_KEY]'
        """
        environ = os.environ if env is None else env
        # os.environ decodes every name and value it yields; its raw bytes dict compares at C
        # speed, so an unchanged environment (every run but the first) costs no scan.
        raw = getattr(os.environ, "_data", None) if env is None else None
        if raw is not None and raw == self._env_seen:
            return 0
        seen = dict(raw) if isinstance(raw, dict) else None  # taken before the scan
        secret_name = _secret_name
        with self._lock:
            before = len(self._literals)
            for name, value in environ.items():
                if (secret_name(name) and len(value) >= MIN_ENV_SECRET_CHARS
                        and value not in self._literals):
                    self._add_literal(value, f"[REDACTED:env:{name}]")
            added = len(self._literals) - before
            if added:
                self._regex, self._replacements = self._compile()
                self._probe = tuple(self._literals)
                self._fast = self._fast_state()
            if seen is not None:
                self._env_seen = seen  # only now: a concurrent caller scans rather than skip
        return added

    def register(self, value: str) -> None:
        """Treat `value` (and its JSON- and URL-escaped forms) as a secret from now on.

        Raises:
            UsageError: the value is not a string or is shorter than `MIN_REGISTERED_CHARS`.

        Example:
            >>> r = Redactor(env={})
            >>> r.register("correct horse")
            >>> r.redact("pw is correct horse")
            'pw is [REDACTED]'
        """
        self._check_value(value)
        with self._lock:
            self._registered.append(value)
            self._add_literal(value, REDACTED)
            self._regex, self._replacements = self._compile()
            self._probe = tuple(self._literals)
            self._fast = self._fast_state()

    def redact(self, text: str) -> str:
        """Return `text` with every known secret replaced.

        Example:
            >>> Redactor(env={}).redact("nothing to hide")
            'nothing to hide'
        """
        regex, probe, memo, _, long_memo = self._fast
        if regex is None:
            return text
        out = memo.get(text)
        if out is not None:
            return out
        if len(text) > _MEMO_MAX_CHARS:
            out = long_memo[1].get(text)
            if out is not None:
                return out
        out = text
        if _mentions(text, probe) or (self._patterns and _mentions(text.lower(), _TRIGGERS)):
            out = regex.sub(self._replace, text)
        size = len(text)
        if size <= _MEMO_MAX_CHARS:
            # Names, roles, ids and schema text repeat on every call.
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[text] = out
        elif size <= _LONG_MAX_CHARS:
            # A message's text is redacted again as the step's dump, the checkpoint and the
            # span attributes take it (the same str object: its hash is kept, so a hit is one
            # look-up); kept up to `_LONG_BUDGET` characters in all, then forgotten at once.
            if long_memo[0] + size > _LONG_BUDGET:
                long_memo[1].clear()
                long_memo[0] = 0
            long_memo[0] += size
            long_memo[1][text] = out
        return out

    __call__ = redact

    def redact_obj(self, obj: Any) -> Any:  # Any: any JSON-like value goes in and comes out
        """Redact a nested structure: strings everywhere, whole values under secret-looking keys.

        Dicts, lists, tuples and sets keep their type; pydantic models and dataclasses come back
        as dicts; bytes are redacted as UTF-8; other scalars are returned as they are.

        Example:
            >>> Redactor(env={}).redact_obj({"headers": {"Authorization": "Basic dXNlcjpwdw=="}})
            {'headers': {'Authorization': '[REDACTED]'}}
        """
        fast = self._fast
        if fast[0] is None:  # nothing to look for; keys named like secrets still are redacted
            return self._general(obj)
        return _walk(obj, self.redact, fast[2], fast[3], self._general)

    def redact_plain(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """`redact_obj(obj)` for JSON data without a float, or None when `obj` is not such
        data (a float, a tuple, a non-str key, an int beyond 64 bits, any other type): one
        walk that both checks and redacts, for the audit log's records.

        Example:
            >>> r = Redactor(env={})
            >>> r.redact_plain({"token": "abc", "n": [1, "Bearer abcdefghij"]})
            {'token': '[REDACTED]', 'n': [1, 'Bearer [REDACTED]']}
            >>> r.redact_plain({"x": 1.5}) is None
            True
        """
        fast = self._fast
        try:
            if fast[0] is None:  # nothing to look for: keys named like secrets still are
                _walk(obj, _same, {}, {}, _not_plain, strict=True)  # redacted
                return self._general(obj)
            return _walk(obj, self.redact, fast[2], fast[3], _not_plain, strict=True)
        except _NotPlain:
            return None

    def _general(self, obj: Any) -> Any:  # Any: any JSON-like value goes in and comes out
        if isinstance(obj, str):
            return self.redact(obj)
        kind = type(obj)
        if kind is int or kind is float or kind is bool or obj is None:
            return obj
        if kind is dict or isinstance(obj, Mapping):
            keys = self._fast[3]
            out: dict[Any, Any] = {}
            for key, value in obj.items():  # pyright: ignore[reportUnknownVariableType]
                if isinstance(key, str):
                    seen = keys.get(key)
                    if seen is None:
                        seen = (self.redact(key), _sensitive_key(key))
                        if len(keys) < _MEMO_SIZE:
                            keys[key] = seen
                    new_key, sensitive = seen
                else:
                    new_key, sensitive = key, False
                if sensitive and _is_scalar(value):
                    out[new_key] = value if value is None or isinstance(value, bool) else REDACTED
                else:
                    out[new_key] = self.redact_obj(value)
            return out
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]  # pyright: ignore[reportUnknownVariableType]
        if isinstance(obj, tuple):
            return tuple(self.redact_obj(v) for v in obj)  # pyright: ignore[reportUnknownVariableType]
        if isinstance(obj, (set, frozenset)):
            return type(obj)(self.redact_obj(v) for v in obj)  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
        if isinstance(obj, bytes):
            return self.redact(obj.decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape"
            )
        dump = getattr(obj, "model_dump", None)
        if callable(dump):
            return self.redact_obj(dump(mode="json"))
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return self.redact_obj(dataclasses.asdict(obj))
        return obj

    def _replace(self, match: re.Match[str]) -> str:
        kind = match.lastgroup
        if kind is None:  # pragma: no cover - every alternative is a named group
            return REDACTED
        if kind.startswith("lit"):
            return self._replacements[kind]
        prefix = match.group(f"p_{kind}") if f"p_{kind}" in match.re.groupindex else None
        return (prefix or "") + REDACTED

    def _add_literal(self, value: str, replacement: str) -> None:
        for variant in {value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""),
                        urllib.parse.quote_plus(value)}:
            self._literals.setdefault(variant, replacement)

    def _compile(self) -> tuple[re.Pattern[str] | None, dict[str, str]]:
        parts: list[str] = []
        replacements: dict[str, str] = {}
        # Literals first and longest first, so a secret that contains a pattern-like piece is
        # replaced whole and tagged with its source.
        for i, value in enumerate(sorted(self._literals, key=len, reverse=True)):
            parts.append(f"(?P<lit{i}>{re.escape(value)})")
            replacements[f"lit{i}"] = self._literals[value]
        if self._patterns:
            for kind, pattern in _PATTERNS:
                parts.append(f"(?P<{kind}>{pattern.replace('(?P<p>', f'(?P<p_{kind}>')})")
        if not parts:
            return None, replacements
        return re.compile("|".join(parts)), replacements

    @staticmethod
    def _check_value(value: object) -> None:
        if not isinstance(value, str):
            msg = f"A secret must be a str, got {type(value).__name__}."
            raise UsageError(msg, hint="Pass the secret's text, e.g. `register_secret(key)`.")
        if len(value) < MIN_REGISTERED_CHARS:
            msg = (f"A secret of {len(value)} characters is too short to register "
                   f"(minimum {MIN_REGISTERED_CHARS}).")
            raise UsageError(msg, hint="Register the whole secret, not a fragment of it.")


def _key(key: str, redact: Callable[[str], str],
         keys: dict[str, tuple[str, bool]]) -> tuple[str, bool]:
    """A dict key's (redacted key, whether its value is a secret), kept in `keys`."""
    seen = (redact(key), _sensitive_key(key))
    if len(keys) < _MEMO_SIZE:
        keys[key] = seen
    return seen


def _walk(obj: Any, redact: Callable[[str], str], memo: dict[str, str],
          keys: dict[str, tuple[str, bool]], general: Callable[[Any], Any], *,
          strict: bool = False) -> Any:
    """`Redactor.redact_obj` for the JSON shapes it mostly sees (dicts, lists, str, numbers),
    dispatching on the exact type with the memos at hand; anything else goes to `general`.

    `strict` (with a `general` that raises `_NotPlain`): raise `_NotPlain` for anything but
    JSON data without a float, a non-str key or an int beyond 64 bits included."""
    kind = type(obj)
    if kind is str:
        out = memo.get(obj)
        return redact(obj) if out is None else out
    if kind is dict:
        result: dict[Any, Any] = {}
        for key, value in obj.items():
            if type(key) is str:
                new_key, sensitive = keys.get(key) or _key(key, redact, keys)
            elif strict:
                raise _NotPlain
            else:
                new_key, sensitive = key, False
            vkind = type(value)
            if vkind is str:
                if sensitive:
                    result[new_key] = REDACTED
                else:
                    done = memo.get(value)
                    result[new_key] = redact(value) if done is None else done
            elif value is None or vkind is bool:
                result[new_key] = value
            elif vkind is int or vkind is float:
                if strict and (vkind is float or not _INT_MIN <= value <= _INT_MAX):
                    raise _NotPlain
                result[new_key] = REDACTED if sensitive else value
            elif sensitive and _is_scalar(value) and not strict:
                result[new_key] = REDACTED
            else:
                result[new_key] = _walk(value, redact, memo, keys, general, strict=strict)
        return result
    if kind is list:
        return [_walk(v, redact, memo, keys, general, strict=strict) for v in obj]
    if kind is bool or obj is None:
        return obj
    if kind is int or kind is float:
        if strict and (kind is float or not _INT_MIN <= obj <= _INT_MAX):
            raise _NotPlain
        return obj
    return general(obj)


class _NotPlain(Exception):
    """Raised by a strict `_walk` at the first value that is not plain JSON data."""


def _not_plain(obj: Any) -> Any:
    raise _NotPlain


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
"""The ints orjson writes (beyond them `json_data`'s encoder does, so not "plain")."""


def _same(text: str) -> str:
    return text


def _mentions(text: str, needles: tuple[str, ...]) -> bool:
    # A plain loop: a third of the cost of `any()` over a generator, on every string redacted.
    for needle in needles:  # noqa: SIM110
        if needle in text:
            return True
    return False


def _is_scalar(value: object) -> bool:
    return not isinstance(value, (Mapping, list, tuple, set, frozenset))


_default: Redactor | None = None
_default_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (names rarely change, so
    a run's re-read of the environment is a dictionary look-up per variable)."""
    return _ENV_NAME.search(name) is not None


def default_redactor(*, reload_env: bool = False) -> Redactor:
    """The process-wide redactor: built-in patterns, secret env values and registered values.

    The environment is read when it is first created; `reload_env=True` reads it again (for a
    key set later in a notebook) into the same object, so every holder of it sees the new
    secrets.

    Example:
        >>> default_redactor().redact("token: Bearer abcdefghijklmnop")
        'token: Bearer [REDACTED]'
    """
    global _default  # one redactor per process, created lazily
    with _default_lock:
        if _default is None:
            _default = Redactor()
        elif reload_env:
            _default.reload_env()
        return _default


def register_secret(value: str) -> None:
    """Register a secret with the default redactor, so it never reaches a trace or log.

    Example:
        >>> register_secret("s3cr3t-value-123")
        >>> default_redactor().redact("v=s3cr3t-value-123")
        'v=[REDACTED]'
    """
    default_redactor().register(value)
