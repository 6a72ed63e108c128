"""Per-request confidence signals: one definition for slmtune's decoder and for OpenAI-compatible servers.

Pure Python (stdlib only): :mod:`slmtune.router` re-exports :func:`signals_from_openai`, and neither imports torch
or numpy. The eval stage computes the same signals from its decoder's token records through :func:`token_signals`,
so a router fitted on eval predictions reads server responses with the same meaning.

Which distribution. Every log-probability is of the **grammar-masked** next-token distribution (log-softmax over
the tokens the request's grammar allows, in float32, before temperature or penalties): slmtune's decoder records it
(``TokenRecord.logprob``/``top_logprobs``), and vLLM returns it by default, because vLLM applies the structured
output bitmask to the logits before its sampler computes log-probs (``--logprobs-mode raw_logprobs``, the default;
``processed_logprobs`` would add penalties and temperature: do not set it). Tokens the grammar forbids come back
from vLLM as ``-9999.0`` (``-inf`` clamped); both are read as "not allowed". A request served **without** the
slmtune grammar (no ``structured_outputs`` grammar, or ``tool_choice`` ``required``/named, where vLLM constrains
only its own wrapper) gets unmasked log-probs: the signals are then computed on another distribution than the
router was fitted on, and its decisions are not those it was calibrated for.

The signals (:data:`SIGNAL_NAMES`), over the tokens the model *chose* -- tokens at whose step the grammar allowed at
least two tokens (a token fed by slmtune's jump-forward, or the only token the grammar allowed, is forced):

- ``seq_logprob``: sum of the chosen tokens' log-probs; ``mean_logprob``: their mean.
- ``mean_value_logprob`` / ``min_value_logprob``: mean / min over the chosen tokens that overlap an argument value
  (the dialect's :meth:`spans`; every chosen token when the answer has no values).
- ``decision_margin``: top-1 minus top-2 log-prob at the first chosen token (``FORCED_MARGIN`` when none).
- ``name_entropy`` / ``name_margin``: at the first chosen token of a function name, the entropy of the top-``k``
  masked log-probs, ``-sum(exp(l) * l)`` over the ``k = SIGNAL_TOP_K = 20`` likeliest allowed tokens (OpenAI's
  ``top_logprobs`` maximum; exact whenever the grammar allows at most 20 tokens there, else a lower bound), and
  the top-1 minus top-2 margin; ``0.0`` / ``FORCED_MARGIN`` when no name token was chosen.
- ``num_calls``: calls the dialect parses from the output text; ``truncated``: 1.0 when the answer ran out of
  tokens (slmtune: before the answer ended; OpenAI: ``finish_reason == "length"``).

Server side (vLLM)::

    vllm serve ./merged --enable-auto-tool-choice --tool-call-parser hermes      # the model card's command
    response = client.chat.completions.create(model=..., messages=..., tools=tools, tool_choice="auto",
        temperature=0, logprobs=True, top_logprobs=20,
        extra_body={"structured_outputs": {"grammar": grammar}})
    signals = signals_from_openai(response, dialect="hermes", stop_tokens=["<end_of_turn>"])
    use_slm, p = Router.load("router.json").decide(signals)

(``Router.signals_from_openai(response)`` passes the arguments recorded in router.json's
``fitted_on.openai_signals``.) Streaming responses carry the log-probs chunk by chunk: concatenate the chunks'
``logprobs.content`` lists into one non-streaming-shaped response first.

A live server's answer need not be token-for-token the decoder's: by default slmtune's decoder jumps forward over
text the grammar forces (tokenising it itself, and those tokens are not the model's choices), steers answers to close
near ``eval.max_new_tokens`` and cuts plain-text answers after ``eval.max_text_tokens`` tokens (``max_text_tokens``
below mirrors that cut); vLLM samples every token. The signals agree exactly on equal token sequences (tested);
``eval.jump_forward=false eval.closing_reserve=0`` makes the decoder write what a greedy vLLM request writes (up to
floating-point differences between the two runtimes, and except that the decoder never repeats an item of a
``uniqueItems`` array). Where the tokenisations differ the signals differ a little
(chiefly ``mean_logprob``, ``decision_margin`` and ``mean_value_logprob``, which then count structural tokens the
decoder skipped); ``calibrate.predictions`` accepts recorded server responses to refit the router on them.
"""

from __future__ import annotations

import codecs
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FORCED_MARGIN",
    "NOT_ALLOWED",
    "SIGNAL_NAMES",
    "SIGNAL_TOP_K",
    "OpenAIResponseError",
    "TokenView",
    "is_text_answer",
    "signals_from_openai",
    "token_signals",
    "tokens_from_openai",
]

SIGNAL_NAMES = ("seq_logprob", "mean_logprob", "mean_value_logprob", "min_value_logprob", "decision_margin",
                "name_entropy", "name_margin", "num_calls", "truncated")
# A grammar-forced choice has no model uncertainty; its margin is reported as this cap (nats).
FORCED_MARGIN = 30.0
# The top log-probs a signal may use at one step: OpenAI's (and vLLM's default --max-logprobs) maximum.
SIGNAL_TOP_K = 20
# vLLM writes -inf (a token the grammar forbids) as -9999.0; a log-prob at or below this is "not allowed".
NOT_ALLOWED = -9999.0


class OpenAIResponseError(ValueError):
    """A chat completion cannot give the router's signals (no log-probs, too few top log-probs, ...)."""


@dataclass(frozen=True)
class TokenView:
    """One output token as the signals see it: its characters ``text[start:end]``, the grammar-masked log-prob of
    the token and the top-k masked log-probs at its step (descending; ``()`` for a jump-forward token)."""

    start: int
    end: int
    logprob: float | None
    top_logprobs: tuple[float, ...] = ()
    forced: bool = False  # fed by jump-forward, not sampled

    @property
    def chosen(self) -> bool:
        """The model chose this token: sampled at a step where the grammar allowed at least two tokens."""
        return not self.forced and sum(lp > NOT_ALLOWED for lp in self.top_logprobs[:2]) == 2

    def margin(self) -> float:
        """Top-1 minus top-2 log-prob of a chosen token."""
        return self.top_logprobs[0] - self.top_logprobs[1]

    def entropy(self, k: int = SIGNAL_TOP_K) -> float:
        """``-sum(p * log p)`` over the top-``k`` allowed tokens at this step."""
        return -sum(math.exp(lp) * lp for lp in self.top_logprobs[:k] if lp > NOT_ALLOWED)


def token_signals(tokens: Sequence[TokenView], spans: Iterable, num_calls: int, truncated: bool,
                  k: int = SIGNAL_TOP_K) -> dict[str, float]:
    """The signals of :data:`SIGNAL_NAMES` from an answer's tokens and the dialect's spans of its names and values
    (objects with ``start``, ``end`` and ``kind`` ``"name"``/``"value"``; empty when the answer has no calls)."""
    spans = list(spans)
    chosen = [t for t in tokens if t.chosen]
    value_spans = [(s.start, s.end) for s in spans if s.kind == "value"]
    name_spans = [(s.start, s.end) for s in spans if s.kind == "name"]

    def overlaps(token: TokenView, ranges: list[tuple[int, int]]) -> bool:
        return any(token.start < end and token.end > start for start, end in ranges)

    logprobs = [t.logprob for t in chosen]
    values = [t.logprob for t in chosen if overlaps(t, value_spans)] if value_spans else logprobs
    name_token = next((t for t in chosen if overlaps(t, name_spans)), None)
    return {
        "seq_logprob": sum(logprobs),
        "mean_logprob": statistics.fmean(logprobs) if logprobs else 0.0,
        "mean_value_logprob": statistics.fmean(values) if values else 0.0,
        "min_value_logprob": min(values) if values else 0.0,
        "decision_margin": chosen[0].margin() if chosen else FORCED_MARGIN,
        # a name the grammar forced entirely (one offered tool) carries no model uncertainty
        "name_entropy": name_token.entropy(k) if name_token else 0.0,
        "name_margin": name_token.margin() if name_token else FORCED_MARGIN,
        "num_calls": float(num_calls),
        "truncated": float(truncated),
    }


def is_text_answer(text: str, call_trigger: str) -> bool:
    """True once ``text`` can no longer become a call: it neither starts with the dialect's ``call_trigger`` nor is
    a prefix of it (the decoder's test for cutting a plain-text answer)."""
    stripped = text.lstrip()
    return bool(stripped) and not stripped.startswith(call_trigger) and not call_trigger.startswith(stripped)


# ------------------------------------------------------------------------------------------------ OpenAI side
def _get(obj: Any, key: str, where: str, required: bool = True) -> Any:
    if not isinstance(obj, Mapping):
        raise OpenAIResponseError(f"{where}: expected an object, got {type(obj).__name__}")
    if required and obj.get(key) is None:
        raise OpenAIResponseError(f"{where}.{key} is missing")
    return obj.get(key)


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        raise OpenAIResponseError(f"{where} must be a number, got {v!r}")
    return float(v)


def _token_bytes(entry: Mapping, where: str) -> bytes:
    """The token's bytes: ``bytes`` when given (OpenAI: the raw bytes, a piece of a character for a byte-fallback
    token; vLLM: the UTF-8 of its ``token`` text, which it leaves empty until the token completing a character),
    else the UTF-8 of ``token``."""
    raw = entry.get("bytes")
    if raw is None:
        token = _get(entry, "token", where)
        if not isinstance(token, str):
            raise OpenAIResponseError(f"{where}.token must be a string, got {type(token).__name__}")
        return token.encode("utf-8")
    if not isinstance(raw, list) or not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256
                                            for b in raw):
        raise OpenAIResponseError(f"{where}.bytes must be a list of byte values 0-255")
    return bytes(raw)


def _choice(response: Any, index: int) -> Mapping:
    if hasattr(response, "model_dump") and not isinstance(response, Mapping):  # openai-python's ChatCompletion
        response = response.model_dump()
    choices = _get(response, "choices", "response")
    if not isinstance(choices, list) or len(choices) <= index:
        raise OpenAIResponseError(f"response.choices has no choice {index}")
    return choices[index]


def tokens_from_openai(response: Any, *, stop_tokens: Iterable[str] = (), top_k: int = SIGNAL_TOP_K,
                       choice: int = 0) -> tuple[str, list[TokenView], bool]:
    """``(text, tokens, truncated)`` of one choice of an OpenAI-compatible chat completion (a dict as the JSON
    decodes, or an ``openai`` ``ChatCompletion``) requested with ``logprobs=true, top_logprobs=top_k``.

    The text is rebuilt from the tokens' bytes (a server's ``message.content`` is the text *after* its tool parser
    took the calls out); each character belongs to the token that holds its last byte. When the answer stopped
    (``finish_reason == "stop"``) a final token in ``stop_tokens`` (the end-of-turn token, which vLLM lists in the
    log-probs but not in the text) or without any text (a stop token a server decodes to nothing) is left out, as
    slmtune's decoder leaves out the stop token."""
    where = f"response.choices[{choice}]"
    entry0 = _choice(response, choice)
    logprobs = _get(entry0, "logprobs", where, required=False)
    if logprobs is None:
        raise OpenAIResponseError(f"{where}.logprobs is missing: request logprobs=true and top_logprobs={top_k}")
    content = _get(logprobs, "content", f"{where}.logprobs", required=False)
    if content is None:
        raise OpenAIResponseError(f"{where}.logprobs.content is missing: request logprobs=true and "
                                  f"top_logprobs={top_k}")
    if not isinstance(content, list):
        raise OpenAIResponseError(f"{where}.logprobs.content must be a list, got {type(content).__name__}")
    finish = entry0.get("finish_reason")
    stops = set(stop_tokens)
    if finish == "stop" and content and isinstance(content[-1], Mapping) and (
            content[-1].get("token") in stops or (content[-1].get("token") == "" and not content[-1].get("bytes"))):
        content = content[:-1]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces: list[str] = []
    tokens: list[TokenView] = []
    offset = 0
    for i, entry in enumerate(content):
        at = f"{where}.logprobs.content[{i}]"
        token = _get(entry, "token", at)
        if isinstance(token, str) and token.startswith("token_id:") and token[9:].isdigit():
            raise OpenAIResponseError(f"{at}.token is {token!r}: the server returns token ids "
                                      "(--return-tokens-as-token-ids); serve without it to get the token text")
        logprob = _number(_get(entry, "logprob", at), f"{at}.logprob")
        top = _get(entry, "top_logprobs", at, required=False)
        if not isinstance(top, list) or len(top) < 2:
            n = len(top) if isinstance(top, list) else 0
            raise OpenAIResponseError(f"{at}.top_logprobs has {n} entries; the router's signals need the top "
                                      f"{top_k}: request top_logprobs={top_k}")
        values = sorted((_number(_get(t, "logprob", f"{at}.top_logprobs[{j}]"), f"{at}.top_logprobs[{j}].logprob")
                         for j, t in enumerate(top)), reverse=True)
        if len(values) < top_k and values[-1] > NOT_ALLOWED:  # more allowed tokens may exist beyond those listed
            raise OpenAIResponseError(f"{at}.top_logprobs has {len(values)} entries; the router's signals need the "
                                      f"top {top_k}: request top_logprobs={top_k} (vLLM: --max-logprobs >= {top_k})")
        piece = decoder.decode(_token_bytes(entry, at))
        if i == len(content) - 1:
            piece += decoder.decode(b"", final=True)
        pieces.append(piece)
        tokens.append(TokenView(offset, offset + len(piece), logprob, tuple(values[:top_k])))
        offset += len(piece)
    return "".join(pieces), tokens, finish == "length"


def signals_from_openai(response: Any, *, dialect: Any, stop_tokens: Iterable[str] = (),
                        max_text_tokens: int | None = None, top_k: int = SIGNAL_TOP_K,
                        choice: int = 0) -> dict[str, float]:
    """The router's signals (:data:`SIGNAL_NAMES`) from an OpenAI-compatible chat completion.

    ``response``: the completion (dict or ``openai`` object) of a request sent with ``logprobs=true``,
    ``top_logprobs=top_k`` and the slmtune grammar (see the module docstring for the vLLM request).
    ``dialect``: the export's tool-call dialect (``"hermes"``, ``"llama3_json"``, ``"phi4_mini_json"``,
    ``"pythonic"``; the model card names it), used to parse calls and find names and values in the text.
    ``stop_tokens``: the model's end-of-turn token(s), e.g. ``["<end_of_turn>"]``, left out when they end the answer.
    ``max_text_tokens``: the eval's ``eval.max_text_tokens`` (24 by default) for a router fitted on eval predictions:
    slmtune's decoder cuts a plain-text answer there (``text_cut``, not truncated) while a server writes it to the
    end, so a text answer's signals are taken over its first ``max_text_tokens`` tokens, as the decoder's were;
    ``None`` (a router fitted on server responses) takes every token.
    Raises :class:`OpenAIResponseError` when the response lacks what the signals need."""
    from slmtune.models.dialects import get_dialect  # pure Python; imported here to keep `slmtune.router` light

    if max_text_tokens is not None and (isinstance(max_text_tokens, bool) or not isinstance(max_text_tokens, int)
                                        or max_text_tokens < 1):
        raise ValueError(f"max_text_tokens must be a positive integer or None, got {max_text_tokens!r}")
    try:
        d = get_dialect(dialect)
    except ValueError as err:
        raise OpenAIResponseError(str(err)) from None
    text, tokens, truncated = tokens_from_openai(response, stop_tokens=stop_tokens, top_k=top_k, choice=choice)
    if max_text_tokens is not None and len(tokens) > max_text_tokens:
        head = text[:tokens[max_text_tokens - 1].end]
        if is_text_answer(head, d.call_trigger):
            text, tokens, truncated = head, tokens[:max_text_tokens], False
    parsed = d.parse(text)
    spans = d.spans(text) if parsed.calls and not parsed.error else []
    return token_signals(tokens, spans, len(parsed.calls), truncated, k=top_k)
