"""JSON as this package writes it: canonical (sorted, for hashes and the audit chain) and
compact (checkpoints, recordings, span attributes, request bodies), and parsing.

`canonical_json` must give the same text in every version (hashes of recorded requests and
audit lines depend on it), so it stays on the standard library's encoder, built once, except
for data `json_data` has shown to hold no float: there orjson's sorted text is the same, byte
for byte (escapes, key order and integers agree; floats are formatted differently), at a
fifth of the cost. Compact text and parsing use orjson.
"""

from __future__ import annotations

import json
import json.encoder
import re
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["canonical_json", "compact_json", "json_data", "loads_json"]

_orjson_dumps = orjson.dumps
_orjson_loads = orjson.loads
_ORJSON_OPTIONS = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                   | orjson.OPT_PASSTHROUGH_DATACLASS)
"""Keys that are not strings become strings as `json.dumps` makes them; datetimes and
dataclasses are refused as `json.dumps` refuses them (orjson would write them)."""


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


def _c_encoder(*, sort_keys: bool, default: Callable[[Any], Any] | None
               ) -> Callable[[Any], str] | None:
    """A reusable encoder on the C accelerator, or None where it is missing or differs.

    `json.dumps` builds a `JSONEncoder` and a C encoder on every call; the JSON this package
    writes per step (checkpoints, audit records, span attributes) is small, so that set-up was
    a third of each encode. This C encoder is built once with no circular-reference markers
    (so it holds no per-call state and threads may share it); a cycle ends in RecursionError,
    which the callers turn into the error `json.dumps` gives."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return None
    try:
        encoder = make(None, default, json.encoder.encode_basestring, None, ":", ",",
                       sort_keys, False, True)
    except TypeError:  # pragma: no cover - another interpreter's signature
        return None

    def encode(obj: Any) -> str:  # Any: any JSON-like value
        return "".join(encoder(obj, 0))

    sample = {"b": [1, 2.5, float("nan"), None, True], "a": {"é": "x\n\"y\u2028"}, "c": "z",
              "d": (1,)}
    expected = json.dumps(sample, sort_keys=sort_keys, separators=(",", ":"),
                          ensure_ascii=False)
    try:
        ok = encode(sample) == expected
    except Exception:  # pragma: no cover - a differing accelerator
        ok = False
    return encode if ok else None


def _refuse(obj: object) -> Any:
    msg = f"Object of type {type(obj).__name__} is not JSON serializable"
    raise TypeError(msg)


_CANONICAL = _c_encoder(sort_keys=True, default=_default)


_SORTED = orjson.OPT_SORT_KEYS
_FLOAT_TOKEN = re.compile(rb"[0-9][.eE]")
"""Every float orjson writes has a digit followed by `.`, `e` or `E` (`1.0`, `1e-7`)."""


def _has_float(text: bytes) -> bool:
    """True when orjson's `text` may hold a float: a float token outside the strings (found
    by splitting at the quotes; a text with an escaped quote is taken to hold one)."""
    if b'\\"' in text:
        return True
    return _FLOAT_TOKEN.search(b"".join(text.split(b'"')[0::2])) is not None


def canonical_json(obj: Any, *, floatless: bool = False) -> str:
    """Serialise to JSON with sorted keys and no spaces, so equal values give equal text.

    `floatless=True` promises that `obj` is JSON data without a float (what `json_data`
    reports): it is then written by orjson, with the same text.

    Example:
        >>> canonical_json({"b": 1, "a": [1, 2]})
        '{"a":[1,2],"b":1}'
    """
    if floatless:
        try:
            return _orjson_dumps(obj, None, _SORTED).decode()
        except TypeError:  # not plain data after all: the standard library writes it
            pass
    if _CANONICAL is not None:
        try:
            return _CANONICAL(obj)
        except RecursionError:
            pass  # a cycle: json.dumps names it
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default,
                      ensure_ascii=False)


def compact_json(obj: Any) -> str:
    """Serialise plain JSON data without spaces, keeping key order (non-ASCII kept as is).

    Written by orjson, four times faster than the standard library on a run's state: the same
    text for the data a run stores, except that NaN and infinities become `null` (which is what
    JSON allows; pydantic's JSON mode does the same). What orjson refuses (integers over 64
    bits, text with lone surrogates, a cycle, very deep nesting) goes to the standard library,
    which writes it or raises its own error.

    Raises:
        TypeError: a value is not JSON-serialisable.
        ValueError: the value contains itself.

    Example:
        >>> compact_json({"b": 1, "a": "é"})
        '{"b":1,"a":"é"}'
    """
    try:
        return _orjson_dumps(obj, _refuse, _ORJSON_OPTIONS).decode()
    except TypeError:  # refused by orjson (or not JSON at all): the standard library decides
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def json_data(obj: Any) -> tuple[Any, bool]:  # Any: any JSON-like value in and out
    """`obj` as plain JSON data, and True when that data certainly holds no float.

    The data is what `loads_json(canonical_json(obj))` gives (objects the encoder does not know
    become what `canonical_json` writes for them: a model's JSON dump, a sorted list for a set,
    `str()` otherwise), except that NaN and infinities become None and a plain `Enum` member
    its value. With True, `canonical_json(data, floatless=True)` is exact and fast.

    Example:
        >>> json_data({"n": 1, "tags": ("a", "b")})
        ({'n': 1, 'tags': ['a', 'b']}, True)
        >>> json_data({"x": 0.5})[1]
        False
    """
    try:
        text = _orjson_dumps(obj, _default, _ORJSON_OPTIONS)
    except TypeError:  # integers over 64 bits, lone surrogates, a cycle: the standard library
        return loads_json(canonical_json(obj)), False
    return _orjson_loads(text), not _has_float(text)


# A number of 19 digits or more: orjson reads an integer outside 64 bits as a float, losing
# digits, so a text that may hold one goes to the standard library (as does a string that
# happens to look like one, which costs only time).
_DIGIT_RUN = re.compile(rb"[0-9]{19,}")
_NUMBER_START = frozenset(b"[:,-\t\n\r ")
"""What can come right before a number in JSON text."""
_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_RUN = b"0" * 19


def _may_hold_long_int(text: str | bytes) -> bool:
    """True when `text` may hold an integer of 19 digits or more: 19 digits in a row (found by
    one C pass that maps every digit to 0) at a place where a number can start."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _RUN not in data.translate(_TO_ZERO):
        return False  # the common case, in a fifth of the time of a pattern
    # Runs of digits inside strings (ids such as "call_0000000000000016000001") are common:
    # look only at the runs, and at the character before each.
    for match in _DIGIT_RUN.finditer(data):
        start = match.start()
        if start == 0 or data[start - 1] in _NUMBER_START:
            return True
    return False


def loads_json(text: str | bytes) -> Any:  # Any: whatever the JSON holds
    """Parse JSON text (orjson; the standard library for what orjson refuses, `NaN` and
    `Infinity`, and for integers that may not fit 64 bits, which orjson would make floats).

    Raises:
        ValueError: the text is not JSON (`json.JSONDecodeError`).

    Example:
        >>> loads_json('{"a": [1, 2.5, null]}')
        {'a': [1, 2.5, None]}
    """
    if not _may_hold_long_int(text):
        try:
            return _orjson_loads(text)
        except ValueError:
            pass
    return json.loads(text)
