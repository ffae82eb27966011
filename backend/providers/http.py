"""The HTTP call every adapter makes, and the translation of what can go wrong with it.

Adapters differ in their paths, auth and error envelopes; they agree on this: a request
that never left (connect failure) is transient, one that left and got no answer is
*unknown* when it created something, and an HTTP error is classified by the adapter's own
function, falling back to :func:`by_status` for codes the provider does not explain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from backend.errors import (
    ProviderCapacity,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderQuotaExhausted,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTransient,
)
from backend.store.types import utcnow

#: Turns an HTTP error answer into one of the error kinds routing acts on.
Classifier = Callable[[httpx.Response], ProviderError]
Headers = Mapping[str, str] | Callable[[], Mapping[str, str]]


class ProviderHTTP:
    """One provider's endpoint: base URL, auth headers and error translation over httpx."""

    def __init__(
        self,
        *,
        client: httpx.Client,
        base_url: str,
        headers: Headers,
        classify: Classifier,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self._classify = classify

    def request(
        self,
        method: str,
        path: str,
        *,
        creates: bool = False,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        url: str | None = None,
    ) -> httpx.Response:
        """Send one request; a 2xx answer is returned, anything else raised as a
        ``ProviderError``. ``creates`` marks a call that may start a paid task, so a lost
        answer is :class:`ProviderOutcomeUnknown` rather than transient. ``url`` replaces
        ``base_url + path`` (for URLs the provider handed back)."""
        all_headers = dict(self._headers() if callable(self._headers) else self._headers)
        all_headers.update(headers or {})
        target = url or self.base_url + path
        try:
            response = self.client.request(
                method, target, json=json, params=params, headers=all_headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderTransient("provider_unreachable", str(exc) or "no connection") from None
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            message = str(exc) or type(exc).__name__
            if creates:
                raise ProviderOutcomeUnknown("provider_no_answer", message) from None
            raise ProviderTransient("provider_timeout", message) from None
        if response.is_success:
            return response
        raise self._classify(response)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like :meth:`request`, returning the decoded JSON body."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            if kwargs.get("creates"):
                raise ProviderOutcomeUnknown(
                    "provider_bad_answer", "the answer was not JSON"
                ) from None
            raise ProviderTransient("provider_bad_answer", "the answer was not JSON") from None


def by_status(response: httpx.Response, code: str, message: str) -> ProviderError:
    """The error kind an HTTP status means when the provider's own code says no more."""
    status = response.status_code
    if status == 429:
        return ProviderRateLimited(
            code, message, status=status, retry_after_seconds=retry_after_seconds(response)
        )
    if status in (401, 402, 403):
        return ProviderQuotaExhausted(code, message, status=status)
    if status == 503:
        return ProviderCapacity(
            code, message, status=status, retry_after_seconds=retry_after_seconds(response)
        )
    if status >= 500 or status == 408:
        return ProviderTransient(
            code, message, status=status, retry_after_seconds=retry_after_seconds(response)
        )
    return ProviderRejected(code, message, status=status)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds, whether given as a number or as an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or ``{}`` when it has none (an HTML 502 page, say)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
