"""Liveness (``/healthz``) and readiness (``/readyz``: the database and Redis answer)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

import falcon

from backend.api.openapi import operation
from backend.context import Context
from backend.schemas.common import Health

log = logging.getLogger(__name__)


class HealthResource:
    public = True

    @operation(
        operation_id="getHealth",
        summary="Liveness: the API process answers",
        description="Answers 200 while the API process runs; checks nothing else. Needs no "
        "API key.",
        tags=("operations",),
        responses={200: Health},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.text = Health(status="ok").model_dump_json(exclude={"checks"})


class ReadyResource:
    """Readiness for load balancers, which need the status only.

    A failing check's text names hosts, ports and driver errors: it is shown only to the
    operator (the admin key) and logged, never given to anyone who can reach the port.
    """

    public = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="getReadiness",
        summary="Readiness: the database and Redis answer",
        description="200 when the database and Redis both answer, else 503. Needs no API key; "
        "with `Authorization: Bearer <admin key>` (`GENHOOK_ADMIN_KEY`) the answer also "
        "holds each check's result in `checks`, the failing one's error included.",
        tags=("operations",),
        responses={200: Health, 503: Health},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {"database": self._check(self.ctx.store.ping), "redis": self._check(self._redis)}
        ready = all(v == "ok" for v in checks.values())
        if not ready:
            log.warning("not ready: %s", checks)
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        health = Health(status="ok" if ready else "unavailable", checks=checks)
        shown = None if self._from_operator(req) else {"checks"}
        resp.text = health.model_dump_json(exclude=shown)

    def _from_operator(self, req: falcon.Request) -> bool:
        admin_key = self.ctx.settings.admin_key
        scheme, _, offered = (req.get_header("Authorization") or "").partition(" ")
        if not admin_key or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(offered.strip().encode(), admin_key.encode())

    def _redis(self) -> None:
        self.ctx.redis.ping()

    @staticmethod
    def _check(probe: Callable[[], object]) -> str:
        try:
            probe()
        except Exception as exc:  # any failure means "not ready", with the reason logged
            return f"error: {type(exc).__name__}: {exc}"[:200]
        return "ok"
