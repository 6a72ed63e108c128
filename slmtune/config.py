"""Typed configuration: dataclass schemas registered with Hydra's ConfigStore, and recipe registration.

The primary config is ``configs/slmtune.yaml``; its groups live in ``configs/<group>/``. Recipes in ``recipes/*.yaml``
are registered into the group ``recipe`` at import time, so ``+recipe=qwen7b`` works from any working directory.
Because the schemas are dataclasses, a misspelled key or a wrong type fails at composition, before any model loads,
with the key's full path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PACKAGE_ROOT / "configs"
RECIPE_DIR = PACKAGE_ROOT / "recipes"
STAGES = ("data", "train", "eval", "calibrate", "export")


@dataclass
class ModelConfig:
    name: str = "gemma3-270m"
    # hub id | local dir | path/to/file.gguf | embedded:gemma3-270m | random:<family>
    source: str = "embedded:gemma3-270m"
    tokenizer_source: Optional[str] = None  # only for random:<family> models
    revision: Optional[str] = None
    family: str = "gemma3"
    dialect: Optional[str] = None  # null = the family's default dialect
    trust_remote_code: bool = False
    seed: int = 0  # initialisation seed of random:<family> models


@dataclass
class DataConfig:
    num_samples: int = 2000
    category_mix: dict[str, float] = field(default_factory=lambda: {
        "simple": 0.3, "multiple": 0.25, "parallel": 0.15, "parallel_multiple": 0.1, "irrelevance": 0.2,
        "multi_turn": 0.05})
    val_fraction: float = 0.05
    test_fraction_tools: float = 0.15
    catalog_dir: Optional[str] = None  # null = the built-in catalog (data/tools)
    augment_probability: float = 0.5
    masking_probability: float = 0.1
    decontaminate: bool = True
    seed: int = 0


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: Optional[list[str]] = None  # null = the family's defaults
    top_layers: Optional[int] = None  # adapt only the last N decoder layers (cheaper backward); null = all


@dataclass
class TrainConfig:
    method: str = "lora"  # lora | qlora
    lora: LoraSettings = field(default_factory=LoraSettings)
    max_steps: int = 100
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 1024
    # Weight of each completion's first token (the call / no-call decision) in the mean loss; 1 = plain SFT.
    decision_loss_weight: float = 1.0
    max_train_samples: Optional[int] = None
    max_eval_samples: int = 64
    precision: str = "auto"  # auto | bf16 | fp16 | fp32
    gradient_checkpointing: bool = False
    eval_steps: int = 50
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 5
    resume: str = "auto"  # auto | never | <checkpoint dir>
    seed: int = 0


@dataclass
class CostConfig:
    usd_per_hour: float = 0.05  # device price used for Cost per Successful Task
    usd_per_1m_input_tokens: Optional[float] = None  # token pricing instead of device time, when both are set
    usd_per_1m_output_tokens: Optional[float] = None


@dataclass
class EvalConfig:
    # "synthetic" (this run's held-out split), "bfcl:<category>", or a path to a user suite
    suites: list[str] = field(default_factory=lambda: ["synthetic", "bfcl:simple_python", "bfcl:irrelevance"])
    limit: Optional[int] = 50  # requests per suite; null = all
    adapter: Optional[str] = "auto"  # auto = this run's train/adapter; null = base model only; or a directory
    compare_base: bool = True
    constrained: bool = True
    unconstrained: bool = False  # also decode without the grammar
    batch_size: int = 8
    max_new_tokens: int = 192
    # category: the grammar's answer shape follows the request's category (text or calls for (ir)relevance, one
    # call for simple/multiple, one or more for parallel); free: text or any calls everywhere
    call_shape: str = "category"
    max_text_tokens: Optional[int] = 24  # constrained no-call answers are cut here (not scored); null = no cut
    # steer constrained answers to close at the latest this many tokens before max_new_tokens, earlier when the
    # simulated closing tail is longer (0 = no steering); a date-time alone is ~20 Gemma tokens (one per digit)
    closing_reserve: int = 32
    # feed text the grammar forces in one step, tokenised by us (false: sample it token by token, as vLLM does;
    # with closing_reserve=0 and max_text_tokens=null the decoder then writes what a greedy vLLM request writes)
    jump_forward: bool = True
    # multi-turn suites: each agent step continues the KV cache of the previous step's prompt (its conversation
    # prefix) and prefills only the new tokens (false: every step prefills its whole prompt)
    prefix_cache: bool = True
    precision: str = "auto"  # auto | bf16 | fp32
    cost: CostConfig = field(default_factory=CostConfig)


@dataclass
class FallbackConfig:
    name: str = "fallback-llm"
    accuracy: float = 0.9  # assumed accuracy of the large model when no predictions are given
    predictions: Optional[str] = None  # a predictions-<suite>.jsonl of the fallback model on the same requests
    usd_per_request: float = 0.002


@dataclass
class CalibrateConfig:
    predictions: list[str] = field(default_factory=list)  # empty = this run's tuned-model predictions
    calibrator: str = "logistic"  # logistic | isotonic | temperature
    # decision_margin (the first chosen token's top-2 margin, where a call and a text answer part) is what tells a
    # sure decline from a doubtful one in free-shape answers; a grammar-forced decision reports FORCED_MARGIN.
    signals: list[str] = field(default_factory=lambda: [
        "seq_logprob", "mean_value_logprob", "min_value_logprob", "decision_margin", "name_entropy", "name_margin",
        "num_calls"])
    targets: list[float] = field(default_factory=lambda: [0.9, 0.95, 0.99])
    folds: int = 5
    bootstrap: int = 1000
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    seed: int = 0


@dataclass
class ExportConfig:
    verify: Optional[str] = None  # re-check an existing export directory instead of exporting
    overwrite: bool = False
    logits_atol: Optional[float] = None  # null = by merged dtype: fp32 1e-3, fp16 0.05, bf16 0.25
    max_shard_size: str = "2GB"
    # GGUF files of the merged model under export/gguf/ (f32 | f16 | q8_0), each verified against merged/
    gguf: list[str] = field(default_factory=list)


@dataclass
class AgentConfig:
    """``python -m slmtune agent``: one request (agent.request + agent.tools) or a suite (agent.suite)."""

    request: Optional[str] = None  # the user's request
    tools: list[str] = field(default_factory=list)  # catalog tool names offered with agent.request
    suite: Optional[str] = None  # a JSONL of data samples (e.g. <run>/data/test.jsonl): measure the stack on it
    limit: Optional[int] = 20  # suite tasks to run; null = all
    adapter: Optional[str] = None  # a PEFT adapter directory on top of model.source; null = none
    max_steps: int = 4
    max_new_tokens: int = 192
    max_text_tokens: Optional[int] = 48  # a text answer is cut here; null = at max_new_tokens
    closing_reserve: int = 32
    precision: str = "auto"  # auto | bf16 | fp32
    router: Optional[str] = None  # router.json; null = keep every valid SLM answer
    target_precision: float = 0.95  # the router's operating point
    route_text: bool = True  # also route text answers by confidence
    # http(s)://host:port/v1 (an OpenAI-compatible endpoint), a JSONL of recorded answers, "gold" (with a suite:
    # recorded answers from the suite's own labels), or null (no fallback)
    fallback: Optional[str] = None
    fallback_model: Optional[str] = None  # the model name sent to the endpoint
    fallback_api_key_env: Optional[str] = None  # name of the environment variable holding the endpoint's key
    slm_cost: CostConfig = field(default_factory=CostConfig)
    fallback_cost: CostConfig = field(default_factory=lambda: CostConfig(usd_per_hour=0.0))
    output: Optional[str] = None  # also write the trace (or the suite report) here as JSON


@dataclass
class TrackingConfig:
    mode: str = "offline"  # offline | online | disabled
    project: str = "slmtune"
    entity: Optional[str] = None


@dataclass
class RunConfig:
    output_dir: str = "outputs"
    name: str = "main"


@dataclass
class SlmtuneConfig:
    recipe: str = "gemma270m"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.output_dir) / self.recipe / self.run.name


_CHOICES = {"mode": ("offline", "online", "disabled"), "method": ("lora", "qlora"),
            "precision": ("auto", "bf16", "fp16", "fp32"), "calibrator": ("logistic", "isotonic", "temperature"),
            "call_shape": ("category", "free")}


def check_config(cfg: SlmtuneConfig) -> None:
    """Value checks a type system cannot express; raise ``ValueError`` naming the key."""
    pairs = [("tracking.mode", cfg.tracking.mode, "mode"), ("train.method", cfg.train.method, "method"),
             ("train.precision", cfg.train.precision, "precision"), ("eval.precision", cfg.eval.precision, "precision"),
             ("calibrate.calibrator", cfg.calibrate.calibrator, "calibrator"),
             ("eval.call_shape", cfg.eval.call_shape, "call_shape"),
             ("agent.precision", cfg.agent.precision, "precision")]
    for key, value, kind in pairs:
        if value not in _CHOICES[kind]:
            raise ValueError(f"{key}: {value!r} is not one of {list(_CHOICES[kind])}")
    unknown = set(cfg.data.category_mix) - {"simple", "multiple", "parallel", "parallel_multiple", "irrelevance",
                                         "multi_turn"}
    if unknown:
        raise ValueError(f"data.category_mix: unknown categories {sorted(unknown)}")
    if not 0 <= cfg.eval.closing_reserve < cfg.eval.max_new_tokens:
        raise ValueError(f"eval.closing_reserve: {cfg.eval.closing_reserve} must be >= 0 and below "
                         f"eval.max_new_tokens ({cfg.eval.max_new_tokens})")
    from slmtune.export.gguf import GGUF_TYPES

    unknown_gguf = [t for t in cfg.export.gguf if t not in GGUF_TYPES]
    if unknown_gguf:
        raise ValueError(f"export.gguf: unknown GGUF type(s) {unknown_gguf}; known: {list(GGUF_TYPES)}")
    if cfg.eval.max_text_tokens is not None and cfg.eval.max_text_tokens < 1:
        raise ValueError(f"eval.max_text_tokens: {cfg.eval.max_text_tokens} must be >= 1 (or null: no cut)")
    if cfg.train.lora.top_layers is not None and cfg.train.lora.top_layers < 1:
        raise ValueError(f"train.lora.top_layers: {cfg.train.lora.top_layers} must be >= 1 (or null: all layers)")
    if cfg.train.decision_loss_weight <= 0:
        raise ValueError(f"train.decision_loss_weight: {cfg.train.decision_loss_weight} must be > 0 (1 = plain SFT)")
    if cfg.train.resume not in ("auto", "never") and not Path(cfg.train.resume).is_dir():
        raise ValueError(f"train.resume: {cfg.train.resume!r} is neither auto, never nor a checkpoint directory")


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def register_configs() -> None:
    """Register the schemas and every recipe with Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="slmtune_schema", node=SlmtuneConfig)
    for path in sorted(RECIPE_DIR.glob("*.yaml")):
        node = OmegaConf.load(path)
        store.store(group="recipe", name=path.stem, node=node, package="_global_")


def to_typed(cfg: Any) -> SlmtuneConfig:
    """Turn a composed DictConfig into the typed dataclass and run the value checks."""
    typed = OmegaConf.to_object(cfg) if not isinstance(cfg, SlmtuneConfig) else cfg
    check_config(typed)
    return typed


def compose(overrides: list[str] | tuple[str, ...] = ()) -> SlmtuneConfig:
    """Compose the config as the CLI would (for tests and programmatic use)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="slmtune", overrides=list(overrides))
    return to_typed(cfg)


def config_to_dict(cfg: SlmtuneConfig) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
