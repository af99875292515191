"""`json_data` and the fast path of `canonical_json`: the same text as the standard library."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentnb.core import canonical_json, json_data, loads_json

_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text())
_values = st.recursive(
    _scalars,
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20)


def _stdlib(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_float(v) for v in value)
    return False


@given(_values)
@settings(max_examples=600)
def test_json_data_is_the_canonical_round_trip_and_floatless_text_is_exact(value: Any) -> None:
    """The data equals what the canonical text parses to; a float is always reported; with
    none, orjson's sorted text is the standard library's, byte for byte."""
    data, floatless = json_data(value)
    assert canonical_json(data) == canonical_json(loads_json(canonical_json(value)))
    if _has_float(value):
        assert not floatless
    if floatless:
        assert canonical_json(data, floatless=True) == _stdlib(data)


def test_json_data_edges() -> None:
    """Lone surrogates and huge integers go the standard library's way; NaN becomes None;
    objects become what `canonical_json` writes for them."""
    data, floatless = json_data({"s": "a\ud800b", "n": 2**80})
    assert data == {"s": "a\ud800b", "n": 2**80}
    assert not floatless
    assert json_data({"x": math.nan, "y": [math.inf]}) == ({"x": None, "y": [None]}, True)
    assert json_data({"d": Decimal(7), "s": {3, 1}}) == ({"d": "7", "s": [1, 3]}, True)
    text = "key 1.5 and 2e9 inside text, run_0d3e"
    assert json_data({"t": text}) == ({"t": text}, True)  # numbers inside strings are text
    assert canonical_json({"t": text}, floatless=True) == _stdlib({"t": text})
    quoted = 'say "1.5"'
    assert json_data({"q": quoted, "n": 1}) == ({"q": quoted, "n": 1}, False)  # escaped quotes:
    # taken to hold a float (the slow way), which is always safe



@given(_values)
@settings(max_examples=400)
def test_loads_json_reads_what_the_standard_library_reads(value: Any) -> None:
    """Integers of any size stay integers, exactly (orjson alone would make those beyond 64
    bits floats), with the text compact or spaced."""
    for text in (json.dumps(value), json.dumps(value, separators=(",", ":")), _stdlib(value)):
        expected = json.loads(text)
        assert loads_json(text) == expected
        assert loads_json(text.encode()) == expected
        assert canonical_json(loads_json(text)) == canonical_json(expected)  # types too


def test_big_integers_survive_a_round_trip() -> None:
    """A 22-digit account number in tool arguments or a checkpoint comes back as that int."""
    big = {"account": 1180591620717411303424, "low": -9223372036854775809}
    assert loads_json(json.dumps(big)) == big
    assert json_data(big) == (big, False)
