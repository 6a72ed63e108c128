"""Multi-turn conversations over the registry's executable tools (category ``multi_turn``).

The model calls a tool, receives the executed result as a ``tool`` message and goes on from there. Three flows:

- ``chain`` — the user asks for two things, the second needing a value only the first result holds ("... Then show
  the reviews for the product id you get back."): call A → result → call B with that value → result → text answer;
- ``ask`` — the request leaves a required value open ("... to a destination ..."): the assistant asks for it in
  text, the user answers, then the call → result → text answer;
- ``summary`` — one call → result → a text answer that states values of the result.

Sample format (DESIGN §6). ``messages`` holds the whole conversation and **every assistant message is a training
and evaluation target**; ``tool_calls`` is empty (the single-turn target field is not used by this category)::

    {"id", "category": "multi_turn", "domain", "tools": [function dicts],
     "messages": [{"role": "user", "content": "..."},
                  {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {...}}]},
                  {"role": "tool", "name": "f", "content": "<the executed result as JSON text>"},
                  {"role": "assistant", "content": "text"}, ...],
     "tool_calls": [],
     "provenance": {"flow": "chain" | "ask" | "summary", "source_tools", "augmentation", "template", "seed",
                    "style", "from_results": [{"message": i, "call": j, "argument": "p",
                                               "tool_message": k, "path": ["items", 0, "sku"]}]}}

These are the message shapes :meth:`slmtune.models.families.Family.render_prompt` and the exported chat template
render (an assistant message with ``tool_calls`` renders its calls in the dialect, a ``tool`` message in the
family's tool-result markup). ``from_results`` names every argument that was taken from a tool result (message
``k``, JSON path ``path`` inside its parsed content); verification checks that it equals that value. Every tool
result is the real output of the tool's registered implementation (JSON, ``ensure_ascii=False``), re-executed and
compared at verification; results longer than ``max_result_chars`` are not used (they would not fit training).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

from slmtune.data.registry import schema_validator
from slmtune.data.synthesis import (
    Clause,
    SampleBuilder,
    ToolProfile,
    _capitalise,
    _end_sentence,
    _lower_first,
    _tidy,
    dress,
    format_number,
    realise,
)

MULTI_TURN = "multi_turn"
FLOWS = ("chain", "ask", "summary")
FLOW_WEIGHTS = (0.4, 0.3, 0.3)
MAX_RESULT_CHARS = 600

_CHAIN_JOINS = ("Then ", "After that, ", "Next, ", "Once you have that, ")
_REFERENCES = ("the {w} you get back", "the {w} from that result", "the {w} it returns")
_VAGUE = ("a {w}", "some {w}", "a certain {w}")
_ASKS = ("Which {w} should I use?", "Sure. What {w} do you have in mind?", "I need the {w} first. What is it?",
         "Could you tell me the {w}?")
_ANSWERS = ("{v}.", "It's {v}.", "Use {v}.", "{v}, please.")
_SUMMARY_OPENERS = ("Here is what I found: ", "Done. ", "The result: ", "Got it. ")


def is_conversation(sample: Mapping[str, Any]) -> bool:
    """Whether ``sample`` is a multi-turn conversation (its assistant messages are the targets)."""
    return sample.get("category") == MULTI_TURN


def result_text(result: Any) -> str:
    """A tool result as the ``tool`` message's content: JSON text (raises ``ValueError``/``TypeError`` when the
    result is not JSON-serialisable)."""
    return json.dumps(result, ensure_ascii=False, allow_nan=False)


def leaves(value: Any, path: tuple = (), max_items: int = 5) -> Iterator[tuple[tuple, Any]]:
    """``(path, scalar)`` for every scalar inside a JSON value (the first ``max_items`` of each array)."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from leaves(sub, path + (key,), max_items)
    elif isinstance(value, list):
        for i, sub in enumerate(value[:max_items]):
            yield from leaves(sub, path + (i,), max_items)
    else:
        yield path, value


def value_at(value: Any, path: list | tuple) -> Any:
    """The value at ``path`` inside a JSON value (``KeyError`` when it is not there)."""
    for key in path:
        if isinstance(value, dict) and isinstance(key, str) and key in value:
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(value):
            value = value[key]
        else:
            raise KeyError(key)
    return value


def _words(name: Any) -> str:
    return str(name).replace("_", " ").replace(".", " ").strip()


def _say(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, (int, float)):
        return format_number(value)
    return str(value)


def summarise_result(result: Any, rng: random.Random) -> str:
    """A short text answer stating up to three values of ``result`` (top-level values first), verbatim."""
    found = list(leaves(result))
    if not found:
        return "The call returned no results."
    if found == [((), result)]:
        return f"The result is {_say(result)}."
    found.sort(key=lambda item: (len(item[0]), isinstance(item[1], bool) or item[1] is None))
    parts = []
    for path, value in found[:3]:
        label = next((k for k in reversed(path) if isinstance(k, str)), "value")
        parts.append(f"{_words(label)}: {_say(value)}")
    return rng.choice(_SUMMARY_OPENERS) + "; ".join(parts) + "."


def _execute(profile: ToolProfile, arguments: Mapping[str, Any], limit: int) -> tuple[Any, str] | None:
    implementation = profile.tool.implementation
    if implementation is None:
        return None
    try:
        result = implementation(**dict(arguments))
        text = result_text(result)
    except Exception:  # noqa: BLE001 - a call that does not execute yields no conversation
        return None
    return (result, text) if len(text) <= limit else None


def _single_placeholder(clause_template, param: str) -> bool:
    return clause_template.fields.get(param, ()) is None and \
        sum(1 for p in clause_template.parts if isinstance(p, tuple) and p[0] == param) == 1


class ConversationBuilder:
    """Builds ``multi_turn`` samples from a :class:`~slmtune.data.synthesis.SampleBuilder`'s tool pool (the same
    split's tools, variants and distractors). ``build(seed)`` is deterministic given the seed and the pool."""

    def __init__(self, builder: SampleBuilder, max_result_chars: int = MAX_RESULT_CHARS) -> None:
        self.builder = builder
        self.max_result_chars = max_result_chars
        self.executable = [s for s in builder.answerable if s.original.tool.implementation is not None]
        self._validators: dict[int, Any] = {}
        self._chain_sources: list | None = None

    def chain_sources(self) -> list:
        """The executable tools whose results fed another tool of their domain in a probe (a fixed seed per tool):
        the first tools of ``chain`` conversations (a random tool's result rarely holds a value another takes)."""
        if self._chain_sources is None:
            found = []
            for source in self.executable:
                rng = random.Random(f"chain:{source.name}")
                if any(self._chain(rng, source) is not None for _ in range(6)):
                    found.append(source)
            self._chain_sources = found
        return self._chain_sources

    def build(self, seed: int, rng: random.Random | None = None) -> dict[str, Any] | None:
        rng = rng or random.Random(seed)
        if not self.executable:
            return None
        flow = rng.choices(FLOWS, FLOW_WEIGHTS)[0]
        built = None
        if flow == "chain" and self.chain_sources():
            for _ in range(6):      # a tool's results hold a value another tool takes only for some arguments
                built = self._chain(rng, rng.choice(self.chain_sources()))
                if built is not None:
                    break
        elif flow == "ask":
            built = self._ask(rng)
        if built is None:
            flow, built = "summary", self._summary(rng)
        if built is None:
            return None
        messages, used, clauses, domain, refs = built
        b = self.builder
        k = rng.randint(0, 1)
        offered = list(used)
        if k:
            names = [p.source for p in used]
            offered += [b._variant(d, rng) for d in b._distractors(
                rng, k, set(names), domain, b.config.same_domain_distractor_probability, answers=names)]
        rng.shuffle(offered)
        if len({p.name for p in offered}) != len(offered):
            return None
        system = b._system_message(rng)
        if system is not None:
            messages.insert(0, system)
            refs = [{**r, "message": r["message"] + 1, "tool_message": r["tool_message"] + 1} for r in refs]
        return {
            "id": f"{seed:x}",
            "category": MULTI_TURN,
            "domain": domain,
            "tools": [p.function for p in offered],
            "messages": messages,
            "tool_calls": [],
            "provenance": {
                "flow": flow,
                "source_tools": [p.source for p in offered],
                "augmentation": sorted({op for p in offered for op in p.ops}),
                "template": [f"{c.profile.source}#{c.template.index}" for c in clauses],
                "style": flow,
                "seed": seed,
                "from_results": refs,
            },
        }

    # -- pieces --------------------------------------------------------------------------------------------------

    def _profile(self, source, rng: random.Random) -> ToolProfile:
        profile = self.builder._variant(source, rng)
        return profile if profile.templates and profile.tool.implementation is not None else source.original

    def _first_call(self, rng: random.Random, source=None) -> tuple[Any, ToolProfile, Clause, Any, str] | None:
        source = source or rng.choice(self.executable)
        profile = self._profile(source, rng)
        clause = realise(profile, rng)
        if clause is None:
            return None
        executed = _execute(profile, clause.calls[0]["arguments"], self.max_result_chars)
        if executed is None:
            return None
        return source, profile, clause, executed[0], executed[1]

    def _valid_for(self, profile: ToolProfile, param: str, value: Any) -> bool:
        schema = profile.tool.properties.get(param, {})
        key = id(schema)
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = (schema, schema_validator(schema))
        return validator[1].is_valid(value)

    @staticmethod
    def _messages_for_call(call: dict, result: str) -> list[dict]:
        return [{"role": "assistant", "tool_calls": [call]}, {"role": "tool", "name": call["name"], "content": result}]

    # -- flows ---------------------------------------------------------------------------------------------------

    def _summary(self, rng: random.Random):
        first = self._first_call(rng)
        if first is None:
            return None
        source, profile, clause, result, text = first
        messages = [{"role": "user", "content": dress(clause.text, rng, clause)},
                    *self._messages_for_call(clause.calls[0], text),
                    {"role": "assistant", "content": summarise_result(result, rng)}]
        return messages, [profile], [clause], source.domain, []

    def _chain(self, rng: random.Random, source):
        first = self._first_call(rng, source)
        if first is None:
            return None
        source, profile, clause, result, text = first
        echoed = {json.dumps(v, sort_keys=True) for _, v in leaves(clause.calls[0]["arguments"], max_items=100)}
        candidates = [(path, value) for path, value in leaves(result)
                      if ((isinstance(value, str) and 2 <= len(value) <= 60)
                          or (isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 100))
                      and json.dumps(value, sort_keys=True) not in echoed]
        if not candidates:
            return None
        by_value: dict[str, list[tuple]] = {}
        for path, value in candidates:
            by_value.setdefault(json.dumps(value), []).append(path)
        options = []
        for other in self.builder.answerable_by_domain.get(source.domain, []):
            if other.name == source.name or other.original.tool.implementation is None:
                continue
            target = self._profile(other, rng)
            for template in target.templates:
                for param in template.params:
                    if not _single_placeholder(template, param) or template.parts[0] == (param, ()):
                        continue    # (a reference cannot open the sentence: "the id you get back: ...")
                    known = {json.dumps(v) for v in target.values.get(param, [])}
                    for key, paths in by_value.items():
                        for path in paths:
                            named = isinstance(path[-1], str) and path[-1] == param if path else False
                            if (key in known or named) and self._valid_for(target, param, json.loads(key)):
                                options.append((target, template, param, path, json.loads(key)))
        if not options:
            return None
        target, template, param, path, value = rng.choice(options)
        chosen = target._pick_indices(template, rng)
        if chosen is None:
            return None
        label = next((k for k in reversed(path) if isinstance(k, str)), param)
        reference = rng.choice(_REFERENCES).format(w=_words(label))
        second_text = target.render(template, chosen, rng, override={param: reference})
        arguments = target.arguments(template, chosen)
        arguments[param] = value
        second = Clause(second_text, [{"name": target.name, "arguments": arguments}], target, template)
        executed = _execute(target, arguments, self.max_result_chars)
        if executed is None:
            return None
        first_text = _end_sentence(clause.text, clause.template.question)
        joined = (_capitalise(first_text) + " " + rng.choice(_CHAIN_JOINS)
                  + _lower_first(_end_sentence(second_text, template.question), template.starts_with_placeholder))
        from slmtune.data.verification import _UserText
        said = _UserText(joined)
        if said.contains(str(value)) or (isinstance(value, int) and float(value) in said.numbers):
            return None               # the user states the value: it would not be taken from the result
        messages = [{"role": "user", "content": _tidy(joined)},
                    *self._messages_for_call(clause.calls[0], text),
                    *self._messages_for_call(second.calls[0], executed[1]),
                    {"role": "assistant", "content": summarise_result(executed[0], rng)}]
        refs = [{"message": 3, "call": 0, "argument": param, "tool_message": 2, "path": list(path)}]
        return messages, [profile, target], [clause, second], source.domain, refs

    def _ask(self, rng: random.Random):
        source = rng.choice(self.executable)
        profile = source.original          # readable parameter names: the assistant asks for one by name
        options = [(t, p) for t in profile.templates for p in t.params
                   if p in profile.tool.required and _single_placeholder(t, p)]
        if not options:
            return None
        template, param = rng.choice(options)
        chosen = profile._pick_indices(template, rng)
        if chosen is None:
            return None
        words = _words(param)
        request = profile.render(template, chosen, rng, override={param: rng.choice(_VAGUE).format(w=words)})
        phrase = rng.choice(profile.phrases[param][chosen[param]])
        from slmtune.data.verification import _UserText
        if _UserText(request).contains(phrase):
            return None               # the request already says the value: nothing to ask
        arguments = profile.arguments(template, chosen)
        executed = _execute(profile, arguments, self.max_result_chars)
        if executed is None:
            return None
        clause = Clause(request, [{"name": profile.name, "arguments": arguments}], profile, template)
        messages = [{"role": "user", "content": dress(request, rng, clause)},
                    {"role": "assistant", "content": rng.choice(_ASKS).format(w=words)},
                    {"role": "user", "content": rng.choice(_ANSWERS).format(v=phrase)},
                    *self._messages_for_call(clause.calls[0], executed[1]),
                    {"role": "assistant", "content": summarise_result(executed[0], rng)}]
        return messages, [profile], [clause], source.domain, []
