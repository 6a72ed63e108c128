"""Model families: chat markup, LoRA targets, default dialect, exported chat template.

Everything family-specific lives here; generic code asks :func:`family_for_model_type` with the
transformers ``config.model_type`` and never compares model names.

Prompt layout per markup (``render_prompt`` writes it, ``chat_template`` reproduces it in Jinja):

- ``chatml`` (Qwen2.5): ``<|im_start|>system\\n{system or Qwen's default}\\n\\n{tools}<|im_end|>\\n``,
  user/assistant turns ``<|im_start|>{role}\\n…<|im_end|>\\n``; consecutive tool results merge into
  one user turn of ``<tool_response>\\n…\\n</tool_response>`` blocks joined by ``\\n``.
- ``llama3`` (Llama 3.2): ``<|begin_of_text|>`` + system header with ``Environment: ipython``
  (with tools), the knowledge/today dates of Llama's template, then system text and tools;
  tool results as ``ipython`` turns.
- ``phi3`` (Phi-4-mini): ``<|system|>…<|end|><|user|>…<|end|><|assistant|>`` (no newlines), system
  default ``You are a helpful assistant with some tools.`` when tools are given; tool results as
  ``<|tool|>…<|end|>`` turns (what vLLM's Phi-4-mini template renders for role ``tool``).
- ``gemma`` (Gemma 2/3): ``<bos>``, no system role: system text and tools are prepended (joined by a
  blank line) to the first user turn; assistant = ``model``; tool results merge into one user
  turn of ``<tool_response>`` blocks like ChatML.

System text and tools instruction are joined by a blank line.  An assistant turn with
``tool_calls`` renders the calls only (its ``content`` is not rendered), exactly like
``render_completion``.  Tool-call ``arguments`` may be dicts or JSON strings in ``render_prompt``;
the Jinja template expects dicts (vLLM converts them before applying the template) and writes a
string verbatim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from slmtune.models.dialects import Dialect, get_dialect, normalize_call, normalize_tool
from slmtune.models.dialects.base import jinja_str

__all__ = ["FAMILIES", "Family", "GgufLayout", "family_for_model_type"]

_LLAMA_DATE = "26 Jul 2024"
_LLAMA_KNOWLEDGE = "Cutting Knowledge Date: December 2023\nToday Date: "
_PHI_TOOLS_SYSTEM = "You are a helpful assistant with some tools."
_QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

_ATTN_MLP = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _text(content: Any) -> str:
    """Message content as text: strings as is, text parts joined, other values as JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return json.dumps(content, ensure_ascii=False)
    if isinstance(content, (list, tuple)):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return json.dumps(content, ensure_ascii=False)


_JINJA_COMMON = r"""
{%- macro slm_text(c) -%}
{%- if c is none -%}
{%- elif c is string -%}{{- c -}}
{%- elif c is mapping -%}{{- c | tojson -}}
{%- elif c is iterable -%}
{%- for p in c -%}{%- if p is mapping and p.type == "text" -%}{{- p.text -}}{%- endif -%}{%- endfor -%}
{%- else -%}{{- c | tojson -}}
{%- endif -%}
{%- endmacro -%}
{%- macro slm_assistant(m, fns) -%}
{%- if m.tool_calls -%}{{- slm_render_calls(m.tool_calls, fns) -}}
{%- else -%}{{- slm_text(m.content) -}}
{%- endif -%}
{%- endmacro -%}
{%- set slm_ns = namespace(fns=[]) -%}
{%- if tools -%}
{%- for t in tools -%}
{%- set slm_ns.fns = slm_ns.fns + [t.function if t.function is mapping else t] -%}
{%- endfor -%}
{%- endif -%}
{%- set fns = slm_ns.fns -%}
{%- if messages and messages[0].role == "system" -%}
{%- set has_system = true -%}
{%- set sys = slm_text(messages[0].content) -%}
{%- set loop_messages = messages[1:] -%}
{%- else -%}
{%- set has_system = false -%}
{%- set sys = __SLM_DEFAULT_SYSTEM__ -%}
{%- set loop_messages = messages -%}
{%- endif -%}
{%- set instr = slm_tools_instruction(fns) if fns else "" -%}
{%- if sys and instr -%}
{%- set sysblock = sys ~ "\n\n" ~ instr -%}
{%- else -%}
{%- set sysblock = sys ~ instr -%}
{%- endif -%}
"""

_JINJA_CHATML = r"""
{%- if has_system or sysblock -%}{{- "<|im_start|>system\n" ~ sysblock ~ "<|im_end|>\n" -}}{%- endif -%}
{%- for m in loop_messages -%}
{%- if m.role == "user" or m.role == "system" -%}
{{- "<|im_start|>" ~ m.role ~ "\n" ~ slm_text(m.content) ~ "<|im_end|>\n" -}}
{%- elif m.role == "assistant" -%}
{{- "<|im_start|>assistant\n" ~ slm_assistant(m, fns) ~ "<|im_end|>\n" -}}
{%- elif m.role == "tool" -%}
{%- if loop.previtem is defined and loop.previtem.role == "tool" -%}{{- "\n" -}}
{%- else -%}{{- "<|im_start|>user\n" -}}{%- endif -%}
{{- "<tool_response>\n" ~ slm_text(m.content) ~ "\n</tool_response>" -}}
{%- if not (loop.nextitem is defined and loop.nextitem.role == "tool") -%}{{- "<|im_end|>\n" -}}{%- endif -%}
{%- else -%}{{- raise_exception("unsupported role: " ~ m.role) -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- "<|im_start|>assistant\n" -}}{%- endif -%}
"""

_JINJA_LLAMA3 = r"""
{%- set today = date_string if date_string is defined else __SLM_LLAMA_DATE__ -%}
{{- "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" -}}
{%- if fns -%}{{- "Environment: ipython\n" -}}{%- endif -%}
{{- __SLM_LLAMA_KNOWLEDGE__ ~ today ~ "\n\n" ~ sysblock ~ "<|eot_id|>" -}}
{%- for m in loop_messages -%}
{%- if m.role == "user" or m.role == "system" -%}
{{- "<|start_header_id|>" ~ m.role ~ "<|end_header_id|>\n\n" ~ slm_text(m.content) ~ "<|eot_id|>" -}}
{%- elif m.role == "assistant" -%}
{{- "<|start_header_id|>assistant<|end_header_id|>\n\n" ~ slm_assistant(m, fns) ~ "<|eot_id|>" -}}
{%- elif m.role == "tool" -%}
{{- "<|start_header_id|>ipython<|end_header_id|>\n\n" ~ slm_text(m.content) ~ "<|eot_id|>" -}}
{%- else -%}{{- raise_exception("unsupported role: " ~ m.role) -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- "<|start_header_id|>assistant<|end_header_id|>\n\n" -}}{%- endif -%}
"""

_JINJA_PHI3 = r"""
{%- if not has_system and fns -%}{%- set sysblock = __SLM_PHI_TOOLS_SYSTEM__ ~ "\n\n" ~ instr -%}{%- endif -%}
{%- if has_system or sysblock -%}{{- "<|system|>" ~ sysblock ~ "<|end|>" -}}{%- endif -%}
{%- for m in loop_messages -%}
{%- if m.role == "user" or m.role == "system" -%}
{{- "<|" ~ m.role ~ "|>" ~ slm_text(m.content) ~ "<|end|>" -}}
{%- elif m.role == "assistant" -%}
{{- "<|assistant|>" ~ slm_assistant(m, fns) ~ "<|end|>" -}}
{%- elif m.role == "tool" -%}
{{- "<|tool|>" ~ slm_text(m.content) ~ "<|end|>" -}}
{%- else -%}{{- raise_exception("unsupported role: " ~ m.role) -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- "<|assistant|>" -}}{%- endif -%}
"""

_JINJA_GEMMA = r"""
{{- "<bos>" -}}
{%- if sysblock and (not loop_messages or loop_messages[0].role != "user") -%}
{{- "<start_of_turn>user\n" ~ sysblock ~ "<end_of_turn>\n" -}}
{%- endif -%}
{%- for m in loop_messages -%}
{%- if m.role == "user" -%}
{{- "<start_of_turn>user\n" -}}
{%- if loop.first and sysblock -%}{{- sysblock ~ "\n\n" -}}{%- endif -%}
{{- slm_text(m.content) ~ "<end_of_turn>\n" -}}
{%- elif m.role == "assistant" -%}
{{- "<start_of_turn>model\n" ~ slm_assistant(m, fns) ~ "<end_of_turn>\n" -}}
{%- elif m.role == "tool" -%}
{%- if loop.previtem is defined and loop.previtem.role == "tool" -%}{{- "\n" -}}
{%- else -%}{{- "<start_of_turn>user\n" -}}{%- endif -%}
{{- "<tool_response>\n" ~ slm_text(m.content) ~ "\n</tool_response>" -}}
{%- if not (loop.nextitem is defined and loop.nextitem.role == "tool") -%}{{- "<end_of_turn>\n" -}}{%- endif -%}
{%- else -%}{{- raise_exception("Gemma has no " ~ m.role ~ " role after the first message") -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- "<start_of_turn>model\n" -}}{%- endif -%}
"""

_JINJA_BODIES = {"chatml": _JINJA_CHATML, "llama3": _JINJA_LLAMA3, "phi3": _JINJA_PHI3, "gemma": _JINJA_GEMMA}


def _rope_theta(config: dict, layer_type: str | None = None) -> float | None:
    """``rope_theta`` of a config dict (transformers 5 ``rope_parameters``, per layer type or flat; or older
    top-level ``rope_theta``)."""
    params = config.get("rope_parameters") or {}
    if layer_type and isinstance(params.get(layer_type), dict):
        params = params[layer_type]
    return params.get("rope_theta", config.get("rope_theta"))


def _rope_type(config: dict, layer_type: str | None = None) -> str:
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if layer_type and isinstance(params.get(layer_type), dict):
        params = params[layer_type]
    return str(params.get("rope_type", params.get("type", "default")))


def _gemma3_gguf_problems(config: dict) -> list[str]:
    """What llama.cpp's gemma3 graph assumes (src/models/gemma3.cpp, llama-model.cpp) that GGUF cannot state."""
    problems = []
    head_dim = config.get("head_dim")
    if config.get("query_pre_attn_scalar") != head_dim:
        problems.append(f"query_pre_attn_scalar={config.get('query_pre_attn_scalar')} (llama.cpp scales queries by "
                        f"1/sqrt(head_dim={head_dim}))")
    n = int(config["num_hidden_layers"])
    pattern = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)]
    if config.get("layer_types") not in (None, pattern):
        problems.append("layer_types is not llama.cpp's fixed gemma3 pattern (every 6th layer global)")
    if _rope_theta(config, "sliding_attention") not in (None, 10000.0):
        problems.append(f"sliding-window rope_theta={_rope_theta(config, 'sliding_attention')} (llama.cpp: 10000)")
    for layer_type in ("full_attention", "sliding_attention"):
        if _rope_type(config, layer_type) != "default":
            problems.append(f"rope type {_rope_type(config, layer_type)!r} on {layer_type} layers (only unscaled "
                            "rope is written)")
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if config.get(key) is not None:
            problems.append(f"{key}={config[key]} (transformers' GGUF reader does not read it back)")
    if config.get("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
        problems.append(f"hidden_activation={config.get('hidden_activation')!r} (llama.cpp: gelu tanh)")
    return problems


def _llama_like_gguf_problems(config: dict) -> list[str]:
    """Llama / Qwen2: only unscaled rope, no sliding window, the usual biases (llama.cpp's llama and qwen2 graphs)."""
    problems = []
    if _rope_type(config) != "default":
        problems.append(f"rope scaling {_rope_type(config)!r} (llama.cpp stores it as an extra rope_freqs tensor, "
                        "which slmtune does not write and transformers' GGUF reader does not read)")
    if config.get("use_sliding_window"):
        problems.append("use_sliding_window=true")
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key):
            problems.append(f"{key}=true")
    head_dim = config.get("head_dim")
    if head_dim is not None and head_dim * config["num_attention_heads"] != config["hidden_size"]:
        problems.append(f"head_dim={head_dim} differs from hidden_size / num_attention_heads")
    return problems


@dataclass(frozen=True)
class GgufLayout:
    """How llama.cpp (``convert_hf_to_gguf.py``) stores one architecture, for :mod:`slmtune.export.gguf`.

    ``arch``: ``general.architecture`` (a gguf-py ``MODEL_ARCH`` name; gguf-py's ``TensorNameMap`` gives the tensor
    names).  ``norm_offset``: added to every ``*norm.weight`` (Gemma's RMSNorm multiplies by ``1 + w``, llama.cpp's
    by ``w``).  ``permute_qk``: llama.cpp's rotary layout of q/k rows (Llama; transformers un-permutes on reading).
    ``head_dim_keys``: write ``attention.key_length``/``value_length``; ``rope_dimension_count``: write
    ``rope.dimension_count`` = head_dim; ``sliding_window``: write ``attention.sliding_window``.
    ``space_runs_as_spaces``: a sentencepiece token made only of 2+ ``▁`` is stored as spaces (Gemma's vocabulary;
    transformers respells it on reading).  ``tokenizer_pre``: ``tokenizer.ggml.pre`` of a byte-level BPE
    vocabulary (llama.cpp's pre-tokeniser regex).  ``problems``: what of a config.json GGUF cannot state (each a
    sentence naming the key); ``derived``: config values llama.cpp derives from the metadata that transformers'
    GGUF reader leaves at the config class's default (set when verifying)."""

    arch: str
    norm_offset: float = 0.0
    permute_qk: bool = False
    head_dim_keys: bool = False
    rope_dimension_count: bool = False
    sliding_window: bool = False
    space_runs_as_spaces: bool = False
    tokenizer_pre: str = "default"
    problems: Any = None  # Callable[[dict], list[str]]
    derived: Any = None  # Callable[[dict], dict]

    def config_problems(self, config: dict) -> list[str]:
        return list(self.problems(config)) if self.problems else []

    def derived_config(self, config: dict) -> dict:
        return dict(self.derived(config)) if self.derived else {}


_GGUF_LAYOUTS = {
    "gemma3": GgufLayout(arch="gemma3", norm_offset=1.0, head_dim_keys=True, sliding_window=True,
                         space_runs_as_spaces=True, problems=_gemma3_gguf_problems,
                         derived=lambda cfg: {"query_pre_attn_scalar": cfg["head_dim"]}),
    "llama": GgufLayout(arch="llama", permute_qk=True, rope_dimension_count=True, tokenizer_pre="llama-bpe",
                        problems=_llama_like_gguf_problems),
    "qwen2": GgufLayout(arch="qwen2", tokenizer_pre="qwen2", problems=_llama_like_gguf_problems),
}


@dataclass(frozen=True)
class Family:
    """One model family (architecture + chat markup)."""

    name: str
    model_types: tuple[str, ...]
    lora_target_modules: tuple[str, ...]
    default_dialect: str
    end_of_turn: str
    has_system_role: bool
    markup: str  # chatml | llama3 | phi3 | gemma
    config_class: str  # transformers config class of the architecture
    bos_text: str = ""  # BOS as the template writes it (tokenise prompts with add_special_tokens=False)
    default_system: str = ""  # system text used when the conversation has none
    gguf: GgufLayout | None = None  # how llama.cpp stores the architecture (None: no GGUF export)

    # -- prompts -------------------------------------------------------------------------------

    def dialect(self, dialect: str | Dialect | None = None) -> Dialect:
        return get_dialect(dialect or self.default_dialect)

    def render_prompt(
        self, messages: list[dict], tools: list[dict] | None, dialect: str | Dialect | None = None
    ) -> str:
        """Full prompt text (incl. BOS text) ending with the assistant-turn opener."""
        d = self.dialect(dialect)
        fns = [normalize_tool(t) for t in tools or []]
        instr = d.tools_instruction(fns) if fns else ""
        msgs = list(messages or [])
        for m in msgs:
            if not isinstance(m, dict) or "role" not in m:
                raise ValueError(f"a message must be a dict with a role, got {m!r}")
        has_system = bool(msgs) and msgs[0]["role"] == "system"
        sys = _text(msgs[0].get("content")) if has_system else self.default_system
        loop = msgs[1:] if has_system else msgs
        if self.markup == "phi3" and not has_system and fns:
            sys = _PHI_TOOLS_SYSTEM
        sysblock = "\n\n".join(p for p in (sys, instr) if p)

        def assistant(m: dict) -> str:
            calls = m.get("tool_calls") or []
            if calls:
                return d.render_calls([normalize_call(c) for c in calls], fns)
            return _text(m.get("content"))

        out: list[str] = []
        if self.markup == "chatml":
            if has_system or sysblock:
                out.append(f"<|im_start|>system\n{sysblock}<|im_end|>\n")
            for i, m in enumerate(loop):
                role = m["role"]
                if role in ("user", "system"):
                    out.append(f"<|im_start|>{role}\n{_text(m.get('content'))}<|im_end|>\n")
                elif role == "assistant":
                    out.append(f"<|im_start|>assistant\n{assistant(m)}<|im_end|>\n")
                elif role == "tool":
                    out.append(self._tool_block(loop, i, "<|im_start|>user\n", "<|im_end|>\n"))
                else:
                    raise ValueError(f"unsupported role: {role}")
            out.append("<|im_start|>assistant\n")
        elif self.markup == "llama3":
            out.append("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
            if fns:
                out.append("Environment: ipython\n")
            out.append(f"{_LLAMA_KNOWLEDGE}{_LLAMA_DATE}\n\n{sysblock}<|eot_id|>")
            for m in loop:
                role = m["role"]
                if role in ("user", "system"):
                    body = _text(m.get("content"))
                elif role == "assistant":
                    body = assistant(m)
                elif role == "tool":
                    role, body = "ipython", _text(m.get("content"))
                else:
                    raise ValueError(f"unsupported role: {role}")
                out.append(f"<|start_header_id|>{role}<|end_header_id|>\n\n{body}<|eot_id|>")
            out.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
        elif self.markup == "phi3":
            if has_system or sysblock:
                out.append(f"<|system|>{sysblock}<|end|>")
            for m in loop:
                role = m["role"]
                if role in ("user", "system"):
                    out.append(f"<|{role}|>{_text(m.get('content'))}<|end|>")
                elif role == "assistant":
                    out.append(f"<|assistant|>{assistant(m)}<|end|>")
                elif role == "tool":
                    out.append(f"<|tool|>{_text(m.get('content'))}<|end|>")
                else:
                    raise ValueError(f"unsupported role: {role}")
            out.append("<|assistant|>")
        elif self.markup == "gemma":
            out.append("<bos>")
            if sysblock and (not loop or loop[0]["role"] != "user"):
                out.append(f"<start_of_turn>user\n{sysblock}<end_of_turn>\n")
            for i, m in enumerate(loop):
                role = m["role"]
                if role == "user":
                    prefix = sysblock + "\n\n" if i == 0 and sysblock else ""
                    out.append(f"<start_of_turn>user\n{prefix}{_text(m.get('content'))}<end_of_turn>\n")
                elif role == "assistant":
                    out.append(f"<start_of_turn>model\n{assistant(m)}<end_of_turn>\n")
                elif role == "tool":
                    out.append(self._tool_block(loop, i, "<start_of_turn>user\n", "<end_of_turn>\n"))
                else:
                    raise ValueError(f"Gemma has no {role} role after the first message")
            out.append("<start_of_turn>model\n")
        else:  # pragma: no cover - guarded by FAMILIES
            raise ValueError(f"unknown markup {self.markup!r}")
        return "".join(out)

    @staticmethod
    def _tool_block(loop: list[dict], i: int, open_turn: str, close_turn: str) -> str:
        prev_tool = i > 0 and loop[i - 1]["role"] == "tool"
        next_tool = i + 1 < len(loop) and loop[i + 1]["role"] == "tool"
        block = f"<tool_response>\n{_text(loop[i].get('content'))}\n</tool_response>"
        return ("\n" if prev_tool else open_turn) + block + ("" if next_tool else close_turn)

    def render_completion(
        self,
        calls: list[dict] | None,
        content: str | None,
        dialect: str | Dialect | None = None,
        tools: list[dict] | None = None,
    ) -> str:
        """Training target: the dialect's call text if there are calls, else ``content``; plus the
        end-of-turn token."""
        d = self.dialect(dialect)
        body = d.render_calls(calls, tools) if calls else (content or "")
        return body + self.end_of_turn

    def chat_template(self, dialect: str | Dialect | None = None) -> str:
        """Jinja chat template reproducing :meth:`render_prompt` (``add_generation_prompt=True``)."""
        d = self.dialect(dialect)
        common = _JINJA_COMMON.replace("__SLM_DEFAULT_SYSTEM__", jinja_str(self.default_system))
        body = (
            _JINJA_BODIES[self.markup]
            .replace("__SLM_LLAMA_DATE__", jinja_str(_LLAMA_DATE))
            .replace("__SLM_LLAMA_KNOWLEDGE__", jinja_str(_LLAMA_KNOWLEDGE))
            .replace("__SLM_PHI_TOOLS_SYSTEM__", jinja_str(_PHI_TOOLS_SYSTEM))
        )
        header = f"{{#- slmtune chat template: family {self.name}, dialect {d.name} "
        header += f"(vLLM --tool-call-parser {d.vllm_tool_parser}) -#}}"
        return (header + d.jinja_macros() + common + body).strip() + "\n"

    # -- models --------------------------------------------------------------------------------

    def tiny_config(self, vocab_size: int):
        """A 2-layer randomly-initialisable config of this family's real architecture."""
        import transformers

        cls = getattr(transformers, self.config_class)
        kwargs: dict[str, Any] = dict(
            vocab_size=vocab_size,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            max_position_embeddings=2048,
            pad_token_id=0,
            bos_token_id=min(1, vocab_size - 1),
            eos_token_id=min(2, vocab_size - 1),
        )
        if self.config_class in ("Gemma2Config", "Gemma3TextConfig"):
            kwargs.update(head_dim=16, query_pre_attn_scalar=16, sliding_window=512)
        return cls(**kwargs)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="qwen2",
            model_types=("qwen2",),
            lora_target_modules=_ATTN_MLP,
            default_dialect="hermes",
            end_of_turn="<|im_end|>",
            has_system_role=True,
            markup="chatml",
            config_class="Qwen2Config",
            default_system=_QWEN_SYSTEM,
            gguf=_GGUF_LAYOUTS["qwen2"],
        ),
        Family(
            name="llama",
            model_types=("llama",),
            lora_target_modules=_ATTN_MLP,
            default_dialect="llama3_json",
            end_of_turn="<|eot_id|>",
            has_system_role=True,
            markup="llama3",
            config_class="LlamaConfig",
            bos_text="<|begin_of_text|>",
            gguf=_GGUF_LAYOUTS["llama"],
        ),
        Family(
            name="phi3",
            model_types=("phi3",),
            lora_target_modules=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
            default_dialect="phi4_mini_json",
            end_of_turn="<|end|>",
            has_system_role=True,
            markup="phi3",
            config_class="Phi3Config",
        ),
        Family(
            name="gemma2",
            model_types=("gemma2",),
            lora_target_modules=_ATTN_MLP,
            default_dialect="hermes",
            end_of_turn="<end_of_turn>",
            has_system_role=False,
            markup="gemma",
            config_class="Gemma2Config",
            bos_text="<bos>",
        ),
        Family(
            name="gemma3",
            model_types=("gemma3_text", "gemma3"),
            lora_target_modules=_ATTN_MLP,
            default_dialect="hermes",
            end_of_turn="<end_of_turn>",
            has_system_role=False,
            markup="gemma",
            config_class="Gemma3TextConfig",
            bos_text="<bos>",
            gguf=_GGUF_LAYOUTS["gemma3"],
        ),
    )
}


def family_for_model_type(model_type: str) -> Family:
    """The family whose ``model_types`` contains the transformers ``config.model_type``."""
    for fam in FAMILIES.values():
        if model_type in fam.model_types:
            return fam
    known = ", ".join(f"{t} ({f.name})" for f in FAMILIES.values() for t in f.model_types)
    raise ValueError(f"no model family for model_type {model_type!r}; known model types: {known}")
