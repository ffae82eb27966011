"""What ``genhook up`` does: embedded defaults, migrations, the demo account, the children."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from backend import bundled_redis
from backend.accounts import create_account, get_account, issue_api_key
from backend.commands import (
    API_APP,
    SIMULATOR_APP,
    gunicorn_command,
    python_command,
    worker_command,
)
from backend.context import Context, build_context
from backend.settings import Settings
from backend.stack import Child, Supervisor, child_env, wait_until_ready
from backend.store import accounts as accounts_store
from backend.store.migrate import upgrade

DEMO_EMAIL = "demo@genhook.local"
#: Networks ``genhook up`` lets webhooks reach, so a receiver on this machine works.
LOCAL_NETWORKS = "127.0.0.0/8,::1/128"


@dataclass(frozen=True)
class DemoAccount:
    account_id: str
    email: str
    api_key: str
    signing_secret: str


def run_up(settings: Settings, *, port: int) -> int:
    var_dir = settings.var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    redis_url = settings.redis_url
    redis_note = redis_url
    if not redis_url:
        redis_port = bundled_redis.free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        redis_note = f"{redis_url} (bundled redis-server, data in {var_dir / 'redis'})"
        (var_dir / "redis").mkdir(exist_ok=True)
        children.append(
            Child(
                "redis",
                bundled_redis.server_command(var_dir / "redis", redis_port),
                child_env({}),
            )
        )
    allowed = ",".join(
        [str(n) for n in settings.webhook_allowed_networks] + LOCAL_NETWORKS.split(",")
    )
    env = child_env(
        {
            "GENHOOK_REDIS_URL": redis_url,
            "GENHOOK_DATABASE_URL": settings.effective_database_url,
            "GENHOOK_VAR_DIR": str(var_dir),
            "GENHOOK_SIMULATOR_URL": settings.simulator_url,
            "GENHOOK_SIMULATOR_RENDER_SECONDS": str(settings.simulator_render_seconds),
            "GENHOOK_WEBHOOK_ALLOWED_NETWORKS": allowed,
        }
    )
    sim = urlsplit(settings.simulator_url)
    api_bind = f"{settings.api_host}:{port}"
    simulator = gunicorn_command(f"{sim.hostname}:{sim.port}", 1, SIMULATOR_APP, threads=8)
    children += [
        Child("simulator", simulator, env),
        Child("api", gunicorn_command(api_bind, settings.api_workers, API_APP), env),
        Child("worker", worker_command(settings), env),
        Child("scheduler", python_command("-m", "backend.cli", "scheduler"), env),
    ]

    live = settings.model_copy(
        update={"redis_url": redis_url, "database_url": settings.effective_database_url}
    )
    supervisor = Supervisor(children)
    try:
        # Migrations and the demo account need only the database; Redis starts below.
        ctx = build_context(live)
        try:
            upgrade(ctx.store.engine)
            demo = ensure_demo_account(ctx, var_dir / "demo-account.json")
        finally:
            ctx.close()
        supervisor.start_all()
        base_url = f"http://{settings.api_host}:{port}"
        wait_until_ready(base_url, supervisor)
        if not supervisor.stopping:
            print(banner(base_url, demo, live, redis_note, allowed), flush=True)
            supervisor.watch()
    finally:
        supervisor.stop_all()
    print("genhook: stopped.", flush=True)
    return 0


def ensure_demo_account(ctx: Context, path: Path) -> DemoAccount:
    """The demo account's credentials, created on first start and kept (mode 0600) in
    ``path``, since the database itself only holds the API key's hash."""
    if path.exists():
        saved = DemoAccount(**json.loads(path.read_text()))
        if get_account(ctx, saved.account_id) is not None:
            return saved
    with ctx.store.begin() as conn:
        existing = accounts_store.get_account_by_email(conn, DEMO_EMAIL)
    if existing is not None:  # the file was lost: issue a fresh key
        demo = DemoAccount(
            existing.id, DEMO_EMAIL, issue_api_key(ctx, existing.id), existing.signing_secret
        )
    else:
        new = create_account(ctx, DEMO_EMAIL)
        demo = DemoAccount(new.account.id, DEMO_EMAIL, new.api_key, new.account.signing_secret)
    path.write_text(json.dumps(demo.__dict__, indent=2))
    os.chmod(path, 0o600)
    return demo


def banner(
    base_url: str, demo: DemoAccount, settings: Settings, redis_note: str, allowed: str
) -> str:
    return f"""
genhook is up.

  API             {base_url}   (OpenAPI document: {base_url}/openapi.json)
  Demo account    {demo.email}
  API key         {demo.api_key}
  Signing secret  {demo.signing_secret}
  Database        {settings.effective_database_url}
  Redis           {redis_note}
  Simulator       {settings.simulator_url} (renders take {settings.simulator_render_seconds:g}s)
  Webhooks        may target {allowed} (loopback allowed for local development)

Submit a job:
  curl -s {base_url}/v1/video/generations \\
    -H 'Authorization: Bearer {demo.api_key}' -H 'Content-Type: application/json' \\
    -d '{{"model": "kling-v3", "prompt": "Product reveal on white", "duration": "5s",
         "webhook_url": "http://127.0.0.1:9000/webhook"}}'

Press Ctrl-C to stop.
"""
