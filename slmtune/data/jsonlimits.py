"""Limits on untrusted JSON-like values (model outputs, user suites, catalogs, router files): pure Python.

Python's ``json`` accepts what JSON does not (``NaN``, ``Infinity``), recurses once per nesting level (a deep
document raises ``RecursionError``) and decodes ``"\\ud83d"`` into a lone surrogate that no UTF-8 file can hold.
:func:`loads` and :func:`check_value` turn each of these into a :class:`JSONLimitError` (a ``ValueError``) that says
where and what, so every reader built on them fails with a named error instead of crashing later.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64          # nesting levels of arrays/objects (tool schemas, arguments, files)
MAX_INT_DIGITS = 300    # longer integers would overflow a float (about 1.8e308) and are refused
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONLimitError(ValueError):
    """A JSON value breaks one of the limits above (or is not JSON at all: NaN, lone surrogates)."""


def _refuse_constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not JSON (numbers must be finite)")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONLimitError(f"integer with {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONLimitError(f"number {text[:40]!r} is out of range of a 64-bit float")
    return value


DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_int, parse_float=_float)


def has_surrogate(text: str) -> bool:
    """True when ``text`` holds a lone surrogate code point (it cannot be written as UTF-8)."""
    return _SURROGATE.search(text) is not None


def check_value(value: Any, where: str = "value", max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`JSONLimitError` if ``value`` nests deeper than ``max_depth``, holds a non-finite float, an
    integer of more than ``MAX_INT_DIGITS`` digits, a lone surrogate, or a non-JSON type. Iterative (no recursion)."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                raise JSONLimitError(f"{path}: string holds a lone surrogate (not valid Unicode text)")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if item.bit_length() > MAX_INT_DIGITS * 3.33:
                raise JSONLimitError(f"{path}: integer with more than {MAX_INT_DIGITS} digits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise JSONLimitError(f"{path}: {item} is not a JSON number")
        elif isinstance(item, (list, tuple, dict)):
            if depth >= max_depth:
                raise JSONLimitError(f"{path}: nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, sub in item.items():
                    if not isinstance(key, str):
                        raise JSONLimitError(f"{path}: key {key!r} is not a string")
                    if has_surrogate(key):
                        raise JSONLimitError(f"{path}: key holds a lone surrogate (not valid Unicode text)")
                    stack.append((sub, f"{path}.{key}", depth + 1))
            else:
                stack.extend((sub, f"{path}[{i}]", depth + 1) for i, sub in enumerate(item))
        else:
            raise JSONLimitError(f"{path}: {type(item).__name__} is not a JSON value")


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{``/``(`` nesting of ``text`` outside double-quoted strings (a cheap pre-check that lets
    readers refuse a document before a recursive decoder sees it)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]})":
            depth = max(depth - 1, 0)
    return deepest


def raw_decode(text: str, pos: int = 0, where: str = "JSON", max_depth: int = MAX_DEPTH) -> tuple[Any, int]:
    """``json.JSONDecoder.raw_decode`` within the limits: ``(value, end)``; ``ValueError`` (``JSONDecodeError``
    for syntax, :class:`JSONLimitError` for limits) otherwise."""
    try:
        value, end = DECODER.raw_decode(text, pos)
    except RecursionError:
        raise JSONLimitError(f"{where}: nested too deeply to decode") from None
    check_value(value, where, max_depth)
    return value, end


def loads(text: str | bytes, where: str = "JSON", max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` within the limits (the whole text must be one JSON value; surrounding whitespace allowed)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise JSONLimitError(f"{where}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if nesting_depth(text) > max_depth:
        raise JSONLimitError(f"{where}: nested deeper than {max_depth} levels")
    start = len(text) - len(text.lstrip(" \t\n\r"))
    value, end = raw_decode(text, start, where, max_depth)
    if text[end:].strip(" \t\n\r"):
        raise json.JSONDecodeError("extra data after the JSON value", text, end)
    return value
