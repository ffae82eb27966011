"""genhook's one error tree. Every error a client can see maps to one RFC 9457 problem.

    GenhookError
    ├── ClientError                     (4xx; raised on bad requests)
    │   ├── ValidationFailed     422    a field is wrong; ``errors`` lists each field
    │   ├── MalformedBody        400    the body is not JSON / not an object
    │   ├── Unauthorized         401    missing or unknown API key
    │   ├── InsufficientCredits  402    the balance cannot pay for the job
    │   ├── Forbidden            403    e.g. an account not allowed to do that
    │   │   └── SignupClosed     403    the operator turned signup off
    │   ├── NotFound             404    no such resource for this account
    │   ├── Conflict             409    e.g. an email already signed up
    │   ├── Gone                 410    e.g. a kept output deleted; a used signup link
    │   ├── PayloadTooLarge      413    the body exceeds the API's limit
    │   ├── UnsupportedMediaType 415    a body that is not ``application/json``
    │   ├── SignupUnavailable    503    signup needs mail settings the operator has not set
    │   └── TooManyRequests      429    come back after ``Retry-After`` seconds
    │       ├── RateLimited             too many requests (or signups) per window
    │       ├── QuotaExceeded           an hourly quota (webhooks, redeliver, recover) is used
    │       └── TooManyJobsInFlight     the account's cap on unfinished generations
├── Unavailable              503    not now: retry after ``retry_after_seconds`` (e.g. a
│                                   URL's host name did not resolve in time; ``errors``
│                                   names the field)
    ├── ProviderError                   (raised by provider adapters; never shown raw)
    │   ├── ProviderTransient           5xx / timeout / network: try again or elsewhere
    │   │   ├── ProviderRateLimited     too many requests (with Retry-After when given)
    │   │   └── ProviderCapacity        queue full, concurrency cap, resource exhausted
    │   ├── ProviderQuotaExhausted      our account is out of quota or balance
    │   ├── ProviderRejected            content policy or bad input: retrying cannot help
    │   └── ProviderOutcomeUnknown      the create call may or may not have made a task
    ├── OutputCopyFailed                copying a finished video into genhook's storage failed
    ├── StorageUnavailable              the output store could not be read or written
    ├── UnsafeWebhookTarget             a webhook URL points where genhook must not send
    └── SecretKeyError                  GENHOOK_SECRET_KEY missing, malformed, or without the
                                        key a stored signing secret was sealed with

The API's error handler (``backend/api/errors.py``) turns ``ClientError`` into problem
details; anything else becomes a generic 500 without internals.
"""

from __future__ import annotations

from dataclasses import dataclass


class GenhookError(Exception):
    """Base of every error genhook raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One offending field: a dotted path (``metadata.sku``) and what is wrong with it."""

    field: str
    message: str


class ClientError(GenhookError):
    """A request the client can fix; carries its HTTP status and problem type slug."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        #: Extra response headers (``Retry-After``, the ``RateLimit`` fields).
        self.headers = dict(headers or {})


class ValidationFailed(ClientError):
    status, slug, title = 422, "validation-failed", "Request validation failed"

    @classmethod
    def for_field(cls, field: str, message: str) -> ValidationFailed:
        return cls(f"{field}: {message}", errors=[FieldError(field, message)])


class MalformedBody(ClientError):
    status, slug, title = 400, "malformed-body", "Malformed request body"


class Unauthorized(ClientError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class InsufficientCredits(ClientError):
    status, slug, title = 402, "insufficient-credits", "Insufficient credits"


class Forbidden(ClientError):
    status, slug, title = 403, "forbidden", "Forbidden"


class SignupClosed(Forbidden):
    slug = "signup-closed"


class NotFound(ClientError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ClientError):
    status, slug, title = 409, "conflict", "Conflict"


class Gone(ClientError):
    status, slug, title = 410, "gone", "Gone"


class PayloadTooLarge(ClientError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class TooManyRequests(ClientError):
    """A limit was reached; ``Retry-After`` says when trying again can succeed."""

    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(
        self, detail: str, *, retry_after_seconds: int, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            detail, headers={**(headers or {}), "Retry-After": str(retry_after_seconds)}
        )
        self.retry_after_seconds = retry_after_seconds


class RateLimited(TooManyRequests):
    slug, title = "rate-limited", "Rate limit exceeded"


class QuotaExceeded(TooManyRequests):
    slug, title = "quota-exceeded", "Quota exceeded"


class TooManyJobsInFlight(TooManyRequests):
    slug, title = "too-many-jobs-in-flight", "Too many generations in flight"


class Unavailable(GenhookError):
    """The request could not be served now, through no fault shown in it: a retry after
    ``retry_after_seconds`` may succeed. Nothing of it was written."""

    status, slug, title = 503, "unavailable", "Service unavailable"

    def __init__(
        self, detail: str, *, retry_after_seconds: int, errors: list[FieldError] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_seconds = retry_after_seconds
        self.errors = errors or []

    @classmethod
    def for_field(cls, field: str, message: str, *, retry_after_seconds: int) -> Unavailable:
        return cls(
            f"{field}: {message}",
            retry_after_seconds=retry_after_seconds,
            errors=[FieldError(field, message)],
        )


class UnsupportedMediaType(ClientError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class SignupUnavailable(ClientError):
    """Not the client's fault, but an answer it can act on (later, or elsewhere)."""

    status, slug, title = 503, "signup-unavailable", "Signup unavailable"


class ProviderError(GenhookError):
    """A provider call failed; ``code`` is a short machine-readable reason."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class ProviderTransient(ProviderError):
    """Rate limit, capacity, 5xx or network trouble: worth retrying or failing over."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(code, message, status=status)
        self.retry_after_seconds = retry_after_seconds


class ProviderRateLimited(ProviderTransient):
    """The provider throttled us (HTTP 429 or its own rate-limit code)."""


class ProviderCapacity(ProviderTransient):
    """The provider, or our account's concurrency slots there, are full for now."""


class ProviderQuotaExhausted(ProviderError):
    """Our account at the provider is out of balance or quota: another route may work,
    this one will not until the operator tops it up."""


class ProviderRejected(ProviderError):
    """The provider refused the request itself; retrying cannot help."""


class ProviderOutcomeUnknown(ProviderError):
    """The create request was sent but no answer came back: a task may exist.

    Submitting again could start a second paid task, so the caller looks the task up by
    its idempotency key where the provider allows it."""


class OutputCopyFailed(GenhookError):
    """The provider's file could not be copied into genhook's output store.

    ``retryable`` is true for network trouble, timeouts, 5xx, 408 and 429 (and a store that
    is briefly unavailable); false for anything a retry cannot change: another 4xx, a file
    too large, or a type that is not a video."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class StorageUnavailable(GenhookError):
    """The output store (a directory or an S3 bucket) failed to read, write or delete."""


class UnsafeWebhookTarget(GenhookError):
    """The webhook URL resolves to an address genhook refuses to send to."""


class SecretKeyError(GenhookError):
    """The operator's ``GENHOOK_SECRET_KEY`` cannot seal or open a signing secret: it is
    missing, malformed, or lacks the key a stored secret was sealed with. An operator's
    mistake, never a client's: processes refuse to start on it (``genhook api``, …)."""
