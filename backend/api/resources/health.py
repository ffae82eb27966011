"""Liveness (``/healthz``) and readiness (``/readyz``: the database and Redis answer)."""

from __future__ import annotations

from collections.abc import Callable

import falcon

from backend.api.openapi import operation
from backend.context import Context
from backend.schemas.common import Health


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
        resp.text = Health(status="ok").model_dump_json()


class ReadyResource:
    public = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="getReadiness",
        summary="Readiness: the database and Redis answer",
        description="200 when the database and Redis both answer, else 503 with the failing "
        "check's error in `checks`. Needs no API key.",
        tags=("operations",),
        responses={200: Health, 503: Health},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {"database": self._check(self.ctx.store.ping), "redis": self._check(self._redis)}
        ready = all(v == "ok" for v in checks.values())
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        resp.text = Health(status="ok" if ready else "unavailable", checks=checks).model_dump_json()

    def _redis(self) -> None:
        self.ctx.redis.ping()

    @staticmethod
    def _check(probe: Callable[[], object]) -> str:
        try:
            probe()
        except Exception as exc:  # any failure means "not ready", with the reason shown
            return f"error: {type(exc).__name__}: {exc}"[:200]
        return "ok"
