"""Input parsing shared by the catalog implementations."""

from __future__ import annotations

import datetime as dt
import re


def parse_date(value: str, name: str) -> dt.date:
    """A strict ``YYYY-MM-DD`` date; ``ValueError`` naming the parameter otherwise."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a date in YYYY-MM-DD form, got {value!r}") from None
