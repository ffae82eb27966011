"""Video generation requests, the generation object, and the webhook payload."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.catalog import ASPECT_RATIOS, DURATIONS
from backend.jobs.states import JobPhase, JobStatus
from backend.schemas import examples
from backend.schemas.common import MAX_WEBHOOK_URL_CHARS, OPTIONS_FROM, webhook_url_shape

MAX_PROMPT_CHARS = 4000
MAX_METADATA_KEYS = 20
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_BYTES = 4096

Duration = Literal["5s", "10s"]
AspectRatio = Literal["16:9", "9:16", "1:1"]
assert set(DURATIONS) == {"5s", "10s"} and set(ASPECT_RATIOS) == {"16:9", "9:16", "1:1"}


class GenerationCreate(BaseModel):
    """A request to render one video."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.GENERATION_CREATE]}
    )

    model: str = Field(
        min_length=1,
        max_length=64,
        description="A model id from `GET /v1/models`.",
        examples=["kling-v3"],
        # For generated clients (integrations/codegen): a dropdown filled from that list.
        json_schema_extra={
            OPTIONS_FROM: {
                "operationId": "listModels",
                "value": "id",
                "label": "name",
                "description": "description",
            }
        },
    )
    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description=f"What the video shows, in words (up to {MAX_PROMPT_CHARS} characters).",
        examples=[examples.PROMPT],
    )
    duration: Duration = Field(
        default="5s",
        description="Length of the video; the model's price depends on it (see `credits` in "
        "`GET /v1/models`).",
        examples=["5s"],
    )
    aspect_ratio: AspectRatio = Field(
        default="16:9",
        description="Shape of the video: `16:9` landscape, `9:16` portrait, `1:1` square; "
        "the model must offer it (`aspect_ratios` in `GET /v1/models`).",
        examples=["16:9"],
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=MAX_WEBHOOK_URL_CHARS,
        description="Where the signed result is POSTed when the job ends, exactly as given "
        "(query kept); it must be a public http(s) address of at most 2,048 bytes. Optional: "
        "endpoints from `POST /v1/webhook-endpoints` get the events too.",
        examples=[examples.WEBHOOK_URL],
    )
    metadata: dict[str, str] = Field(
        default_factory=dict,
        description=f"Up to {MAX_METADATA_KEYS} string pairs ({MAX_METADATA_BYTES} bytes as "
        "JSON), kept with the job and echoed in the webhook, e.g. your own record id.",
        examples=[examples.METADATA],
    )
    image_url: str | None = Field(
        default=None,
        description="First frame, for models whose `inputs` include `image`: an http(s) URL "
        "genhook fetches (public addresses only), or a `data:image/…;base64,` URL. JPEG, "
        "PNG or WebP, at least 300 px a side, aspect ratio between 1:2.5 and 2.5:1.",
        examples=[examples.IMAGE_URL],
    )
    end_image_url: str | None = Field(
        default=None,
        description="Last frame, for models whose `inputs` include `end_image`; same rules "
        "as `image_url`.",
        examples=[examples.END_IMAGE_URL],
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
    """Why a generation failed or was canceled."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.GENERATION_ERROR]})

    code: str = Field(
        description="Machine-readable reason: `canceled` when its owner canceled it, "
        "`timeout` past the model's maximum wait, `no_route_available` when every route "
        "failed, else a provider-side code such as `provider_failed`.",
        examples=["provider_failed", "timeout", "no_route_available"],
    )
    message: str = Field(description="What happened, for a person.")
    elapsed_seconds: float | None = Field(
        default=None, description="How long the job had run when it failed or was canceled."
    )


class StatusChainEntry(BaseModel):
    """One change in a job's life: its status and phase then, and for routing events
    what happened (provider-neutral: the route's index in the job's plan and its model)."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.FAILOVER_ENTRY]})

    status: JobStatus = Field(description="The job's status from then on.")
    phase: JobPhase = Field(description="The job's phase from then on.")
    at: datetime = Field(description="When the change happened.")
    event: (
        Literal["failover", "route_skipped", "output_stored", "output_kept_at_provider"] | None
    ) = Field(
        default=None,
        description="`failover`: the job moved to another route; `route_skipped`: a route was "
        "passed over (e.g. cooling down after failures); `output_stored`: genhook copied the "
        "result into its own storage; `output_kept_at_provider`: it could not, and "
        "`output_url` is the provider's own (expiring) URL.",
    )
    route_index: int | None = Field(
        default=None, description="The route's place in the plan (0 is the first)."
    )
    from_route_index: int | None = Field(
        default=None, description="For a `failover`: the route the job left."
    )
    model: str | None = Field(default=None, description="The model of that route.")
    reason: str | None = Field(
        default=None,
        examples=["rate_limited", "capacity", "cooling_down", "plan_exhausted"],
        description="Why the route was left or skipped; for `output_kept_at_provider`, why "
        "the copy failed.",
    )
    until: datetime | None = Field(default=None, description="End of a route's cooldown.")
    provider_output_url: str | None = Field(
        default=None, description="The provider's own URL of the result (it expires)."
    )


class Generation(BaseModel):
    """A video generation job as the API shows it."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.GENERATION]})

    object: Literal["video.generation"] = Field(
        default="video.generation", description="Always `video.generation`."
    )
    id: str = Field(description="The generation's id.", examples=[examples.GENERATION_ID])
    status: JobStatus = Field(
        description="`pending` (paid, waiting for a provider), `processing`, then one of "
        "`completed`, `failed` or `canceled`."
    )
    phase: JobPhase = Field(description="Where the render is: `queued` to `finishing`.")
    phase_label: str = Field(description="Human label of the phase, e.g. `Rendering`.")
    model: str = Field(description="The model that was ordered.", examples=["kling-v3"])
    prompt: str = Field(description="The prompt, as submitted.")
    duration: Duration = Field(description="Length of the video.")
    aspect_ratio: AspectRatio = Field(description="Shape of the video.")
    credits: int = Field(description="Credits charged for this job when it was accepted.")
    credits_billed: int = Field(
        description="What the job costs in the end: the charge, less the difference refunded "
        "when it failed over to a cheaper model, less the refund if it failed or was canceled."
    )
    refunded: bool = Field(description="Whether the charge was refunded (failed or canceled).")
    failover_used: bool = Field(description="Whether the job left its first route.")
    rendered_model: str = Field(
        description="The model that renders (or rendered) the job; differs from `model` "
        "after a failover to a fallback model."
    )
    webhook_url: str | None = Field(description="Where the result is POSTed, if anywhere.")
    metadata: dict[str, str] = Field(description="The pairs given at submission.")
    image_id: str | None = Field(
        default=None, description="genhook's checked copy of the first frame, if one was given."
    )
    end_image_id: str | None = Field(
        default=None, description="genhook's checked copy of the last frame, if one was given."
    )
    output_url: str | None = Field(
        description="Link to the finished video once `completed`: genhook's signed link, "
        "fetched without an API key and valid for a limited time (read the generation again "
        "for a fresh one), or the provider's own URL when genhook could not keep a copy."
    )
    error: GenerationError | None = Field(description="Why it failed or was canceled.")
    progress: float | None = Field(
        default=None, description="0-100, where the provider reports progress."
    )
    queue_position: int | None = Field(
        default=None, description="Renders ahead of this one in the provider's queue (0 = next)."
    )
    elapsed_seconds: float = Field(description="Seconds since creation (until completion).")
    eta_seconds: float | None = Field(description="Estimated seconds until done, if running.")
    last_polled_at: datetime | None = Field(description="Last time genhook asked the provider.")
    created_at: datetime = Field(description="When it was submitted (and charged).")
    updated_at: datetime = Field(description="Last change of the job.")
    completed_at: datetime | None = Field(
        description="When it ended: completed, failed or canceled."
    )
    status_chain: list[StatusChainEntry] = Field(
        description="Every change in the job's life, oldest first."
    )


class GenerationList(BaseModel):
    """One page of generations, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.GENERATION_LIST]})

    object: Literal["list"] = Field(default="list", description="Always `list`.")
    data: list[Generation] = Field(description="The generations of this page.")
    has_more: bool = Field(description="Whether older generations follow.")
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")


class GenerationListQuery(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.GENERATION_LIST_QUERY]}
    )

    status: JobStatus | None = Field(
        default=None,
        description="Only generations in this status; all of them when left out.",
        examples=["completed"],
    )
    limit: int = Field(
        default=20, ge=1, le=100, description="Generations per page, 1 to 100.", examples=[20]
    )
    cursor: str | None = Field(
        default=None,
        max_length=512,
        description="The `next_cursor` of the previous page; left out for the first page.",
        examples=[examples.CURSOR],
    )


WebhookEvent = Literal[
    "video.generation.completed",
    "video.generation.failed",
    "video.generation.canceled",
    "video.generation.status_changed",
]


class WebhookPayload(BaseModel):
    """The JSON body POSTed to a webhook when a generation ends (or, for endpoints that
    subscribed to `video.generation.status_changed`, when it enters a new phase)."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.WEBHOOK_PAYLOAD]})

    event: WebhookEvent = Field(
        description="What happened; also in the `X-Genhook-Event` header.",
        examples=["video.generation.completed"],
    )
    id: str = Field(description="The generation's id.", examples=[examples.GENERATION_ID])
    object: Literal["video.generation"] = Field(
        default="video.generation", description="Always `video.generation`."
    )
    status: JobStatus = Field(description="The generation's status when the event happened.")
    phase: JobPhase = Field(description="The generation's phase when the event happened.")
    phase_label: str = Field(description="Human label of the phase, e.g. `Rendering`.")
    model: str = Field(description="The model that was ordered.", examples=["kling-v3"])
    prompt: str = Field(description="The prompt, as submitted.")
    output_url: str | None = Field(
        description="Link to the finished video (`completed` only): genhook's signed link, "
        "valid for a limited time (read the generation for a fresh one), or the provider's "
        "own URL when genhook could not keep a copy."
    )
    credits: int = Field(description="Credits charged for this job when it was accepted.")
    credits_billed: int = Field(
        description="What the job costs in the end: 0 when refunded (failed or canceled), "
        "less than `credits` when a cheaper model rendered it."
    )
    failover_used: bool = Field(description="Whether the job left its first route.")
    rendered_model: str = Field(
        description="The model that rendered the job; differs from `model` after a failover "
        "to a fallback model."
    )
    metadata: dict[str, str] = Field(
        description="The pairs given at submission, e.g. your own record id.",
        examples=[examples.METADATA],
    )
    created_at: datetime = Field(description="When the generation was submitted.")
    completed_at: datetime | None = Field(
        description="When it ended; `null` for `status_changed` events."
    )
    elapsed_seconds: float = Field(
        description="Seconds from submission to the end (or to the event, while running)."
    )
    progress: float | None = Field(default=None, description="0-100 where known.")
    eta_seconds: float | None = Field(
        default=None, description="Estimated seconds until done, while running."
    )
    error: GenerationError | None = Field(
        default=None, description="Why it failed or was canceled (`failed`, `canceled`)."
    )
    status_chain: list[StatusChainEntry] = Field(
        description="Every change in the job's life, oldest first."
    )
