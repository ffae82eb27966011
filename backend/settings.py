"""genhook's one settings module: every knob, read from ``GENHOOK_*`` environment variables.

Nothing else in the code base reads ``os.environ``; components receive a :class:`Settings`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backend.durations import parse_schedule
from backend.webhooks.retry import MAX_TIMEOUT_SECONDS, validate_schedule

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Where ``genhook up`` keeps its SQLite file, bundled Redis data and demo credentials.
DEFAULT_VAR_DIR = Path("var")


class Settings(BaseSettings):
    """Runtime configuration; each field maps to ``GENHOOK_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="GENHOOK_", extra="ignore")

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the source of truth; empty means SQLite under var_dir.",
    )
    redis_url: str = Field(
        default="",
        description="Redis for the broker, locks and status cache; empty lets `genhook up` "
        "start the bundled redis-server.",
    )
    var_dir: Path = Field(default=DEFAULT_VAR_DIR, description="Local state of `genhook up`.")

    simulator_url: str = Field(
        default="http://127.0.0.1:8090", description="Base URL of the provider simulator."
    )
    simulator_render_seconds: float = Field(
        default=20.0, ge=0, description="How long a simulated render takes."
    )

    poll_interval_seconds: float = Field(
        default=2.0, gt=0, description="Delay between two status polls of a provider job."
    )
    poll_max_transient_failures: int = Field(
        default=5, ge=0, description="Consecutive transient poll errors tolerated per job."
    )
    job_timeout_seconds: float = Field(
        default=1800.0, gt=0, description="A job still unfinished after this is failed+refunded."
    )
    sweep_interval_seconds: float = Field(
        default=300.0, gt=0, description="Period of the recovery sweeps."
    )
    sweep_stall_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A job step overdue by this much is considered lost and re-enqueued.",
    )

    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=MAX_TIMEOUT_SECONDS, description="Timeout of one webhook attempt."
    )
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.0, 5.0, 30.0],
        description="Delay before each webhook attempt, comma-separated (e.g. `0s,5s,30s` or "
        "`0s,5m,30m,2h,5h,10h`); its length is the number of attempts.",
    )
    webhook_dedup_ttl_seconds: int = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="How long a delivered (generation, event, destination) is remembered in "
        "Redis so that it is never sent twice.",
    )
    webhook_secret_overlap_seconds: float = Field(
        default=24 * 3600.0,
        ge=0,
        description="After a signing-secret rotation, how long the old secret still signs too.",
    )
    webhook_endpoint_disable_after_seconds: float = Field(
        default=5 * 24 * 3600.0,
        gt=0,
        description="A webhook endpoint failing continuously for this long is disabled.",
    )
    webhook_allowed_networks: Annotated[list[IPNetwork], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs that webhooks may target although private/loopback.",
    )

    signup_enabled: bool = Field(default=True, description="Allow POST /v1/signup.")
    signup_credits: int = Field(default=50, ge=0, description="Credits a new account starts with.")
    status_cache_ttl_seconds: int = Field(
        default=7 * 24 * 3600, gt=0, description="How long a finished job stays in the Redis cache."
    )

    api_host: str = Field(default="127.0.0.1", description="Address the API binds to.")
    api_port: int = Field(default=8000, description="Port of the API (`genhook up --port`).")
    api_workers: int = Field(default=2, ge=1, description="gunicorn worker processes.")
    worker_processes: int = Field(default=1, ge=1, description="Dramatiq worker processes.")
    worker_threads: int = Field(default=8, ge=1, description="Threads per Dramatiq process.")

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [
                ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip()
            ]
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            value = parse_schedule(value)
        if isinstance(value, list):
            return validate_schedule(value)
        return value

    def require_redis_url(self) -> str:
        """The Redis URL for processes that cannot run without one."""
        if not self.redis_url:
            raise SystemExit(
                "genhook: GENHOOK_REDIS_URL is not set (only `genhook up` starts a bundled Redis)"
            )
        return self.redis_url

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under ``var_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'genhook.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
