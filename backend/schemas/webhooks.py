"""Webhook endpoints (subscriptions), signing secrets and the delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    field_validator,
)

from backend.durations import parse_duration
from backend.schemas import examples
from backend.schemas.common import MAX_WEBHOOK_URL_CHARS, in_utc_range, webhook_url_shape
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
    """A URL to subscribe to generation events."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.WEBHOOK_ENDPOINT_CREATE]}
    )

    url: str = Field(
        max_length=MAX_WEBHOOK_URL_CHARS,
        description="Where the events are POSTed: a public http(s) URL (private, loopback "
        "and link-local addresses are refused).",
        examples=[examples.ENDPOINT_URL],
    )
    events: list[WebhookEvent] = Field(
        default_factory=_default_events,
        min_length=1,
        description="Events to receive; `video.generation.status_changed` (every phase "
        "change) is opt-in.",
        examples=[examples.DEFAULT_EVENTS],
    )
    description: str = Field(
        default="",
        max_length=MAX_DESCRIPTION_CHARS,
        description=f"A note for yourself (up to {MAX_DESCRIPTION_CHARS} characters).",
        examples=["Listing videos for the CRM"],
    )
    enabled: StrictBool = Field(
        default=True, description="`false` registers it without sending anything yet."
    )
    retry_schedule: list[StrictFloat | str] | None = Field(
        default=None, description=_SCHEDULE_HELP, examples=[examples.RETRY_SCHEDULE]
    )
    timeout_seconds: StrictFloat | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description=f"Seconds to wait for an answer to one attempt (at most "
        f"{MAX_TIMEOUT_SECONDS:g}). `null`: the server's default.",
        examples=[15.0],
    )

    _url = field_validator("url")(webhook_url_shape)
    _events = field_validator("events")(_events)
    _schedule = field_validator("retry_schedule")(_schedule)


def _absent_by_default(schema: dict[str, Any]) -> None:
    """An optional field that must not be null: its published schema says "may be left
    out", not "may be null" or "defaults to null"."""
    schema.pop("default", None)
    variants = schema.pop("anyOf", None)
    if variants is not None:
        [kept] = [v for v in variants if v.get("type") != "null"]
        schema.update(kept)


class WebhookEndpointUpdate(BaseModel):
    """Fields to change; absent fields stay as they are, `null` resets an override."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.WEBHOOK_ENDPOINT_UPDATE]}
    )

    # Optional but never null (the validators below say so): see _absent_by_default.
    url: str | None = Field(
        default=None,
        json_schema_extra=_absent_by_default,
        max_length=MAX_WEBHOOK_URL_CHARS,
        description="A new public http(s) URL; later attempts of pending deliveries go there.",
        examples=[examples.ENDPOINT_URL],
    )
    events: list[WebhookEvent] | None = Field(
        default=None,
        json_schema_extra=_absent_by_default,
        min_length=1,
        description="The events to receive from now on (replaces the list).",
        examples=[examples.WEBHOOK_ENDPOINT_UPDATE["events"]],
    )
    description: str | None = Field(
        default=None,
        json_schema_extra=_absent_by_default,
        max_length=MAX_DESCRIPTION_CHARS,
        description=f"A note for yourself (up to {MAX_DESCRIPTION_CHARS} characters).",
        examples=["Listing videos for the CRM"],
    )
    enabled: StrictBool | None = Field(
        default=None,
        json_schema_extra=_absent_by_default,
        description="`true` re-enables an endpoint that was disabled (and forgets its "
        "failures); `false` stops sending to it.",
        examples=[True],
    )
    retry_schedule: list[StrictFloat | str] | None = Field(
        default=None, description=_SCHEDULE_HELP, examples=[examples.RETRY_SCHEDULE]
    )
    timeout_seconds: StrictFloat | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description=f"Seconds to wait for an answer to one attempt (at most "
        f"{MAX_TIMEOUT_SECONDS:g}). `null`: the server's default.",
        examples=[15.0],
    )

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
    """A URL subscribed to generation events."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.WEBHOOK_ENDPOINT]})

    object: Literal["webhook_endpoint"] = Field(
        default="webhook_endpoint", description="Always `webhook_endpoint`."
    )
    id: str = Field(description="The endpoint's id.", examples=[examples.ENDPOINT_ID])
    url: str = Field(description="Where the events are POSTed.")
    events: list[WebhookEvent] = Field(description="The events it receives.")
    description: str = Field(description="The account's note.")
    enabled: bool = Field(description="Whether events are sent to it.")
    disabled_reason: str | None = Field(
        description="Why it is disabled: `disabled by the account`, or genhook's reason when "
        "it disabled the endpoint itself (a 410 Gone answer, or failing for too long)."
    )
    disabled_at: datetime | None = Field(description="When it was disabled.")
    retry_schedule: list[float] | None = Field(
        description="Delays in seconds before each attempt; `null`: the server's default."
    )
    timeout_seconds: StrictFloat | None = Field(
        description="Seconds to wait for an answer to one attempt; `null`: the server's default."
    )
    failing_since: datetime | None = Field(
        description="Start of the current run of failed attempts (no success since); an "
        "endpoint failing for `GENHOOK_WEBHOOK_ENDPOINT_DISABLE_AFTER_SECONDS` is disabled."
    )
    created_at: datetime = Field(description="When it was created.")
    updated_at: datetime = Field(description="Last change of its settings or state.")


class WebhookEndpointCreated(WebhookEndpoint):
    """A new webhook endpoint, with the secret that signs its webhooks."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.WEBHOOK_ENDPOINT_CREATED]})

    secret: str = Field(description="`whsec_…` secret that signs this endpoint's webhooks.")


class WebhookEndpointList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.WEBHOOK_ENDPOINT_LIST]})

    object: Literal["list"] = Field(default="list", description="Always `list`.")
    data: list[WebhookEndpoint] = Field(description="The account's endpoints, oldest first.")


#: Longest overlap a rotation may ask for: a week.
MAX_OVERLAP_SECONDS = 7 * 24 * 3600


class RotateSecretRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.ROTATE_SECRET_REQUEST]}
    )

    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="How long the old secret keeps signing too. `0` retires it at once "
        "(a leaked secret): every webhook sent after this answer carries only the new "
        "signature. Omitted: the server's default (24 h unless its operator changed it).",
    )


class SigningSecret(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.SIGNING_SECRET_ANSWER]})

    object: Literal["signing_secret"] = Field(
        default="signing_secret", description="Always `signing_secret`."
    )
    secret: str = Field(description="The current `whsec_…` secret.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs too (a second `v1,` signature)."
    )


class RecoverRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.RECOVER_REQUEST]}
    )

    since: AwareDatetime = Field(
        description="Re-send every failed delivery to this endpoint created at or after this "
        "time (RFC 3339 with a time zone).",
        examples=[examples.RECOVER_REQUEST["since"]],
    )
    _since = field_validator("since")(in_utc_range)


class RecoverResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.RECOVER_RESULT]})

    object: Literal["webhook_recovery"] = Field(
        default="webhook_recovery", description="Always `webhook_recovery`."
    )
    endpoint_id: str = Field(description="The endpoint the deliveries go to.")
    since: datetime = Field(description="The `since` of the request.")
    delivery_ids: list[str] = Field(description="The deliveries queued again, oldest first.")


class AccountRecoverRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.ACCOUNT_RECOVER_REQUEST]}
    )

    since: AwareDatetime = Field(
        description="Deliveries created at or after this time (RFC 3339 with a time zone).",
        examples=[examples.ACCOUNT_RECOVER_REQUEST["since"]],
    )
    _since = field_validator("since")(in_utc_range)
    status: Literal["failed", "pending"] = Field(
        default="failed",
        description="`failed` (the default): every failed delivery gets a fresh round on its "
        "retry schedule. `pending`: every delivery still waiting for a retry is sent now "
        "(e.g. once a receiver is back from an outage).",
    )


class AccountRecoverResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.ACCOUNT_RECOVER_RESULT]})

    object: Literal["webhook_recovery"] = Field(
        default="webhook_recovery", description="Always `webhook_recovery`."
    )
    since: datetime = Field(description="The `since` of the request.")
    status: Literal["failed", "pending"] = Field(description="The `status` of the request.")
    delivery_ids: list[str] = Field(description="The deliveries queued again, oldest first.")


class DeliveryAttempt(BaseModel):
    """One POST of a delivery, or one that could not be sent."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.DELIVERY_ATTEMPTS[0]]})

    attempted_at: datetime = Field(description="When the attempt was made.")
    url: str | None = Field(description="Where it was sent; `null` if nothing was sent.")
    response_status: int | None = Field(description="HTTP status, `null` if none came back.")
    latency_ms: int = Field(description="Milliseconds until the answer (or the failure).")
    error: str | None = Field(
        description="What went wrong (a non-2xx answer, a timeout, a refused address) or "
        "why nothing was sent; `null` after a 2xx."
    )
    response_body: str | None = Field(description="The first 2 KB of the receiver's answer.")
    dedup_unavailable: bool = Field(
        description="Redis could not be asked whether this was already delivered; the "
        "attempt went ahead (fail-open)."
    )


class Delivery(BaseModel):
    """One event for one destination, with every attempt to send it."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.DELIVERY]})

    object: Literal["webhook_delivery"] = Field(
        default="webhook_delivery", description="Always `webhook_delivery`."
    )
    id: str = Field(
        description="Also the `webhook-id` header of every attempt.",
        examples=[examples.DELIVERY_ID],
    )
    generation_id: str = Field(description="The generation the event is about.")
    endpoint_id: str | None = Field(
        description="`null`: the generation's own `webhook_url`, signed with the account secret."
    )
    event: WebhookEvent = Field(description="The event sent.")
    url: str = Field(
        description="The destination when the event happened; an endpoint's later attempts "
        "go to its current URL (see each attempt's `url`)."
    )
    status: Literal["pending", "delivered", "failed"] = Field(
        description="`pending` while attempts remain, `delivered` after a 2xx answer, "
        "`failed` when no attempt succeeded and none is left (redeliver or recover it)."
    )
    attempt_count: int = Field(description="Attempts made so far, over every round.")
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due, while `pending`."
    )
    created_at: datetime = Field(description="When the event happened.")
    updated_at: datetime = Field(description="Last change of the delivery.")
    delivered_at: datetime | None = Field(description="When a 2xx answer came back.")
    attempts: list[DeliveryAttempt] = Field(description="Every attempt, oldest first.")


class DeliveryList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.DELIVERY_LIST]})

    object: Literal["list"] = Field(default="list", description="Always `list`.")
    data: list[Delivery] = Field(description="The deliveries, oldest first.")
