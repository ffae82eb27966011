"""genhook's one settings module: every knob, read from ``GENHOOK_*`` environment variables.

Nothing else in the code base reads ``os.environ``; components receive a :class:`Settings`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
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
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="The operator's keys that seal webhook signing secrets at rest, "
        "comma-separated, newest first: the first seals, every one opens (`genhook secrets "
        "generate-key` makes one; `genhook secrets rotate` re-seals under the first). "
        "Required by `genhook api`, `worker` and `scheduler`; `genhook up` keeps its own in "
        "var_dir.",
    )

    simulator_url: str = Field(
        default="http://127.0.0.1:8090", description="Base URL of the provider simulator."
    )
    simulator_render_seconds: float = Field(
        default=20.0, ge=0, description="How long a simulated render takes."
    )
    simulator_fallback: bool = Field(
        default=False,
        description="Render models that have no enabled provider route with the simulator's "
        "native protocol at `simulator_url` (for tests and demos; never in production).",
    )

    public_base_url: str = Field(
        default="",
        description="The API's address as providers see it (e.g. `https://genhook.example`). "
        "When set, providers get a per-task callback URL and fetch input images from signed, "
        "expiring links; when empty, everything is polled and images are sent inline.",
    )
    provider_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Timeout of one call to a provider's API."
    )
    provider_callback_poll_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Poll interval of a task whose provider will call back: polling stays "
        "as a slower backstop.",
    )
    image_max_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest first/last-frame image accepted."
    )
    image_link_ttl_seconds: int = Field(
        default=24 * 3600,
        gt=0,
        description="How long a signed link to an input image handed to a provider stays valid.",
    )

    # Output storage: genhook keeps its own copy of each finished video.
    storage_url: str = Field(
        default="",
        pattern=r"^(file://.+|s3://[^/]+.*)?$",
        description="Where finished videos are kept: `file:///abs/dir` or `s3://bucket/prefix`; "
        "empty means the `outputs` directory under var_dir.",
    )
    s3_endpoint_url: str = Field(
        default="",
        description="Endpoint of an S3-compatible store (MinIO, R2, …); empty means AWS S3.",
    )
    s3_region: str = Field(default="us-east-1", description="Region of the S3 bucket.")
    s3_access_key_id: str = Field(
        default="",
        description="S3 access key id; with the secret empty too, boto3's credential chain "
        "(instance or pod role, ~/.aws) is used, never AWS_* environment variables.",
    )
    s3_secret_access_key: str = Field(default="", description="S3 secret access key.")
    output_max_bytes: int = Field(
        default=1024 * 1024 * 1024, gt=0, description="Largest finished video genhook keeps."
    )
    output_url_ttl_seconds: int = Field(
        default=24 * 3600,
        gt=0,
        description="How long a signed `output_url` stays valid; each read of the job signs anew.",
    )
    output_retention_days: int = Field(
        default=30, ge=0, description="Kept videos older than this are deleted; 0 keeps them."
    )

    # Providers: each is enabled when its credentials are set. Defaults are the real APIs.
    kling_base_url: str = Field(
        default="https://api-singapore.klingai.com", description="Kling API base URL."
    )
    kling_access_key: str = Field(default="", description="Kling AccessKey (JWT issuer).")
    kling_secret_key: str = Field(default="", description="Kling SecretKey (signs the JWT).")
    fal_queue_url: str = Field(default="https://queue.fal.run", description="fal queue host.")
    fal_key: str = Field(default="", description="fal API key (`key_id:key_secret`).")
    fal_jwks_url: str = Field(
        default="https://rest.alpha.fal.ai/.well-known/jwks.json",
        description="Where fal publishes the ED25519 keys its webhooks are signed with.",
    )
    replicate_base_url: str = Field(
        default="https://api.replicate.com", description="Replicate API base URL."
    )
    replicate_api_token: str = Field(default="", description="Replicate API token.")
    replicate_webhook_secret: str = Field(
        default="",
        description="Replicate's `whsec_` webhook signing secret; empty: fetched from "
        "`GET /v1/webhooks/default/secret` when first needed.",
    )
    runway_base_url: str = Field(
        default="https://api.dev.runwayml.com", description="Runway API base URL."
    )
    runway_api_key: str = Field(default="", description="Runway API key.")
    luma_base_url: str = Field(
        default="https://api.lumalabs.ai/dream-machine/v1",
        description="Luma Dream Machine API base URL.",
    )
    luma_api_key: str = Field(default="", description="Luma API key.")
    byteplus_base_url: str = Field(
        default="https://ark.ap-southeast.bytepluses.com/api/v3",
        description="BytePlus ModelArk API base URL (Seedance).",
    )
    byteplus_api_key: str = Field(default="", description="BytePlus ModelArk API key.")
    gemini_base_url: str = Field(
        default="https://generativelanguage.googleapis.com",
        description="Gemini API base URL (Veo).",
    )
    gemini_api_key: str = Field(default="", description="Gemini API key.")
    minimax_base_url: str = Field(
        default="https://api.minimax.io", description="MiniMax API base URL (Hailuo)."
    )
    minimax_api_key: str = Field(default="", description="MiniMax API key.")

    catalog_file: Path | None = Field(
        default=None,
        description="The operator's model catalog (TOML, the format of `backend/catalog.toml`); "
        "empty means the catalog shipped with genhook.",
    )

    poll_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Shortest delay between two status polls of a provider job (a catalog "
        "route's `poll_interval_seconds` overrides it).",
    )
    poll_max_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest delay between two status polls: a render far from its expected "
        "end is polled this rarely, one near it every `poll_interval_seconds`.",
    )
    poll_max_transient_failures: int = Field(
        default=5,
        ge=0,
        description="Consecutive transient poll errors tolerated on one route before the job "
        "moves to its next; also bounds lost-answer retries and rounds through the plan.",
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
        description="For the periodic sweep: a job step overdue by this much is considered "
        "lost and re-enqueued.",
    )
    recovery_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Period of the fast recovery pass: cheap indexed queries for overdue "
        "submissions, polls and deliveries (a lost message, a killed worker).",
    )
    webhook_probe_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A destination whose webhook retries all wait for a later slot gets one "
        "of them tried early this often, so a receiver back from an outage gets its backlog "
        "within about this long.",
    )
    recovery_on_worker_start: bool = Field(
        default=True,
        description="A worker runs the fast recovery pass as it starts.",
    )
    recovery_grace_seconds: float = Field(
        default=20.0,
        ge=0,
        description="Work overdue by more than this, and not locked by a live worker, is "
        "enqueued again by the fast recovery pass.",
    )

    # Provider health: a circuit breaker per route, fed by real calls and a scheduled probe.
    provider_health_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Period of the scheduler's active probe: each enabled provider's health "
        "call, counted for every catalog route of that provider.",
    )
    provider_breaker_failures: int = Field(
        default=3,
        ge=1,
        description="Consecutive failures of a route that open its circuit breaker.",
    )
    provider_breaker_failure_rate: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of failed calls over the window (with at least the minimum samples) "
        "that opens a route's circuit breaker.",
    )
    provider_breaker_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description="The window over which a route's failure rate, success rate and latency are "
        "measured.",
    )
    provider_breaker_min_samples: int = Field(
        default=10,
        ge=1,
        description="Calls a route needs in the window before its failure rate can open it.",
    )
    provider_breaker_cooldown_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long an open route is skipped; then one call decides (a success closes "
        "it, a failure opens it again).",
    )

    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=MAX_TIMEOUT_SECONDS, description="Timeout of one webhook attempt."
    )
    output_copy_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.0, 5.0, 30.0, 120.0, 600.0],
        description="Delay before each attempt to copy a finished video into genhook's "
        "storage, comma-separated like the webhook schedule; when every attempt fails the "
        "job completes with the provider's own URL.",
    )
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        # Three quick attempts, then a long tail: a receiver down for a day loses nothing.
        default_factory=lambda: [0.0, 5.0, 30.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
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
    idempotency_ttl_seconds: int = Field(
        default=24 * 3600,
        gt=0,
        description="How long the answer to a request sent with an `Idempotency-Key` is "
        "remembered.",
    )
    status_cache_revalidate_seconds: float = Field(
        default=5.0,
        gt=0,
        description="A running job's cached status older than this is read again from the "
        "database, so a worker that died between its commit and the cache write cannot make "
        "GET show an old state for longer.",
    )

    api_host: str = Field(default="127.0.0.1", description="Address the API binds to.")
    api_port: int = Field(default=8000, description="Port of the API (`genhook up --port`).")
    api_workers: int = Field(default=2, ge=1, description="gunicorn worker processes.")
    worker_processes: int = Field(default=1, ge=1, description="Dramatiq worker processes.")
    worker_threads: int = Field(default=8, ge=1, description="Threads per Dramatiq process.")
    worker_shutdown_timeout_seconds: float = Field(
        default=12.0,
        gt=0,
        description="After SIGTERM, how long a worker lets its running steps finish; a step "
        "still running then has its message requeued for another worker and its lock "
        "released, and the worker exits. `genhook up` caps it so its 20 s stop holds.",
    )

    @field_validator("catalog_file", mode="before")
    @classmethod
    def _empty_means_shipped(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("secret_key")
    @classmethod
    def _keys_parse(cls, value: SecretStr) -> SecretStr:
        from backend.errors import SecretKeyError
        from backend.secret_box import parse_keys

        try:
            parse_keys(value.get_secret_value())
        except SecretKeyError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [
                ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip()
            ]
        return value

    @field_validator("webhook_retry_schedule", "output_copy_retry_schedule", mode="before")
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
