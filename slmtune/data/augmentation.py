"""Unseen-tool augmentation: derive new tools from catalog tools so training teaches reading schemas.

BFCL evaluates on tools a model never saw. Training on the catalog alone would let a model memorise its tool names
and parameter names; deriving variants breaks that shortcut:

- ``rename_function`` — verb/noun synonyms (search → find/lookup, get → fetch/retrieve, ...), dotted ↔ snake_case ↔
  camelCase, namespace moved to the end (``flights.search_one_way`` → ``find_one_way_flights``);
- ``rename_params`` — synonyms and naming style, applied consistently to the schema (``properties``, ``required``),
  the catalog ``values``, ``mentions`` and the ``queries`` placeholders;
- ``paraphrase`` — template-based rewrites of the tool and parameter descriptions;
- ``reorder`` — parameters in a different order (calls follow the schema's order);
- ``retype`` — safe type changes: integer → number, number → integer (only when every catalog value is
  integral), enum → string whose description lists the options;
- ``mask`` (Hammer-style function masking) — an opaque random name such as ``fn_7a3c`` (parameters optionally
  ``arg_1b``...), descriptions kept: the model has to read the description to pick the tool.

Every derived tool keeps a working implementation: a wrapper maps renamed parameters back to the original names
(and integral floats back to int for a parameter retyped integer → number) before calling the original function.

Usage::

    augmenter = Augmenter(seed=0, forbidden_names=bfcl_index.function_names)
    derived = augmenter.derive(tool)                    # DerivedTool(tool=<Tool>, source=..., ops=(...), param_map)
    masked = augmenter.mask(tool, mask_params=True)
    pool = augmenter.derive_pool(tools, variants_per_tool=3)
"""

from __future__ import annotations

import keyword
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slmtune.data.registry import TOOL_NAME_PATTERN, Tool

OPS = ("rename_function", "rename_params", "paraphrase", "reorder", "retype")
MASK_OPS = ("mask_function", "mask_params")
DIALECT_OPS = ("dialect_safe",)

_PLACEHOLDER = re.compile(r"\{([^{}.]+)((?:\.[^{}]+)?)\}")

# Verb synonyms: a token is replaced by one of its alternatives (never by itself).
VERB_SYNONYMS: dict[str, tuple[str, ...]] = {
    "search": ("find", "lookup", "query", "look_up", "locate"),
    "find": ("search", "lookup", "locate", "discover"),
    "get": ("fetch", "retrieve", "obtain", "read", "load"),
    "fetch": ("get", "retrieve", "pull"),
    "retrieve": ("get", "fetch", "obtain"),
    "lookup": ("find", "search", "get"),
    "list": ("enumerate", "show", "browse", "get_all"),
    "show": ("display", "list", "view"),
    "create": ("make", "add", "new", "open", "register"),
    "add": ("create", "insert", "append", "put"),
    "make": ("create", "build", "generate"),
    "delete": ("remove", "drop", "erase", "discard"),
    "remove": ("delete", "drop", "discard"),
    "update": ("modify", "edit", "change", "set"),
    "set": ("update", "configure", "assign"),
    "calculate": ("compute", "calc", "estimate", "work_out"),
    "compute": ("calculate", "calc", "determine"),
    "estimate": ("approximate", "calculate", "project"),
    "convert": ("transform", "translate", "change"),
    "book": ("reserve", "schedule", "secure"),
    "reserve": ("book", "hold"),
    "schedule": ("plan", "book", "arrange"),
    "send": ("dispatch", "deliver", "transmit", "post"),
    "check": ("verify", "validate", "inspect"),
    "verify": ("check", "validate", "confirm"),
    "validate": ("check", "verify"),
    "cancel": ("revoke", "abort", "void"),
    "analyze": ("analyse", "examine", "evaluate", "assess"),
    "analyse": ("analyze", "examine", "evaluate"),
    "generate": ("create", "produce", "make"),
    "translate": ("convert", "render"),
    "track": ("trace", "follow", "monitor"),
    "compare": ("contrast", "diff", "rank"),
    "recommend": ("suggest", "propose"),
    "suggest": ("recommend", "propose"),
    "start": ("begin", "launch", "open"),
    "stop": ("end", "halt", "terminate"),
    "open": ("start", "create"),
    "close": ("end", "finish", "shut"),
    "summarize": ("summarise", "digest", "condense"),
    "predict": ("forecast", "project"),
    "forecast": ("predict", "project"),
    "plan": ("schedule", "arrange"),
    "submit": ("send", "file", "lodge"),
    "transfer": ("move", "send"),
    "move": ("transfer", "relocate"),
    "apply": ("submit", "use"),
    "quote": ("price", "estimate"),
    "rank": ("sort", "order"),
    "sort": ("order", "rank"),
    "log": ("record", "note"),
    "record": ("log", "save"),
    "measure": ("gauge", "assess"),
    "detect": ("identify", "spot"),
    "identify": ("detect", "recognize"),
    "parse": ("extract", "read"),
    "extract": ("parse", "pull"),
    "assign": ("allocate", "give"),
    "approve": ("accept", "sign_off"),
    "notify": ("alert", "inform"),
}

NOUN_SYNONYMS: dict[str, tuple[str, ...]] = {
    "flights": ("air_travel", "airfares", "flight_options"),
    "flight": ("airfare", "trip", "air_ticket"),
    "hotel": ("lodging", "accommodation", "stay"),
    "hotels": ("lodging", "accommodations", "stays"),
    "weather": ("forecast", "conditions", "climate"),
    "user": ("account", "member", "profile"),
    "users": ("accounts", "members", "profiles"),
    "info": ("details", "information", "data"),
    "details": ("info", "information"),
    "price": ("cost", "rate", "quote"),
    "prices": ("costs", "rates", "quotes"),
    "stock": ("equity", "share", "ticker"),
    "order": ("purchase",),
    "orders": ("purchases",),
    "event": ("occasion", "happening"),
    "events": ("occasions", "happenings"),
    "message": ("msg", "note", "text"),
    "messages": ("msgs", "notes", "texts"),
    "email": ("mail", "e_mail"),
    "recipe": ("dish", "meal_plan"),
    "recipes": ("dishes", "meals"),
    "movie": ("film", "picture"),
    "movies": ("films", "pictures"),
    "song": ("track", "tune"),
    "songs": ("tracks", "tunes"),
    "candidates": ("applicants", "profiles"),
    "candidate": ("applicant", "profile"),
    "employee": ("staff_member", "worker"),
    "employees": ("staff", "workers"),
    "payment": ("transaction", "charge"),
    "invoice": ("bill", "statement"),
    "tax": ("levy", "duty"),
    "distance": ("range", "length"),
    "route": ("path", "directions"),
    "location": ("place", "position"),
    "address": ("location", "place"),
    "temperature": ("temp", "heat"),
    "currency": ("money", "fx"),
    "rate": ("ratio", "value"),
    "account": ("profile", "wallet"),
    "file": ("document", "doc"),
    "files": ("documents", "docs"),
    "document": ("file", "doc"),
    "ticket": ("issue", "case"),
    "tickets": ("issues", "cases"),
    "task": ("todo", "job"),
    "tasks": ("todos", "jobs"),
    "appointment": ("booking", "slot"),
    "meeting": ("call", "session"),
    "report": ("summary", "overview"),
    "schedule": ("calendar", "timetable"),
    "score": ("rating", "grade"),
    "product": ("item", "article"),
    "products": ("items", "articles"),
    "restaurant": ("eatery", "diner"),
    "restaurants": ("eateries", "diners"),
    "book": ("title", "volume"),
    "books": ("titles", "volumes"),
    "trip": ("journey", "itinerary"),
    "itinerary": ("trip_plan", "route"),
    "shipment": ("parcel", "package"),
    "package": ("parcel", "shipment"),
    "loan": ("credit", "mortgage"),
    "interest": ("yield", "return"),
    "population": ("headcount", "inhabitants"),
    "area": ("surface", "extent"),
    "volume": ("capacity", "size"),
    "time": ("clock", "hour"),
    "date": ("day", "calendar_date"),
    "one": ("single",),
    "way": ("direction",),
}

PARAM_SYNONYMS: dict[str, tuple[str, ...]] = {
    "origin": ("source", "departure", "from_location", "start_point"),
    "destination": ("target", "arrival", "to_location", "dest"),
    "date": ("day", "on_date", "when"),
    "start": ("begin", "first", "start_at"),
    "end": ("finish", "until", "last"),
    "city": ("town", "place", "locality"),
    "location": ("place", "where", "locale"),
    "query": ("search_term", "q", "keywords", "text"),
    "limit": ("max_results", "top_k", "count", "size"),
    "max": ("maximum", "upper"),
    "min": ("minimum", "lower"),
    "maximum": ("max", "upper"),
    "minimum": ("min", "lower"),
    "num": ("number", "no"),
    "number": ("num", "no"),
    "count": ("number", "num", "quantity"),
    "quantity": ("qty", "amount", "count"),
    "amount": ("value", "sum", "quantity"),
    "currency": ("currency_code", "ccy", "money_unit"),
    "id": ("identifier", "key", "ref"),
    "name": ("title", "label"),
    "title": ("name", "heading"),
    "text": ("content", "body", "input_text"),
    "message": ("msg", "body", "content"),
    "content": ("text", "body"),
    "user": ("account", "member"),
    "email": ("email_address", "mail"),
    "address": ("addr", "location"),
    "language": ("lang", "locale"),
    "lang": ("language",),
    "temperature": ("temp",),
    "units": ("unit_system", "measurement"),
    "unit": ("measure", "units"),
    "include": ("show", "add", "enable"),
    "type": ("kind", "category"),
    "category": ("kind", "group", "section"),
    "price": ("cost", "rate"),
    "year": ("yr", "calendar_year"),
    "years": ("yrs", "year_count"),
    "days": ("day_count", "num_days"),
    "hours": ("hrs", "hour_count"),
    "minutes": ("mins",),
    "duration": ("length", "span"),
    "size": ("dimension", "magnitude"),
    "rate": ("ratio", "pct"),
    "percent": ("pct", "percentage"),
    "percentage": ("percent", "pct"),
    "salary": ("pay", "wage", "compensation"),
    "annual": ("yearly",),
    "gross": ("total", "pre_tax"),
    "weight": ("mass",),
    "height": ("stature", "tallness"),
    "age": ("years_old",),
    "skills": ("abilities", "competencies", "expertise"),
    "experience": ("exp", "seniority"),
    "status": ("state", "stage"),
    "filter": ("criteria", "condition"),
    "sort": ("order_by", "sorting", "sort_by"),
    "format": ("fmt", "output_format"),
    "mode": ("style", "method"),
    "level": ("tier", "grade"),
    "ticker": ("symbol", "stock_symbol"),
    "symbol": ("ticker", "code"),
    "cuisine": ("food_style", "kitchen"),
    "guests": ("party_size", "people"),
    "adults": ("grown_ups", "adult_count"),
    "children": ("kids", "minors"),
    "radius": ("distance", "range"),
    "budget": ("spend_limit", "max_spend"),
    "priority": ("urgency", "importance"),
    "description": ("details", "summary"),
    "tags": ("labels", "keywords"),
    "recipient": ("to", "addressee"),
    "sender": ("from_address", "author"),
    "subject": ("topic", "headline"),
    "department": ("dept", "team"),
    "frequency": ("cadence", "interval"),
    "principal": ("loan_amount", "capital"),
    "term": ("period", "tenor"),
    "deductions": ("withholdings", "subtractions"),
    "status_filter": ("state_filter",),
}

_VERB_THIRD_PERSON_IRREGULAR = {"do": "does", "go": "goes", "have": "has"}
_DESCRIPTION_WORD_SWAPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Retrieve", ("Get", "Fetch", "Obtain")),
    ("retrieve", ("get", "fetch", "obtain")),
    ("Return", ("Give back", "Provide")),
    ("returns", ("gives back", "provides", "yields")),
    ("Returns", ("Gives back", "Provides", "Yields")),
    ("given", ("specified", "provided", "supplied")),
    ("specified", ("given", "provided", "requested")),
    ("Calculate", ("Compute", "Work out", "Determine")),
    ("calculate", ("compute", "work out", "determine")),
    ("Search", ("Look up", "Find", "Query")),
    ("Find", ("Look up", "Locate", "Search for")),
    ("Get", ("Fetch", "Retrieve", "Obtain")),
    ("optionally", ("if desired", "optionally")),
    ("e.g.", ("for example", "such as", "e.g.")),
    ("Maximum", ("Upper limit on the", "Max")),
    ("Minimum", ("Lower limit on the", "Min")),
    ("number of", ("count of", "how many", "number of")),
)

_TOOL_DESCRIPTION_FORMS = (
    "{third}",                        # "Searches one-way flights ..."
    "This function {lower_third}",    # "This function searches ..."
    "This tool {lower_third}",
    "Use this to {lower}",            # "Use this to search ..."
    "Tool that {lower_third}",
    "Call this to {lower}",
    "{base}",
    "{swapped}",
)
_PARAM_DESCRIPTION_FORMS = (
    "{base}",
    "The {lower}",
    "Specifies the {lower}",
    "{swapped}",
)


@dataclass(frozen=True)
class DerivedTool:
    """A tool derived from a catalog tool: the new :class:`Tool`, where it came from and how it was changed."""

    tool: Tool
    source: str                                     # the original catalog tool's name
    ops: tuple[str, ...]                            # the operations applied (names from OPS / MASK_OPS)
    param_map: dict[str, str] = field(default_factory=dict)  # derived parameter name -> original name

    @property
    def name(self) -> str:
        return self.tool.name


# ----------------------------------------------------------------------------------------------------------------
# Name handling

def split_identifier(name: str) -> list[str]:
    """Split ``fooBar_baz.qux`` into lowercase tokens ``["foo", "bar", "baz", "qux"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [t.lower() for t in re.split(r"[\s._\-]+", spaced) if t]


def join_identifier(tokens: list[str], style: str) -> str:
    """Join tokens (which may themselves hold ``_``) as ``snake``, ``camel`` or ``pascal`` case."""
    flat = [p for t in tokens for p in t.split("_") if p]
    if not flat:
        return "x"
    if style == "camel":
        return flat[0] + "".join(p[:1].upper() + p[1:] for p in flat[1:])
    if style == "pascal":
        return "".join(p[:1].upper() + p[1:] for p in flat)
    return "_".join(flat)


def _synonym_swap(tokens: list[str], table: Mapping[str, tuple[str, ...]], rng: random.Random,
                  probability: float) -> list[str]:
    out = []
    for token in tokens:
        options = table.get(token)
        if options and rng.random() < probability:
            out.append(rng.choice(options))
        else:
            out.append(token)
    return out


def rename_function(name: str, rng: random.Random) -> str:
    """A new name for function ``name``: synonyms for verbs/nouns and a naming style (snake, camel, dotted)."""
    parts = name.split(".")
    namespace = [t for p in parts[:-1] for t in split_identifier(p)]
    body = split_identifier(parts[-1])
    body = _synonym_swap(body, VERB_SYNONYMS, rng, 0.8)
    body = _synonym_swap(body, NOUN_SYNONYMS, rng, 0.4)
    namespace = _synonym_swap(namespace, NOUN_SYNONYMS, rng, 0.4)
    shape = rng.random()
    if namespace and shape < 0.25:      # keep the namespace dotted, restyle the body
        return ".".join([join_identifier(namespace, "snake"), join_identifier(body, rng.choice(("snake", "camel")))])
    if namespace and shape < 0.5:       # move the namespace after the verb: find_one_way_flights
        tokens = body[:1] + body[1:] + namespace
    elif namespace:                     # flatten: flights_search_one_way
        tokens = namespace + body
    else:
        tokens = body
        if shape < 0.2 and len(tokens) > 1:
            tokens = tokens[1:] + tokens[:1]    # verb last: weather_get
    style = rng.choices(("snake", "camel", "pascal", "dotted"), weights=(5, 3, 1, 1))[0]
    if style == "dotted" and len(tokens) >= 2:
        return join_identifier(tokens[:1], "snake") + "." + join_identifier(tokens[1:], "snake")
    return join_identifier(tokens, "snake" if style == "dotted" else style)


def rename_parameter(name: str, rng: random.Random, style: str) -> str:
    tokens = _synonym_swap(split_identifier(name), PARAM_SYNONYMS, rng, 0.7)
    return join_identifier(tokens, style)


def _valid_name(name: str) -> bool:
    return bool(TOOL_NAME_PATTERN.match(name)) and bool(re.match(r"^[A-Za-z]", name))


def _normalise_name(name: str) -> str:
    return re.sub(r"[.\-]", "_", name).casefold()


# ----------------------------------------------------------------------------------------------------------------
# Descriptions

def third_person(verb: str) -> str:
    low = verb.lower()
    if low in _VERB_THIRD_PERSON_IRREGULAR:
        out = _VERB_THIRD_PERSON_IRREGULAR[low]
    elif re.search(r"(s|sh|ch|x|z|o)$", low):
        out = low + "es"
    elif re.search(r"[^aeiou]y$", low):
        out = low[:-1] + "ies"
    else:
        out = low + "s"
    return out[:1].upper() + out[1:] if verb[:1].isupper() else out


_KNOWN_VERBS = {v for v in VERB_SYNONYMS} | {
    "return", "look", "provide", "give", "convert", "plan", "issue", "register", "render", "draft", "translate",
    "count", "determine", "evaluate", "tell", "report", "fetch", "query", "simulate", "resolve", "match", "split",
    "lookup", "map", "build", "estimate", "price", "score", "classify", "detect", "geocode", "reverse",
    "order", "pay", "charge", "refund", "rate", "review", "post", "publish", "share", "upload", "download", "play",
    "pause", "subscribe", "unsubscribe", "invite", "reschedule", "renew", "enroll", "grade", "solve", "round",
    "normalize", "format", "encode", "decode", "hash", "compress", "merge", "filter", "aggregate", "summarise",
}


def _swap_words(text: str, rng: random.Random) -> str:
    for word, options in _DESCRIPTION_WORD_SWAPS:
        if rng.random() < 0.6 and re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text):
            text = re.sub(r"(?<!\w)" + re.escape(word) + r"(?!\w)", rng.choice(options), text, count=1)
    return text


def paraphrase_description(text: str, rng: random.Random) -> str:
    """Rewrite a tool description with a template (verb mood, framing) and word-level swaps; meaning unchanged."""
    text = text.strip()
    if not text:
        return text
    first, _, rest = text.partition(" ")
    is_verb = first.lower() in _KNOWN_VERBS and first[:1].isupper()
    forms = _TOOL_DESCRIPTION_FORMS if is_verb else ("{base}", "{swapped}", "Tool: {base}", "Function to help: {base}")
    for _ in range(4):
        form = rng.choice(forms)
        lower = text[:1].lower() + text[1:]
        third = (third_person(first) + (" " + rest if rest else "")) if is_verb else text
        candidate = form.format(
            base=text, lower=lower, third=third, lower_third=third[:1].lower() + third[1:],
            swapped=_swap_words(text, rng))
        if candidate != text:
            return candidate
    return _swap_words(text, rng) if _swap_words(text, rng) != text else "Function: " + text


def paraphrase_parameter_description(text: str, rng: random.Random) -> str:
    text = text.strip()
    if not text:
        return text
    form = rng.choice(_PARAM_DESCRIPTION_FORMS)
    lower = text[:1].lower() + text[1:] if not re.match(r"^[A-Z]{2}", text) else text
    if lower.lower().startswith(("the ", "a ", "an ")) and form in ("The {lower}", "Specifies the {lower}"):
        form = "{swapped}"
    return form.format(base=text, lower=lower, swapped=_swap_words(text, rng))


# ----------------------------------------------------------------------------------------------------------------
# Tool transformation (the primitive every op goes through)

def _integralise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integralise(v) for v in value]
    return value


def wrap_implementation(implementation: Callable[..., Any] | None, param_map: Mapping[str, str],
                        int_params: Iterable[str] = ()) -> Callable[..., Any] | None:
    """Wrap ``implementation`` so it accepts derived parameter names (``param_map``: derived -> original).

    ``int_params`` (original names) had their type widened integer → number: integral floats are turned back into
    ints before the original function sees them."""
    if implementation is None:
        return None
    mapping = {new: old for new, old in param_map.items() if new != old}
    int_params = frozenset(int_params)
    if not mapping and not int_params:
        return implementation

    def derived_implementation(**kwargs: Any) -> Any:
        arguments = {}
        for key, value in kwargs.items():
            original = mapping.get(key, key)
            arguments[original] = _integralise(value) if original in int_params else value
        return implementation(**arguments)

    derived_implementation.__wrapped__ = implementation  # type: ignore[attr-defined]
    derived_implementation.__name__ = getattr(implementation, "__name__", "derived_implementation")
    return derived_implementation


def _rename_placeholders(query: str, renames: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        return "{" + renames.get(match.group(1), match.group(1)) + match.group(2) + "}"
    return _PLACEHOLDER.sub(sub, query)


def transform_tool(tool: Tool, *, name: str | None = None, renames: Mapping[str, str] | None = None,
                   order: list[str] | None = None, retypes: Mapping[str, str] | None = None,
                   description: str | None = None, param_descriptions: Mapping[str, str] | None = None,
                   ops: Iterable[str] = (), source: str | None = None) -> DerivedTool:
    """Build a derived tool. All names in ``renames``/``order``/``retypes``/``param_descriptions`` are the
    ORIGINAL parameter names; ``retypes`` maps a parameter to ``"number"``, ``"integer"`` or ``"string"``
    (enum → string, the options listed in the description)."""
    renames = dict(renames or {})
    retypes = dict(retypes or {})
    param_descriptions = dict(param_descriptions or {})
    properties = tool.properties
    original_order = list(properties)
    order = list(order) if order is not None else original_order
    if sorted(order) != sorted(original_order):
        raise ValueError(f"order {order} is not a permutation of {original_order}")
    new_names = [renames.get(p, p) for p in original_order]
    if len(set(new_names)) != len(new_names):
        raise ValueError(f"parameter renames collide: {renames}")
    int_params: list[str] = []
    new_properties: dict[str, Any] = {}
    for param in order:
        schema = dict(properties[param])
        if param in param_descriptions:
            schema["description"] = param_descriptions[param]
        target = retypes.get(param)
        if target == "number" and schema.get("type") == "integer":
            schema["type"] = "number"
            int_params.append(param)
        elif target == "integer" and schema.get("type") == "number":
            schema["type"] = "integer"
        elif target == "string" and "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
            options = schema.pop("enum")
            schema["type"] = "string"
            listed = ", ".join(f"'{o}'" for o in options)
            text = schema.get("description", "").rstrip()
            if text and not text.endswith((".", "!", "?")):
                text += "."
            schema["description"] = (text + " " if text else "") + f"One of: {listed}."
        new_properties[renames.get(param, param)] = schema
    parameters = {k: v for k, v in tool.parameters.items() if k not in ("properties", "required")}
    parameters["type"] = "object"
    parameters["properties"] = new_properties
    required_set = set(tool.required)
    if "required" in tool.parameters:
        parameters["required"] = [renames.get(p, p) for p in order if p in required_set]
    # keep key order type, properties, required, rest
    parameters = {"type": "object", "properties": new_properties,
                  **({"required": parameters["required"]} if "required" in parameters else {}),
                  **{k: v for k, v in parameters.items() if k not in ("type", "properties", "required")}}
    param_map = {renames.get(p, p): p for p in original_order}
    new_tool = Tool(
        name=name or tool.name,
        description=tool.description if description is None else description,
        parameters=parameters,
        implementation=wrap_implementation(tool.implementation, param_map, int_params),
        domain=tool.domain,
        values={renames.get(p, p): v for p, v in tool.values.items()},
        mentions={_rename_mention_key(k, renames): v for k, v in tool.mentions.items()},
        queries=tuple(_rename_placeholders(q, renames) for q in tool.queries),
    )
    return DerivedTool(tool=new_tool, source=source or tool.name, ops=tuple(ops), param_map=param_map)


def _rename_mention_key(key: str, renames: Mapping[str, str]) -> str:
    head, dot, tail = key.partition(".")
    return renames.get(head, head) + dot + tail


# ----------------------------------------------------------------------------------------------------------------
# The augmenter

class Augmenter:
    """Derives tools with fresh, globally unique names that avoid ``forbidden_names`` (e.g. every BFCL function)."""

    def __init__(self, seed: int = 0, forbidden_names: Iterable[str] = (), *, mask_params_probability: float = 0.5,
                 reserved_names: Iterable[str] = ()) -> None:
        self.rng = random.Random(seed)
        self.forbidden = {_normalise_name(n) for n in forbidden_names}
        self.taken = {_normalise_name(n) for n in reserved_names}
        self.mask_params_probability = mask_params_probability

    def _name_ok(self, name: str) -> bool:
        return _valid_name(name) and _normalise_name(name) not in self.forbidden \
            and _normalise_name(name) not in self.taken

    def _claim(self, name: str) -> str:
        self.taken.add(_normalise_name(name))
        return name

    def reserve(self, names: Iterable[str]) -> None:
        """Mark names (e.g. the whole catalog) as taken so derived tools never reuse them."""
        self.taken.update(_normalise_name(n) for n in names)

    def _fresh_function_name(self, tool: Tool, rng: random.Random) -> str:
        for _ in range(20):
            candidate = rename_function(tool.name, rng)
            if candidate != tool.name and self._name_ok(candidate):
                return self._claim(candidate)
        base = join_identifier(split_identifier(tool.name), "snake")
        for i in range(2, 10_000):
            candidate = f"{base}_v{i}"
            if self._name_ok(candidate):
                return self._claim(candidate)
        raise RuntimeError(f"cannot find a fresh name for {tool.name!r}")

    def _param_renames(self, tool: Tool, rng: random.Random) -> dict[str, str]:
        style = rng.choice(("snake", "snake", "camel"))
        for _ in range(10):
            renames = {p: rename_parameter(p, rng, style) for p in tool.properties}
            renames = {p: n if re.match(r"^[A-Za-z_]\w*$", n) and not keyword.iskeyword(n) else p
                       for p, n in renames.items()}
            if len(set(renames.values())) == len(renames) and any(p != n for p, n in renames.items()):
                return renames
        # No synonym applies: camelCase multi-word names, add a type hint to single words (reason -> reason_str).
        hints = {"string": "str", "integer": "int", "number": "num", "boolean": "flag", "array": "list",
                 "object": "obj"}
        renames = {}
        for p, schema in tool.properties.items():
            tokens = split_identifier(p)
            if len(tokens) > 1:
                renames[p] = join_identifier(tokens, "camel")
            else:
                kind = schema.get("type")
                renames[p] = f"{p}_{hints.get(kind, 'val') if isinstance(kind, str) else 'val'}"
        if len(set(renames.values())) != len(renames):
            renames = {p: f"{p}_arg" for p in tool.properties}
        return renames

    @staticmethod
    def _retypes(tool: Tool, rng: random.Random) -> dict[str, str]:
        options: dict[str, str] = {}
        for param, schema in tool.properties.items():
            kind = schema.get("type")
            if kind == "integer":
                options[param] = "number"
            elif kind == "number":
                values = list(tool.values.get(param, [])) + ([schema["default"]] if "default" in schema else [])
                if values and all(type(v) is int for v in values) and "multipleOf" not in schema:
                    options[param] = "integer"
            elif "enum" in schema and all(isinstance(v, str) for v in schema["enum"]) and kind in ("string", None):
                options[param] = "string"
        if not options:
            return {}
        chosen = [p for p in options if rng.random() < 0.5] or [rng.choice(list(options))]
        return {p: options[p] for p in chosen}

    def derive(self, tool: Tool, ops: Iterable[str] | None = None, rng: random.Random | None = None) -> DerivedTool:
        """Derive one tool applying ``ops`` (default: a random non-empty subset of :data:`OPS`, always including a
        function rename so the derived tool is a distinct tool)."""
        rng = rng or self.rng
        if ops is None:
            ops = ["rename_function"] + [op for op in OPS[1:] if rng.random() < 0.5]
        unknown = set(ops) - set(OPS)
        if unknown:
            raise ValueError(f"unknown augmentation op(s) {sorted(unknown)}; known: {OPS}")
        ops = [op for op in OPS if op in set(ops)]
        applied: list[str] = []
        kwargs: dict[str, Any] = {}
        if "rename_function" in ops:
            kwargs["name"] = self._fresh_function_name(tool, rng)
            applied.append("rename_function")
        if "rename_params" in ops and tool.properties:
            kwargs["renames"] = self._param_renames(tool, rng)
            applied.append("rename_params")
        if "paraphrase" in ops:
            kwargs["description"] = paraphrase_description(tool.description, rng)
            kwargs["param_descriptions"] = {
                p: paraphrase_parameter_description(s["description"], rng)
                for p, s in tool.properties.items() if isinstance(s.get("description"), str) and rng.random() < 0.6}
            applied.append("paraphrase")
        if "reorder" in ops and len(tool.properties) > 1:
            order = list(tool.properties)
            for _ in range(5):
                rng.shuffle(order)
                if order != list(tool.properties):
                    break
            if order != list(tool.properties):
                kwargs["order"] = order
                applied.append("reorder")
        if "retype" in ops:
            retypes = self._retypes(tool, rng)
            if retypes:
                kwargs["retypes"] = retypes
                applied.append("retype")
        if "name" not in kwargs:        # a derived tool always needs its own name
            kwargs["name"] = self._fresh_function_name(tool, rng)
        return transform_tool(tool, ops=applied, source=tool.name, **kwargs)

    def mask(self, tool: Tool, mask_params: bool | None = None, rng: random.Random | None = None) -> DerivedTool:
        """Hammer-style function masking: an opaque random name (``fn_7a3c``); parameters optionally masked too
        (``arg_1b``...). Descriptions are kept, so the tool can only be recognised by reading them."""
        rng = rng or self.rng
        if mask_params is None:
            mask_params = rng.random() < self.mask_params_probability
        prefix = rng.choice(("fn", "func", "f", "tool", "op", "api"))
        name = ""
        for width in (4, 4, 4, 5, 6, 8):
            name = f"{prefix}_{rng.getrandbits(4 * width):0{width}x}"
            if self._name_ok(name):
                break
        else:
            raise RuntimeError("cannot find a fresh masked name")
        self._claim(name)
        ops = ["mask_function"]
        renames: dict[str, str] = {}
        if mask_params and tool.properties:
            arg_prefix = rng.choice(("arg", "p", "param", "x"))
            used: set[str] = set()
            for param in tool.properties:
                while True:
                    candidate = f"{arg_prefix}_{rng.getrandbits(8):02x}"
                    if candidate not in used:
                        used.add(candidate)
                        break
                renames[param] = candidate
            ops.append("mask_params")
        return transform_tool(tool, name=name, renames=renames, ops=ops, source=tool.name)

    def dialect_safe(self, tool: Tool) -> DerivedTool | None:
        """A variant whose function and parameter names are plain identifiers (``[A-Za-z][A-Za-z0-9_]*``, not a
        Python keyword): ``flights.search_one_way`` → ``flights_search_one_way``, ``from`` → ``from_``."""
        def ident(name: str) -> str:
            out = re.sub(r"[^A-Za-z0-9_]", "_", name)
            if not re.match(r"[A-Za-z]", out):
                out = "x" + out
            return out + "_" if keyword.iskeyword(out) else out

        name = ident(tool.name)
        if name != tool.name and _normalise_name(name) != _normalise_name(tool.name):
            base = name
            for i in range(2, 1000):
                if self._name_ok(name):
                    break
                name = f"{base}_{i}"
            else:
                return None
            self._claim(name)
        renames = {p: ident(p) for p in tool.properties}
        if len(set(renames.values())) != len(renames):
            return None
        ops = ["dialect_safe"] if name != tool.name or any(p != n for p, n in renames.items()) else []
        return transform_tool(tool, name=name, renames=renames, ops=ops, source=tool.name)

    def derive_pool(self, tools: Iterable[Tool], variants_per_tool: int = 3, masked_per_tool: int = 1,
                    ) -> dict[str, list[DerivedTool]]:
        """For every tool, ``variants_per_tool`` derived tools and ``masked_per_tool`` masked ones (source name ->
        list). Names are unique across the pool and avoid the forbidden names."""
        tools = list(tools)
        self.reserve(t.name for t in tools)
        pool: dict[str, list[DerivedTool]] = {}
        for tool in tools:
            variants = [self.derive(tool) for _ in range(variants_per_tool)]
            variants += [self.mask(tool) for _ in range(masked_per_tool)]
            pool[tool.name] = variants
        return pool
