"""W&B config redaction: secrets never leave, settings that change results always do."""

from __future__ import annotations

import pytest

from slmtune.config import compose, config_to_dict
from slmtune.tracking import is_secret_key, redact_secrets


@pytest.mark.parametrize("key", ["hf_token", "HF_TOKEN", "HFTOKEN", "access_token", "authToken", "api_key", "apiKey",
                                 "OPENAI_APIKEY", "WANDB_API_KEY", "db_password", "client_secret", "credentials",
                                 "http_auth"])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["max_new_tokens", "max_text_tokens", "tokenizer_source", "usd_per_1m_input_tokens",
                                 "keyboard", "secretary", "author", "api", "key",
                                 "fallback_api_key_env", "HF_TOKEN_ENV"])
def test_settings_are_not_secrets(key):
    assert not is_secret_key(key)


def test_redacting_the_config_keeps_every_setting():
    config = config_to_dict(compose(["+recipe=tiny"]))
    assert redact_secrets(config) == config
    config["model"]["hf_token"] = "hf_abc"
    config["eval"]["cost"]["extra"] = [{"api_key": "sk-123"}]
    redacted = redact_secrets(config)
    assert redacted["model"]["hf_token"] == "<redacted>"
    assert redacted["eval"]["cost"]["extra"][0]["api_key"] == "<redacted>"
    assert "hf_abc" not in str(redacted) and "sk-123" not in str(redacted)
