"""Config composition: every recipe composes, bad keys/values/recipes fail before any model loads."""

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from slmtune.config import RECIPE_DIR, SlmtuneConfig, compose, recipe_names
from slmtune.models.families import FAMILIES


@pytest.mark.parametrize("recipe", recipe_names())
def test_every_recipe_composes_with_a_known_family_and_opens_with_its_command(recipe):
    cfg = compose([f"+recipe={recipe}"])
    assert isinstance(cfg, SlmtuneConfig)
    assert cfg.recipe == recipe
    assert cfg.model.family in FAMILIES
    first_line = (RECIPE_DIR / f"{recipe}.yaml").read_text().splitlines()[0]
    assert first_line.startswith("# python -m slmtune ") and f"+recipe={recipe}" in first_line


def test_expected_recipes_exist():
    assert {"gemma270m", "tiny", "qwen7b", "phi4mini", "gemma9b", "llama3b", "llama1b"} <= set(recipe_names())


def test_gpu_recipes_use_the_design_hub_ids():
    sources = {r: compose([f"+recipe={r}"]).model.source for r in ("qwen7b", "phi4mini", "gemma9b", "llama3b")}
    assert sources == {"qwen7b": "Qwen/Qwen2.5-7B-Instruct", "phi4mini": "microsoft/Phi-4-mini-instruct",
                       "gemma9b": "google/gemma-2-9b-it", "llama3b": "meta-llama/Llama-3.2-3B-Instruct"}


def test_unknown_key_fails_naming_it():
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as err:
        compose(["+recipe=tiny", "train.bogus=1"])
    assert "bogus" in str(err.value) + str(err.value.__cause__)


def test_wrong_type_fails_naming_the_key():
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        compose(["+recipe=tiny", "train.max_steps=many"])
    assert "max_steps" in str(err.value) + str(err.value.__cause__)


def test_export_gguf_defaults_to_none_and_takes_a_list():
    assert compose(["+recipe=tiny"]).export.gguf == []
    assert list(compose(["+recipe=tiny", "export.gguf=[f16,q8_0]"]).export.gguf) == ["f16", "q8_0"]


def test_bad_choice_fails_naming_the_key():
    with pytest.raises(ValueError, match="tracking.mode"):
        compose(["+recipe=tiny", "tracking.mode=sometimes"])


@pytest.mark.parametrize(("override", "key"), [
    ("eval.closing_reserve=48", "eval.closing_reserve"),  # tiny's max_new_tokens is 48
    ("eval.closing_reserve=-1", "eval.closing_reserve"),
    ("eval.max_text_tokens=0", "eval.max_text_tokens"),
    ("train.lora.top_layers=0", "train.lora.top_layers"),
    ("train.decision_loss_weight=0", "train.decision_loss_weight"),
    ("export.gguf=[f16,q4_k]", r"export.gguf: unknown GGUF type\(s\) \['q4_k'\]"),
])
def test_out_of_range_settings_fail_naming_the_key(override, key):
    with pytest.raises(ValueError, match=key):
        compose(["+recipe=tiny", override])


def test_unknown_recipe_lists_the_available_ones():
    proc = subprocess.run([sys.executable, "-m", "slmtune", "data", "+recipe=nope"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "unknown recipe 'nope'" in proc.stderr and "gemma270m" in proc.stderr


def test_help_lists_stages_and_recipes():
    proc = subprocess.run([sys.executable, "-m", "slmtune", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for word in ("data", "train", "eval", "calibrate", "export", "pipeline", "gemma270m", "qwen7b"):
        assert word in proc.stdout
