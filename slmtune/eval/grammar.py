"""JSON Schema -> XGrammar EBNF, canonical and (where affordable) bounded.

This converter is deliberately *not* xgrammar's built-in JSON-schema converter: that one allows
unbounded digits, fraction digits and array items, and free whitespace, which small models turn
into runaway output (``3.000000…``, endless arrays).  Here the only text accepted is the canonical
serialisation the dialects write: ``json.dumps(value, ensure_ascii=False)`` with its default
separators (``", "`` and ``": "``), object keys in schema order, canonical string escapes, floats
in Python's shortest-repr form.  Training targets and constrained outputs are the same strings.

Bounds (:class:`GrammarLimits`): integer digits, number integer/fraction digits (``3.000000…`` is
impossible: a fraction is ``.0`` or up to 6 digits not ending in 0), array items (``maxItems`` or
a default cap), keys of free-form objects, nesting depth of untyped values, number of calls.

String and plain-text *length* is bounded only for short caps (``maxLength`` up to
``GrammarLimits.bounded_string_max``).  Measured with xgrammar 0.2.8 and the 262,144-token Gemma 3
tokenizer: a character-count bound on a broad character class costs about 60 ms of compile time
per character (``[^"]{0,64}``: 2.4 s, ``{0,256}``: 16 s, a 1024-character text: 18.5 s) against
0.05 s unbounded, and bounded repetition of a multi-alternative character rule (needed for escapes)
costs 30 ms to 1.3 s *per token mask*.  Longer strings and plain text are therefore unbounded in
the grammar (a closing quote is always allowed) and bounded by the caller's ``max_new_tokens``;
bounded short strings are a plain character run without escapes (as in xgrammar's converter).

Supported subset (schemas are assumed normalised by the registry): ``object`` (``properties`` in
schema order, ``required`` always present, optional ones skippable, no other keys; ``properties:
{}`` means ``{}`` only; an object schema without ``properties`` is a bounded free-form object
unless ``additionalProperties`` is false),
``string`` (``minLength``/``maxLength`` as above, ``enum``, ``const``, ``format`` date / time /
date-time / email / idn-email / ipv4 / uuid, each a subset of what ``jsonschema.FormatChecker()`` accepts; other
formats are not enforced), ``integer`` (bounded digits; ``minimum``/``maximum`` exact), ``number`` (bounded
digits, optional Python-repr exponent; with ``minimum``/``maximum`` exact, in decimal notation with
up to 6 fraction digits), ``boolean``, ``null``, ``array`` (``items``, ``minItems``, ``maxItems``
or a default cap; ``uniqueItems``, which no context-free grammar expresses, marks the array's ``[`` and items
with XGrammar captures for the decoder to enforce, see :func:`repeated_unique_items`),
``anyOf``/``oneOf``/``allOf``, type lists, ``nullable``, ``enum``/``const`` of any JSON value, and
a missing ``type`` (any JSON value of bounded depth), and string ``pattern`` where :func:`pattern_ebnf` can
enforce it exactly (otherwise, like other assertion keywords, it is not enforced: validate after parsing).

A dialect whose parser ends a call at some text wherever it occurs (hermes: ``</tool_call>``) passes
``string_forbids``: no string value may then contain that text raw (:meth:`EBNFBuilder._string_chars`; string
``pattern`` and ``enum`` values are not narrowed).

Values can be emitted in two styles: ``"json"`` and ``"python"`` (Python literals for the
``pythonic`` dialect: ``True``/``False``/``None`` instead of ``true``/``false``/``null``; strings,
numbers, lists and dicts are written exactly as JSON, which is valid Python).

XGrammar 0.2.8 EBNF features used (checked against the installed package): string literals with
``\\"``, ``\\\\``, ``\\n``, ``\\t``, ``\\r``, ``\\xHH`` escapes; character classes incl. negated ones;
``|``, ``( )``, ``?``, ``*``, ``+`` and bounded repetition ``x{m,n}``; the empty string ``""``.  Patterns and
numeric ranges go through ``xgrammar.testing``'s regex helpers (``_regex_to_ebnf``, ``_generate_range_regex``,
``_generate_float_regex``): private API, hence the exact xgrammar pin.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

Style = Literal["json", "python"]

__all__ = [
    "EBNFBuilder",
    "GrammarLimits",
    "ebnf_literal",
    "python_literal",
    "repeated_unique_items",
    "schema_to_ebnf",
    "value_text",
]


@dataclass(frozen=True)
class GrammarLimits:
    """Caps that keep every constrained output finite."""

    max_string_length: int | None = None  # default cap when the schema has no maxLength (None: none)
    bounded_string_max: int = 32  # caps up to this are enforced exactly; longer ones are not (see module doc)
    max_integer_digits: int = 12  # digits of an integer (without sign)
    max_number_int_digits: int = 12  # digits before the decimal point of a number
    max_fraction_digits: int = 6  # digits after the decimal point of a number
    allow_exponent: bool = True  # Python-repr exponent form (1e-07, 1.5e+16) for numbers
    max_array_items: int = 16  # items, when the schema gives no maxItems
    max_object_properties: int = 16  # keys of a free-form (property-less) object
    max_any_depth: int = 3  # nesting of a schema without type (any JSON value)
    max_calls: int = 8  # calls per answer, when the caller gives no max_calls
    exact_int_range: int = 64  # integer ranges at most this wide are enumerated exactly

    def __post_init__(self) -> None:
        for name in (
            "max_integer_digits",
            "max_number_int_digits",
            "max_array_items",
            "max_object_properties",
            "max_calls",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"GrammarLimits.{name} must be >= 1")
        if self.max_string_length is not None and self.max_string_length < 0:
            raise ValueError("GrammarLimits.max_string_length must be >= 0 or None")
        if self.max_fraction_digits < 1 or self.max_any_depth < 0 or self.exact_int_range < 0:
            raise ValueError("GrammarLimits: max_fraction_digits >= 1, max_any_depth >= 0, exact_int_range >= 0")


# XGrammar capture names (prefixes) that mark the arrays with ``uniqueItems`` for the decoder: the rule that
# opens one (``[``) and the rule of its items; :func:`repeated_unique_items` reads them back.
UNIQUE_OPEN_CAPTURE = "unique_open"
UNIQUE_ITEM_CAPTURE = "unique_item"


def repeated_unique_items(captures: list[tuple[str, bytes]], *, last_number_closed: bool) -> int:
    """How many items of ``uniqueItems`` arrays repeat an earlier item of the same array, from
    ``GrammarMatcher.get_captures()`` (ordered by completion; each opening ``[`` starts a new array).

    A number that is the last capture may still grow (``5`` -> ``55``): it counts only when
    ``last_number_closed`` (the text after it has moved on)."""
    arrays: dict[str, set[bytes]] = {}
    repeats = 0
    for index, (name, text) in enumerate(captures):
        kind, _, array = name.partition(":")
        if kind == UNIQUE_OPEN_CAPTURE:
            arrays[array] = set()
        elif kind == UNIQUE_ITEM_CAPTURE:
            growing = index == len(captures) - 1 and text[-1:].isdigit() and not last_number_closed
            if growing:
                continue
            seen = arrays.setdefault(array, set())
            repeats += text in seen
            seen.add(text)
    return repeats


# --------------------------------------------------------------------------------------------
# literal helpers


def python_literal(value: Any) -> str:
    """Canonical Python-literal text of a JSON value (used by the pythonic dialect).

    Strings, numbers, lists and dicts are written as ``json.dumps(ensure_ascii=False)`` writes
    them (all valid Python literals); ``True``/``False``/``None`` replace ``true``/``false``/``null``.
    """
    if value is None:
        return "None"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, (str, int, float)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}: {python_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    raise TypeError(f"not a JSON value: {value!r}")


def value_text(value: Any, style: Style = "json") -> str:
    """Canonical text of a JSON value in the given style."""
    if style == "python":
        return python_literal(value)
    return json.dumps(value, ensure_ascii=False)


def ebnf_literal(text: str) -> str:
    """An EBNF string literal matching exactly ``text``."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _class_char(ch: str) -> str:
    code = ord(ch)
    if ch in '\\]^-["':
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    return ch


# characters a plain-text answer may contain: everything but control characters (\t and \n allowed)
_TEXT_CTRL = "\\x00-\\x08\\x0b-\\x1f"
# JSON string body characters, canonical escapes only (json.dumps with ensure_ascii=False escapes
# exactly ", \\ and the control characters, the latter as \\b \\f \\n \\r \\t or \\u00xx lowercase)
_JSON_ESCAPE = '"\\\\" ["\\\\bfnrt] | "\\\\u00" [01] [0-9a-f]'
_JSON_CHAR = '[^"\\\\\\x00-\\x1f] | ' + _JSON_ESCAPE

_PLAIN_CHAR = '[^"\\\\\\x00-\\x1f]'

_ANNOTATIONS = ("description", "title", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly")


def _sanitize(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = "r_" + name
    return name


# Escapes whose characters a JSON string must escape (control characters, quote, backslash) or that xgrammar's
# converter expands to classes including them.
_UNSAFE_PATTERN_ESCAPES = frozenset("sntrfvux\\\"")


def pattern_ebnf(pattern: str) -> str | None:
    """EBNF for the *contents* of a JSON string matched by JSON Schema ``pattern`` (an unanchored ECMA regex;
    unanchored ends match any text), or ``None`` where it cannot be enforced exactly: a ``.``, a quote, a
    backslash or control-character escape, or a construct xgrammar's regex converter does not read.  Negated
    classes (``[^…]``, ``\\S``, ``\\D``, ``\\W``) are narrowed to exclude the quote, backslash and control characters
    (which JSON would have to escape)."""
    from xgrammar.testing import _regex_to_ebnf

    in_class, escaped = False, False
    for char in pattern:
        if escaped:
            if char in _UNSAFE_PATTERN_ESCAPES:
                return None
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"' or (char == "." and not in_class):
            return None
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not pattern.endswith("\\$")
    core = pattern[1 if start else 0 : len(pattern) - 1 if end else None]
    try:
        body = _regex_to_ebnf(f"^{core}$", with_rule_name=False)
    except Exception:  # noqa: BLE001 - xgrammar raises RuntimeError subclasses for what it cannot convert
        return None
    body = body.replace("[^", '[^"\\\\\\x00-\\x1f')
    free = f"{_PLAIN_CHAR}*"
    return " ".join(part for part in ("" if start else free, f"( {body} )", "" if end else free) if part)


MAX_BOUND_DIGITS = 30  # a minimum/maximum beyond 10**30 is refused (ValueError), not turned into a huge grammar


def _finite_number(value: Any) -> bool:
    """A number usable as a bound: int or float (not bool), finite (infinite bounds are no bounds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _digits_to_cover(minimum: int, *bounds: float | None) -> int:
    """``minimum`` widened to the integer digits of every given bound (a bound of 1.7e12 needs 13)."""
    return max([minimum] + [len(str(int(abs(b)))) for b in bounds if b is not None])


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    return None


class EBNFBuilder:
    """Accumulates EBNF rules; one builder can hold several schemas (shared helper rules).

    ``schema_rule(schema, hint)`` returns the name of a rule matching the schema's canonical
    serialisation; ``text_rule(...)`` a plain-text rule; ``add(name, body)`` adds a rule
    of the caller's own; ``render()`` the rules text (without a ``root`` unless one was added).
    """

    def __init__(self, prefix: str = "g", limits: GrammarLimits | None = None, style: Style = "json",
                 *, string_forbids: str | None = None):
        """``string_forbids``: text no string value may contain raw (a dialect's closing tag, which its parser
        would take for the end of the call); see :meth:`_string_chars`."""
        if style not in ("json", "python"):
            raise ValueError(f"unknown value style {style!r}")
        if string_forbids is not None and (
            len(string_forbids) < 2 or string_forbids[0] in string_forbids[1:]
            or any(ch in '"\\' or ord(ch) < 0x20 for ch in string_forbids)
        ):
            raise ValueError(f"string_forbids must be 2+ characters without quote, backslash or control characters, "
                             f"its first character not recurring; got {string_forbids!r}")
        self.prefix = _sanitize(prefix)
        self.limits = limits or GrammarLimits()
        self.style: Style = style
        self.string_forbids = string_forbids
        self._rules: dict[str, str] = {}
        self._memo: dict[str, str] = {}
        self._captures: dict[str, str] = {}  # rule -> XGrammar capture name

    # -- rule bookkeeping ----------------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        base = _sanitize(f"{self.prefix}_{hint}" if hint else self.prefix)
        name, n = base, 1
        while name in self._rules or name == "root":
            n += 1
            name = f"{base}_{n}"
        self._rules[name] = ""  # reserve
        return name

    def add(self, name: str, body: str) -> str:
        if self._rules.get(name):
            raise ValueError(f"rule {name!r} defined twice")
        self._rules[name] = body
        return name

    def _define(self, key: str, hint: str, make) -> str:
        if key in self._memo:
            return self._memo[key]
        name = self.fresh(hint)
        self._memo[key] = name
        self._rules[name] = make(name)
        return name

    def render(self) -> str:
        empty = [n for n, b in self._rules.items() if not b]
        if empty:
            raise RuntimeError(f"rules reserved but never defined: {empty}")
        return "\n".join(f"{self._head(name)} ::= {body}" for name, body in self._rules.items()) + "\n"

    def _head(self, name: str) -> str:
        return f'{name}[capture="{self._captures[name]}"]' if name in self._captures else name

    # -- helpers -------------------------------------------------------------------------------

    def _hint(self, name: str, suffix: str) -> str:
        """A hint for a sub-rule of rule ``name`` (fresh() adds the prefix back)."""
        stem = name[len(self.prefix) + 1 :] if name.startswith(self.prefix + "_") else ""
        return f"{stem}_{suffix}" if stem else suffix

    def _helper(self, hint: str, body: str) -> str:
        return self._define(f"helper:{hint}", hint, lambda _n: body)

    def _lit(self, value: Any) -> str:
        return ebnf_literal(value_text(value, self.style))

    @staticmethod
    def _rep(item: str, lo: int, hi: int) -> str:
        """``item`` repeated lo..hi times ("" when hi == 0)."""
        if hi <= 0:
            return ""
        if lo == hi == 1:
            return item
        return f"{item}{{{lo},{hi}}}"

    @staticmethod
    def _seq(*parts: str) -> str:
        parts = tuple(p for p in parts if p)
        return " ".join(parts) if parts else '""'

    # -- schemas -------------------------------------------------------------------------------

    def schema_rule(self, schema: Any, hint: str = "v") -> str:
        """Name of a rule for ``schema`` (defined on first use, shared when identical)."""
        if schema is True or schema is None:
            schema = {}
        if schema is False:
            raise ValueError("schema `false` matches nothing")
        if not isinstance(schema, dict):
            raise TypeError(f"schema must be an object, got {schema!r}")
        # key order matters (properties are emitted in schema order): no sort_keys here
        key = "schema:" + json.dumps(schema, ensure_ascii=False, default=str)
        return self._define(key, hint, lambda name: self._body(schema, name))

    def _body(self, s: dict, name: str) -> str:
        lim = self.limits
        if "const" in s:
            return self._lit(s["const"])
        if "enum" in s:
            values = list(s["enum"])
            if not values:
                raise ValueError("empty enum matches nothing")
            return " | ".join(dict.fromkeys(self._lit(v) for v in values))  # first spelling of each, in order
        for comb in ("anyOf", "oneOf"):
            if comb in s:
                branches = s[comb]
                if not isinstance(branches, list) or not branches:
                    raise ValueError(f"{comb} must be a non-empty list")
                siblings = {k: v for k, v in s.items() if k != comb and k not in _ANNOTATIONS}
                alts = []
                for i, b in enumerate(branches):
                    merged = {**siblings, **b} if isinstance(b, dict) else b
                    alts.append(self.schema_rule(merged, self._hint(name, str(i))))
                return " | ".join(dict.fromkeys(alts))
        if "allOf" in s:
            merged = {k: v for k, v in s.items() if k != "allOf"}
            for sub in s["allOf"]:
                merged = _merge_all_of(merged, sub)
            return self._body(merged, name)
        t = s.get("type")
        if s.get("nullable") is True and t != "null":
            base = {k: v for k, v in s.items() if k != "nullable"}
            return f"{self.schema_rule(base, 'nn')} | {self._lit(None)}"
        if isinstance(t, list):
            if not t:
                raise ValueError("empty type list")
            alts = [self.schema_rule({**s, "type": ti}, self._hint(name, ti)) for ti in t]
            return " | ".join(dict.fromkeys(alts))
        if t is None:
            if any(k in s for k in ("properties", "additionalProperties", "required")):
                t = "object"
            elif any(k in s for k in ("items", "minItems", "maxItems")):
                t = "array"
            else:
                return self._any(lim.max_any_depth)
        if t == "string":
            return self._string(s)
        if t == "integer":
            return self._integer(s)
        if t == "number":
            return self._number(s)
        if t == "boolean":
            return f"{self._lit(True)} | {self._lit(False)}"
        if t == "null":
            return self._lit(None)
        if t == "array":
            return self._array(s, name)
        if t == "object":
            return self._object(s, name)
        raise ValueError(f"unsupported JSON Schema type {t!r}")

    # strings

    def _string(self, s: dict) -> str:
        q = '"\\""'
        fmt = self._format(s.get("format"))
        if fmt is not None:
            return f"{q} {fmt} {q}"
        pattern = s.get("pattern")
        body = pattern_ebnf(pattern) if isinstance(pattern, str) else None
        if body is not None:
            return self._seq(q, self._define(f"pattern:{pattern}", "pattern", lambda _n: body), q)
        lo = max(0, _int_or_none(s.get("minLength")) or 0)
        hi = _int_or_none(s.get("maxLength"))
        hi = self.limits.max_string_length if hi is None else hi
        if hi is not None and max(hi, lo) <= self.limits.bounded_string_max:
            # exact bound: a plain character run (an FSM; no escapes, like xgrammar's own converter)
            hi = max(hi, lo)
            plain = _PLAIN_CHAR
            if self.string_forbids and hi >= len(self.string_forbids):
                # a bounded run stays one character class (no DFA): it cannot hold the forbidden text's first char
                plain = f'[^"\\\\\\x00-\\x1f{_class_char(self.string_forbids[0])}]'
            return self._seq(q, self._rep(plain, lo, hi), q) if hi else '"\\"\\""'
        return self._seq(q, self._string_chars(nonempty=lo > 0), q)

    def _string_chars(self, *, nonempty: bool) -> str:
        """The characters of an unbounded JSON string (canonical escapes), never containing ``string_forbids``.

        The forbidden text is excluded exactly by a DFA of right-recursive rules, one per matched prefix
        length (``m_k``: its first k characters just written; a quote may end the string in any state, an
        escape returns to the start).  Values that contain the text cannot be written; a parser that stops
        at it could not read them back anyway."""
        t = self.string_forbids
        if not t:
            char = self._helper("char", _JSON_CHAR)
            return f"{char}+" if nonempty else f"{char}*"

        def other(*chars: str) -> str:
            excluded = "".join(_class_char(ch) for ch in dict.fromkeys(chars))
            return f'[^"\\\\\\x00-\\x1f{excluded}] | {_JSON_ESCAPE}'

        if "strfree" not in self._memo:
            s0, m1 = self._forbidding_dfa("str", t, other)
            self._memo["strfree"] = s0
            self._memo["strfree1"] = self.add(self.fresh("str_s1"), f"({other(t[0])}) {s0} | {m1}")
        return self._memo["strfree1" if nonempty else "strfree"]

    def _forbidding_dfa(self, hint: str, t: str, other) -> tuple[str, str]:
        """Rules for any run of characters never containing ``t`` (its first character not recurring in it):
        returns the start state ``s0`` (nothing of ``t`` matched) and the text of the step into ``m_1``
        (``t[0]`` then ``m_1``).  ``other(*chars)`` is the EBNF of one character (or escape) not among ``chars``;
        state ``m_k`` (``t[:k]`` just written) may end, restart at ``t[0]``, or go on to ``m_{k+1}``."""
        first = ebnf_literal(t[0])
        s0, m = self.fresh(f"{hint}_s0"), [""] + [self.fresh(f"{hint}_m{k}") for k in range(1, len(t))]
        self._rules[s0] = f"({other(t[0])})* ({first} {m[1]})?"
        for k in range(1, len(t)):
            alts = ['""', f"({other(t[0], t[k])}) {s0}", f"{first} {m[1]}"]
            if k + 1 < len(t):
                alts.append(f"{ebnf_literal(t[k])} {m[k + 1]}")
            self._rules[m[k]] = " | ".join(alts)
        return s0, f"{first} {m[1]}"

    def _format(self, fmt: Any) -> str | None:
        """Rule for the contents of a string with this ``format``, or ``None`` (not enforced).  Each rule accepts
        a subset of what ``jsonschema.FormatChecker()`` accepts (the checker the scorer validates with)."""
        if fmt == "date":
            return self._date()
        if fmt == "time":  # the checker reads time as strptime("%H:%M:%S"): no fraction, no offset
            return self._time()
        if fmt == "date-time":  # not checked by jsonschema without extras; RFC 3339 (offset required)
            return self._helper("date_time", f'{self._date()} "T" {self._time()} ("." [0-9]{{1,6}})? '
                                             '("Z" | [+\\-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])')
        if fmt in ("email", "idn-email"):  # the checker requires an "@"; this asks for local@domain
            forbid = _class_char(self.string_forbids[0]) if self.string_forbids else ""
            part = f'[^"\\\\\\x00-\\x20@{forbid}]+'
            return self._helper("email", f'{part} "@" {part}')
        if fmt == "ipv4":  # dotted quad without leading zeros (ipaddress.IPv4Address)
            octet = self._helper("ipv4_octet", '"25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9]')
            return self._helper("ipv4", f'{octet} "." {octet} "." {octet} "." {octet}')
        if fmt == "uuid":  # 8-4-4-4-12 hex digits with the dashes the checker requires
            return self._helper("uuid", '[0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12}')
        return None

    def _date(self) -> str:
        """A real calendar date (``datetime.date.fromisoformat``): year 0001-9999, the month's day count,
        29 February in leap years only."""
        leap = '("0" [48] | [2468] [048] | [13579] [26])'
        return self._helper(
            "date",
            '("000" [1-9] | "00" [1-9] [0-9] | "0" [1-9] [0-9] [0-9] | [1-9] [0-9] [0-9] [0-9]) "-" ('
            '("0" [13578] | "1" [02]) "-" ("0" [1-9] | [12] [0-9] | "3" [01])'
            ' | ("0" [469] | "11") "-" ("0" [1-9] | [12] [0-9] | "30")'
            ' | "02-" ("0" [1-9] | "1" [0-9] | "2" [0-8]))'
            f' | ([0-9] [0-9] {leap} | {leap} "00") "-02-29"',
        )

    def _time(self) -> str:
        return self._helper("time", '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9]')

    # numbers

    @staticmethod
    def _bounds(s: dict) -> tuple[float | None, float | None]:
        lo = s.get("minimum")
        hi = s.get("maximum")
        xlo = s.get("exclusiveMinimum")
        xhi = s.get("exclusiveMaximum")
        lo, hi, xlo, xhi = (v if _finite_number(v) else None for v in (lo, hi, xlo, xhi))
        if xlo is not None:
            lo = xlo if lo is None else max(lo, xlo)
        if xhi is not None:
            hi = xhi if hi is None else min(hi, xhi)
        for bound in (lo, hi):
            if bound is not None and abs(bound) >= 10**MAX_BOUND_DIGITS:
                raise ValueError(f"a minimum/maximum of {len(str(int(abs(bound))))} digits (at most "
                                 f"{MAX_BOUND_DIGITS})")
        return lo, hi

    def _integer(self, s: dict) -> str:
        lo_f, hi_f = self._bounds(s)
        lo = None if lo_f is None else math.ceil(lo_f)
        hi = None if hi_f is None else math.floor(hi_f)
        if isinstance(s.get("exclusiveMinimum"), (int, float)) and lo_f == s["exclusiveMinimum"] and lo == lo_f:
            lo += 1
        if isinstance(s.get("exclusiveMaximum"), (int, float)) and hi_f == s["exclusiveMaximum"] and hi == hi_f:
            hi -= 1
        if lo is not None and hi is not None:
            if lo > hi:
                raise ValueError(f"integer schema with an empty range ({lo_f}..{hi_f})")
            if hi - lo < self.limits.exact_int_range:
                return " | ".join(self._lit(v) for v in range(lo, hi + 1))
        # the digit cap stands in for a missing bound; a given bound beyond it widens it (epoch milliseconds)
        d = _digits_to_cover(self.limits.max_integer_digits, lo, hi)
        if lo is not None or hi is not None:  # exact range
            from xgrammar.testing import _generate_range_regex, _regex_to_ebnf

            cap = 10**d - 1
            lo, hi = max(-cap, -cap if lo is None else lo), min(cap, cap if hi is None else hi)
            return _regex_to_ebnf(_generate_range_regex(lo, hi), with_rule_name=False)
        alts = []
        if (lo is None or lo <= 0) and (hi is None or hi >= 0):
            alts.append('"0"')
        if hi is None or hi >= 1:
            nd = d if hi is None else min(d, len(str(hi)))
            alts.append(self._seq("[1-9]", self._rep("[0-9]", 0, nd - 1)))
        if lo is None or lo <= -1:
            nd = d if lo is None else min(d, len(str(-lo)))
            alts.append(self._seq('"-"', "[1-9]", self._rep("[0-9]", 0, nd - 1)))
        return " | ".join(f"({a})" for a in alts)

    def _number(self, s: dict) -> str:
        lim = self.limits
        lo, hi = self._bounds(s)
        cap = _digits_to_cover(lim.max_number_int_digits, lo, hi)

        def digits(bound: float | None) -> int:
            if bound is None or bound <= 0 or bound >= 10**cap:
                return cap
            return max(1, len(str(int(bound))))

        f = lim.max_fraction_digits
        if lo is not None or hi is not None:
            # exact range (decimal notation, up to 6 fraction digits), the digit cap standing in for a missing bound
            from xgrammar.testing import _generate_float_regex, _regex_to_ebnf

            big = float(10**cap - 1)
            xlo = s.get("exclusiveMinimum") == lo and lo is not None
            xhi = s.get("exclusiveMaximum") == hi and hi is not None
            lo, hi = max(-big, -big if lo is None else lo), min(big, big if hi is None else hi)
            if lo > hi:
                raise ValueError(f"number schema with an empty range ({lo}..{hi})")
            return _regex_to_ebnf(_generate_float_regex(float(lo), float(hi), exclusive_start=xlo,
                                                        exclusive_end=xhi), with_rule_name=False)
        # fraction in Python's shortest-repr form: ".0" or digits not ending in 0
        frac = self._helper("frac", self._seq('"."', '("0" |', self._rep("[0-9]", 0, f - 1), "[1-9])"))

        def magnitude(nd: int) -> str:
            parts = [self._seq('"0"', f"{frac}?"), self._seq("[1-9]", self._rep("[0-9]", 0, nd - 1), f"{frac}?")]
            if lim.allow_exponent:
                parts.append(self._helper("exp", self._seq("[1-9]", f"{frac}?", '"e"', "[+\\-]", "[0-9]{2,3}")))
            return " | ".join(f"({p})" for p in parts)

        alts = []
        if hi is None or hi >= 0:
            alts.append(magnitude(digits(hi)))
        if lo is None or lo < 0:
            alts.append(f'"-" ({magnitude(digits(None if lo is None else -lo))})')
        if not alts:
            raise ValueError(f"number schema with an empty range ({lo}..{hi})")
        return " | ".join(f"({a})" for a in alts)

    # containers

    def _array(self, s: dict, name: str) -> str:
        items = s.get("items")
        if isinstance(items, dict):
            item = self.schema_rule(items, "item")
        else:
            item = self._any_rule(self.limits.max_any_depth - 1)
        lo = max(0, _int_or_none(s.get("minItems")) or 0)
        hi = _int_or_none(s.get("maxItems"))
        hi = self.limits.max_array_items if hi is None else hi
        hi = max(hi, lo)
        if hi == 0:
            return '"[]"'
        open_ = ebnf_literal("[")
        if s.get("uniqueItems") is True and hi >= 2:  # marked for the decoder's repeated-item guard
            open_ = self.fresh(self._hint(name, "unique_open"))
            self._rules[open_], self._captures[open_] = ebnf_literal("["), f"{UNIQUE_OPEN_CAPTURE}:{name}"
            wrapped = self.fresh(self._hint(name, "unique_item"))
            self._rules[wrapped], self._captures[wrapped] = item, f"{UNIQUE_ITEM_CAPTURE}:{name}"
            item = wrapped
        nonempty = self._list(open_, item, "]", hi, lo)
        return nonempty if lo >= 1 else f'"[]" | {nonempty}'

    def _object(self, s: dict, name: str) -> str:
        props = s.get("properties") or {}
        if not isinstance(props, dict):
            raise TypeError("properties must be an object")
        if not props and "properties" in s:
            return '"{}"'  # declared without properties: no arguments at all
        if not props:
            extra = s.get("additionalProperties", True)
            if extra is False:
                return '"{}"'
            value = (
                self.schema_rule(extra, "val")
                if isinstance(extra, dict) and extra
                else self._any_rule(self.limits.max_any_depth - 1)
            )
            return self._free_object(value)
        required = set(s.get("required") or [])
        keys = list(props)
        kvs = [
            self._seq(ebnf_literal(json.dumps(str(k), ensure_ascii=False) + ": "), self.schema_rule(props[k], "p"))
            for k in keys
        ]
        n = len(keys)
        memo: dict[tuple[str, int], str] = {}

        def ref(kind: str, i: int) -> str:
            # F(i): nothing written yet; R(i): at least one property written (", " before the next)
            if i == n:
                return ""
            if (kind, i) in memo:
                return memo[(kind, i)]
            rule = self.fresh(self._hint(name, f"{kind}{i}"))
            memo[(kind, i)] = rule
            lead = "" if kind == "F" else '", "'
            take = self._seq(lead, kvs[i], ref("R", i + 1))
            if keys[i] in required:
                body = take
            else:
                body = f"{take} | {self._seq(ref(kind, i + 1))}"
            self._rules[rule] = body
            return rule

        return self._seq('"{"', ref("F", 0), '"}"')

    def _free_object(self, value: str) -> str:
        key = self.schema_rule({"type": "string"}, "key")
        kv = self._define(f"kv:{value}", "kv", lambda _n: f'{key} ": " {value}')
        return '"{}" | ' + self._list(ebnf_literal("{"), kv, "}", self.limits.max_object_properties)

    def _list(self, open_: str, item: str, close: str, hi: int, lo: int = 0) -> str:
        """``open_ item (", " item){..} close`` with lo..hi items (lo >= 1 here; "" never); ``open_`` is a
        rule or an EBNF literal, ``close`` a plain text."""
        more = self._define(f"more:{item}", "more", lambda _n: f'", " {item}')
        return self._seq(open_, item, self._rep(more, max(lo - 1, 0), hi - 1), ebnf_literal(close))

    def _any_rule(self, depth: int) -> str:
        depth = max(depth, 0)
        return self._define(f"any:{depth}", f"any{depth}", lambda _n: self._any(depth))

    def _any(self, depth: int) -> str:
        alts = [
            self.schema_rule({"type": "string"}, "str"),
            self.schema_rule({"type": "number"}, "num"),
            self._lit(True),
            self._lit(False),
            self._lit(None),
        ]
        if depth > 0:
            inner = self._any_rule(depth - 1)
            alts.append(self._define(f"anyarr:{depth}", f"arr{depth}", lambda _n: self._any_array(inner)))
            alts.append(self._define(f"anyobj:{depth}", f"obj{depth}", lambda _n: self._free_object(inner)))
        return " | ".join(alts)

    def _any_array(self, inner: str) -> str:
        return '"[]" | ' + self._list(ebnf_literal("["), inner, "]", self.limits.max_array_items)

    # -- plain text ----------------------------------------------------------------------------

    def text_rule(self, *, forbid_substring: str | None = None, forbid_start: str | None = None) -> str:
        """A plain-text answer: at least one character, no control characters but tab/newline, not
        starting with whitespace; never containing ``forbid_substring`` (if given) and not starting
        with the single character ``forbid_start`` (if given).

        The substring is excluded exactly by a DFA written as right-recursive rules (one rule per
        matched prefix length): masks stay ~0.02 ms, but each state costs ~0.1 s of compile time on
        a 262k vocabulary, so dialects pass a *short* substring implied by their call trigger.  The
        length is not bounded (a character-count bound costs seconds of compile time, see the
        module doc): the caller's ``max_new_tokens`` bounds it."""
        name = self.fresh("text")
        start_extra = "" if forbid_start is None else _class_char(forbid_start)
        if not forbid_substring:
            self._rules[name] = f"[^{start_extra}\\x00-\\x20] [^{_TEXT_CTRL}]*"
            return name
        t = forbid_substring
        if t[0] in t[1:]:
            # the DFA below assumes the first character does not recur in the forbidden string
            # (no partial-match fallback other than to the start); forbid that character instead
            t = t[0]
        cc = _class_char(t[0])
        if len(t) == 1:
            self._rules[name] = f"[^{cc}{start_extra}\\x00-\\x20] [^{cc}{_TEXT_CTRL}]*"
            return name
        s0, into_m1 = self._forbidding_dfa(
            "text", t, lambda *chars: f"[^{''.join(_class_char(ch) for ch in dict.fromkeys(chars))}{_TEXT_CTRL}]")
        first = f"[^{cc}{start_extra}\\x00-\\x20] {s0}"
        self._rules[name] = first if forbid_start == t[0] else f"{first} | {into_m1}"
        return name


def _merge_all_of(base: dict, sub: Any) -> dict:
    if not isinstance(sub, dict):
        return base
    out = dict(base)
    for k, v in sub.items():
        if k == "properties" and isinstance(out.get(k), dict) and isinstance(v, dict):
            out[k] = {**out[k], **v}
        elif k == "required" and isinstance(out.get(k), list) and isinstance(v, list):
            out[k] = list(dict.fromkeys(out[k] + v))
        else:
            out[k] = v
    return out


def schema_to_ebnf(
    schema: dict | bool,
    rule_prefix: str = "schema",
    limits: GrammarLimits | None = None,
    *,
    style: Style = "json",
) -> tuple[str, str]:
    """Convert a JSON Schema to XGrammar EBNF rules.

    Returns ``(root_rule_name, rules_text)``: ``rules_text`` defines ``root_rule_name`` (all rule
    names start with ``rule_prefix``) and no ``root`` rule, so it can be embedded into a larger
    grammar (e.g. ``root ::= "<tool_call>" <root_rule_name> …``).
    """
    builder = EBNFBuilder(rule_prefix, limits, style)
    root = builder.schema_rule(schema, "")
    return root, builder.render()
