"""Shared fixtures: an offline Hugging Face hub cache of tiny random models (see ``hubcache.py``)."""

import pytest
from hubcache import build_offline_hub


@pytest.fixture(scope="session")
def offline_hub(tmp_path_factory):
    """``(cache_dir, {hub id: commit})``: an HF hub cache holding every model of ``hubcache.HUB_MODELS``."""
    cache = tmp_path_factory.mktemp("hf-hub-cache")
    return cache, build_offline_hub(cache)


@pytest.fixture
def hub_offline_env(offline_hub, monkeypatch):
    """The offline cache as this process's HF cache, with HF_HUB_OFFLINE=1; yields ``(cache_dir, commits)``."""
    cache, commits = offline_hub
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache, commits
