"""The ``genhook`` command: the local stack and each production process."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from backend.settings import get_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    result: int = args.run(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genhook", description="Async AI video generation gateway with signed webhooks."
    )
    sub = parser.add_subparsers(title="commands")

    up = sub.add_parser("up", help="run the whole stack locally (embedded defaults)")
    up.add_argument("--port", type=int, default=None, help="API port (default 8000)")
    up.set_defaults(run=_up)

    api = sub.add_parser("api", help="run the API under gunicorn")
    api.add_argument("--bind", default=None, help="host:port (default from settings)")
    api.add_argument("--workers", type=int, default=None)
    api.set_defaults(run=_api)

    sub.add_parser("worker", help="run a Dramatiq worker").set_defaults(run=_worker)
    sub.add_parser("scheduler", help="run the recovery sweeps").set_defaults(run=_scheduler)
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        run=_migrate
    )
    sub.add_parser("openapi", help="print the OpenAPI document").set_defaults(run=_openapi)
    sub.add_parser(
        "providers", help="list the enabled providers and probe each with an authenticated call"
    ).set_defaults(run=_providers)

    accounts = sub.add_parser("accounts", help="manage accounts").add_subparsers(title="actions")
    create = accounts.add_parser("create", help="create an account and print its credentials")
    create.add_argument("--email", required=True)
    create.add_argument("--credits", type=int, default=None)
    create.set_defaults(run=_accounts_create)
    return parser


def _up(args: argparse.Namespace) -> int:
    from backend.up import run_up

    settings = get_settings()
    return run_up(settings, port=args.port or settings.api_port)


def _api(args: argparse.Namespace) -> int:
    import os

    from backend.commands import API_APP, gunicorn_command

    settings = get_settings()
    settings.require_redis_url()
    bind = args.bind or f"{settings.api_host}:{settings.api_port}"
    command = gunicorn_command(bind, args.workers or settings.api_workers, API_APP)
    os.execv(command[0], command)


def _worker(args: argparse.Namespace) -> int:
    import os

    from backend.commands import worker_command

    settings = get_settings()
    settings.require_redis_url()
    command = worker_command(settings)
    os.execv(command[0], command)


def _scheduler(args: argparse.Namespace) -> int:
    from backend.context import get_context
    from backend.logging_setup import configure_logging
    from backend.scheduler import run_forever

    configure_logging()
    get_settings().require_redis_url()
    run_forever(get_context())
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from backend.store import Store
    from backend.store.migrate import current_revision, upgrade

    store = Store(get_settings().effective_database_url)
    get_settings().var_dir.mkdir(parents=True, exist_ok=True)
    upgrade(store.engine)
    print(f"database at revision {current_revision(store.engine)}")
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from backend.api.app import openapi_document
    from backend.context import build_context

    print(json.dumps(openapi_document(build_context(get_settings())), indent=2))
    return 0


def _providers(args: argparse.Namespace) -> int:
    """Exit 1 if any enabled provider fails its health probe (its credentials, its URL)."""
    import httpx

    from backend.errors import ProviderError
    from backend.providers.registry import build_providers, provider_timeout

    settings = get_settings()
    with httpx.Client(timeout=provider_timeout(settings), trust_env=False) as client:
        providers = build_providers(settings, client)
        if not providers:
            print(
                "genhook: no provider is configured in this environment (set e.g. "
                "GENHOOK_KLING_ACCESS_KEY and GENHOOK_KLING_SECRET_KEY; `genhook up` aims the "
                "providers you have not configured at its simulator)",
                file=sys.stderr,
            )
            return 1
        failed = 0
        for name, provider in providers.items():
            try:
                provider.health()
            except ProviderError as exc:
                failed += 1
                print(f"{name:<10} FAILED  {exc}")
            else:
                print(f"{name:<10} ok")
    return 1 if failed else 0


def _accounts_create(args: argparse.Namespace) -> int:
    from backend.accounts import create_account
    from backend.context import build_context
    from backend.errors import Conflict

    ctx = build_context(get_settings())
    try:
        new = create_account(ctx, args.email, credits=args.credits)
    except Conflict as exc:
        print(f"genhook: {exc.detail}", file=sys.stderr)
        return 1
    print(f"account         {new.account.id} ({new.account.email})")
    print(f"credits         {new.account.credits}")
    print(f"api key         {new.api_key}   (shown once)")
    print(f"signing secret  {new.account.signing_secret}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
