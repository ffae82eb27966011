"""One example of each wire shape, as JSON: the samples the OpenAPI document shows and the
no-code nodes turn into their UI.

They tell one story, so a reader can follow the same ids from one answer to the next: a
builder signs up, subscribes an endpoint, and orders a 5-second listing video from
``kling-v3``, which completes and is delivered on the second attempt. Each model names
its example in ``model_config["json_schema_extra"]``; ``tests/test_schema_examples.py``
checks that every one validates against its model and reads back unchanged.
"""

from __future__ import annotations

from pydantic.config import JsonDict, JsonValue

ACCOUNT_ID = "acct_01jrst4pe0h4qx4fr84g98pbsk"
GENERATION_ID = "vgen_01jv7228e04tff59tdwh9edd1r"
IMAGE_ID = "img_01jv7228dc1head8x4a1jh69re"
ENDPOINT_ID = "we_01jtn197e0jmrnv7e9z0c1ht0h"
DELIVERY_ID = "dlv_01jv7256nmg7kyhrjxjg7dj13n"
#: Two deliveries that failed before the endpoint was fixed, queued again by a recover call.
RECOVERED_DELIVERY_IDS: list[JsonValue] = [
    "dlv_01jv6y3k2t9q8w7e5r4m3n2b1c",
    "dlv_01jv7256rr2r00k6agv0vfcxec",
]
SIGNING_SECRET = "whsec_WmcDb5tUDWuPC+IRJBecPdn3OBfObhGNJkqtbLbdIQ8="
ENDPOINT_SECRET = "whsec_r5Ss08+SwZAjfLEfXRCM8lkwJjk4s3ChtXafoPFIP5U="
API_KEY = "gh_qQ2d8vEw1g_PBL2T9QrmlRTajGWc4rEMzNrr-ZDRmDg"
SIGNATURE = "c38edc8815c8489f64738978f44008f8596345545f0baa68ef6fcf5c53e57189"

WEBHOOK_URL = "https://your-app.example/webhooks/genhook"
#: A subscribed endpoint's URL: not the job's own, which would take its deliveries.
ENDPOINT_URL = "https://crm.example/hooks/genhook"
IMAGE_URL = "https://example.com/listing/front.jpg"
END_IMAGE_URL = "https://example.com/listing/back.jpg"
PROMPT = "Slow dolly shot through a sunlit living room with oak floors, late afternoon light"
METADATA: JsonDict = {"listing_id": "MLS-4821"}
OUTPUT_URL = (
    f"https://genhook.example/v1/outputs/{GENERATION_ID}?expires=1747301496&signature={SIGNATURE}"
)
PROVIDER_OUTPUT_URL = "https://cdn.provider.example/renders/8f3c2a1e.mp4"
LEDGER_ENTRY_ID = "led_5821"
#: What ``GET /v1/account/ledger`` hands out to reach the entries before the example's debit.
LEDGER_CURSOR = "WzU4MjFd"
#: What ``GET /v1/video/generations`` hands out to reach the page after the example's job.
CURSOR = "WyIyMDI1LTA1LTE0VDA5OjMwOjAwKzAwOjAwIiwgInZnZW5fMDFqdjcyMjhlMDR0ZmY1OXRkd2g5ZWRkMXIiXQ"
DEFAULT_EVENTS: list[JsonValue] = [
    "video.generation.completed",
    "video.generation.failed",
    "video.generation.canceled",
]
RETRY_SCHEDULE: list[JsonValue] = ["0s", "5m", "30m", "2h", "5h", "10h"]

CREATED_AT = "2025-05-14T09:30:00Z"
COMPLETED_AT = "2025-05-14T09:31:36Z"


def _chain_entry(status: str, phase: str, at: str, **note: JsonValue) -> JsonDict:
    """A status chain entry as the API writes it: every key present, `null` when unused."""
    unused = ("event", "route_index", "from_route_index", "model", "reason", "until")
    return {
        "status": status,
        "phase": phase,
        "at": at,
        **dict.fromkeys(unused),
        "provider_output_url": None,
        **note,
    }


STATUS_CHAIN: list[JsonValue] = [
    _chain_entry("pending", "queued", CREATED_AT),
    _chain_entry("processing", "preparing", "2025-05-14T09:30:01Z"),
    _chain_entry("processing", "rendering", "2025-05-14T09:30:14Z"),
    _chain_entry(
        "completed",
        "finishing",
        COMPLETED_AT,
        event="output_stored",
        provider_output_url=PROVIDER_OUTPUT_URL,
    ),
]

FAILOVER_ENTRY: JsonDict = _chain_entry(
    "pending",
    "queued",
    "2025-05-14T09:30:02Z",
    event="failover",
    route_index=1,
    from_route_index=0,
    model="kling-v3",
    reason="rate_limited",
)

GENERATION_CREATE: JsonDict = {
    "model": "kling-v3",
    "prompt": PROMPT,
    "duration": "5s",
    "aspect_ratio": "16:9",
    "webhook_url": WEBHOOK_URL,
    "metadata": METADATA,
    "image_url": IMAGE_URL,
}

GENERATION_ERROR: JsonDict = {
    "code": "no_route_available",
    "message": "every route failed 3 time(s); last: capacity: the provider's queue is full",
    "elapsed_seconds": 412.5,
}

GENERATION: JsonDict = {
    "object": "video.generation",
    "id": GENERATION_ID,
    "status": "completed",
    "phase": "finishing",
    "phase_label": "Finishing",
    "model": "kling-v3",
    "prompt": PROMPT,
    "duration": "5s",
    "aspect_ratio": "16:9",
    "credits": 3,
    "credits_billed": 3,
    "refunded": False,
    "failover_used": False,
    "rendered_model": "kling-v3",
    "webhook_url": WEBHOOK_URL,
    "metadata": METADATA,
    "image_id": IMAGE_ID,
    "end_image_id": None,
    "output_url": OUTPUT_URL,
    "error": None,
    "progress": 100.0,
    "queue_position": None,
    "elapsed_seconds": 96.0,
    "eta_seconds": None,
    "last_polled_at": "2025-05-14T09:31:35Z",
    "created_at": CREATED_AT,
    "updated_at": COMPLETED_AT,
    "completed_at": COMPLETED_AT,
    "status_chain": STATUS_CHAIN,
}

GENERATION_LIST: JsonDict = {
    "object": "list",
    "data": [GENERATION],
    "has_more": True,
    "next_cursor": CURSOR,
}

GENERATION_LIST_QUERY: JsonDict = {"status": "completed", "limit": 20, "cursor": CURSOR}

WEBHOOK_PAYLOAD: JsonDict = {
    "event": "video.generation.completed",
    "id": GENERATION_ID,
    "object": "video.generation",
    "status": "completed",
    "phase": "finishing",
    "phase_label": "Finishing",
    "model": "kling-v3",
    "prompt": PROMPT,
    "output_url": OUTPUT_URL,
    "credits": 3,
    "credits_billed": 3,
    "failover_used": False,
    "rendered_model": "kling-v3",
    "metadata": METADATA,
    "created_at": CREATED_AT,
    "completed_at": COMPLETED_AT,
    "elapsed_seconds": 96.0,
    "progress": 100.0,
    "eta_seconds": None,
    "error": None,
    "status_chain": STATUS_CHAIN,
}

SIGNUP_REQUEST: JsonDict = {"email": "dev@example.com"}

SIGNUP_RESPONSE: JsonDict = {
    "object": "account",
    "id": ACCOUNT_ID,
    "email": "dev@example.com",
    "credits": 50,
    "api_key": API_KEY,
    "signing_secret": SIGNING_SECRET,
    "created_at": "2025-04-14T09:30:00Z",
}

SIGNUP_ACCEPTED: JsonDict = {
    "object": "signup",
    "status": "check_inbox",
    "email": "dev@example.com",
    "detail": "Check your inbox: a mail to dev@example.com tells what happens next. If it "
    "holds a link, follow it within 24 hours to get your API key, your signing secret and 50 "
    "free credits.",
}

API_KEY_ID = "key_2"

API_KEY_OBJECT: JsonDict = {
    "object": "api_key",
    "id": API_KEY_ID,
    "prefix": API_KEY[:10],
    "created_at": "2025-05-02T08:00:00Z",
    "last_used_at": "2025-05-14T09:31:00Z",
    "revoked_at": None,
    "current": True,
}

API_KEY_CREATED: JsonDict = {
    **API_KEY_OBJECT,
    "last_used_at": None,
    "current": False,
    "api_key": API_KEY,
}

API_KEY_LIST: JsonDict = {"object": "list", "data": [API_KEY_OBJECT]}

ROTATE_SECRET_REQUEST: JsonDict = {"overlap_seconds": 0}

ACCOUNT: JsonDict = {
    "object": "account",
    "id": ACCOUNT_ID,
    "email": "dev@example.com",
    "credits": 47,
    "created_at": "2025-04-14T09:30:00Z",
}

#: The builder's first generation charged: 50 signup credits less 3 (``ACCOUNT``'s 47).
LEDGER_ENTRY: JsonDict = {
    "object": "ledger_entry",
    "id": LEDGER_ENTRY_ID,
    "created_at": CREATED_AT,
    "delta": -3,
    "reason": "debit",
    "route_index": None,
    "job_id": GENERATION_ID,
    "note": None,
    "balance_after": 47,
}

LEDGER_LIST: JsonDict = {
    "object": "list",
    "data": [LEDGER_ENTRY],
    "has_more": True,
    "next_cursor": LEDGER_CURSOR,
}

LEDGER_LIST_QUERY: JsonDict = {"limit": 20, "cursor": LEDGER_CURSOR}

CATALOG_ENTRY: JsonDict = {
    "object": "model",
    "id": "kling-v3",
    "name": "Kling v3",
    "description": "General-purpose text- and image-to-video, strong motion.",
    "credits": {"5s": 3, "10s": 6},
    "aspect_ratios": ["16:9", "9:16", "1:1"],
    "inputs": ["text", "image", "end_image"],
    "typical_render_seconds": 90.0,
    "max_wait_seconds": 1800.0,
    "failover": ["kling-v3", "seedance-1-pro", "kling-o3-pro"],
    "available": True,
}

CATALOG_LIST: JsonDict = {"object": "list", "data": [CATALOG_ENTRY]}

HEALTH: JsonDict = {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}

FIELD_PROBLEM: JsonDict = {"field": "duration", "message": "Input should be '5s' or '10s'"}

PROBLEM: JsonDict = {
    "type": "urn:genhook:problem:validation-failed",
    "title": "Request validation failed",
    "status": 422,
    "detail": "duration: Input should be '5s' or '10s'",
    "instance": "/v1/video/generations",
    "errors": [FIELD_PROBLEM],
}

IMAGE_LINK_QUERY: JsonDict = {"expires": 1747215600, "signature": SIGNATURE}

WEBHOOK_ENDPOINT_CREATE: JsonDict = {
    "url": ENDPOINT_URL,
    "events": DEFAULT_EVENTS,
    "description": "Listing videos for the CRM",
    "enabled": True,
    "retry_schedule": RETRY_SCHEDULE,
    "timeout_seconds": 15.0,
}

WEBHOOK_ENDPOINT_UPDATE: JsonDict = {
    "events": [*DEFAULT_EVENTS, "video.generation.status_changed"],
    "enabled": True,
}

WEBHOOK_ENDPOINT: JsonDict = {
    "object": "webhook_endpoint",
    "id": ENDPOINT_ID,
    "url": ENDPOINT_URL,
    "events": DEFAULT_EVENTS,
    "description": "Listing videos for the CRM",
    "enabled": True,
    "disabled_reason": None,
    "disabled_at": None,
    "retry_schedule": [0.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0],
    "timeout_seconds": 15.0,
    "failing_since": None,
    "created_at": "2025-05-07T09:30:00Z",
    "updated_at": "2025-05-07T09:30:00Z",
}

WEBHOOK_ENDPOINT_CREATED: JsonDict = {**WEBHOOK_ENDPOINT, "secret": ENDPOINT_SECRET}

WEBHOOK_ENDPOINT_LIST: JsonDict = {"object": "list", "data": [WEBHOOK_ENDPOINT]}

SIGNING_SECRET_ANSWER: JsonDict = {
    "object": "signing_secret",
    "secret": ENDPOINT_SECRET,
    "previous_secret_expires_at": "2025-05-15T09:30:00Z",
}

RECOVER_REQUEST: JsonDict = {"since": "2025-05-14T00:00:00Z"}

RECOVER_RESULT: JsonDict = {
    "object": "webhook_recovery",
    "endpoint_id": ENDPOINT_ID,
    "since": "2025-05-14T00:00:00Z",
    "delivery_ids": RECOVERED_DELIVERY_IDS,
}

ACCOUNT_RECOVER_REQUEST: JsonDict = {"since": "2025-05-14T00:00:00Z", "status": "failed"}

ACCOUNT_RECOVER_RESULT: JsonDict = {
    "object": "webhook_recovery",
    "since": "2025-05-14T00:00:00Z",
    "status": "failed",
    "delivery_ids": RECOVERED_DELIVERY_IDS,
}

DELIVERY_ATTEMPTS: list[JsonValue] = [
    {
        "attempted_at": COMPLETED_AT,
        "url": ENDPOINT_URL,
        "response_status": 503,
        "latency_ms": 184,
        "error": "receiver answered HTTP 503",
        "response_body": "upstream unavailable",
        "dedup_unavailable": False,
    },
    {
        "attempted_at": "2025-05-14T09:36:37Z",
        "url": ENDPOINT_URL,
        "response_status": 200,
        "latency_ms": 95,
        "error": None,
        "response_body": '{"ok":true}',
        "dedup_unavailable": False,
    },
]

DELIVERY: JsonDict = {
    "object": "webhook_delivery",
    "id": DELIVERY_ID,
    "generation_id": GENERATION_ID,
    "endpoint_id": ENDPOINT_ID,
    "event": "video.generation.completed",
    "url": ENDPOINT_URL,
    "status": "delivered",
    "attempt_count": 2,
    "next_attempt_at": None,
    "created_at": COMPLETED_AT,
    "updated_at": "2025-05-14T09:36:37Z",
    "delivered_at": "2025-05-14T09:36:37Z",
    "attempts": DELIVERY_ATTEMPTS,
}

DELIVERY_LIST: JsonDict = {"object": "list", "data": [DELIVERY]}
