"""Input parsing shared by the catalog implementations."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
from typing import Any


def parse_date(value: str, name: str) -> dt.date:
    """A strict ``YYYY-MM-DD`` date; ``ValueError`` naming the parameter otherwise."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a date in YYYY-MM-DD form, got {value!r}") from None


def seeded_rng(*parts: Any) -> random.Random:
    """A random generator seeded from a stable hash of ``parts``: the same inputs give the same sample data."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def one_of(value: Any, options: tuple[Any, ...], name: str) -> Any:
    """``value`` if it is one of ``options``; ``ValueError`` naming the parameter and the options otherwise."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(str, options))}, got {value!r}")
    return value


def int_in_range(value: int, low: int, high: int, name: str) -> int:
    """An integer (not a bool) in ``[low, high]``; ``ValueError`` naming the parameter otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer between {low} and {high}, got {value!r}")
    return value


def number_in_range(value: float, low: float, high: float, name: str) -> float:
    """A number (not a bool) in ``[low, high]``, as a float; ``ValueError`` naming the parameter otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number between {low} and {high}, got {value!r}")
    return float(value)
