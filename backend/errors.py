"""genhook's one error tree. Every error a client can see maps to one RFC 9457 problem.

    GenhookError
    ├── ClientError                     (4xx; raised on bad requests)
    │   ├── ValidationFailed     422    a field is wrong; ``errors`` lists each field
    │   ├── MalformedBody        400    the body is not JSON / not an object
    │   ├── Unauthorized         401    missing or unknown API key
    │   ├── InsufficientCredits  402    the balance cannot pay for the job
    │   ├── Forbidden            403    e.g. signup turned off by the operator
    │   ├── NotFound             404    no such resource for this account
    │   ├── Conflict             409    e.g. an email already signed up
    │   ├── Gone                 410    e.g. a kept output deleted by retention
    │   └── PayloadTooLarge      413    the body exceeds the API's limit
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

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


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


class NotFound(ClientError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ClientError):
    status, slug, title = 409, "conflict", "Conflict"


class Gone(ClientError):
    status, slug, title = 410, "gone", "Gone"


class PayloadTooLarge(ClientError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


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
