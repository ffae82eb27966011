"""Entry point for gunicorn: ``gunicorn 'backend.api.wsgi:application()'``."""

from __future__ import annotations

import falcon

from backend.api.app import create_app
from backend.context import get_context
from backend.logging_setup import configure_logging
from backend.settings import get_settings


def application() -> falcon.App:
    configure_logging()
    get_settings().require_redis_url()
    return create_app(get_context())
