"""What ``genhook up`` does: embedded defaults, migrations, the demo account, the children."""

from __future__ import annotations

import json
import os
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from pydantic import SecretStr

from backend import bundled_redis, secrets_at_rest
from backend.accounts import create_account, get_account, issue_api_key, set_private_webhooks
from backend.commands import (
    SIMULATOR_APP,
    api_command,
    gunicorn_command,
    python_command,
    worker_command,
)
from backend.context import Context, build_context
from backend.private_files import (
    PRIVATE_UMASK,
    ensure_private_dir,
    tighten_tree,
    write_private_file,
)
from backend.providers.registry import build_providers
from backend.secret_box import generate_key
from backend.settings import Settings, SignupMode
from backend.simulator.credentials import PREFIXES, provider_settings
from backend.stack import (
    APPS,
    REDIS,
    SIMULATOR,
    STAGE_DEADLINES_SECONDS,
    Child,
    Supervisor,
    child_env,
    wait_until_ready,
)
from backend.store import accounts as accounts_store
from backend.store.migrate import upgrade
from backend.worker_pools import pools

#: In the var dir: the stack's settings as `export` lines, for commands run in another shell.
STACK_ENV_FILE = "stack.env"
#: In the var dir: the operator key that seals signing secrets, when GENHOOK_SECRET_KEY is unset.
SECRET_KEY_FILE = "secret-key"
DEMO_ACCOUNT_FILE = "demo-account.json"
DEMO_EMAIL = "demo@genhook.local"
#: Networks where ``genhook up``'s simulator answers: its output downloads may reach them.
LOCAL_NETWORKS = "127.0.0.0/8,::1/128"
#: What a Dramatiq worker takes to exit beyond its shutdown timeout: up to a second each
#: for its processes to notice the signal, its consumers to stop and its parent to notice,
#: and a second of margin for a busy machine.
WORKER_STOP_OVERHEAD_SECONDS = 4.0
#: The longest worker shutdown timeout that fits the first stage of ``genhook up``'s stop.
MAX_WORKER_SHUTDOWN_SECONDS = STAGE_DEADLINES_SECONDS[APPS] - WORKER_STOP_OVERHEAD_SECONDS


@dataclass(frozen=True)
class DemoAccount:
    account_id: str
    email: str
    api_key: str
    signing_secret: str


def run_up(settings: Settings, *, port: int) -> int:
    # Everything this process and its children create is its user's alone (0600/0700).
    os.umask(PRIVATE_UMASK)
    var_dir = prepare_var_dir(settings.var_dir.resolve())
    secret_key = operator_key(settings, var_dir)
    children: list[Child] = []
    redis_url = settings.redis_url
    redis_note = bundled_redis.redacted(redis_url)
    if not redis_url:
        redis_port = bundled_redis.free_port()
        password = bundled_redis.new_password()
        redis_url = bundled_redis.url_for(redis_port, password)
        redis_note = (
            f"{bundled_redis.redacted(redis_url)} (bundled redis-server 6.2, for local use "
            f"only; data in {var_dir / 'redis'}, password in {var_dir / STACK_ENV_FILE})"
        )
        children.append(
            Child(
                "redis",
                bundled_redis.server_command(var_dir / "redis", redis_port, password),
                child_env({}),
                stop_stage=REDIS,
            )
        )
    base_url = f"http://{settings.api_host}:{port}"
    signup_mode = local_signup_mode(settings)
    simulated = simulated_providers(settings)
    stack_env = stack_environment(
        settings, redis_url=redis_url, base_url=base_url, secret_key=secret_key
    )
    provider_env = provider_environment(settings, simulated, base_url)
    env = child_env(
        {
            **stack_env,
            "GENHOOK_SIMULATOR_RENDER_SECONDS": str(settings.simulator_render_seconds),
            "GENHOOK_SIGNUP_MODE": signup_mode.value,
            **provider_env,
        }
    )
    write_stack_env(var_dir / STACK_ENV_FILE, {**stack_env, **provider_env})
    sim = urlsplit(settings.simulator_url)
    api_bind = f"{settings.api_host}:{port}"
    simulator = gunicorn_command(f"{sim.hostname}:{sim.port}", 1, SIMULATOR_APP, threads=8)
    worker_settings = capped_for_up(settings)
    children += [
        Child("simulator", simulator, env, stop_stage=SIMULATOR),
        Child("api", api_command(settings, api_bind, settings.api_workers), env),
        *[
            Child(f"worker ({pool.name})", worker_command(worker_settings, pool.queues), env)
            for pool in pools(worker_settings)
        ],
        Child("scheduler", python_command("-m", "backend.cli", "scheduler"), env),
    ]

    live = settings.model_copy(
        update={
            "redis_url": redis_url,
            "database_url": settings.effective_database_url,
            "signup_mode": signup_mode,
            "secret_key": SecretStr(secret_key),
        }
    )
    providers_note = describe_providers(simulated, provider_env)
    supervisor = Supervisor(children)
    try:
        # Migrations, secrets and the demo account need only the database; Redis starts below.
        ctx = build_context(live)
        try:
            upgrade(ctx.store.engine)
            prepare_secrets(ctx)
            demo = ensure_demo_account(ctx, var_dir / DEMO_ACCOUNT_FILE)
        finally:
            ctx.close()
        supervisor.start_all()
        wait_until_ready(base_url, supervisor)
        if not supervisor.stopping:
            print(banner(base_url, demo, live, redis_note, providers_note), flush=True)
            supervisor.watch()
    finally:
        supervisor.stop_all()
    print("genhook: stopped.", flush=True)
    return 0


def local_signup_mode(settings: Settings) -> SignupMode:
    """``open`` unless the operator chose a mode: a local stack wants accounts at once and
    has no mail server. ``genhook api`` keeps the setting's default, ``verify_email``."""
    explicit = {"signup_mode", "signup_enabled"} & settings.model_fields_set
    return settings.signup_mode if explicit else SignupMode.OPEN


def stack_environment(
    settings: Settings, *, redis_url: str, base_url: str, secret_key: str
) -> dict[str, str]:
    """The ``GENHOOK_*`` settings the stack's processes share (besides the providers'),
    also written to ``var/stack.env`` for the operator's other shells.

    No network is opened to every account here (``GENHOOK_WEBHOOK_ALLOWED_NETWORKS`` is
    left to the operator): the demo account is allowed private targets on its own.
    The simulator's control token is random unless the operator chose one: only who can
    read ``var/stack.env`` (mode 0600) may drive its back door."""
    return {
        "GENHOOK_REDIS_URL": redis_url,
        "GENHOOK_DATABASE_URL": settings.effective_database_url,
        "GENHOOK_VAR_DIR": str(settings.var_dir.resolve()),
        "GENHOOK_SECRET_KEY": secret_key,
        "GENHOOK_SIMULATOR_URL": settings.simulator_url,
        "GENHOOK_SIMULATOR_CONTROL_TOKEN": settings.simulator_control_token
        or secrets.token_urlsafe(32),
    }


def prepare_var_dir(var_dir: Path) -> Path:
    """The var dir, created 0700; one an older genhook left readable by other local users
    is tightened (0700 directories, 0600 files), and that is said."""
    ensure_private_dir(var_dir)
    tightened = tighten_tree(var_dir)
    if tightened:
        print(
            f"genhook: {var_dir} was readable by other local users: took their access away "
            f"from {len(tightened)} files and directories. Signing secrets stored there "
            "before may have been read: rotate them (docs/security.md).",
            flush=True,
        )
    return var_dir


def operator_key(settings: Settings, var_dir: Path) -> str:
    """``GENHOOK_SECRET_KEY`` if set, else the key kept in ``var/secret-key`` (0600),
    made on first start."""
    configured = settings.secret_key.get_secret_value()
    if configured:
        return configured
    path = var_dir / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    key = generate_key()
    write_private_file(path, key + "\n")
    return key


def prepare_secrets(ctx: Context) -> None:
    """Seal the signing secrets an older genhook stored in plain text, then check that the
    key opens every one (``SecretKeyError``, before anything starts, if not)."""
    sealed = secrets_at_rest.seal_plaintext(ctx.store, ctx.secret_box)
    if sealed:
        print(f"genhook: sealed {sealed} signing secrets stored in plain text", flush=True)
    secrets_at_rest.require_readable(secrets_at_rest.census(ctx.store), ctx.secret_box)


def capped_for_up(settings: Settings) -> Settings:
    """The worker's settings with its shutdown timeout cut to what fits ``genhook up``'s
    stop, so a long production value does not get the worker killed mid-drain."""
    timeout = min(settings.worker_shutdown_timeout_seconds, MAX_WORKER_SHUTDOWN_SECONDS)
    return settings.model_copy(update={"worker_shutdown_timeout_seconds": timeout})


def simulated_providers(settings: Settings) -> list[str]:
    """Providers the operator has not configured: ``genhook up`` points them at the
    simulator's dialect of their API, so the demo runs the real adapters."""
    with httpx.Client(trust_env=False) as client:
        configured = build_providers(settings, client)
    return [name for name in PREFIXES if name not in configured]


def provider_environment(settings: Settings, simulated: list[str], base_url: str) -> dict[str, str]:
    """``GENHOOK_*`` variables aiming each simulated provider at the simulator, plus the
    API's own address for callbacks and image links when nothing real needs a public one."""
    env: dict[str, str] = {}
    aimed = provider_settings(settings.simulator_url)
    for name in simulated:
        env.update({f"GENHOOK_{key.upper()}": value for key, value in aimed[name].items()})
    if simulated or settings.simulator_fallback:
        # The simulator serves finished videos from this machine: let the output copy
        # (never a tenant's URL) download them.
        networks = [str(n) for n in settings.provider_allowed_networks]
        env["GENHOOK_PROVIDER_ALLOWED_NETWORKS"] = ",".join(
            networks + [n for n in LOCAL_NETWORKS.split(",") if n not in networks]
        )
    if not settings.public_base_url and len(simulated) == len(PREFIXES):
        # Every provider is on this machine, so the local address reaches the API.
        env["GENHOOK_PUBLIC_BASE_URL"] = base_url
    return env


def describe_providers(simulated: list[str], provider_env: dict[str, str]) -> str:
    real = [name for name in PREFIXES if name not in simulated]
    parts = []
    if simulated:
        parts.append(f"{', '.join(simulated)} -> simulator dialects")
    if real:
        parts.append(f"{', '.join(real)} -> the real services")
    callbacks = provider_env.get("GENHOOK_PUBLIC_BASE_URL")
    note = f"callbacks to {callbacks}" if callbacks else "polled (GENHOOK_PUBLIC_BASE_URL unset)"
    return "; ".join(parts) + f"\n                  ({note})"


def write_stack_env(path: Path, values: dict[str, str]) -> None:
    """The settings this stack's processes run with, as shell ``export`` lines (mode 0600),
    so a command in another shell sees the same stack: ``. var/stack.env; genhook
    providers``. Rewritten at every start (the bundled Redis port changes)."""
    lines = [f"export {key}={shlex.quote(value)}" for key, value in sorted(values.items())]
    write_private_file(path, "\n".join(lines) + "\n")


def ensure_demo_account(ctx: Context, path: Path) -> DemoAccount:
    """The demo account's credentials, created on first start and kept (mode 0600) in
    ``path``, since the database itself only holds the API key's hash. It is the one
    account whose webhooks may reach this machine (private targets): a receiver on
    loopback works for the demo; accounts signed up later reach public addresses only."""
    demo = _demo_credentials(ctx, path)
    set_private_webhooks(ctx, demo.email, True)
    return demo


def _demo_credentials(ctx: Context, path: Path) -> DemoAccount:
    if path.exists():
        saved = DemoAccount(**json.loads(path.read_text()))
        if get_account(ctx, saved.account_id) is not None:
            return saved
    with ctx.store.begin() as conn:
        existing = accounts_store.get_account_by_email(conn, DEMO_EMAIL)
    if existing is not None:  # the file was lost: issue a fresh key
        secret = ctx.secret_box.open(existing.signing_secret)
        demo = DemoAccount(existing.id, DEMO_EMAIL, issue_api_key(ctx, existing.id), secret)
    else:
        new = create_account(ctx, DEMO_EMAIL, allow_private_webhooks=True)
        demo = DemoAccount(new.account.id, DEMO_EMAIL, new.api_key, new.signing_secret)
    write_private_file(path, json.dumps(demo.__dict__, indent=2))
    return demo


def signup_note(settings: Settings) -> str:
    mode = settings.signup_mode
    if mode is SignupMode.OPEN:
        return (
            "open: POST /v1/signup gives an account and free credits at once, unchecked "
            "(local only;\n                  `genhook api` defaults to verify_email)"
        )
    if mode is SignupMode.VERIFY_EMAIL:
        return "verify_email: free credits and the API key once the mailed link is followed"
    return "closed: accounts are made with `genhook accounts create`"


def banner(
    base_url: str,
    demo: DemoAccount,
    settings: Settings,
    redis_note: str,
    providers_note: str,
) -> str:
    private = ",".join(str(n) for n in settings.private_webhook_networks)
    everyone = ",".join(str(n) for n in settings.webhook_allowed_networks)
    others = f"public addresses and {everyone}" if everyone else "public addresses only"
    return f"""
genhook is up.

  API             {base_url}   (OpenAPI document: {base_url}/openapi.json)
  Demo account    {demo.email}
  API key         {demo.api_key}
  Signing secret  {demo.signing_secret}
  Database        {_without_password(settings.effective_database_url)}
  Redis           {redis_note}
  Simulator       {settings.simulator_url} (renders take {settings.simulator_render_seconds:g}s)
  Providers       {providers_note}
  Webhooks        the demo account may target private networks ({private});
                  other accounts {others}
                  (genhook accounts create --allow-private-webhooks)
  Signup          {signup_note(settings)}
  Other shells    . {settings.var_dir.resolve() / STACK_ENV_FILE}   (then e.g. genhook providers;
                  it also holds the simulator's control token)

Submit a job:
  curl -s {base_url}/v1/video/generations \\
    -H 'Authorization: Bearer {demo.api_key}' -H 'Content-Type: application/json' \\
    -d '{{"model": "kling-v3", "prompt": "Product reveal on white", "duration": "5s",
         "webhook_url": "http://127.0.0.1:9000/webhooks/genhook"}}'

Press Ctrl-C to stop.
"""


def _without_password(database_url: str) -> str:
    return sa.engine.make_url(database_url).render_as_string(hide_password=True)
