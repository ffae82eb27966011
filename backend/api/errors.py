"""The one place where errors become HTTP answers: RFC 9457 problem details."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

import falcon
import sqlalchemy as sa

from backend.errors import ClientError, Unavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_type(slug: str) -> str:
    return f"urn:genhook:problem:{slug}"


def _write(resp: falcon.Response, status: int, body: dict[str, Any]) -> None:
    resp.status = status
    resp.content_type = PROBLEM_JSON
    resp.text = json.dumps(body)


def handle_unavailable(
    req: falcon.Request, resp: falcon.Response, exc: Unavailable, params: dict[str, Any]
) -> None:
    """Not now, and not the client's fault: a 503 with ``Retry-After``, naming the field."""
    log.warning("%s %s answered 503: %s", req.method, req.path, exc.detail)
    resp.set_header("Retry-After", str(exc.retry_after_seconds))
    _write(
        resp,
        503,
        {
            "type": problem_type(exc.slug),
            "title": exc.title,
            "status": 503,
            "detail": exc.detail,
            "instance": req.path,
            "errors": [{"field": e.field, "message": e.message} for e in exc.errors],
        },
    )


def handle_client_error(
    req: falcon.Request, resp: falcon.Response, exc: ClientError, params: dict[str, Any]
) -> None:
    body = {
        "type": problem_type(exc.slug),
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "instance": req.path,
        "errors": [{"field": e.field, "message": e.message} for e in exc.errors],
    }
    if exc.status == 401:
        resp.set_header("WWW-Authenticate", 'Bearer realm="genhook"')
    for name, value in exc.headers.items():
        resp.set_header(name, value)
    _write(resp, exc.status, body)


#: What a client is told to wait before retrying while the database is unreachable.
DATABASE_RETRY_AFTER_SECONDS = 5


def handle_database_unavailable(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    """The database cannot be reached (down, restarting, a connection cut mid-request): a
    503 the client can retry, never a 500. Nothing was committed by this request, or it was
    committed whole: every write is one transaction."""
    log.warning("database unavailable on %s %s: %s", req.method, req.path, exc)
    resp.set_header("Retry-After", str(DATABASE_RETRY_AFTER_SECONDS))
    _write(
        resp,
        503,
        {
            "type": problem_type("database-unavailable"),
            "title": "Service unavailable",
            "status": 503,
            "detail": "genhook cannot reach its database right now; retry in a few seconds.",
            "instance": req.path,
            "errors": [],
        },
    )


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    if isinstance(exc, falcon.HTTPError):  # Falcon's own (404 route, 405...): keep them
        raise exc
    log.exception("unhandled error on %s %s", req.method, req.path)
    _write(
        resp,
        500,
        {
            "type": problem_type("internal-error"),
            "title": "Internal server error",
            "status": 500,
            "detail": "genhook hit an unexpected error; it has been logged.",
            "instance": req.path,
            "errors": [],
        },
    )


def serialize_http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Falcon's own errors (unknown route, wrong method...) as problem details too."""
    phrase = HTTPStatus(exc.status_code).phrase
    _write(
        resp,
        exc.status_code,
        {
            "type": problem_type(phrase.lower().replace(" ", "-")),
            "title": phrase,
            "status": exc.status_code,
            "detail": exc.description or exc.title or "",
            "instance": req.path,
            "errors": [],
        },
    )


def install(app: falcon.App) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    # A lost or refused connection (OperationalError, InterfaceError), not a bad query.
    for lost in (sa.exc.OperationalError, sa.exc.InterfaceError):
        app.add_error_handler(lost, handle_database_unavailable)
    app.add_error_handler(ClientError, handle_client_error)
    app.add_error_handler(Unavailable, handle_unavailable)
    app.set_error_serializer(serialize_http_error)
