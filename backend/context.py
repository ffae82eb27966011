"""The wiring of one process: settings -> database, Redis, broker, providers, HTTP clients.

Built once per process on first use (``get_context``); tests install their own with
``use_context``. Everything that talks to the outside world hangs off this object, so
domain functions take a ``Context`` and stay easy to follow and to test.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import dramatiq
import httpx
import redis

from backend.api_key_cache import KeyCache
from backend.catalog import Catalog, load_catalog
from backend.providers.base import Provider
from backend.providers.health import RouteHealth
from backend.providers.registry import PROVIDER_NAMES, build_providers, provider_timeout
from backend.queue import Queue
from backend.ratelimit.quotas import RateLimits
from backend.redis_client import connect as redis_client_for
from backend.render_history import RenderHistory
from backend.secret_box import SecretBox
from backend.settings import Settings, get_settings
from backend.status_cache import StatusCache
from backend.storage.links import signed_output_url
from backend.store import Store
from backend.store.types import utcnow
from backend.webhooks.guarded_transport import guarded_client
from backend.webhooks.name_lookup import Lookup

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Context:
    settings: Settings
    store: Store
    redis: redis.Redis
    queue: Queue
    cache: StatusCache
    providers: dict[str, Provider]
    catalog: Catalog
    #: Real render durations per model and route, for ETAs and poll pacing.
    history: RenderHistory
    #: Each route's circuit breaker, shared by every worker through Redis.
    health: RouteHealth
    #: Outbound webhook client: vetted addresses only, no redirects, no environment proxies.
    #: Public addresses plus ``webhook_allowed_networks``: what every account may reach.
    webhook_client: httpx.Client
    #: Request rate limits and quotas, counted in Redis (``backend/ratelimit/``).
    rate_limits: RateLimits
    #: The same, plus ``private_webhook_networks``: for accounts allowed private targets
    #: (``backend/webhooks/targets.py``).
    private_webhook_client: httpx.Client
    #: Downloads of providers' finished videos: public addresses plus
    #: ``provider_allowed_networks`` (the simulator's loopback under ``genhook up``).
    output_client: httpx.Client
    #: Seals signing secrets before they are stored, opens them where one must sign.
    secret_box: SecretBox
    #: How host names in tenants' URLs are resolved when they are checked: ``None`` is the
    #: system resolver, what genhook always uses (tests resolve with a DNS server of theirs).
    name_lookup: Lookup | None = None
    #: API keys found live in the last ``api_key_cache_seconds`` (``backend/api_key_cache.py``).
    key_cache: KeyCache = field(default_factory=lambda: KeyCache(0))

    def now(self) -> datetime:
        return utcnow()

    def close(self) -> None:
        self.webhook_client.close()
        self.private_webhook_client.close()
        self.output_client.close()
        self.store.dispose()


def build_context(settings: Settings, broker: dramatiq.Broker | None = None) -> Context:
    """Wire everything ``settings`` names; connections open lazily, on first use.

    A catalog file that does not check out raises ``CatalogError`` here, at start.

    Without a Redis URL (a one-off command such as ``genhook accounts create``) the Redis
    client points at the default local port and is simply never used.
    """
    from backend.broker import build_broker

    redis_url = settings.redis_url or DEFAULT_REDIS_URL
    redis_client = redis_client_for(redis_url)
    provider_client = httpx.Client(timeout=provider_timeout(settings), trust_env=False)
    cache = StatusCache(
        redis_client,
        terminal_ttl_seconds=settings.status_cache_ttl_seconds,
        revalidate_seconds=settings.status_cache_revalidate_seconds,
        sign_output=partial(signed_output_url, settings),
    )
    return Context(
        settings=settings,
        store=Store(settings.effective_database_url, before_job_commit=cache.invalidate),
        redis=redis_client,
        queue=Queue(broker or build_broker(redis_url)),
        cache=cache,
        providers=build_providers(settings, provider_client),
        catalog=load_catalog(settings.catalog_file, PROVIDER_NAMES),
        history=RenderHistory(redis_client),
        health=RouteHealth(redis_client, settings),
        webhook_client=guarded_client(settings.webhook_allowed_networks),
        rate_limits=RateLimits(settings, redis_client),
        private_webhook_client=guarded_client(
            [*settings.webhook_allowed_networks, *settings.private_webhook_networks]
        ),
        output_client=guarded_client(
            [*settings.webhook_allowed_networks, *settings.provider_allowed_networks],
            hint="an operator can allow it with GENHOOK_PROVIDER_ALLOWED_NETWORKS",
        ),
        secret_box=SecretBox.from_setting(settings.secret_key.get_secret_value()),
        key_cache=KeyCache(settings.api_key_cache_seconds),
    )


_lock = threading.Lock()
_context: Context | None = None


def get_context() -> Context:
    global _context
    with _lock:
        if _context is None:
            _context = build_context(get_settings())
        return _context


def use_context(context: Context | None) -> None:
    """Install (or with ``None`` forget) the process-wide context; for tests and the CLI."""
    global _context
    with _lock:
        _context = context
