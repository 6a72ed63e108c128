"""Batched greedy decoding with XGrammar masks, jump-forward, and per-token confidence data.

The loop is our own (not ``model.generate``) so that it can (a) jump forward over text the grammar forces, feeding
several tokens in one forward pass, (b) keep per-token log-probabilities and top-2 margin of the model's
grammar-masked distribution (the top ``SIGNAL_TOP_K`` log-probs, what an OpenAI-compatible server returns) without
materialising every step's logits, and (c) keep constrained answers finite and
complete:

- a plain-text (no-call) answer is cut after ``max_text_tokens`` tokens once it can no longer become a call (its
  prose is not scored; BFCL only asks whether a call was made) and marked ``text_cut``;
- a constrained answer ends wherever the grammar allows ending (after a complete call) once another call would
  not fit: when fewer tokens remain than its longest call so far plus ``closing_reserve``, or than twice
  ``closing_reserve``; within ``closing_reserve`` tokens of ``max_new_tokens``, or earlier when closing from where
  the answer stands would take longer (simulated on a fork of its grammar matcher, at steps that halve the slack),
  the decoder also steers it to close, taking the longest allowed token made only of closing characters (quotes,
  then brackets, then separators, else a token after which one of those may follow). Such answers are marked
  ``closed_early``; one that still runs out is ``truncated``;
- an array with ``uniqueItems`` (marked by the grammar with XGrammar captures) never gets an item that repeats an
  earlier one: the token that would complete the repeat is banned and the choice made again.

With ``prefix_cache`` a single-request batch whose prompt extends the previous one (an agent's next step) continues
that prompt's KV cache and prefills only the new tokens.

Usage::

    decoder = Decoder(model, tokenizer, stop_strings=["<end_of_turn>"], max_new_tokens=192,
                      call_trigger="<tool_call>", max_text_tokens=24, closing_reserve=16)
    outputs = decoder.generate([DecodeRequest(prompt, grammar_ebnf), DecodeRequest(prompt2, None)], batch_size=8)
"""

from __future__ import annotations

import copy
import math
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch

from slmtune.eval.grammar import UNIQUE_ITEM_CAPTURE, repeated_unique_items
from slmtune.route.signals import FORCED_MARGIN, SIGNAL_TOP_K, is_text_answer

# Tokens the decoder prefers when it steers an answer to close, best first: a quote (inside a string, brackets are
# content and only the quote closes; every dialect writes strings JSON-style, so "'" is content too), brackets, then
# a separator (it moves on to the next required key).
CLOSING_TIERS = (frozenset('"'), frozenset("]})"), frozenset(","))
# Tokens of slack on top of the simulated closing length before the decoder starts steering an answer to close.
CLOSING_MARGIN = 4
# At most this many allowed tokens are tried on a fork for whether a closing token may follow them.
CLOSING_LOOKAHEAD = 64
# Tokens banned at most, per step, for completing a repeated item of a uniqueItems array.
MAX_REPEAT_BANS = 16
# Length given to tokens without text (special tokens), so that the closing simulation never picks them.
TOKEN_LENGTH_NEVER = 1 << 20
# Where the decoder's grammar bookkeeping lives (XGrammar fills bitmasks in host memory); everything fed to the model
# or combined with its logits is built on the model's device instead.
HOST = torch.device("cpu")


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX); emulated bf16 is ~100x slower."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Map a precision setting (auto | bf16 | fp16 | fp32) to a dtype for ``device``."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def closing_token_tiers(decoded_vocab: list[bytes]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Tokens made only of closing characters, one ``(ids, lengths)`` pair per tier of ``CLOSING_TIERS``.

    A token without a separator belongs to the tier of its first character (``"}}`` closes a string and two objects:
    a quote token); one with a separator to the separator tier (``",`` opens the next key, a lone ``"`` would not)."""
    allowed = frozenset().union(*CLOSING_TIERS)
    tiers: list[list[tuple[int, int]]] = [[] for _ in CLOSING_TIERS]
    for token_id, piece in enumerate(decoded_vocab):
        text = piece.decode("utf-8", "replace")
        if text and set(text) <= allowed:
            last = len(CLOSING_TIERS) - 1
            tier = last if CLOSING_TIERS[last] & set(text) else next(
                k for k, chars in enumerate(CLOSING_TIERS) if text[0] in chars)
            tiers[tier].append((token_id, len(text)))
    return [(torch.tensor([i for i, _ in tier], dtype=torch.long, device=HOST),
             torch.tensor([n for _, n in tier], device=HOST)) for tier in tiers]


def host_bitmask(batch: int, vocab_size: int) -> torch.Tensor:
    """An all-allowed XGrammar token bitmask in host memory, where ``GrammarMatcher.fill_next_token_bitmask`` writes
    (``xgrammar.allocate_token_bitmask`` without relying on the default device)."""
    import xgrammar as xgr

    return torch.full(xgr.get_bitmask_shape(batch, vocab_size), -1, dtype=xgr.bitmask_dtype, device=HOST)


def apply_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """A copy of ``logits`` with the tokens ``bitmask`` disallows set to -inf.

    XGrammar fills the bitmask on the CPU and applies it only where logits and bitmask share a device (its CUDA
    kernel on a GPU): the bitmask is copied to the logits' device first (no copy when both are on the CPU)."""
    import xgrammar as xgr

    masked = logits.clone()
    xgr.apply_token_bitmask_inplace(masked, bitmask.to(logits.device))
    return masked


def _accept(matcher, token: int) -> None:
    """Feed an allowed token to an XGrammar matcher (refusing it would be a bug of ours or of XGrammar's)."""
    if not matcher.accept_token(token):
        raise RuntimeError(f"grammar rejected its own allowed token {token}")


def decode_batches(requests: list[DecodeRequest], batch_size: int) -> list[list[int]]:
    """The indices of ``requests`` that :meth:`Decoder.generate` decodes together, batch by batch: sorted by prompt
    length (less padding; stable, so equal lengths keep their order) and cut every ``batch_size``.

    Greedy answers can flip with the batch a request is decoded in (padding changes the float sums), so a
    re-decoding meant to reproduce them passes one of these batches, in its original order, as a single batch.
    """
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt))
    return [order[begin:begin + batch_size] for begin in range(0, len(order), batch_size)]


@dataclass
class DecodeRequest:
    prompt: str
    grammar: str | None = None  # XGrammar EBNF with a `root` rule; None = unconstrained


@dataclass
class TokenRecord:
    """One output token: its character span in the text and the model's view of it."""

    start: int
    end: int
    forced: bool            # fed by jump-forward, not chosen by the model
    logprob: float | None   # log p(token) under the grammar-masked distribution
    raw_logprob: float | None  # log p(token) under the model's own distribution
    margin: float | None    # top-1 minus top-2 log-probability of the masked distribution
    top_logprobs: tuple[float, ...] = ()  # the SIGNAL_TOP_K largest masked log-probs, descending (-inf: forbidden)
    token_id: int | None = None


@dataclass
class Generation:
    text: str
    output_tokens: int
    forced_tokens: int
    truncated: bool         # hit max_new_tokens before the answer ended
    latency_s: float
    batch_size: int
    tokens: list[TokenRecord] = field(default_factory=list)
    text_cut: bool = False      # a no-call text answer, cut after max_text_tokens
    closed_early: bool = False  # steered to close as the token budget ran out
    stop_margin: float | None = None  # top-2 margin of the step that chose the stop token ending the answer


@dataclass
class PrefixCacheStats:
    """How often :class:`Decoder`'s prefix cache served a single-request prompt (a hit: the prompt extended the
    previous one, so only its new tokens were prefilled) and how many prompt tokens were reused or prefilled."""

    hits: int = 0
    misses: int = 0
    reused_tokens: int = 0
    prefilled_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The counts and ``hit_rate`` (hits over lookups; None before any)."""
        lookups = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "hit_rate": self.hits / lookups if lookups else None,
                "reused_tokens": self.reused_tokens, "prefilled_tokens": self.prefilled_tokens}


@dataclass
class _PrefixEntry:
    """The KV cache of one prompt, exactly at its tokens, and the logits after its last token, for the model (held
    weakly) in the state ``model_state`` gave when it was computed."""

    model: weakref.ref
    state: tuple
    ids: list[int]
    cache: Any
    last_logits: torch.Tensor


def model_state(model) -> tuple:
    """What, besides the model object, decides a model's outputs and changes between calls without a new object:
    its dtype and device, and for every PEFT tuner layer whether adapters are disabled (``disable_adapter()``, how
    the eval decodes the base model under a tuned one), which adapters are active and whether they are merged."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    tuners = tuple((bool(m.disable_adapters), tuple(m.active_adapters), bool(m.merged))
                   for m in model.modules() if isinstance(m, BaseTunerLayer))
    return str(getattr(model, "dtype", None)), str(model.device), tuners


class Decoder:
    """Greedy batched decoder for a causal LM; grammars are compiled once per distinct EBNF text."""

    def __init__(self, model, tokenizer, *, stop_strings: list[str], max_new_tokens: int = 192,
                 jump_forward: bool = True, call_trigger: str | None = None, max_text_tokens: int | None = None,
                 closing_reserve: int = 0, full_logits: bool = False, prefix_cache: bool = False) -> None:
        """``call_trigger`` (the dialect's) and ``max_text_tokens`` enable cutting constrained no-call answers;
        ``closing_reserve`` > 0 enables steering constrained answers to close near ``max_new_tokens``.

        Decoding reads the logits of one position per row and forward pass, so the model is asked for only those
        (``logits_to_keep``, which transformers' causal LMs and PEFT wrappers of them accept): the vocabulary
        projection of every other prompt position is skipped. ``full_logits`` computes every position's logits
        instead (the slower reference the benchmark compares against; the answers are the same).

        ``prefix_cache`` reuses prompt prefills between single-request batches (an agent's steps, whose prompt is
        the previous prompt plus the answer, the tool results and the next turn): after a single prompt's prefill
        the decoder keeps its KV cache at exactly the prompt's tokens, and a later single prompt whose token ids
        start with those continues from a copy of it, prefilling only the new tokens; any other prompt is
        prefilled in full and replaces the entry. The entry belongs to the model object and its :func:`model_state`
        (a PEFT adapter disabled or enabled), so no other model's or state's cache is ever used; weights changed in
        place otherwise call for a fresh cache (:meth:`with_model`). Batches of several requests never use it.
        The answers are a full prefill's up to float rounding (attention summed in chunks): the same greedy tokens
        except where rounding breaks a near-tie, as between batch compositions. :attr:`prefix_cache_stats` counts
        hits and misses."""
        if max_text_tokens is not None and not call_trigger:
            raise ValueError("max_text_tokens needs the dialect's call_trigger to tell text from a call")
        if not 0 <= closing_reserve < max_new_tokens:
            raise ValueError(f"closing_reserve must be in [0, max_new_tokens), got {closing_reserve}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.jump_forward = jump_forward
        self.call_trigger = call_trigger
        self.max_text_tokens = max_text_tokens
        self.closing_reserve = closing_reserve
        self.full_logits = full_logits
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        stop_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        for text in stop_strings:
            token_id = tokenizer.convert_tokens_to_ids(text)
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise ValueError(f"stop string {text!r} is not a single token of this tokenizer")
            stop_ids.add(token_id)
        self.stop_ids = sorted(stop_ids)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self._compiler = None
        self._compiled: dict[str, object] = {}
        self._closing_ids: list[tuple[torch.Tensor, torch.Tensor]] = []  # see closing_token_tiers
        # host-side bookkeeping (indices into XGrammar's host bitmasks)
        self._token_lengths = torch.empty(0, dtype=torch.long, device=HOST)  # characters per token (_closing_length)
        self._closers = torch.empty(0, dtype=torch.long, device=HOST)  # every closing token and stop token
        self._stop_tensor = torch.tensor([i for i in self.stop_ids if i < self.vocab_size], dtype=torch.long,
                                         device=HOST)
        self._all_ids = torch.arange(self.vocab_size, device=HOST)
        self._simulation_mask = None
        self.prefix_cache = prefix_cache
        self.prefix_cache_stats = PrefixCacheStats()
        self._prefix: _PrefixEntry | None = None

    def with_model(self, model, *, prefix_cache: bool | None = None) -> Decoder:
        """A decoder with the same settings for another model of the same vocabulary (e.g. a merged copy of this
        one), sharing the compiled grammars, which can take longer to build than a short decode. Its prefix cache
        starts empty with fresh counts, on when ``prefix_cache`` says so (None: as this decoder's)."""
        if model.get_output_embeddings().weight.shape[0] != self.vocab_size:
            raise ValueError(f"with_model: the model's vocabulary ({model.get_output_embeddings().weight.shape[0]}) "
                             f"differs from this decoder's ({self.vocab_size})")
        other = copy.copy(self)
        other.model = model
        other.prefix_cache = self.prefix_cache if prefix_cache is None else prefix_cache
        other.prefix_cache_stats = PrefixCacheStats()
        other._prefix = None
        return other

    # -- grammars -------------------------------------------------------------------------------------------
    def compiled(self, ebnf: str):
        """The compiled XGrammar grammar for ``ebnf`` (cached)."""
        import xgrammar as xgr

        if self._compiler is None:
            info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.vocab_size,
                                                      stop_token_ids=self.stop_ids)
            self._compiler = xgr.GrammarCompiler(info, max_threads=2)
            self._closing_ids = closing_token_tiers(info.decoded_vocab)
            self._closers = torch.cat([ids for ids, _ in self._closing_ids] + [self._stop_tensor])
            lengths = [len(piece.decode("utf-8", "replace")) or TOKEN_LENGTH_NEVER for piece in info.decoded_vocab]
            self._token_lengths = torch.tensor((lengths + [TOKEN_LENGTH_NEVER] * self.vocab_size)[: self.vocab_size],
                                               device=HOST)
        if ebnf not in self._compiled:
            self._compiled[ebnf] = self._compiler.compile_grammar(ebnf)
        return self._compiled[ebnf]

    # -- generation -----------------------------------------------------------------------------------------
    def generate(self, requests: list[DecodeRequest], batch_size: int = 8) -> list[Generation]:
        """Decode every request greedily in the batches of :func:`decode_batches`, preserving order."""
        results: list[Generation | None] = [None] * len(requests)
        for chunk in decode_batches(requests, batch_size):
            generations = self._generate_batch([requests[i] for i in chunk])
            for index, generation in zip(chunk, generations):
                results[index] = generation
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(self, requests: list[DecodeRequest]) -> list[Generation]:
        """Decode one batch. Every tensor given to the model or combined with its logits is built on the model's
        device; the grammar bitmask is filled on the host (XGrammar) and copied over in :func:`apply_bitmask`."""
        import xgrammar as xgr

        started = time.perf_counter()
        device = self.model.device
        batch = len(requests)
        matchers = [xgr.GrammarMatcher(self.compiled(r.grammar)) if r.grammar else None for r in requests]
        guarded = [bool(r.grammar) and f'[capture="{UNIQUE_ITEM_CAPTURE}:' in r.grammar for r in requests]
        bitmask = host_bitmask(batch, self.vocab_size) if any(matchers) else None

        encoded = [self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"] for r in requests]
        if self.prefix_cache and batch == 1:
            cache, last_logits = self._prefill_reusing(encoded[0])
            mask = torch.ones((1, len(encoded[0])), dtype=torch.long, device=device)
        else:
            width = max(len(ids) for ids in encoded)
            input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long, device=device)
            mask = torch.zeros((batch, width), dtype=torch.long, device=device)
            for row, ids in enumerate(encoded):  # left padding
                input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long, device=device)
                mask[row, width - len(ids):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             **self._keep(1))
            cache = out.past_key_values
            last_logits = out.logits[:, -1, :].float()  # left padding: every row's last prompt token is last
        next_position = mask.sum(-1)  # position of each row's next token

        generated: list[list[int]] = [[] for _ in range(batch)]
        records: list[list[dict]] = [[] for _ in range(batch)]
        done = [False] * batch
        truncated = [False] * batch
        text_cut = [False] * batch
        closed_early = [False] * batch
        stop_margin: list[float | None] = [None] * batch
        steering = [False] * batch  # steered to close from now on
        next_check = [self.max_new_tokens] * batch  # remaining budget at which to simulate the closing tail again
        text_checked = [False] * batch
        last_stop_at = [0] * batch  # output length where the answer last could have ended
        longest_call = [0] * batch  # longest stretch between two such points (a call, for call answers)

        while not all(done):
            logits = last_logits[:, : self.vocab_size]
            self._check_finite(logits, done)
            raw_logp = torch.log_softmax(logits, dim=-1)
            if bitmask is not None:
                for row, matcher in enumerate(matchers):
                    if matcher is not None and not done[row]:
                        matcher.fill_next_token_bitmask(bitmask, row)
                    else:
                        bitmask[row].fill_(-1)  # all allowed
                masked = apply_bitmask(logits, bitmask)
                masked_logp = torch.log_softmax(masked, dim=-1)
            else:
                masked, masked_logp = logits, raw_logp
            top = masked_logp.topk(min(SIGNAL_TOP_K, self.vocab_size), dim=-1)
            top_values = top.values.to(HOST).tolist()

            step_tokens: list[list[int]] = [[] for _ in range(batch)]
            for row in range(batch):
                if done[row]:
                    continue
                token = int(top.indices[row, 0])
                remaining = self.max_new_tokens - len(generated[row])
                if matchers[row] is not None and self.closing_reserve:
                    if not steering[row] and remaining <= self.closing_reserve:
                        steering[row] = True
                    elif not steering[row] and remaining <= next_check[row]:
                        # steer once the closing tail would not fit; else look again halfway to that point
                        needed = self._closing_length(matchers[row], remaining) + CLOSING_MARGIN
                        steering[row] = remaining <= needed
                        next_check[row] = needed + (remaining - needed) // 2
                    if steering[row]:
                        steered = self._closing_choice(masked[row], matchers[row])
                    else:
                        steered = self._allowed_stop(masked[row])
                        if steered is not None:  # the answer may end here: is there room for another call?
                            longest_call[row] = max(longest_call[row], len(generated[row]) - last_stop_at[row])
                            last_stop_at[row] = len(generated[row])
                            if remaining > max(2 * self.closing_reserve, longest_call[row] + self.closing_reserve):
                                steered = None
                    if steered is not None and steered != token:
                        token, closed_early[row] = steered, True
                margin = float(top.values[row, 0] - top.values[row, 1])
                margin = margin if math.isfinite(margin) else FORCED_MARGIN
                if token in self.stop_ids:
                    done[row] = True
                    stop_margin[row] = margin
                    continue
                if guarded[row]:
                    token = self._accept_unrepeated(matchers[row], token, masked[row], steering[row])
                elif matchers[row] is not None:
                    _accept(matchers[row], token)
                records[row].append({"id": token, "forced": False, "logprob": float(masked_logp[row, token]),
                                     "raw_logprob": float(raw_logp[row, token]), "margin": margin,
                                     "top_logprobs": tuple(top_values[row])})
                step_tokens[row].append(token)
                generated[row].append(token)
                if matchers[row] is not None and matchers[row].is_terminated():
                    done[row] = True
                    continue
                if self.jump_forward and matchers[row] is not None:
                    forced = self._forced_tokens(matchers[row], self.max_new_tokens - len(generated[row]))
                    for forced_token in forced:
                        records[row].append({"id": forced_token, "forced": True, "logprob": None,
                                             "raw_logprob": None, "margin": None, "top_logprobs": ()})
                    step_tokens[row].extend(forced)
                    generated[row].extend(forced)
                if (self.max_text_tokens is not None and matchers[row] is not None and not text_checked[row]
                        and len(generated[row]) >= self.max_text_tokens):
                    text_checked[row] = True  # by now the answer has chosen between text and a call
                    if self._is_text_answer(self.tokenizer.decode(generated[row])):
                        done[row] = text_cut[row] = True
                        continue
                if len(generated[row]) >= self.max_new_tokens:
                    done[row] = True
                    # a constrained call answer that may end here is complete (the grammar accepts a stop token);
                    # a text answer cut here is text_cut (truncated when no call trigger tells text from a call)
                    complete = matchers[row] is not None and matchers[row].accept_token(self.stop_ids[0])
                    if complete and self.call_trigger:
                        text_cut[row] = self._is_text_answer(self.tokenizer.decode(generated[row]))
                    else:
                        truncated[row] = True
            if all(done):
                break
            # One forward pass over every row's new tokens (right-padded within the step).
            step_width = max(len(t) for t in step_tokens)
            if step_width == 0:
                break
            step_ids = torch.full((batch, step_width), self.pad_id, dtype=torch.long, device=device)
            step_mask = torch.zeros((batch, step_width), dtype=torch.long, device=device)
            for row, tokens in enumerate(step_tokens):
                if tokens:
                    step_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long, device=device)
                    step_mask[row, : len(tokens)] = 1
            mask = torch.cat([mask, step_mask], dim=1)
            step_positions = next_position.unsqueeze(1) + torch.arange(step_width, device=device).unsqueeze(0)
            lengths = step_mask.sum(-1)
            gather = (lengths - 1).clamp(min=0)  # each row's last new token (right padding within the step)
            keep = step_width - int(gather.min())  # the positions from the earliest of those on
            out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=step_positions,
                             past_key_values=cache, use_cache=True, **self._keep(keep))
            cache = out.past_key_values
            gather = gather - (step_width - out.logits.shape[1])  # indices into the positions kept
            last_logits = out.logits[torch.arange(batch, device=device), gather, :].float()
            next_position = next_position + lengths

        elapsed = time.perf_counter() - started
        return [self._finish(generated[row], records[row], truncated[row], elapsed, batch,
                             text_cut=text_cut[row], closed_early=closed_early[row], stop_margin=stop_margin[row])
                for row in range(batch)]

    def _prefill_reusing(self, ids: list[int]) -> tuple[Any, torch.Tensor]:
        """The KV cache and last-position logits (float) of one prompt, continuing the kept prompt's cache when
        ``ids`` start with its ids for the same model and state (a hit), else prefilled in full (a miss); the cache
        at exactly ``ids`` is then kept in its place. The caller gets its own copy to decode into (one copy per
        call)."""
        device = self.model.device
        state = model_state(self.model)
        kept, stats = self._prefix, self.prefix_cache_stats
        if (kept is not None and kept.model() is self.model and kept.state == state and len(kept.ids) <= len(ids)
                and ids[: len(kept.ids)] == kept.ids):
            # the kept entry is replaced below, so its cache is extended in place (dropped first: a forward pass
            # that raises must not leave a half-extended cache behind as if it were at kept.ids)
            start, cache, last_logits = len(kept.ids), kept.cache, kept.last_logits
            self._prefix = None
            stats.hits += 1
            stats.reused_tokens += start
        else:
            start, cache, last_logits = 0, None, None
            stats.misses += 1
        if start < len(ids):  # the new tokens, at their positions, seeing the whole prompt (no padding)
            out = self.model(input_ids=torch.tensor([ids[start:]], dtype=torch.long, device=device),
                             attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=device),
                             position_ids=torch.arange(start, len(ids), device=device).unsqueeze(0),
                             past_key_values=cache, use_cache=True, **self._keep(1))
            cache, last_logits = out.past_key_values, out.logits[:, -1, :].float()
            stats.prefilled_tokens += len(ids) - start
        self._prefix = _PrefixEntry(weakref.ref(self.model), state, list(ids), cache, last_logits)
        return copy.deepcopy(cache), last_logits

    def _keep(self, positions: int) -> dict[str, int]:
        """The forward-pass argument asking for the logits of the last ``positions`` positions only (none with
        ``full_logits``)."""
        return {} if self.full_logits else {"logits_to_keep": positions}

    def _check_finite(self, logits: torch.Tensor, done: list[bool]) -> None:
        """Raise when an unfinished row's logits hold NaN or inf: greedy choices and confidence signals taken from
        them would be garbage scored as wrong answers (float16 overflows in some models, Gemma's among them)."""
        active = torch.tensor([not d for d in done], device=logits.device)
        if not bool(torch.isfinite(logits[active]).all()):
            rows = [row for row in range(len(done)) if not done[row] and not bool(torch.isfinite(logits[row]).all())]
            raise FloatingPointError(
                f"the model's logits hold NaN or inf (rows {rows} of a batch of {len(done)}, model dtype "
                f"{getattr(self.model, 'dtype', 'unknown')}): the model overflows in this precision (float16 does "
                "for some models); decode in bfloat16 or float32")

    def _is_text_answer(self, text: str) -> bool:
        """True once ``text`` can no longer become a call (it neither starts with nor is a prefix of the trigger)."""
        return is_text_answer(text, self.call_trigger)

    def _allowed_stop(self, masked_logits: torch.Tensor) -> int | None:
        """The likeliest stop token the grammar allows now, or None (the answer may not end here)."""
        allowed = [i for i in self.stop_ids if i < masked_logits.shape[0] and math.isfinite(float(masked_logits[i]))]
        return max(allowed, key=lambda i: float(masked_logits[i])) if allowed else None

    def _closing_choice(self, masked_logits: torch.Tensor, matcher) -> int | None:
        """The token that best closes an answer: an allowed stop token, else, from the first ``CLOSING_TIERS`` tier
        that has an allowed token, the longest one (it closes the most), the likeliest among equals; else the
        likeliest of the allowed tokens after which a closing token may follow (``Z`` rather than ``.`` after the
        seconds of a date-time); None when the model's own choice stands."""
        stop = self._allowed_stop(masked_logits)
        if stop is not None:
            return stop
        masked_logits = masked_logits.to(HOST)  # compared with the host-side token tables below
        allowed = torch.isfinite(masked_logits)
        token = self._longest_closing_token(allowed, masked_logits)
        if token is not None:
            return token
        closers = self._tokens_before_a_close(matcher, allowed.nonzero().flatten())
        return int(closers[masked_logits[closers].argmax()]) if len(closers) else None

    def _longest_closing_token(self, allowed: torch.Tensor, scores: torch.Tensor | None) -> int | None:
        """The longest allowed token of the first closing tier that has one, the highest-scoring among equals
        (the first, without ``scores``)."""
        for candidates, lengths in self._closing_ids:
            usable = allowed[candidates]
            if usable.any():
                longest = usable & (lengths == lengths[usable].max())
                if scores is None:
                    return int(candidates[longest.nonzero()[0]])
                return int(candidates[torch.where(longest, scores[candidates], -math.inf).argmax()])
        return None

    def _tokens_before_a_close(self, matcher, allowed_ids: torch.Tensor) -> torch.Tensor:
        """Those of ``allowed_ids`` after which the grammar allows a stop or a closing token (tried on forks of
        ``matcher``; none are tried when more than ``CLOSING_LOOKAHEAD`` are allowed: that is free text, not a
        pattern, and closing characters would be allowed there)."""
        if len(allowed_ids) > CLOSING_LOOKAHEAD:
            return allowed_ids[:0]
        mask = self._scratch_mask()
        keep = []
        for token in allowed_ids.tolist():
            fork = matcher.fork()
            if fork.accept_token(token):
                fork.fill_next_token_bitmask(mask, 0)
                keep.append(bool(self._bits(mask[0], self._closers).any()))
            else:
                keep.append(False)
        return allowed_ids[torch.tensor(keep, dtype=torch.bool, device=HOST)]

    def _accept_unrepeated(self, matcher, token: int, masked_logits: torch.Tensor, steering: bool) -> int:
        """Accept ``token``, or the best token after it that does not complete a repeated item of a
        ``uniqueItems`` array (a constraint no grammar expresses): a token that does (with the text the grammar
        then forces) is rolled back and banned, and the choice is made again (the closing choice when steering),
        at most ``MAX_REPEAT_BANS`` times; when every allowed token repeats an item, the first choice stands.
        Returns the token accepted."""
        before = repeated_unique_items(matcher.get_captures(), last_number_closed=False)
        first, scores = token, masked_logits
        for _ in range(MAX_REPEAT_BANS):
            _accept(matcher, token)
            ahead, text = matcher, self.tokenizer.decode([token])
            forced = matcher.find_jump_forward_string()
            if forced:
                ahead = matcher.fork()
                ahead.accept_string(forced)
                text += forced
            closed = any(ch in text for ch in ",]}")
            if repeated_unique_items(ahead.get_captures(), last_number_closed=closed) <= before:
                return token
            matcher.rollback(1)
            scores = scores.clone()
            scores[token] = -math.inf
            token = self._closing_choice(scores, matcher) if steering else None
            if token is None:
                token = int(scores.argmax())
            if token in self.stop_ids or not math.isfinite(float(scores[token])):
                break
        _accept(matcher, first)
        return first

    def _closing_length(self, matcher, limit: int) -> int:
        """How many tokens the closing steer would still write from ``matcher``'s state before the answer may end
        (``limit`` when at least that many), simulated on a fork of the matcher like ``_closing_choice`` but
        without the model: the forced text where the grammar forces one, else the longest closing token, else the
        shortest allowed token after which a closing token may follow, else the shortest allowed token."""
        mask = self._scratch_mask()
        simulated, count = matcher.fork(), 0
        while count < limit:
            simulated.fill_next_token_bitmask(mask, 0)
            if self._bits(mask[0], self._stop_tensor).any():
                return count
            forced = simulated.find_jump_forward_string()
            if forced and simulated.accept_string(forced):
                count += len(self.tokenizer(forced, add_special_tokens=False)["input_ids"])
                continue
            allowed = self._bits(mask[0], self._all_ids)
            token = self._longest_closing_token(allowed, None)
            if token is None:
                allowed_ids = allowed.nonzero().flatten()
                closers = self._tokens_before_a_close(simulated, allowed_ids)
                pool = closers if len(closers) else allowed_ids
                token = int(pool[self._token_lengths[pool].argmin()])
            if not simulated.accept_token(token):
                return limit  # cannot happen for an allowed token; do not loop
            count += 1
        return limit

    def _scratch_mask(self) -> torch.Tensor:
        if self._simulation_mask is None:
            self._simulation_mask = host_bitmask(1, self.vocab_size)
        return self._simulation_mask

    @staticmethod
    def _bits(packed: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Whether each of ``ids`` is allowed by one row of an XGrammar bitmask (bit ``i % 32`` of word ``i // 32``)."""
        return ((packed[ids >> 5] >> (ids & 31).to(packed.dtype)) & 1).bool()

    def _forced_tokens(self, matcher, room: int) -> list[int]:
        """Tokens for the text the grammar forces next, leaving the last token to the model (token healing) unless
        they fill the ``room`` left in the token budget (never more than ``room``)."""
        forced_text = matcher.find_jump_forward_string()
        if not forced_text:
            return []
        ids = self.tokenizer(forced_text, add_special_tokens=False)["input_ids"]
        ids = ids[:-1] if len(ids) < room else ids[:room]
        if not ids:
            return []
        prefix = self.tokenizer.decode(ids)
        if not forced_text.startswith(prefix) or not matcher.accept_string(prefix):
            return []
        return ids

    def _finish(self, ids: list[int], records: list[dict], truncated: bool, elapsed: float, batch: int, *,
                text_cut: bool, closed_early: bool, stop_margin: float | None = None) -> Generation:
        text = self.tokenizer.decode(ids)
        pieces = [self.tokenizer.decode([i]) for i in ids]
        if "".join(pieces) != text:  # multi-byte characters split across tokens: decode prefixes instead
            pieces, previous = [], ""
            for count in range(1, len(ids) + 1):
                current = self.tokenizer.decode(ids[:count])
                if count < len(ids):  # a character still incomplete belongs to the token holding its last byte
                    current = current.rstrip("\ufffd")
                pieces.append(current[len(previous):])
                previous = current
        tokens, offset = [], 0
        for piece, rec in zip(pieces, records):
            tokens.append(TokenRecord(start=offset, end=offset + len(piece), forced=rec["forced"],
                                      logprob=rec["logprob"], raw_logprob=rec["raw_logprob"],
                                      margin=rec["margin"], top_logprobs=rec["top_logprobs"], token_id=rec["id"]))
            offset += len(piece)
        forced = sum(rec["forced"] for rec in records)
        return Generation(text=text, output_tokens=len(ids), forced_tokens=forced, truncated=truncated,
                          latency_s=elapsed, batch_size=batch, tokens=tokens, text_cut=text_cut,
                          closed_early=closed_early, stop_margin=stop_margin)
