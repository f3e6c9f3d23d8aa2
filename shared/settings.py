"""Settings of every ketnap process, from ``KETNAP_*`` environment variables.

One validated class: a production process (``KETNAP_ENV=production``) refuses to
start with unsafe values (open reads, short tokens, SQLite, plaintext Kafka),
so a mistake is a start-up error, not a quiet weakness.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Scope = tuple[str, ...]
"""What a token may touch: ``("*",)`` (national) or entries like ``P22``, ``legacy:P10``, ``2025:P15``."""

_MIN_PRODUCTION_TOKEN_LENGTH = 24


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KETNAP_", extra="ignore")

    env: Literal["dev", "production"] = "dev"
    service: str = "ketnap"
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    database_url: str = "sqlite+aiosqlite:///ketnap.db"
    database_password_file: Path | None = None
    migrate_on_start: bool = True

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_client_id: str | None = None
    # The consumer group's session (heartbeat a fifth of it, rebalance the same): how soon a
    # dead replica's partitions move. Tansu completes a (re)join only after about half of
    # it, so the tests and benchmarks on it shorten it.
    kafka_session_timeout_ms: Annotated[int, Field(ge=100)] = 10_000

    tokens: SecretStr | None = None
    tokens_file: Path | None = None
    read_auth: bool = False

    park_ttl: Annotated[int, Field(ge=1)] = 30 * 24 * 3600
    shutdown_grace_s: Annotated[float, Field(gt=0)] = 20.0
    consumer_batch: Annotated[int, Field(ge=1, le=100_000)] = 5000
    # The reporting consumer's own batch: its cost is aggregate rows, which collapse
    # (same unit, series and month) the more changes one transaction folds: two replicas
    # replay ~25% more changes/s with 20,000 than with 5,000; a crash throws away the batch
    # in flight, ~1-2 s of work (docs/reporting.md, Performance).
    reporting_batch: Annotated[int, Field(ge=1, le=100_000)] = 20_000
    rollup_coalesce_s: Annotated[float, Field(ge=0)] = 1.0
    # Candidate states the quota keeps decoded between batches (0: none). A hit saves
    # reading and decoding the stored state, which measured no faster in 2026-12-06's
    # replays; 50,000 entries held ~190 MiB more (services/quota/README.md, Memory).
    quota_state_cache: Annotated[int, Field(ge=0, le=10_000_000)] = 10_000
    # Intake processes sharing its port (``ketnap intake``): one process is one core, and
    # a database decides duplicates and id conflicts whatever process asked. SQLite
    # always gets one (a second process would only queue on its single writer).
    intake_workers: Annotated[int, Field(ge=1, le=32)] = 2

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if not self.read_auth:
            problems.append("KETNAP_READ_AUTH must be true")
        if self.database_url.startswith("sqlite"):
            problems.append("KETNAP_DATABASE_URL must be PostgreSQL, not SQLite")
        if self.kafka_security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            problems.append("KETNAP_KAFKA_SECURITY_PROTOCOL must use TLS (SSL or SASL_SSL)")
        if self.tokens is not None and self.tokens_file is None:
            problems.append("tokens must come from KETNAP_TOKENS_FILE (a secret), not the environment")
        short = [t for t in self.token_scopes() if len(t) < _MIN_PRODUCTION_TOKEN_LENGTH]
        if short:
            problems.append(f"{len(short)} token(s) shorter than {_MIN_PRODUCTION_TOKEN_LENGTH} characters")
        if problems:
            raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

    def token_scopes(self) -> dict[str, Scope]:
        """Tokens and their scopes, from ``KETNAP_TOKENS_FILE`` or ``KETNAP_TOKENS`` (JSON)."""
        raw = self.tokens_file.read_text() if self.tokens_file else None
        if raw is None and self.tokens is not None:
            raw = self.tokens.get_secret_value()
        if not raw:
            return {}
        parsed = json.loads(raw)
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(e, str) for e in v)
            for k, v in parsed.items()
        ):
            raise ValueError('tokens must be a JSON object {"<token>": ["P22", "legacy:P10", ...]}')
        return {token: tuple(scope) for token, scope in parsed.items()}

    def intake_processes(self) -> int:
        """How many intake worker processes to run: ``intake_workers``, one on SQLite."""
        return 1 if self.database_url.startswith("sqlite") else self.intake_workers

    def sasl_password(self) -> str | None:
        if self.kafka_sasl_password_file is not None:
            return self.kafka_sasl_password_file.read_text().strip()
        return self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None

    def resolved_database_url(self) -> str:
        """The database URL with the password from ``KETNAP_DATABASE_PASSWORD_FILE`` when set."""
        if self.database_password_file is None:
            return self.database_url
        from sqlalchemy.engine import make_url

        password = self.database_password_file.read_text().strip()
        return make_url(self.database_url).set(password=password).render_as_string(hide_password=False)
