"""The relational schema, the source of truth. Migrations in ``migrations/versions`` build it;
``tests/test_migrations.py`` checks the two never drift apart."""

from __future__ import annotations

import sqlalchemy as sa

from backend.store.types import UTCDateTime

#: A sealed signing secret (``backend/secret_box.py``, about 120 characters today). SQLite
#: does not enforce a VARCHAR's length, and widening a column there means copying its table,
#: which the foreign keys on ``accounts`` forbid: so only PostgreSQL's columns grew (0011).
SEALED_SECRET = sa.String(255).with_variant(sa.String(120), "sqlite")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("credits", sa.Integer, nullable=False),
    sa.Column("signing_secret", SEALED_SECRET, nullable=False),
    # After a rotation the old secret keeps signing (alongside the new one) until it expires.
    sa.Column("previous_signing_secret", SEALED_SECRET, nullable=True),
    sa.Column("previous_signing_secret_expires_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # An operator's cap on the account's unfinished jobs; NULL: settings.max_jobs_in_flight.
    sa.Column("max_jobs_in_flight", sa.Integer, nullable=True),
    # When its email was verified (or the account was made by an operator or open signup);
    # NULL: signed up under ``verify_email`` and not verified yet (no key, no credits).
    sa.Column("verified_at", UTCDateTime, nullable=True),
    # May webhooks (and image fetches) reach private networks (settings'
    # private_webhook_networks)? Set by operators only, never through the API.
    sa.Column("allow_private_webhooks", sa.Boolean, nullable=False, server_default=sa.false()),
    # Its jobs ``pending`` or ``processing``: counted up where a job is inserted and down where
    # one finishes (``store/jobs.py``), in those transactions, so the cap is checked on a row.
    sa.Column("jobs_in_flight", sa.Integer, nullable=False, server_default="0"),
    sa.CheckConstraint("credits >= 0", name="credits_not_negative"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    # Refreshed at most every LAST_USED_RESOLUTION_SECONDS, so authentication stays a read.
    sa.Column("last_used_at", UTCDateTime, nullable=True),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("duration_seconds", sa.Integer, nullable=False),
    sa.Column("aspect_ratio", sa.String(8), nullable=False),
    sa.Column("webhook_url", sa.Text, nullable=True),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("provider_job_id", sa.String(128), nullable=True),
    # The provider's own name for the model (the catalog route's ``model``).
    sa.Column("provider_model", sa.String(128), nullable=True),
    # Ids in ``images``; no foreign key, since SQLite cannot add one to an existing table.
    sa.Column("image_id", sa.String(40), nullable=True),
    sa.Column("end_image_id", sa.String(40), nullable=True),
    # 0-100 and the place in the provider's queue, where the provider tells.
    sa.Column("progress", sa.Float, nullable=True),
    sa.Column("queue_position", sa.Integer, nullable=True),
    sa.Column("credits_charged", sa.Integer, nullable=False),
    sa.Column("refunded_at", UTCDateTime, nullable=True),
    sa.Column("failover_used", sa.Boolean, nullable=False, default=False),
    sa.Column("output_url", sa.Text, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("status_chain", sa.JSON, nullable=False),
    sa.Column("eta_seconds", sa.Float, nullable=True),
    sa.Column("poll_token", sa.String(32), nullable=True),
    sa.Column("poll_failures", sa.Integer, nullable=False, default=0),
    sa.Column("next_poll_at", UTCDateTime, nullable=True),
    sa.Column("last_polled_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("submitted_at", UTCDateTime, nullable=True),
    sa.Column("completed_at", UTCDateTime, nullable=True),
    # The routes this job may take, frozen at acceptance from the catalog: a list of
    # {"model", "provider", "provider_model", "credits", ...}; ``route_index`` is the one in use.
    sa.Column("route_plan", sa.JSON, nullable=True),
    sa.Column("route_index", sa.Integer, nullable=False, server_default="0"),
    # When the job is failed and refunded if unfinished: its model's maximum wait.
    sa.Column("deadline_at", UTCDateTime, nullable=True),
    # The catalog model of the route in use (differs from ``model`` after a failover).
    sa.Column("rendered_model", sa.String(64), nullable=True),
    # What the job costs now: the charge less failover price drops; NULL = credits_charged.
    sa.Column("credits_billed", sa.Integer, nullable=True),
    # The provider's own (expiring) URL of the result, before genhook kept a copy.
    sa.Column("provider_output_url", sa.Text, nullable=True),
    # genhook's copy of the result in its output store, and the key that signs its links.
    sa.Column("output_key", sa.Text, nullable=True),
    sa.Column("output_link_key", sa.String(64), nullable=True),
    sa.Column("output_content_type", sa.String(64), nullable=True),
    sa.Column("output_size_bytes", sa.BigInteger, nullable=True),
    sa.Column("output_stored_at", UTCDateTime, nullable=True),
    # Set when retention deleted the copy.
    sa.Column("output_deleted_at", UTCDateTime, nullable=True),
    sa.Index("ix_jobs_account_created", "account_id", "created_at", "id"),
    # The account's jobs in flight, counted at each submission (backend/jobs/in_flight.py).
    sa.Index("ix_jobs_account_status", "account_id", "status"),
    sa.Index("ix_jobs_output_stored", "output_stored_at"),
    sa.Index("ix_jobs_status_updated", "status", "updated_at"),
    # The fast recovery pass's overdue polls.
    sa.Index("ix_jobs_status_next_poll", "status", "next_poll_at"),
)

images = sa.Table(
    "images",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("content_type", sa.String(32), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    # Kept in the database so every API and worker process can serve and send it.
    sa.Column("data", sa.LargeBinary, nullable=False),
    # Signs this image's expiring links (one key per image: no server-wide secret needed).
    sa.Column("link_key", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

provider_tasks = sa.Table(
    "provider_tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("provider_model", sa.String(128), nullable=False),
    # The adapter's handle of the task; NULL while the create call is in flight or when it
    # is not known whether the provider made one.
    sa.Column("task_id", sa.String(256), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    # SHA-256 of the unguessable token in this task's callback URL.
    sa.Column("callback_token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("error", sa.Text, nullable=True),
    # What the operator paid for it, in the provider's units, where the provider says.
    sa.Column("cost", sa.Float, nullable=True),
    # Which hop of the job's route plan this task was.
    sa.Column("route_index", sa.Integer, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Index("ix_provider_tasks_job", "job_id"),
    sa.Index("ix_provider_tasks_state", "state", "updated_at"),
)

credit_ledger = sa.Table(
    "credit_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), nullable=True),
    sa.Column("delta", sa.Integer, nullable=False),
    # A ``LedgerReason`` (``backend/store/ledger.py``); a price drop names its route:
    # ``reprice:2``.
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Why an operator granted or took credits (``genhook accounts grant``); NULL otherwise.
    sa.Column("note", sa.Text, nullable=True),
    # One debit and at most one refund per job, enforced by the database itself (NULL job
    # ids never collide, so signups and grants are not limited).
    sa.UniqueConstraint("job_id", "reason"),
    # An account's entries in order: pages newest first, and the balance after each one.
    sa.Index("ix_credit_ledger_account_id", "account_id", "id"),
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("disabled_at", UTCDateTime, nullable=True),
    sa.Column("secret", SEALED_SECRET, nullable=False),
    sa.Column("previous_secret", SEALED_SECRET, nullable=True),
    sa.Column("previous_secret_expires_at", UTCDateTime, nullable=True),
    # Per-endpoint overrides of the webhook settings; NULL means "the server's default".
    sa.Column("retry_schedule", sa.JSON, nullable=True),
    sa.Column("timeout_seconds", sa.Float, nullable=True),
    # Start of the current run of failed attempts; cleared by any success.
    sa.Column("failing_since", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Deleted endpoints are kept so that their deliveries' log still makes sense.
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.Index("ix_webhook_endpoints_account", "account_id", "created_at"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    # NULL: the job's own webhook_url, signed with the account's secret.
    sa.Column("endpoint_id", sa.String(40), sa.ForeignKey("webhook_endpoints.id"), nullable=True),
    sa.Column("event", sa.String(64), nullable=False),
    # The job status or phase the event announces: "completed", "failed", "rendering"...
    sa.Column("job_state", sa.String(16), nullable=False, server_default=""),
    sa.Column("url", sa.Text, nullable=False),
    # SHA-256 of ``url``: what the unique constraint holds (a URL may be too long for an
    # index row; a hash never is).
    sa.Column("url_hash", sa.String(64), nullable=False),
    # The JSON body, frozen when the event happened, so every attempt sends the same bytes.
    sa.Column("payload", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt_count", sa.Integer, nullable=False, default=0),
    # Attempts made in the current round (the first round, a redelivery, or a recovery)
    # and how many the round may make; NULL means "the retry schedule's length".
    sa.Column("round_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("round_limit", sa.Integer, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    # One delivery per (generation, announced state, destination): the durable half of dedup.
    sa.UniqueConstraint("job_id", "event", "job_state", "url_hash"),
    sa.Index("ix_deliveries_status_next_attempt", "status", "next_attempt_at"),
    sa.Index("ix_deliveries_endpoint_status", "endpoint_id", "status", "created_at"),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(40), sa.ForeignKey("deliveries.id"), nullable=False),
    sa.Column("attempted_at", UTCDateTime, nullable=False),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("response_body", sa.Text, nullable=True),
    # True when Redis could not be asked whether this was already delivered (fail-open).
    sa.Column("dedup_unavailable", sa.Boolean, nullable=False, server_default=sa.false()),
    # Where this attempt went: an endpoint's URL may have changed since the delivery was made.
    sa.Column("url", sa.Text, nullable=True),
    sa.Index("ix_delivery_attempts_delivery", "delivery_id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # Whose key: an account id, or "signup" for the anonymous signup.
    sa.Column("scope", sa.String(40), nullable=False),
    # SHA-256 of the scope and the client's key: the key itself is never stored.
    sa.Column("key_hash", sa.String(64), nullable=False),
    # SHA-256 of the request body (canonical JSON): the same key with another body is refused.
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    # The first answer's body, AES-GCM encrypted under a key derived from the client's key
    # and body: a signup's API key is only readable by whoever sends that key and body.
    sa.Column("response", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    # Concurrent requests with one key: the database lets exactly one of them commit.
    sa.UniqueConstraint("scope", "key_hash"),
    sa.Index("ix_idempotency_keys_expires_at", "expires_at"),
)

signup_tokens = sa.Table(
    "signup_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    # SHA-256 of the token in the verification link: the token itself is never stored.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    # Set when the link was followed, or when another link of the account was.
    sa.Column("used_at", UTCDateTime, nullable=True),
    sa.Index("ix_signup_tokens_account", "account_id"),
)

signup_mails = sa.Table(
    "signup_mails",
    metadata,
    # An outbox: written with the signup, sent by a worker, retried, never lost silently.
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    # ``verify`` (a link to follow) or ``already_registered`` (someone used this address).
    sa.Column("kind", sa.String(24), nullable=False),
    # ``pending``, ``sent`` or ``failed`` (every attempt of the schedule failed).
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Index("ix_signup_mails_status_next_attempt", "status", "next_attempt_at"),
    sa.Index("ix_signup_mails_account_created", "account_id", "created_at"),
)
