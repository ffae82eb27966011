"""genhook's one settings module: every knob, read from ``GENHOOK_*`` environment variables.

Nothing else in the code base reads ``os.environ``; components receive a :class:`Settings`.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backend.durations import parse_schedule
from backend.ratelimit.policy import parse_limits
from backend.webhooks.name_lookup import DEFAULT_TIMEOUT_SECONDS as DEFAULT_LOOKUP_TIMEOUT_SECONDS
from backend.webhooks.retry import MAX_TIMEOUT_SECONDS, validate_schedule

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SignupMode(StrEnum):
    """Who may create an account through ``POST /v1/signup``."""

    OPEN = "open"  # at once, with its key and credits: local use only (`genhook up`)
    VERIFY_EMAIL = "verify_email"  # credits and key when the emailed link is followed
    CLOSED = "closed"  # operators create accounts (`genhook accounts create`)


class SmtpSecurity(StrEnum):
    """How the connection to the SMTP server is protected."""

    STARTTLS = "starttls"  # plain connection upgraded with STARTTLS (port 587)
    SSL = "ssl"  # TLS from the first byte (port 465)
    NONE = "none"  # no TLS: a relay on this machine or in a trusted network only


#: Networks accounts allowed private webhook targets may reach, unless the operator says
#: otherwise: loopback, RFC 1918, IPv6 loopback and unique local addresses.
DEFAULT_PRIVATE_WEBHOOK_NETWORKS = (
    "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,::1/128,fc00::/7"
)

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
        description="Backstop of a task whose provider will call back: it is polled this "
        "long after its expected end (and at least this far apart, at most twice this), in "
        "case a callback is lost.",
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
        description="Comma-separated CIDRs that EVERY account's webhooks and image URLs may "
        "target although private/loopback (a deliberate choice: any tenant then reaches "
        "them). `genhook up` does not set it; prefer `private_webhook_networks`.",
    )
    private_webhook_networks: Annotated[list[IPNetwork], NoDecode] = Field(
        default_factory=lambda: [
            ipaddress.ip_network(n) for n in DEFAULT_PRIVATE_WEBHOOK_NETWORKS.split(",")
        ],
        description="Comma-separated CIDRs that the webhooks and image URLs of accounts "
        "allowed private targets (`genhook accounts create --allow-private-webhooks`, "
        "`genhook accounts set`) may target: loopback, RFC 1918 and IPv6 unique local "
        "addresses by default; never link-local (cloud metadata) unless listed.",
    )
    provider_allowed_networks: Annotated[list[IPNetwork], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs that genhook's downloads of providers' finished "
        "videos may reach although private/loopback (`genhook up` sets loopback when a "
        "provider is simulated on this machine). Tenants' URLs never use it.",
    )
    simulator_control_token: str = Field(
        default="",
        description="Bearer token the provider simulator's control routes (`/_sim/*`: "
        "faults, reset, inspection) require; empty turns them off. `genhook up` makes a "
        "random one unless set, and writes it to `var/stack.env` (mode 0600).",
    )

    # Rate limits and quotas (backend/ratelimit/): each a list of `<n>/<window>` separated by
    # `;` (e.g. `20/second;600/minute`: a burst of 20, 10 a second sustained), counted in
    # Redis so every API process and worker shares them; an empty value turns one off.
    rate_limit_reads: str = Field(
        default="50/second;1200/minute",
        description="Requests an account may make with GET (reads), per window: a burst "
        "allowance and a sustained rate. Exceeding it is a 429 with `Retry-After`.",
    )
    rate_limit_writes: str = Field(
        default="20/second;300/minute",
        description="Requests an account may make with POST, PATCH or DELETE (writes), "
        "counted apart from reads.",
    )
    max_jobs_in_flight: int = Field(
        default=50,
        ge=1,
        description="Generations an account may have unfinished (`pending` or `processing`) "
        "at once; one more is a 429, nothing charged. `genhook accounts set-limits` "
        "overrides it per account.",
    )
    quota_deliveries: str = Field(
        default="10000/hour",
        description="Webhook attempts sent for one account (retries, redeliveries and "
        "recoveries included). Past it, attempts wait for room (nothing is lost) and "
        "redeliver and recover answer 429.",
    )
    quota_redeliveries: str = Field(
        default="300/hour",
        description="`POST /v1/deliveries/{id}/redeliver` calls an account may make.",
    )
    quota_recovers: str = Field(
        default="30/hour",
        description="Recover calls (`POST /v1/deliveries/recover`, "
        "`POST /v1/webhook-endpoints/{id}/recover`) an account may make.",
    )
    signup_limit_per_address: str = Field(
        default="10/hour",
        description="Signups one client address may attempt (see `GENHOOK_TRUSTED_PROXIES`).",
    )
    signup_limit_per_domain: str = Field(
        default="100/hour",
        description="Signups with emails of one domain that may be attempted (from addresses "
        "still within their own limit).",
    )
    trusted_proxies: Annotated[list[IPNetwork], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs of the reverse proxies in front of the API: when "
        "the peer is one, the client address is the right-most `X-Forwarded-For` address "
        "that is not. Empty: the peer's address, and `X-Forwarded-For` is ignored.",
    )

    signup_mode: SignupMode = Field(
        default=SignupMode.VERIFY_EMAIL,
        description="`verify_email`: a signup gets its API key, signing secret and free credits "
        "when it follows the link mailed to it (needs the `smtp_*` settings); `open`: at once, "
        "with no check (local use only: what `genhook up` runs); `closed`: signup is refused "
        "and operators create accounts with `genhook accounts create`.",
    )
    signup_enabled: bool = Field(
        default=True,
        description="Deprecated: `false` means `signup_mode=closed` (when `signup_mode` is not "
        "set); `true` changes nothing.",
    )
    signup_credits: int = Field(
        default=50,
        ge=0,
        description="Free credits of a new account (granted when its email is verified, under "
        "`verify_email`).",
    )
    signup_verification_ttl_seconds: int = Field(
        default=24 * 3600, gt=0, description="How long the link in a verification mail works."
    )
    signup_mail_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        description="At most one signup mail of each kind per address this often: signing up "
        "again sooner answers the same but sends nothing (the first mail is on its way).",
    )
    signup_link_base_url: str = Field(
        default="",
        description="The API's address as a person's browser reaches it, for the link in "
        "verification mails (e.g. `https://genhook.example`); empty means `public_base_url`. "
        "Never taken from the request's Host header.",
    )
    smtp_host: str = Field(
        default="", description="SMTP server that sends signup mails; empty: no mail is sent."
    )
    smtp_port: int = Field(
        default=587, gt=0, lt=65536, description="SMTP port (587 for STARTTLS, 465 for SSL)."
    )
    smtp_security: SmtpSecurity = Field(
        default=SmtpSecurity.STARTTLS,
        description="`starttls`, `ssl` (TLS from the start) or `none` (a trusted local relay "
        "only); the server's certificate is always verified.",
    )
    smtp_username: str = Field(default="", description="SMTP login; empty: no login.")
    smtp_password: str = Field(default="", description="SMTP password.")
    smtp_from: str = Field(
        default="genhook <no-reply@localhost>",
        description="The From address of signup mails, e.g. `genhook <no-reply@example.com>`.",
    )
    smtp_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="Timeout of each step of one SMTP conversation."
    )
    smtp_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.0, 10.0, 60.0, 300.0, 1800.0, 3600.0],
        description="Delay before each attempt to send a signup mail, comma-separated like "
        "the webhook schedule; a mail still unsent after the last is marked failed and logged "
        "as an error.",
    )
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

    admin_key: str = Field(
        default="",
        repr=False,
        description="The operator's key: `Authorization: Bearer <admin key>` on `/readyz` shows "
        "each dependency's error. Empty: the details are only logged, never shown.",
    )

    api_host: str = Field(default="127.0.0.1", description="Address the API binds to.")
    api_port: int = Field(default=8000, description="Port of the API (`genhook up --port`).")
    api_workers: int = Field(default=2, ge=1, description="gunicorn worker processes.")
    worker_processes: int = Field(
        default=1,
        ge=1,
        description="Processes of the job worker (`genhook worker --queues jobs`), and of a "
        "worker serving every queue (`genhook worker` alone).",
    )
    worker_threads: int = Field(default=8, ge=1, description="Threads per process of that worker.")
    webhook_worker_processes: int = Field(
        default=1,
        ge=1,
        description="Processes of the delivery worker (`genhook worker --queues webhooks`), "
        "whose threads only send webhooks, so a slow receiver never holds up a job.",
    )
    webhook_worker_threads: int = Field(
        default=16,
        ge=1,
        description="Threads per process of the delivery worker; each sends one webhook at a "
        "time and mostly waits on the receiver.",
    )
    webhook_account_concurrency: int = Field(
        default=8,
        ge=1,
        description="Most webhooks of one account in flight at once, across every delivery "
        "worker; more wait their turn. Keep it below the delivery pool's threads "
        "(processes x threads) so other accounts always find threads free.",
    )
    webhook_destination_concurrency: int = Field(
        default=4,
        ge=1,
        description="Most webhooks of one account in flight at once to one destination "
        "(`host:port`), across every delivery worker, so one slow receiver of an account "
        "does not hold up its other receivers either.",
    )
    api_key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long an API process remembers a key it found live, sparing a "
        "database lookup per request. A key revoked through this process's API stops at "
        "once; revoked elsewhere (another API process, `genhook accounts revoke-key`) or an "
        "operator's change to the account holds within this time. 0: every request looks "
        "its key up.",
    )
    api_threads: int = Field(
        default=8,
        ge=1,
        description="Threads per API worker process: requests served at once by each. A "
        "thread only ever gets a request that has fully arrived.",
    )
    api_max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections one API worker process holds at most (gunicorn's "
        "`--worker-connections`); past it, new ones wait in the listen queue.",
    )
    api_max_connections_per_client: int = Field(
        default=20,
        ge=0,
        description="Open connections one client address may hold in each API worker "
        "process; one more is answered 429 and closed. 0 turns the cap off (behind a reverse "
        "proxy every connection comes from the proxy's address: cap per client there).",
    )
    api_keepalive_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long an idle kept-alive connection stays open; 0 closes each "
        "connection after its answer.",
    )
    api_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A request's line and headers must arrive within this long of its start "
        "(the connection's accept, or a kept-alive connection's first new byte); otherwise "
        "408 and the connection is closed.",
    )
    api_body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time a request body has to arrive after the headers, plus one second per "
        "`api_body_min_bytes_per_second` received; otherwise 408 and the connection is closed.",
    )
    api_body_min_bytes_per_second: float = Field(
        default=10_000.0,
        gt=0,
        description="The slowest average rate at which a request body may arrive (beyond "
        "`api_body_timeout_seconds`).",
    )
    api_write_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A client that takes none of a response's next chunk for this long is "
        "disconnected, freeing the thread that writes it.",
    )
    dns_timeout_seconds: float = Field(
        default=DEFAULT_LOOKUP_TIMEOUT_SECONDS,
        gt=0,
        description="Longest wait for the name of a webhook or image URL to resolve while a "
        "request waits (submission, endpoint registration); past it the request is a 503 "
        "naming the field, with `Retry-After`.",
    )
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

    @field_validator(
        "rate_limit_reads",
        "rate_limit_writes",
        "quota_deliveries",
        "quota_redeliveries",
        "quota_recovers",
        "signup_limit_per_address",
        "signup_limit_per_domain",
    )
    @classmethod
    def _check_limits(cls, value: str) -> str:
        parse_limits(value)  # raises ValueError naming what it cannot read
        return value.strip()

    @field_validator(
        "webhook_allowed_networks",
        "private_webhook_networks",
        "provider_allowed_networks",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [
                ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip()
            ]
        return value

    @model_validator(mode="after")
    def _signup_enabled_false_means_closed(self) -> Settings:
        if not self.signup_enabled and "signup_mode" not in self.model_fields_set:
            self.signup_mode = SignupMode.CLOSED
        return self

    @field_validator(
        "webhook_retry_schedule",
        "output_copy_retry_schedule",
        "smtp_retry_schedule",
        mode="before",
    )
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
    def signup_link_base(self) -> str:
        """Where verification links point; empty when neither setting gives an address."""
        return (self.signup_link_base_url or self.public_base_url).rstrip("/")

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
