"""Webhook endpoints (subscriptions), signing secrets and the delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat, field_validator

from backend.durations import parse_duration
from backend.schemas.common import MAX_WEBHOOK_URL_CHARS, webhook_url_shape
from backend.schemas.generations import WebhookEvent
from backend.webhooks.retry import MAX_ATTEMPTS, MAX_TIMEOUT_SECONDS, validate_schedule

MAX_DESCRIPTION_CHARS = 500

_SCHEDULE_HELP = (
    "Delay before each attempt, as seconds or duration strings (`0s`, `5m`, `2h`); its "
    f"length (1 to {MAX_ATTEMPTS}) is the number of attempts. `null`: the server's default."
)


def _schedule(value: list[StrictFloat | str] | None) -> list[float] | None:
    if value is None:
        return None
    return validate_schedule([parse_duration(v) for v in value])


def _default_events() -> list[WebhookEvent]:
    return ["video.generation.completed", "video.generation.failed", "video.generation.canceled"]


def _events(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("lists an event twice")
    return value


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=MAX_WEBHOOK_URL_CHARS, examples=["https://hooks.example/genhook"])
    events: list[WebhookEvent] = Field(
        default_factory=_default_events,
        min_length=1,
        description="Events to receive; `video.generation.status_changed` (every phase "
        "change) is opt-in.",
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    enabled: bool = True
    retry_schedule: list[StrictFloat | str] | None = Field(
        default=None, description=_SCHEDULE_HELP, examples=[["0s", "5m", "30m", "2h", "5h", "10h"]]
    )
    timeout_seconds: StrictFloat | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT_SECONDS, description="Per-attempt timeout override."
    )

    _url = field_validator("url")(webhook_url_shape)
    _events = field_validator("events")(_events)
    _schedule = field_validator("retry_schedule")(_schedule)


class WebhookEndpointUpdate(BaseModel):
    """Fields to change; absent fields stay as they are, `null` resets an override."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=MAX_WEBHOOK_URL_CHARS)
    events: list[WebhookEvent] | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    enabled: bool | None = Field(
        default=None, description="`true` re-enables an endpoint that was disabled."
    )
    retry_schedule: list[StrictFloat | str] | None = Field(default=None, description=_SCHEDULE_HELP)
    timeout_seconds: StrictFloat | None = Field(default=None, gt=0, le=MAX_TIMEOUT_SECONDS)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("cannot be null")
        return webhook_url_shape(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            raise ValueError("cannot be null")
        return _events(value)

    @field_validator("description", "enabled")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null")
        return value

    _schedule = field_validator("retry_schedule")(_schedule)


class WebhookEndpoint(BaseModel):
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str = Field(examples=["we_01jc0q7v6b3m9x2k4p8r5t1w"])
    url: str
    events: list[WebhookEvent]
    description: str
    enabled: bool
    disabled_reason: str | None = Field(description="Why genhook disabled it, if it did.")
    disabled_at: datetime | None
    retry_schedule: list[float] | None = Field(
        description="Delays in seconds before each attempt; `null`: the server's default."
    )
    timeout_seconds: StrictFloat | None = Field(description="`null`: the server's default.")
    failing_since: datetime | None = Field(
        description="Start of the current run of failed attempts (no success since)."
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpoint):
    secret: str = Field(description="`whsec_…` secret that signs this endpoint's webhooks.")


class WebhookEndpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookEndpoint]


class SigningSecret(BaseModel):
    object: Literal["signing_secret"] = "signing_secret"
    secret: str = Field(description="The current `whsec_…` secret.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs too (a second `v1,` signature)."
    )


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(
        description="Re-send every failed delivery to this endpoint created at or after this "
        "time (RFC 3339 with a time zone)."
    )


class RecoverResult(BaseModel):
    object: Literal["webhook_recovery"] = "webhook_recovery"
    endpoint_id: str
    since: datetime
    delivery_ids: list[str] = Field(description="The deliveries queued again, oldest first.")


class DeliveryAttempt(BaseModel):
    attempted_at: datetime
    url: str | None = Field(description="Where it was sent; `null` if nothing was sent.")
    response_status: int | None = Field(description="HTTP status, `null` if none came back.")
    latency_ms: int
    error: str | None
    response_body: str | None = Field(description="The first 2 KB of the receiver's answer.")
    dedup_unavailable: bool = Field(
        description="Redis could not be asked whether this was already delivered; the "
        "attempt went ahead (fail-open)."
    )


class Delivery(BaseModel):
    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str = Field(description="Also the `webhook-id` header of every attempt.")
    generation_id: str
    endpoint_id: str | None = Field(
        description="`null`: the generation's own `webhook_url`, signed with the account secret."
    )
    event: WebhookEvent
    url: str = Field(
        description="The destination when the event happened; an endpoint's later attempts "
        "go to its current URL (see each attempt's `url`)."
    )
    status: Literal["pending", "delivered", "failed"]
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    attempts: list[DeliveryAttempt]


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Delivery]
