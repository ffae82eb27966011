"""Video generation requests, the generation object, and the webhook payload."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.catalog import ASPECT_RATIOS, DURATIONS
from backend.jobs.states import JobPhase, JobStatus
from backend.schemas.common import MAX_WEBHOOK_URL_CHARS, webhook_url_shape

MAX_PROMPT_CHARS = 4000
MAX_METADATA_KEYS = 20
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_BYTES = 4096

Duration = Literal["5s", "10s"]
AspectRatio = Literal["16:9", "9:16", "1:1"]
assert set(DURATIONS) == {"5s", "10s"} and set(ASPECT_RATIOS) == {"16:9", "9:16", "1:1"}


class GenerationCreate(BaseModel):
    """A request to render one video."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        max_length=64,
        description="A model id from `GET /v1/models`.",
        examples=["kling-v3"],
    )
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    duration: Duration = "5s"
    aspect_ratio: AspectRatio = "16:9"
    webhook_url: str | None = Field(
        default=None,
        max_length=MAX_WEBHOOK_URL_CHARS,
        description="Where the signed result is POSTed, exactly as given (query kept).",
        examples=["https://your-app.example/webhooks/genhook"],
    )
    metadata: dict[str, str] = Field(
        default_factory=dict,
        description=f"Up to {MAX_METADATA_KEYS} string pairs ({MAX_METADATA_BYTES} bytes as "
        "JSON), echoed in the webhook.",
    )
    image_url: str | None = Field(
        default=None,
        description="First frame, for models whose `inputs` include `image`: an http(s) URL "
        "genhook fetches (public addresses only), or a `data:image/…;base64,` URL. JPEG, "
        "PNG or WebP, at least 300 px a side, aspect ratio between 1:2.5 and 2.5:1.",
        examples=["https://example.com/listing/front.jpg"],
    )
    end_image_url: str | None = Field(
        default=None,
        description="Last frame, for models whose `inputs` include `end_image`; same rules "
        "as `image_url`.",
    )

    @field_validator("image_url", "end_image_url")
    @classmethod
    def _image_source(cls, value: str | None) -> str | None:
        if value is None or value.startswith("data:"):
            return value
        return webhook_url_shape(value)

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else webhook_url_shape(value)

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        for key in value:
            if not key or len(key) > MAX_METADATA_KEY_CHARS:
                raise ValueError(f"keys must be 1 to {MAX_METADATA_KEY_CHARS} characters")
        if len(json.dumps(value).encode()) > MAX_METADATA_BYTES:
            raise ValueError(f"at most {MAX_METADATA_BYTES} bytes when encoded as JSON")
        return value

    @property
    def duration_seconds(self) -> int:
        return DURATIONS[self.duration]


class GenerationError(BaseModel):
    code: str = Field(examples=["provider_failed", "timeout", "no_route_available"])
    message: str
    elapsed_seconds: float | None = Field(
        default=None, description="How long the job had run when it failed or was canceled."
    )


class StatusChainEntry(BaseModel):
    """One change in a job's life: its status and phase then, and for routing events
    what happened (provider-neutral: the route's index in the job's plan and its model)."""

    status: JobStatus
    phase: JobPhase
    at: datetime
    event: (
        Literal["failover", "route_skipped", "output_stored", "output_kept_at_provider"] | None
    ) = Field(
        default=None,
        description="`failover`: the job moved to another route; `route_skipped`: a route was "
        "passed over (e.g. cooling down after failures); `output_stored`: genhook copied the "
        "result into its own storage.",
    )
    route_index: int | None = Field(default=None, description="The route's place in the plan.")
    from_route_index: int | None = None
    model: str | None = Field(default=None, description="The model of that route.")
    reason: str | None = Field(
        default=None,
        examples=["rate_limited", "capacity", "cooling_down", "plan_exhausted"],
        description="Why the route was left or skipped.",
    )
    until: datetime | None = Field(default=None, description="End of a route's cooldown.")
    provider_output_url: str | None = Field(
        default=None, description="The provider's own URL of the result (it expires)."
    )


class Generation(BaseModel):
    """A video generation job as the API shows it."""

    object: Literal["video.generation"] = "video.generation"
    id: str = Field(examples=["vgen_01jc0q7v6b3m9x2k4p8r5t1w"])
    status: JobStatus
    phase: JobPhase
    phase_label: str = Field(description="Human label of the phase, e.g. `Rendering`.")
    model: str
    prompt: str
    duration: Duration
    aspect_ratio: AspectRatio
    credits: int = Field(description="Credits charged for this job when it was accepted.")
    credits_billed: int = Field(
        description="What the job costs in the end: the charge, less the difference refunded "
        "when it failed over to a cheaper model, less the refund if it failed or was canceled."
    )
    refunded: bool
    failover_used: bool = Field(description="Whether the job left its first route.")
    rendered_model: str = Field(
        description="The model that renders (or rendered) the job; differs from `model` "
        "after a failover to a fallback model."
    )
    webhook_url: str | None
    metadata: dict[str, str]
    image_id: str | None = Field(
        default=None, description="genhook's checked copy of the first frame, if one was given."
    )
    end_image_id: str | None = Field(
        default=None, description="genhook's checked copy of the last frame, if one was given."
    )
    output_url: str | None
    error: GenerationError | None
    progress: float | None = Field(
        default=None, description="0-100, where the provider reports progress."
    )
    queue_position: int | None = Field(
        default=None, description="Renders ahead of this one in the provider's queue (0 = next)."
    )
    elapsed_seconds: float = Field(description="Seconds since creation (until completion).")
    eta_seconds: float | None = Field(description="Estimated seconds until done, if running.")
    last_polled_at: datetime | None = Field(description="Last time genhook asked the provider.")
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    status_chain: list[StatusChainEntry]


class GenerationList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Generation]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")


class GenerationListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=512)


WebhookEvent = Literal[
    "video.generation.completed",
    "video.generation.failed",
    "video.generation.canceled",
    "video.generation.status_changed",
]


class WebhookPayload(BaseModel):
    """The JSON body POSTed to a webhook when a generation ends (or, for endpoints that
    subscribed to `video.generation.status_changed`, when it enters a new phase)."""

    event: WebhookEvent
    id: str
    object: Literal["video.generation"] = "video.generation"
    status: JobStatus
    phase: JobPhase
    phase_label: str
    model: str
    prompt: str
    output_url: str | None
    credits: int
    credits_billed: int
    failover_used: bool
    rendered_model: str
    metadata: dict[str, str]
    created_at: datetime
    completed_at: datetime | None
    elapsed_seconds: float
    progress: float | None = Field(default=None, description="0-100 where known.")
    eta_seconds: float | None = None
    error: GenerationError | None = None
    status_chain: list[StatusChainEntry]
