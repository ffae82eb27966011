"""Running a request once more when its database connection was cut before anything of it
was committed (PostgreSQL restarted, the connection terminated, a failover).

The pool throws the dead connection away, so the second run gets a fresh one. Only a
request whose writing transactions had not yet tried to commit is run again: then nothing of
it happened and running it whole is safe. One that had may have committed, so it answers
the 503 (a client retrying it with an ``Idempotency-Key`` gets the outcome either way).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import falcon
import sqlalchemy as sa

from backend.store import write_commits

log = logging.getLogger(__name__)

Responder = Callable[..., None]
T = TypeVar("T")

#: A connection that went away, as opposed to a query the database refused.
LOST_CONNECTION = (sa.exc.OperationalError, sa.exc.InterfaceError)


def retrying_once(responder: Responder) -> Responder:
    @functools.wraps(responder)
    def run(req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        before = write_commits()
        try:
            responder(req, resp, **params)
        except LOST_CONNECTION as exc:
            if write_commits() != before:
                raise
            log.warning(
                "database connection lost on %s %s (%s); running it again",
                req.method,
                req.path,
                exc,
            )
            responder(req, resp, **params)

    return run


def once_more_if_connection_lost(call: Callable[[], T], what: str) -> T:
    """``call``, run again once if its database connection was cut: for work that is safe
    to repeat whole (reads, and writes that set the same value twice), such as looking up
    the request's API key in the middleware, which runs before any responder's retry."""
    try:
        return call()
    except LOST_CONNECTION as exc:
        log.warning("database connection lost during %s (%s); running it again", what, exc)
        return call()


def retry_responders(resource: Any) -> None:
    """Wrap each ``on_*`` responder of ``resource`` in :func:`retrying_once`."""
    for name in dir(type(resource)):
        if name.startswith("on_") and callable(getattr(resource, name)):
            setattr(resource, name, retrying_once(getattr(resource, name)))
