"""Production settings refuse unsafe values at start-up; tokens parse from env or a secrets file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import Settings

pytestmark = pytest.mark.unit

SAFE = {
    "env": "production",
    "read_auth": True,
    "database_url": "postgresql+asyncpg://q@db/quota",
    "kafka_security_protocol": "SASL_SSL",
}


def test_dev_defaults_are_accepted() -> None:
    assert Settings().env == "dev"


def test_safe_production_is_accepted(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"x" * 32: ["P22"]}))
    settings = Settings(**SAFE, tokens_file=tokens)
    assert settings.token_scopes() == {"x" * 32: ("P22",)}


@pytest.mark.parametrize(
    "override",
    [
        {"read_auth": False},
        {"database_url": "sqlite+aiosqlite:///q.db"},
        {"kafka_security_protocol": "PLAINTEXT"},
        {"tokens": json.dumps({"x" * 32: ["*"]})},
    ],
)
def test_unsafe_production_is_refused(override: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="unsafe production settings"):
        Settings(**{**SAFE, **override})


def test_short_production_tokens_are_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"short": ["*"]}))
    with pytest.raises(ValidationError, match="shorter than"):
        Settings(**SAFE, tokens_file=tokens)


def test_tokens_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETNAP_TOKENS", json.dumps({"t1": ["legacy:P10", "2025:P15"], "t2": ["*"]}))
    assert Settings().token_scopes() == {"t1": ("legacy:P10", "2025:P15"), "t2": ("*",)}


def test_malformed_tokens_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETNAP_TOKENS", json.dumps({"t1": "P22"}))
    with pytest.raises(ValueError, match="JSON object"):
        Settings().token_scopes()


def test_intake_workers_on_postgresql_and_always_one_on_sqlite() -> None:
    postgresql = "postgresql+asyncpg://i@db/intake"
    assert Settings(database_url=postgresql, intake_workers=3).intake_processes() == 3
    assert Settings(database_url="sqlite+aiosqlite:///i.db", intake_workers=3).intake_processes() == 1
    with pytest.raises(ValidationError):
        Settings(intake_workers=0)


def test_quota_state_cache_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETNAP_QUOTA_STATE_CACHE", "0")
    assert Settings().quota_state_cache == 0
    monkeypatch.setenv("KETNAP_QUOTA_STATE_CACHE", "-1")
    with pytest.raises(ValidationError):
        Settings()
