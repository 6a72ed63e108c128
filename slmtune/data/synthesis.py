"""Query realisation and sample building for the five BFCL single-turn categories (and ``multi_turn``).

A *sample* (DESIGN §6)::

    {"id", "category", "domain",
     "tools": [{"name", "description", "parameters"}, ...],          # what the model is offered
     "messages": [{"role": "user", "content": "..."}],                # optionally preceded by a system message
     "tool_calls": [{"name", "arguments": {...}}],                     # empty for irrelevance; schema order
     "provenance": {"source_tools": [...], "augmentation": [...], "template": [...], "seed": int, "style": str}}

Catalog ``queries`` are templates (``"Find flights from {origin} to {destination} on {date}."``). A template names
the call's arguments; values come from the tool's ``values`` and are *said* naturally: strings as-is, numbers as
digits, arrays as "a, b and c", booleans/enums through ``mentions`` when present, ISO dates either as ISO or spelled
out ("March 14, 2025"), object fields through ``{param.field}``. Optional parameters a template does not name are
left out (their default applies), so optional arguments are sometimes stated and sometimes not.

Categories:

- ``simple`` — one tool offered, one call;
- ``multiple`` — the right tool among distractors (half of them from the same domain: hard negatives);
- ``parallel`` — 2–4 calls of one tool, either compact ("... in Paris, Rome and Tokyo") or joined clauses;
- ``parallel_multiple`` — calls across 2–3 tools, clauses joined ("…, and also …", "Then …");
- ``irrelevance`` — the offered tools cannot answer (the request comes from a tool of another domain, or is
  general chit-chat): the gold output is no call;
- ``multi_turn`` — conversations with executed tool results (:mod:`slmtune.data.multiturn`, its own sample format:
  every assistant message of ``messages`` is a target).

Everything is precomputed per tool (:class:`ToolProfile`: parsed templates, the phrases of every catalog value), so
building a sample is a handful of ``random`` calls and string joins. Building is deterministic given the seed.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from slmtune.data.registry import Tool

SINGLE_TURN_CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance")
CATEGORIES = SINGLE_TURN_CATEGORIES + ("multi_turn",)
DEFAULT_CATEGORY_MIX = {"simple": 0.3, "multiple": 0.25, "parallel": 0.15, "parallel_multiple": 0.1,
                        "irrelevance": 0.2, "multi_turn": 0.05}

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

# Words that start an imperative clause (so "Could you find ...?" reads well).
_IMPERATIVE_VERBS = {
    "find", "search", "get", "show", "list", "book", "reserve", "convert", "calculate", "compute", "check", "send",
    "create", "make", "add", "delete", "remove", "update", "change", "set", "look", "pull", "give", "tell", "estimate",
    "work", "schedule", "cancel", "plan", "translate", "track", "compare", "recommend", "suggest", "fetch",
    "retrieve", "run", "generate", "summarize", "summarise", "analyze", "analyse", "draft", "write", "post", "open",
    "close", "start", "stop", "order", "buy", "sell", "transfer", "move", "submit", "apply", "rank", "sort",
    "filter", "count", "measure", "predict", "forecast", "locate", "verify", "validate", "log", "record", "assign",
    "approve", "notify", "play", "pause", "quote", "price", "review", "register", "enroll", "grade", "solve",
    "determine", "evaluate", "flag", "mark", "resolve", "raise", "file", "issue", "pay", "charge", "refund",
    "reschedule", "renew", "invite", "share", "upload", "download", "compose", "lookup", "report", "simulate",
    "help", "figure", "map", "geocode", "split", "round", "format", "parse", "extract", "detect", "identify",
}
_SENTENCE_PREFIXES = ("", "", "", "", "", "", "Hi! ", "Hey, quick one. ", "Hello. ", "Quick question: ",
                      "I need some help. ", "Hi there. ", "OK, next thing: ", "Hey! ")
_SUFFIXES = ("", "", "", "", "", "", " Thanks!", " Thank you.", " Thanks in advance.", " Cheers.",
             " Appreciate it.")
_IMPERATIVE_FORMS = ("Could you {lc}?", "Can you {lc}?", "Please {lc}.", "I'd like you to {lc}.",
                     "Would you {lc}?", "{cap}, please.", "I need you to {lc}.")
_INLINE_JOINS = (", and also ", ", and ", "; also ", ", plus ", " and then ", ", then ", "; and ")
_SENTENCE_JOINS = ("Also, ", "Then ", "After that, ", "Additionally, ", "Next, ", "And ", "", "On top of that, ",
                   "Separately, ", "Oh, and ")
_SYSTEM_PROMPTS = ("You are a helpful assistant.", "You are a helpful assistant with access to tools.",
                   "You are an assistant. Use the provided functions when they help answer the user.",
                   "Answer the user's request. Call a function only when one fits.")

# General requests that no catalog tool answers (extra irrelevance queries).
_GENERIC_QUERIES = (
    ("Tell me a joke about {topic}.", {"topic": ["penguins", "accountants", "coffee", "the moon", "octopuses"]}),
    ("Write a short poem about {topic}.", {"topic": ["autumn leaves", "a lighthouse", "city rain", "old friends"]}),
    ("Who painted {painting}?", {"painting": ["The Starry Night", "Girl with a Pearl Earring", "The Night Watch"]}),
    ("What does the word '{word}' mean?", {"word": ["ephemeral", "serendipity", "laconic", "quixotic"]}),
    ("Explain {concept} like I'm ten years old.", {"concept": ["photosynthesis", "inflation", "black holes",
                                                             "how vaccines work", "plate tectonics"]}),
    ("Can you give me some tips for {activity}?", {"activity": ["sleeping better", "learning the guitar",
                                                               "public speaking", "keeping houseplants alive"]}),
    ("What's a good name for a {pet}?", {"pet": ["golden retriever", "tabby cat", "parrot", "hamster"]}),
    ("Summarize the plot of {book} in two sentences.", {"book": ["Moby-Dick", "Pride and Prejudice",
                                                                 "The Hobbit", "Frankenstein"]}),
    ("How do you say '{phrase}' in {language}?", {"phrase": ["good morning", "thank you very much", "where is"
                                                             " the station"], "language": ["Italian", "Japanese",
                                                                                           "Portuguese"]}),
    ("I'm bored. Any ideas for {occasion}?", {"occasion": ["a rainy Sunday", "a long train ride", "a quiet evening"]}),
    ("Why is the sky blue?", {}),
    ("hello, how are you today?", {}),
    ("What's the difference between {a} and {b}?", {"a": ["a crocodile", "weather", "affect"],
                                                     "b": ["an alligator", "climate", "effect"]}),
)


class SynthesisError(ValueError):
    """A tool cannot be used for synthesis (e.g. a template placeholder without values)."""


# ----------------------------------------------------------------------------------------------------------------
# Value phrasing

def spell_date(iso: str, style: int = 0) -> str:
    """``2025-03-14`` → ``March 14, 2025`` (style 0), ``14 March 2025`` (1), ``Mar 14, 2025`` (2)."""
    d = date.fromisoformat(iso)
    month = MONTHS[d.month - 1]
    if style == 1:
        return f"{d.day} {month} {d.year}"
    if style == 2:
        return f"{month[:3]} {d.day}, {d.year}"
    return f"{month} {d.day}, {d.year}"


def format_number(value: int | float) -> str:
    """Digits, never scientific notation: 3 → "3", 2.5 → "2.5", 3.0 → "3"."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        text = repr(value)
        if "e" in text or "E" in text:
            text = f"{value:.12f}".rstrip("0").rstrip(".")
        return text
    return str(value)


def join_list(items: Sequence[str], conjunction: str = "and") -> str:
    """``["a"]`` → "a"; ``["a", "b"]`` → "a and b"; ``["a", "b", "c"]`` → "a, b and c"."""
    items = list(items)
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def _mention_key(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def value_phrases(value: Any, schema: Mapping[str, Any] | None = None,
                  mentions: Mapping[str, str] | None = None) -> list[str]:
    """Every way the synthesiser may say ``value`` (the first is the canonical one)."""
    schema = schema or {}
    if mentions:
        phrase = mentions.get(_mention_key(value))
        if phrase is not None:
            return [phrase]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if value is None:
        return ["none"]
    if isinstance(value, (int, float)):
        text = format_number(value)
        out = [text]
        if isinstance(value, int) and abs(value) >= 10000:
            out.append(f"{value:,}")
        return out
    if isinstance(value, str):
        if ISO_DATE.match(value):
            try:
                return [value, spell_date(value, 0), spell_date(value, 1)]
            except ValueError:
                return [value]
        if "enum" in schema and "_" in value and " " not in value:
            return [value.replace("_", " ")]
        return [value]
    if isinstance(value, list):
        item_schema = schema.get("items", {}) if isinstance(schema.get("items"), Mapping) else {}
        options = [value_phrases(v, item_schema) for v in value]
        first = join_list([o[0] for o in options])
        out = [first]
        alt = join_list([o[-1] for o in options])
        if alt != first:
            out.append(alt)
        return out
    if isinstance(value, dict):
        props = schema.get("properties", {}) if isinstance(schema.get("properties"), Mapping) else {}
        parts = [f"{k.replace('_', ' ')} {value_phrases(v, props.get(k, {}))[0]}" for k, v in value.items()]
        return [join_list(parts)]
    return [str(value)]


def _field_value(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise KeyError(".".join(path))
        value = value[key]
    return value


def _field_schema(schema: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any]:
    for key in path:
        props = schema.get("properties", {})
        schema = props.get(key, {}) if isinstance(props, Mapping) else {}
    return schema


# ----------------------------------------------------------------------------------------------------------------
# Templates and tool profiles

@dataclass(frozen=True)
class Template:
    """A parsed catalog query: literal text and placeholders ``(param, field_path)``."""

    text: str
    index: int
    parts: tuple[Any, ...]                      # str | (param, tuple[str, ...])
    params: tuple[str, ...]                     # top-level parameters named, first-appearance order
    fields: dict[str, frozenset[tuple[str, ...]] | None]   # param -> field paths used (None: whole value)
    starts_with_placeholder: bool
    question: bool
    imperative: bool

    @classmethod
    def parse(cls, text: str, index: int) -> Template:
        parts: list[Any] = []
        params: list[str] = []
        fields: dict[str, set[tuple[str, ...]] | None] = {}
        pos = 0
        for match in _PLACEHOLDER.finditer(text):
            if match.start() > pos:
                parts.append(text[pos:match.start()])
            param, *path = match.group(1).split(".")
            parts.append((param, tuple(path)))
            if param not in fields:
                params.append(param)
                fields[param] = set()
            if not path:
                fields[param] = None
            elif fields[param] is not None:
                fields[param].add(tuple(path))
            pos = match.end()
        if pos < len(text):
            parts.append(text[pos:])
        stripped = text.strip()
        first_word = re.match(r"[A-Za-z']+", stripped)
        literal = "".join(p if isinstance(p, str) else "x" for p in parts).strip()
        one_sentence = not re.search(r"[.!?;:]\s", literal)
        return cls(
            text=text, index=index, parts=tuple(parts), params=tuple(params),
            fields={p: (None if f is None else frozenset(f)) for p, f in fields.items()},
            starts_with_placeholder=stripped.startswith("{"),
            question=stripped.endswith("?"),
            imperative=bool(first_word) and first_word.group(0).lower() in _IMPERATIVE_VERBS
            and not stripped.endswith("?") and one_sentence,
        )


@dataclass(eq=False)
class ToolProfile:
    """Everything synthesis needs about one (possibly derived) tool, computed once."""

    tool: Tool
    source: str
    ops: tuple[str, ...]
    function: dict[str, Any]
    order: tuple[str, ...]
    templates: list[Template]
    values: dict[str, list[Any]]
    phrases: dict[str, list[list[str]]]                          # param -> per value index -> phrase options
    field_phrases: dict[tuple[str, tuple[str, ...]], list[list[str]]]
    # (template, param, indices of distinct values) usable for compact parallel requests
    compact: list[tuple[Template, str, tuple[int, ...]]] = field(default_factory=list)
    masked: bool = False

    @property
    def name(self) -> str:
        return self.tool.name

    @property
    def domain(self) -> str:
        return self.tool.domain or "general"

    @classmethod
    def build(cls, tool: Tool, source: str | None = None, ops: Iterable[str] = ()) -> ToolProfile:
        ops = tuple(ops)
        properties = tool.properties
        function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
        templates = []
        for i, text in enumerate(tool.queries):
            template = Template.parse(text, i)
            if all(p in tool.values and p in properties for p in template.params):
                templates.append(template)
        phrases: dict[str, list[list[str]]] = {}
        field_phrases: dict[tuple[str, tuple[str, ...]], list[list[str]]] = {}
        for param, values in tool.values.items():
            schema = properties.get(param, {})
            mention = tool.mentions.get(param, {})
            phrases[param] = [value_phrases(v, schema, mention) for v in values]
        for template in templates:
            for part in template.parts:
                if isinstance(part, tuple) and part[1] and part not in field_phrases:
                    param, path = part
                    sub_schema = _field_schema(properties.get(param, {}), path)
                    mention = tool.mentions.get(param + "." + ".".join(path), {})
                    rows = []
                    for value in tool.values[param]:
                        try:
                            rows.append(value_phrases(_field_value(value, path), sub_schema, mention))
                        except KeyError:
                            rows.append([])
                    field_phrases[part] = rows
        # Templates whose field placeholders miss in some value are only usable with the values that have them.
        compact = []
        for template in templates:
            for param in template.params:
                if template.fields[param] is not None:
                    continue
                if sum(1 for p in template.parts if isinstance(p, tuple) and p[0] == param) != 1:
                    continue
                schema = properties.get(param, {})
                kind = schema.get("type")
                if kind not in ("string", "integer", "number") or isinstance(tool.values[param][0], (list, dict)):
                    continue
                distinct: dict[str, int] = {}
                for i, v in enumerate(tool.values[param]):
                    distinct.setdefault(_mention_key(v), i)
                if len(distinct) >= 2:
                    compact.append((template, param, tuple(sorted(distinct.values()))))
        return cls(tool=tool, source=source or tool.name, ops=ops, function=function, order=tuple(properties),
                   templates=templates, values={k: list(v) for k, v in tool.values.items()}, phrases=phrases,
                   field_phrases=field_phrases, compact=compact,
                   masked="mask_function" in ops)

    # -- realisation ---------------------------------------------------------------------------------------------

    def _usable(self, template: Template, param: str, index: int) -> bool:
        paths = template.fields[param]
        if not paths:
            return True
        return all(self.field_phrases[(param, path)][index] for path in paths)

    def _pick_indices(self, template: Template, rng: random.Random,
                      fixed: Mapping[str, int] | None = None) -> dict[str, int] | None:
        chosen: dict[str, int] = {}
        for param in template.params:
            if fixed and param in fixed:
                chosen[param] = fixed[param]
                continue
            n = len(self.values[param])
            index = rng.randrange(n)
            if not self._usable(template, param, index):
                usable = [i for i in range(n) if self._usable(template, param, i)]
                if not usable:
                    return None
                index = rng.choice(usable)
            chosen[param] = index
        return chosen

    def _argument(self, template: Template, param: str, index: int) -> Any:
        value = self.values[param][index]
        paths = template.fields[param]
        if paths and isinstance(value, dict):
            # Keep the fields the text states (top-level keys of the used paths) and required fields.
            schema = self.tool.properties.get(param, {})
            keep = {path[0] for path in paths} | set(schema.get("required", []))
            value = {k: v for k, v in value.items() if k in keep}
        return value

    def arguments(self, template: Template, chosen: Mapping[str, int]) -> dict[str, Any]:
        """The call's arguments in the schema's property order."""
        return {p: self._argument(template, p, chosen[p]) for p in self.order if p in chosen}

    def render(self, template: Template, chosen: Mapping[str, int], rng: random.Random,
               override: Mapping[str, str] | None = None) -> str:
        """The template's text with every placeholder said. One style draw per clause, so alternatives are
        consistent within it (all dates ISO or all spelled out, "1,500" style numbers throughout)."""
        style = rng.random()
        out = []
        for part in template.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            param, path = part
            if override and param in override and not path:
                out.append(override[param])
                continue
            options = self.field_phrases[part][chosen[param]] if path else self.phrases[param][chosen[param]]
            out.append(options[0] if len(options) == 1 else options[int(style * len(options))])
        return "".join(out)


@dataclass(eq=False)
class Clause:
    """A realised piece of a request: its text and the calls it asks for."""

    text: str
    calls: list[dict[str, Any]]
    profile: ToolProfile
    template: Template
    compact: bool = False


def realise(profile: ToolProfile, rng: random.Random, template: Template | None = None) -> Clause | None:
    """One clause asking for one call of ``profile``'s tool."""
    if not profile.templates:
        return None
    template = template or rng.choice(profile.templates)
    chosen = profile._pick_indices(template, rng)
    if chosen is None:
        return None
    text = profile.render(template, chosen, rng)
    return Clause(text, [{"name": profile.name, "arguments": profile.arguments(template, chosen)}], profile, template)


def realise_compact(profile: ToolProfile, rng: random.Random, n: int) -> Clause | None:
    """One clause asking for ``n`` calls that differ in one parameter ("... in Paris, Rome and Tokyo")."""
    options = [option for option in profile.compact if len(option[2]) >= n]
    if not options:
        return None
    template, param, distinct = rng.choice(options)
    chosen = profile._pick_indices(template, rng)
    if chosen is None:
        return None
    indices = rng.sample(distinct, n)
    phrases = [rng.choice(profile.phrases[param][i]) for i in indices]
    if len(set(phrases)) != n:
        return None
    text = profile.render(template, chosen, rng, override={param: join_list(phrases)})
    calls = []
    for i in indices:
        chosen = {**chosen, param: i}
        calls.append({"name": profile.name, "arguments": profile.arguments(template, chosen)})
    return Clause(text, calls, profile, template, compact=True)


# ----------------------------------------------------------------------------------------------------------------
# Surface text: joining clauses, capitalisation, punctuation

def _lower_first(text: str, protect: bool) -> str:
    """Lower-case the first word when it is an ordinary capitalised word (not "I", an acronym or a value)."""
    if protect or not text:
        return text
    match = re.match(r"[A-Za-z']+", text)
    if not match:
        return text
    word = match.group(0)
    if word == "I" or word.startswith("I'") or not word[0].isupper():
        return text
    if len(word) > 1 and not word[1:].replace("'", "").islower():
        return text
    return text[0].lower() + text[1:]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text[:1].islower() else text


def _strip_end(text: str) -> tuple[str, str]:
    text = text.strip()
    match = re.search(r"[.!?]+$", text)
    if match:
        return text[:match.start()].rstrip(), match.group(0)[-1]
    return text, ""


_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_DOUBLED_PUNCT = re.compile(r"([,;])\1+")


def _tidy(text: str) -> str:
    text = " ".join(text.split())
    if " ," in text or " ." in text or " ;" in text or " :" in text or " !" in text or " ?" in text:
        text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    if ",," in text or ";;" in text:
        text = _DOUBLED_PUNCT.sub(r"\1", text)
    if text.endswith(".."):
        text = text.rstrip(".") + "."
    return text


def _end_sentence(text: str, question: bool) -> str:
    body, mark = _strip_end(text)
    if mark in ("?", "!"):
        return body + mark
    return body + ("?" if question else ".")


def join_clauses(clauses: Sequence[Clause], rng: random.Random) -> tuple[str, str]:
    """Join clause texts into one natural request. Returns (text, style)."""
    if len(clauses) == 1:
        return clauses[0].text, "single"
    if len(clauses) <= 3 and rng.random() < 0.5:
        pieces = []
        for i, clause in enumerate(clauses):
            body, _ = _strip_end(clause.text)
            if i == 0:
                pieces.append(body)
            else:
                joiner = rng.choice(_INLINE_JOINS) if i == len(clauses) - 1 else ", "
                pieces.append(joiner + _lower_first(body, clause.template.starts_with_placeholder))
        question = clauses[-1].template.question
        return _end_sentence("".join(pieces), question), "inline"
    sentences = []
    for i, clause in enumerate(clauses):
        text = _end_sentence(clause.text, clause.template.question)
        if i > 0:
            joiner = rng.choice(_SENTENCE_JOINS)
            if joiner:
                text = joiner + _lower_first(text, clause.template.starts_with_placeholder)
        sentences.append(_capitalise(text) if not clause.template.starts_with_placeholder or i > 0 else text)
    return " ".join(sentences), "sentences"


def dress(text: str, rng: random.Random, single: Clause | None) -> str:
    """Vary the surface of a request: politeness forms for imperatives, greetings, thanks; fix punctuation."""
    if single is not None and single.template.imperative and rng.random() < 0.35:
        body, _ = _strip_end(text)
        form = rng.choice(_IMPERATIVE_FORMS)
        text = form.format(lc=_lower_first(body, single.template.starts_with_placeholder), cap=_capitalise(body))
    else:
        body, mark = _strip_end(text)
        text = body + (mark or ("?" if single is not None and single.template.question else "."))
    prefix = rng.choice(_SENTENCE_PREFIXES)
    suffix = rng.choice(_SUFFIXES)
    text = prefix + _capitalise(text) + suffix
    return _tidy(text)


# ----------------------------------------------------------------------------------------------------------------
# Sample building

@dataclass
class SynthesisConfig:
    """Knobs of :class:`SampleBuilder` (defaults follow BFCL's single-turn shapes)."""

    augment_probability: float = 0.5          # a training tool slot uses a derived (renamed, ...) variant
    masking_probability: float = 0.1          # a training tool slot uses a masked variant (fn_7a3c)
    # 1-3 distractors: 2-4 tools offered, as in BFCL's multiple (2: 40 %, 3: 42 %, 4: 18 % of its 200). With 2-5
    # (3-6 tools) 214 of 240 multiple training samples exceeded the gemma270m recipe's max_length of 1024 tokens and
    # were dropped, leaving several-tool prompts 88 % no-call: the adapter declined 98 of 100 BFCL multiple requests.
    multiple_distractors: tuple[int, int] = (1, 3)
    same_domain_distractor_probability: float = 0.5
    parallel_calls: tuple[int, int] = (2, 4)
    parallel_compact_probability: float = 0.5
    parallel_multiple_calls: tuple[int, int] = (2, 4)
    parallel_multiple_tools: tuple[int, int] = (2, 3)
    parallel_multiple_distractors: tuple[int, int] = (0, 2)
    irrelevance_tools: tuple[int, int] = (1, 4)
    irrelevance_generic_probability: float = 0.15
    irrelevance_same_domain_probability: float = 0.25
    system_prompt_probability: float = 0.0
    # Tools whose names+descriptions overlap this much (Jaccard of content words) with the requested tool may
    # answer it too: never offered for an irrelevance request; never a distractor above the second threshold.
    related_threshold_irrelevance: float = 0.18
    related_threshold_distractor: float = 0.3


@dataclass(eq=False)
class _Source:
    """One catalog tool and its usable variants."""

    name: str
    domain: str
    original: ToolProfile
    derived: list[ToolProfile]
    masked: list[ToolProfile]

    @property
    def answerable(self) -> bool:
        return bool(self.original.templates)


class SampleBuilder:
    """Builds samples of every category from a pool of tool profiles (one split's pool).

    ``profiles`` maps a catalog tool name to its profiles: the original first, then derived variants (masked ones
    recognised by their ``mask_function`` op). ``build(category, seed)`` is a pure function of its arguments and the
    pool.
    """

    def __init__(self, profiles: Mapping[str, Sequence[ToolProfile]], config: SynthesisConfig | None = None,
                 use_variants: bool = True, fallback: Mapping[str, Sequence[ToolProfile]] | None = None) -> None:
        self.config = config or SynthesisConfig()
        self.use_variants = use_variants
        self.sources = self._sources(profiles)
        # Tools only offered (as distractors / irrelevance tools) when ``profiles`` has too few: originals only.
        self.fallback = [s for s in self._sources(fallback or {}) if s.name not in profiles]
        for source in self.fallback:
            source.derived, source.masked = [], []
        if not self.sources:
            raise SynthesisError("no tools to synthesise from")
        self.answerable = [s for s in self.sources if s.answerable]
        if not self.answerable:
            raise SynthesisError("no tool has usable query templates")
        self.by_domain: dict[str, list[_Source]] = defaultdict(list)
        for source in self.sources:
            self.by_domain[source.domain].append(source)
        self.answerable_by_domain: dict[str, list[_Source]] = defaultdict(list)
        for source in self.answerable:
            self.answerable_by_domain[source.domain].append(source)
        self.domains = sorted(self.by_domain)
        self._conversations = None       # the multi_turn builder, made on first use
        self.similarity = _similarity(self.sources + self.fallback,
                                      min(self.config.related_threshold_irrelevance,
                                          self.config.related_threshold_distractor))

    @staticmethod
    def _sources(profiles: Mapping[str, Sequence[ToolProfile]]) -> list[_Source]:
        sources = []
        for name in sorted(profiles):
            group = list(profiles[name])
            original = group[0]
            derived = [p for p in group[1:] if not p.masked and p.templates]
            masked = [p for p in group[1:] if p.masked and p.templates]
            sources.append(_Source(name, original.domain, original, derived, masked))
        return sources

    # -- tool choice ---------------------------------------------------------------------------------------------

    def _system_message(self, rng: random.Random) -> dict | None:
        """A system message drawn with ``system_prompt_probability`` (None when the sample gets none)."""
        p = self.config.system_prompt_probability
        if p and rng.random() < p:
            return {"role": "system", "content": rng.choice(_SYSTEM_PROMPTS)}
        return None

    def _variant(self, source: _Source, rng: random.Random) -> ToolProfile:
        if not self.use_variants:
            return source.original
        r = rng.random()
        cfg = self.config
        if r < cfg.masking_probability and source.masked:
            return rng.choice(source.masked)
        if r < cfg.masking_probability + cfg.augment_probability and source.derived:
            return rng.choice(source.derived)
        return source.original

    def _distractors(self, rng: random.Random, k: int, exclude: set[str], domain: str | None,
                     same_domain_probability: float, pool: Sequence[_Source] | None = None,
                     answers: Sequence[str] = ()) -> list[_Source]:
        threshold = self.config.related_threshold_distractor
        related = {n for a in answers for n, j in self.similarity.get(a, {}).items() if j >= threshold}
        exclude = exclude | related
        pool = list(pool if pool is not None else self.sources)
        out: list[_Source] = []
        same = [s for s in self.by_domain.get(domain, []) if s.name not in exclude] if domain else []
        for _ in range(k):
            candidates = None
            if same and rng.random() < same_domain_probability:
                candidates = same
            else:
                candidates = pool
            for _attempt in range(8):
                pick = rng.choice(candidates)
                if pick.name not in exclude:
                    break
            else:
                remaining = [s for s in pool if s.name not in exclude]
                if not remaining:
                    remaining = [s for s in self.fallback if s.name not in exclude]
                if not remaining:
                    break
                pick = rng.choice(remaining)
            exclude.add(pick.name)
            out.append(pick)
            if pick in same:
                same.remove(pick)
        return out

    # -- categories ----------------------------------------------------------------------------------------------

    def build(self, category: str, seed: int) -> dict[str, Any] | None:
        """Build one sample of ``category`` from ``seed`` (None when the pool cannot produce one)."""
        rng = random.Random(seed)
        if category == "multi_turn":
            if self._conversations is None:
                from slmtune.data.multiturn import ConversationBuilder
                self._conversations = ConversationBuilder(self)
            return self._conversations.build(seed, rng)
        if category == "simple":
            built = self._simple(rng)
        elif category == "multiple":
            built = self._multiple(rng)
        elif category == "parallel":
            built = self._parallel(rng)
        elif category == "parallel_multiple":
            built = self._parallel_multiple(rng)
        elif category == "irrelevance":
            built = self._irrelevance(rng)
        else:
            raise ValueError(f"unknown category {category!r}; known: {CATEGORIES}")
        if built is None:
            return None
        text, offered, clauses, domain, style = built
        calls = [call for clause in clauses for call in clause.calls] if category != "irrelevance" else []
        messages = []
        system = self._system_message(rng)
        if system is not None:
            messages.append(system)
        messages.append({"role": "user", "content": text})
        augmentation = sorted({op for p in offered for op in p.ops})
        return {
            "id": f"{seed:x}",
            "category": category,
            "domain": domain,
            "tools": [p.function for p in offered],
            "messages": messages,
            "tool_calls": calls,
            "provenance": {
                "source_tools": [p.source for p in offered],
                "augmentation": augmentation,
                "template": [f"{c.profile.source}#{c.template.index}" for c in clauses],
                "style": style,
                "seed": seed,
            },
        }

    def _single_clause(self, source: _Source, rng: random.Random) -> tuple[ToolProfile, Clause] | None:
        profile = self._variant(source, rng)
        clause = realise(profile, rng)
        if clause is None and profile is not source.original:
            profile = source.original
            clause = realise(profile, rng)
        return (profile, clause) if clause is not None else None

    def _simple(self, rng: random.Random):
        source = rng.choice(self.answerable)
        got = self._single_clause(source, rng)
        if got is None:
            return None
        profile, clause = got
        return dress(clause.text, rng, clause), [profile], [clause], source.domain, "single"

    def _multiple(self, rng: random.Random):
        source = rng.choice(self.answerable)
        got = self._single_clause(source, rng)
        if got is None:
            return None
        profile, clause = got
        lo, hi = self.config.multiple_distractors
        k = rng.randint(lo, hi)
        distractors = self._distractors(rng, k, {source.name}, source.domain,
                                        self.config.same_domain_distractor_probability, answers=[source.name])
        if not distractors:
            return None
        offered = [self._variant(d, rng) for d in distractors]
        offered.insert(rng.randrange(len(offered) + 1), profile)
        if len({p.name for p in offered}) != len(offered):
            return None
        return dress(clause.text, rng, clause), offered, [clause], source.domain, "single"

    def _clauses_for(self, profile: ToolProfile, n: int, rng: random.Random) -> list[Clause] | None:
        """``n`` calls of one tool as one compact clause or ``n`` separate clauses with distinct arguments."""
        if n >= 2 and rng.random() < self.config.parallel_compact_probability:
            clause = realise_compact(profile, rng, n)
            if clause is not None:
                return [clause]
        clauses: list[Clause] = []
        seen: set[str] = set()
        for _ in range(n * 6):
            clause = realise(profile, rng)
            if clause is None:
                return None
            key = json.dumps(clause.calls[0]["arguments"], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            clauses.append(clause)
            if len(clauses) == n:
                return clauses
        return None

    def _parallel(self, rng: random.Random):
        source = rng.choice(self.answerable)
        profile = self._variant(source, rng)
        if not profile.templates:
            profile = source.original
        lo, hi = self.config.parallel_calls
        clauses = self._clauses_for(profile, rng.randint(lo, hi), rng)
        if clauses is None:
            return None
        text, style = join_clauses(clauses, rng)
        if clauses[0].compact:
            style = "compact"
        return dress(text, rng, clauses[0] if len(clauses) == 1 else None), [profile], clauses, source.domain, style

    def _parallel_multiple(self, rng: random.Random):
        cfg = self.config
        n_tools = rng.randint(*cfg.parallel_multiple_tools)
        first = rng.choice(self.answerable)
        chosen = [first]
        exclude = {first.name}
        for _ in range(n_tools - 1):
            same = [s for s in self.answerable_by_domain[first.domain] if s.name not in exclude]
            pool = same if same and rng.random() < 0.6 else [s for s in self.answerable if s.name not in exclude]
            if not pool:
                break
            pick = rng.choice(pool)
            exclude.add(pick.name)
            chosen.append(pick)
        if len(chosen) < 2:
            return None
        lo, hi = cfg.parallel_multiple_calls
        total = max(len(chosen), rng.randint(lo, hi))
        counts = [1] * len(chosen)
        for _ in range(total - len(chosen)):
            counts[rng.randrange(len(chosen))] += 1
        profiles = [self._variant(s, rng) for s in chosen]
        profiles = [p if p.templates else s.original for p, s in zip(profiles, chosen, strict=True)]
        clauses: list[Clause] = []
        for profile, n in zip(profiles, counts, strict=True):
            got = self._clauses_for(profile, n, rng)
            if got is None:
                return None
            clauses.extend(got)
        rng.shuffle(clauses)
        text, style = join_clauses(clauses, rng)
        offered = list(profiles)
        k = rng.randint(*cfg.parallel_multiple_distractors)
        if k:
            offered += [self._variant(d, rng) for d in self._distractors(
                rng, k, set(exclude), first.domain, cfg.same_domain_distractor_probability, answers=list(exclude))]
        rng.shuffle(offered)
        if len({p.name for p in offered}) != len(offered):
            return None
        return dress(text, rng, None), offered, clauses, first.domain, style

    def _irrelevant_pool(self, source: _Source, same_domain: bool,
                         candidates: Sequence[_Source] | None = None) -> list[_Source]:
        threshold = self.config.related_threshold_irrelevance
        related = self.similarity.get(source.name, {})
        candidates = self.sources if candidates is None else candidates
        if same_domain:
            query_required = set(source.original.tool.required)
            namespace = source.name.split(".")[0] if "." in source.name else None
            return [s for s in candidates
                    if s.domain == source.domain and s.name != source.name
                    and related.get(s.name, 0.0) < threshold
                    and not (set(s.original.tool.required) & query_required)
                    and not (namespace and s.name.split(".")[0] == namespace)]
        return [s for s in candidates if s.domain != source.domain and related.get(s.name, 0.0) < threshold]

    def _irrelevance(self, rng: random.Random):
        cfg = self.config
        k = rng.randint(*cfg.irrelevance_tools)
        if rng.random() < cfg.irrelevance_generic_probability:
            template, values = rng.choice(_GENERIC_QUERIES)
            text = template
            for key, options in values.items():
                text = text.replace("{" + key + "}", rng.choice(options))
            offered_sources = rng.sample(self.sources, min(k, len(self.sources)))
            offered = [self._variant(s, rng) for s in offered_sources]
            generic = Template.parse(template, -1)
            fake = Clause(text, [], offered[0], generic)
            return dress(text, rng, fake), offered, [], "general", "generic"
        source = rng.choice(self.answerable)
        clause = realise(source.original, rng)
        if clause is None:
            return None
        same = rng.random() < cfg.irrelevance_same_domain_probability
        pools = [self._irrelevant_pool(source, True)] if same else []
        pools.append(self._irrelevant_pool(source, False))
        pools.append(self._irrelevant_pool(source, False, self.fallback))   # only for what the others lack
        offered_sources: list[_Source] = []
        for pool in pools:
            if len(offered_sources) >= k:
                break
            fresh = [s for s in pool if s not in offered_sources]
            offered_sources += rng.sample(fresh, min(k - len(offered_sources), len(fresh)))
        if not offered_sources:
            return None
        offered = [self._variant(s, rng) for s in offered_sources]
        if len({p.name for p in offered}) != len(offered):
            return None
        return dress(clause.text, rng, clause), offered, [clause], source.domain, "single"


_STOPWORDS = frozenset(
    "a an the of to for and or in on by with from at as is are be this that it its into per given specified "
    "optional optionally e g eg return returns get compute calculate find search list create make estimate check "
    "one all any each which whose their your can may if not no more than up".split())


def _content_words(tool: Tool) -> frozenset[str]:
    words = re.findall(r"[a-z]+", " ".join(re.split(r"[._]|(?<=[a-z])(?=[A-Z])", tool.name)).lower()
                       + " " + tool.description.lower())
    return frozenset(w for w in words if len(w) > 2 and w not in _STOPWORDS)


def _similarity(sources: Sequence[_Source], threshold: float) -> dict[str, dict[str, float]]:
    """Jaccard similarity of content words (name + description) between catalog tools, pairs >= threshold."""
    words = [(s.name, _content_words(s.original.tool)) for s in sources]
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for i, (a, wa) in enumerate(words):
        for b, wb in words[i + 1:]:
            union = len(wa | wb)
            j = len(wa & wb) / union if union else 0.0
            if j >= threshold:
                out[a][b] = j
                out[b][a] = j
    return dict(out)


def build_profiles(tools: Iterable[Tool]) -> dict[str, list[ToolProfile]]:
    """Original catalog tools → ``{name: [profile]}`` (add derived variants with :func:`add_derived_profiles`)."""
    return {tool.name: [ToolProfile.build(tool)] for tool in tools}


def add_derived_profiles(profiles: dict[str, list[ToolProfile]], derived: Mapping[str, Iterable[Any]]) -> None:
    """Append profiles of derived tools (``slmtune.data.augmentation.DerivedTool``) under their source tool's name."""
    for source, variants in derived.items():
        for variant in variants:
            profiles[source].append(ToolProfile.build(variant.tool, source=variant.source, ops=variant.ops))
