"""One JSON writer for everything the server sends: API answers, feed events, exports.

A child's message can hold what `json.dumps` cannot turn into UTF-8 JSON, and `ipc` delivers
it exactly, so the server must write it exactly too, never fail on it (a 500, a lost event):

* a lone surrogate (``"\\ud800"``: Node's `JSON.stringify` writes it as that escape) is written
  as the same escape, so the text is valid UTF-8 and a browser's `JSON.parse` gets the same
  string back (replacing it with U+FFFD would show the user something the child never sent);
* nesting deeper than CPython's recursion limit (Node decodes any depth) goes through
  `ipc.wire.dumps`' iterative encoder.

The common case is one C `json.dumps` and one `encode`; only such rare values pay more.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask.json.provider import DefaultJSONProvider

from ipc import wire
from ipc.errors import SerializationError

_SEPARATORS = (",", ":")


def encode(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON (non-JSON objects as their `str`)."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=_SEPARATORS, default=str)
    except RecursionError:
        return wire.dumps(value).encode()
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate: ASCII escapes are the same JSON value
        return json.dumps(value, separators=_SEPARATORS, default=str).encode()


def dumps(value: Any) -> str:
    """`encode(value)` as text."""
    return encode(value).decode()


def without_nan(value: Any) -> Any:
    """`value` with every NaN and ±Infinity as None, as `JSON.stringify` writes them.

    A raw child may send ``NaN`` (Python's decoder takes it; no browser's `JSON.parse` does).
    Returns `value` itself when it holds none (the common case: one C encoding); otherwise a
    copy, made without recursion so any depth works.
    """
    try:
        json.dumps(value, allow_nan=False, default=str)
        return value
    except ValueError:
        pass
    except RecursionError:
        try:
            wire.dumps(value)
            return value
        except SerializationError:
            pass
    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, float) and not math.isfinite(item):
            container[key] = None
        elif isinstance(item, list | tuple):
            copy = list(item)
            container[key] = copy
            stack.extend((copy, index) for index in range(len(copy)))
        elif isinstance(item, dict):
            copy = dict(item)
            container[key] = copy
            stack.extend((copy, name) for name in copy)
    return root[0]


class ExplorerJSONProvider(DefaultJSONProvider):
    """Flask's JSON (`jsonify`), readable UTF-8 as before, but never failing on a child's lone
    surrogate or deep nesting (see the module docstring)."""

    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        try:
            text = super().dumps(obj, **kwargs)
        except RecursionError:
            return wire.dumps(obj)
        try:
            text.encode()
        except UnicodeEncodeError:
            return super().dumps(obj, **{**kwargs, "ensure_ascii": True})
        return text
