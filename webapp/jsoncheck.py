"""JSON in: parse a request body without surprises, and check a value against a declared shape.

`parse` turns bytes into a value or a `ShapeError` that says what is wrong: bad UTF-8, not
JSON, ``NaN`` / ``Infinity`` / ``1e999`` (JSON has no such numbers, and one reaching
``int()`` was a 500), nesting deeper than `MAX_DEPTH` (``"[" * 30000`` was a RecursionError,
a 500), and lone surrogates (``"\\ud800"`` is valid JSON but no UTF-8 text: it cannot become
an argument, a variable, stdin bytes or a JSON answer, and it used to fail only after a job had
taken a slot). The error names the field: ``'args[1]'``, ``"env['X']"``.

`check` validates a parsed value against a JSON Schema, the same one that the OpenAPI document
(openapi.py) publishes, so the validator and the description cannot drift apart. It knows the
subset schemas.py uses: ``type``, ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``propertyNames``, ``items``, ``minItems`` / ``maxItems``,
``minLength`` / ``maxLength``, ``minimum`` / ``maximum``, ``maxProperties``,
``anyOf`` of ``required`` alternatives, ``oneOf`` with a ``discriminator``, and ``$ref`` to
``#/components/schemas/``. A schema may carry ``description`` (what the value must be, used in
messages), ``x-name`` (what an object is, "a spawn job"), ``x-example`` (a request to copy)
and ``x-forbid`` (characters a string may not hold, e.g. NUL; ``x-forbid-means`` says why).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

#: Deepest nesting of arrays and objects a request may have (a message to a child included).
MAX_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}
_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


class ShapeError(ValueError):
    """A value that does not have the declared shape; the message says how to fix it."""


def field_name(path: tuple[str | int, ...]) -> str:
    """``('env', 'X')`` → ``"'env['X']'"``: how a message names a field."""
    if not path:
        return "the body"
    text = str(path[0])
    for part in path[1:]:
        text += f"[{part}]" if isinstance(part, int) else f"[{part!r}]"
    return f"'{text}'"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- parsing --------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ShapeError(
        f"the body is not valid JSON: {name} is not a JSON number; send a finite number"
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ShapeError(
            f"the body is not valid JSON: {text} is out of range (a JSON number must be finite)"
        )
    return value


def parse(raw: bytes, what: str = "the body") -> Any:
    """Bytes → a JSON value with no lone surrogate and at most `MAX_DEPTH` levels.

    :raises ShapeError: with a message that names the problem (and the field, if one).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ShapeError(
            f"{what} is not UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); "
            "send JSON encoded as UTF-8"
        ) from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ShapeError(f"{what} is nested too deeply; at most {MAX_DEPTH} levels") from None
    except ShapeError:
        raise
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ShapeError(
            f'{what} is not valid JSON ({detail}); send a JSON object like {{"kind": ...}}'
        ) from None
    check_text(value)
    return value


def check_text(value: Any) -> None:
    """Every string (keys too) is UTF-8 text and nesting stays within `MAX_DEPTH`.

    Iterative, so a deep value cannot exhaust the stack here either.

    :raises ShapeError: naming the field.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            _check_string(item, path)
        elif isinstance(item, dict | list):
            if len(path) >= MAX_DEPTH:
                raise ShapeError(
                    f"{field_name(path)} is nested too deeply; at most {MAX_DEPTH} levels of "
                    "arrays and objects are allowed"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_string(key, path, key=True)
                    stack.append((child, (*path, key)))
            else:
                stack.extend((child, (*path, i)) for i, child in enumerate(item))


def _check_string(text: str, path: tuple[str | int, ...], key: bool = False) -> None:
    found = _SURROGATE.search(text)
    if found is None:
        return
    where = f"a key of {field_name(path)}" if key else field_name(path)
    if key and not path:
        where = "a key of the body"
    raise ShapeError(
        f"{where} holds a lone surrogate ({found.group()!r} at {found.start()}), which is "
        "not UTF-8 text and cannot become an argument, a variable or bytes; send Unicode "
        "text (surrogates only come in pairs)"
    )


# ---- checking -------------------------------------------------------------------------------


class Checker:
    """Validates values against schemas that may refer to each other by ``$ref``.

    :param components: ``{"Name": schema}``, what ``#/components/schemas/Name`` means.
    """

    PREFIX = "#/components/schemas/"

    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].removeprefix(self.PREFIX)]
        return schema

    def check(self, schema: Mapping[str, Any], value: Any, path: tuple[str | int, ...] = ()) -> Any:
        """:returns: `value`. :raises ShapeError: with the first problem found."""
        schema = self.resolve(schema)
        if "discriminator" in schema:
            return self._one_of(schema, value, path)
        where = field_name(path)
        self._type(schema, value, where)
        if "const" in schema and value != schema["const"]:
            raise ShapeError(f"{where} must be {schema['const']!r}, not {_short(value)}")
        if "enum" in schema and value not in schema["enum"]:
            allowed = "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
            raise ShapeError(
                f"{where} must be {schema.get('description', allowed)}, not {_short(value)}"
            )
        if isinstance(value, str):
            self._string(schema, value, where)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._number(schema, value, where)
        elif isinstance(value, list):
            self._array(schema, value, path)
        elif isinstance(value, dict):
            self._object(schema, value, path)
        return value

    def _type(self, schema: Mapping[str, Any], value: Any, where: str) -> None:
        wanted = schema.get("type")
        if wanted is None:
            return
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        for name in names:
            if isinstance(value, _TYPES[name]) and (
                name == "boolean" or not isinstance(value, bool)
            ):
                return
        expected = schema.get("description") or " or ".join(_NAMES[n] for n in names)
        raise ShapeError(f"{where} must be {expected}, not {_short(value)}")

    def _string(self, schema: Mapping[str, Any], value: str, where: str) -> None:
        if len(value) < schema.get("minLength", 0):
            what = schema.get("description") or "a non-empty string"
            raise ShapeError(f"{where} must be {what}, not {value!r}")
        limit = schema.get("maxLength")
        if limit is not None and len(value) > limit:
            raise ShapeError(f"{where} is {len(value)} characters; at most {limit} are allowed")
        forbidden = schema.get("x-forbid")
        if forbidden and any(c in value for c in forbidden):
            means = schema.get("x-forbid-means", f"may not contain any of {forbidden!r}")
            raise ShapeError(f"{where} {means}, not {_short(value)}")

    @staticmethod
    def _number(schema: Mapping[str, Any], value: float, where: str) -> None:
        if "minimum" in schema and value < schema["minimum"]:
            raise ShapeError(f"{where} must be >= {schema['minimum']}, not {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ShapeError(f"{where} is {value}; the most allowed is {schema['maximum']}")

    def _array(self, schema: Mapping[str, Any], value: list[Any], path: tuple) -> None:
        where = field_name(path)
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if len(value) < low or (high is not None and len(value) > high):
            bounds = f"at most {high}" if len(value) >= low else f"at least {low}"
            what = schema.get("description")
            raise ShapeError(
                f"{where} has {len(value)} items; {bounds} are allowed"
                + (f" ({where} is {what})" if what else "")
            )
        items = schema.get("items")
        if items is not None:
            for index, item in enumerate(value):
                self.check(items, item, (*path, index))

    def _object(self, schema: Mapping[str, Any], value: dict[str, Any], path: tuple) -> None:
        where = field_name(path)
        name = schema.get("x-name", where)
        example = schema.get("x-example")
        hint = f"; e.g. {example}" if example else ""
        properties = schema.get("properties", {})
        limit = schema.get("maxProperties")
        if limit is not None and len(value) > limit:
            raise ShapeError(f"{where} has {len(value)} entries; at most {limit} are allowed")
        extra = schema.get("additionalProperties", True)
        if extra is False:
            unknown = sorted(set(value) - set(properties))
            if unknown:
                raise ShapeError(
                    f"unknown field(s) {', '.join(map(repr, unknown))} for {name}; its fields "
                    f"are {', '.join(sorted(properties))}{hint}"
                )
        for key in schema.get("required", ()):
            if key not in value:
                raise ShapeError(f"'{key}' is required for {name}{hint}")
        alternatives = schema.get("anyOf")
        if alternatives and not any(all(k in value for k in a["required"]) for a in alternatives):
            keys = " or ".join(repr(a["required"][0]) for a in alternatives)
            raise ShapeError(f"{keys} is required for {name}{hint}")
        names = schema.get("propertyNames")
        for key, item in value.items():
            if names is not None:
                self._string(names, key, f"the name {key!r} in {where}")
            if key in properties:
                self.check(properties[key], item, (*path, key))
            elif isinstance(extra, Mapping):
                self.check(extra, item, (*path, key))

    def _one_of(self, schema: Mapping[str, Any], value: Any, path: tuple) -> Any:
        if not isinstance(value, dict):
            raise ShapeError(
                f"{field_name(path)} must be a JSON object, e.g. {schema.get('x-example', '{}')}"
            )
        key = schema["discriminator"]["propertyName"]
        mapping = schema["discriminator"]["mapping"]
        chosen = value.get(key)
        if not isinstance(chosen, str) or chosen not in mapping:
            raise ShapeError(
                f"'{key}' must be one of {', '.join(mapping)}, not {_short(chosen)}; "
                f"e.g. {schema.get('x-example', '')}"
            )
        return self.check({"$ref": mapping[chosen]}, value, path)
