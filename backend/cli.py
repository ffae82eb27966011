"""The ``genhook`` command: the local stack and each production process."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from backend.settings import Settings, get_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    from backend.catalog import CatalogError
    from backend.errors import SecretKeyError

    try:
        result: int = args.run(args)
    except (CatalogError, SecretKeyError) as exc:
        print(f"genhook: {exc}", file=sys.stderr)
        return 2
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
    schemas = sub.add_parser("schemas", help="the contract in schemas/").add_subparsers(
        title="actions"
    )
    export = schemas.add_parser(
        "export", help="write the JSON Schemas and the OpenAPI document (default ./schemas)"
    )
    export.add_argument("--dir", default=None, help="target directory (default ./schemas)")
    export.set_defaults(run=_schemas_export)
    sub.add_parser(
        "providers",
        help="probe each enabled provider with an authenticated call, then show every "
        "catalog route: enabled, probe, and health (cooldowns, success rate, latency)",
    ).set_defaults(run=_providers)

    accounts = sub.add_parser("accounts", help="manage accounts").add_subparsers(title="actions")
    create = accounts.add_parser("create", help="create an account and print its credentials")
    create.add_argument("--email", required=True)
    create.add_argument("--credits", type=int, default=None)
    create.set_defaults(run=_accounts_create)
    grant = accounts.add_parser(
        "grant",
        help="add credits to an account (negative to take some back), recorded in its "
        "ledger with the reason; prints the new balance",
    )
    grant.add_argument("--email", required=True)
    grant.add_argument(
        "--credits",
        type=int,
        required=True,
        help="credits to add; negative to take back (never below a zero balance)",
    )
    grant.add_argument(
        "--reason", required=True, help="why, kept in the ledger as the entry's note"
    )
    grant.set_defaults(run=_accounts_grant)

    secrets = sub.add_parser(
        "secrets", help="the keys that seal webhook signing secrets at rest (GENHOOK_SECRET_KEY)"
    ).add_subparsers(title="actions")
    secrets.add_parser(
        "generate-key", help="print a new key, to put first in GENHOOK_SECRET_KEY"
    ).set_defaults(run=_secrets_generate_key)
    secrets.add_parser(
        "status", help="how many stored secrets each key sealed (and how many are plain text)"
    ).set_defaults(run=_secrets_status)
    secrets.add_parser(
        "rotate",
        help="seal every stored secret again under the first key of GENHOOK_SECRET_KEY, "
        "after which the older keys can be removed",
    ).set_defaults(run=_secrets_rotate)
    return parser


def _up(args: argparse.Namespace) -> int:
    from backend.up import run_up

    settings = get_settings()
    return run_up(settings, port=args.port or settings.api_port)


def _api(args: argparse.Namespace) -> int:
    import os

    from backend.commands import API_APP, gunicorn_command

    settings = get_settings()
    _check_catalog(settings)
    settings.require_redis_url()
    _check_secret_key(settings)
    bind = args.bind or f"{settings.api_host}:{settings.api_port}"
    command = gunicorn_command(bind, args.workers or settings.api_workers, API_APP)
    os.execv(command[0], command)


def _check_catalog(settings: Settings) -> None:
    """Fail at start, with the catalog's own message, before handing over to gunicorn or
    Dramatiq (whose workers would otherwise die one by one with a traceback)."""
    from backend.catalog import load_catalog
    from backend.providers.registry import PROVIDER_NAMES

    load_catalog(settings.catalog_file, PROVIDER_NAMES)


def _check_secret_key(settings: Settings) -> None:
    """Refuse to start (``SecretKeyError``) without a key that opens every stored signing
    secret: a process that cannot sign or seal would fail its work one item at a time."""
    from backend.secret_box import SecretBox
    from backend.secrets_at_rest import check_before_start
    from backend.store import Store

    store = Store(settings.effective_database_url)
    try:
        box = SecretBox.from_setting(settings.secret_key.get_secret_value())
        warning = check_before_start(store, box)
    finally:
        store.dispose()
    if warning:
        print(f"genhook: warning: {warning}", file=sys.stderr)


def _worker(args: argparse.Namespace) -> int:
    import os

    from backend.commands import worker_command

    settings = get_settings()
    _check_catalog(settings)
    settings.require_redis_url()
    _check_secret_key(settings)
    command = worker_command(settings)
    os.execv(command[0], command)


def _scheduler(args: argparse.Namespace) -> int:
    from backend.context import get_context
    from backend.logging_setup import configure_logging
    from backend.scheduler import run_forever

    configure_logging()
    _check_catalog(get_settings())
    get_settings().require_redis_url()
    _check_secret_key(get_settings())
    run_forever(get_context())
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from backend.private_files import ensure_private_dir
    from backend.secret_box import SecretBox
    from backend.secrets_at_rest import census, seal_plaintext
    from backend.store import Store
    from backend.store.migrate import current_revision, upgrade

    settings = get_settings()
    if not settings.database_url:
        ensure_private_dir(settings.var_dir)
    store = Store(settings.effective_database_url)
    try:
        upgrade(store.engine)
        print(f"database at revision {current_revision(store.engine)}")
        box = SecretBox.from_setting(settings.secret_key.get_secret_value())
        if box.configured:
            sealed = seal_plaintext(store, box)
            if sealed:
                print(f"sealed {sealed} plain-text signing secrets (key {box.current_key_id})")
        elif plaintext := census(store).plaintext:
            print(
                f"genhook: {plaintext} signing secrets are stored in plain text; set "
                "GENHOOK_SECRET_KEY and run `genhook migrate` again to seal them",
                file=sys.stderr,
            )
            return 1
    finally:
        store.dispose()
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from backend.api.app import openapi_document
    from backend.context import build_context

    print(json.dumps(openapi_document(build_context(get_settings())), indent=2))
    return 0


def _schemas_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from backend.api.contract import DEFAULT_DIR, export
    from backend.context import build_context

    directory = Path(args.dir) if args.dir else DEFAULT_DIR
    ctx = build_context(get_settings())
    try:
        written = export(ctx, directory)
    finally:
        ctx.close()
    print(f"genhook: wrote {len(written)} files to {directory}")
    return 0


def _providers(args: argparse.Namespace) -> int:
    """Exit 1 if any enabled provider fails its health probe (its credentials, its URL).

    Then one line per catalog route with its health as the workers share it in Redis. The
    probe here is only shown, never recorded: looking must not change routing."""
    import httpx

    from backend.catalog import load_catalog
    from backend.providers.health import HealthUnavailable, RouteHealth
    from backend.providers.probe import probe, route_lines
    from backend.providers.registry import PROVIDER_NAMES, build_providers, provider_timeout
    from backend.redis_client import connect
    from backend.store.types import utcnow

    settings = get_settings()
    routes = load_catalog(settings.catalog_file, PROVIDER_NAMES).all_routes()
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
        probes = {name: probe(provider) for name, provider in providers.items()}
    for name, result in probes.items():
        print(f"{name:<10} ok" if result.ok else f"{name:<10} FAILED  {result.error}")

    now = utcnow()
    try:
        if not settings.redis_url:
            raise HealthUnavailable("GENHOOK_REDIS_URL not set")
        views = RouteHealth(connect(settings.redis_url), settings).snapshot(
            [route.key for route in routes], now
        )
        health = {view.route_key: view.describe(now) for view in views}
    except HealthUnavailable as exc:
        health = {route.key: f"health unknown ({exc})" for route in routes}
    print()
    print("\n".join(route_lines(routes, probes, health)))
    return 0 if all(result.ok for result in probes.values()) else 1


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
    print(f"signing secret  {new.signing_secret}")
    return 0


def _accounts_grant(args: argparse.Namespace) -> int:
    """Exit 1, with nothing written, for an unknown email, a balance that would drop below
    zero, or a zero amount or empty reason."""
    from backend.context import build_context
    from backend.errors import ClientError
    from backend.ledger import grant_credits

    ctx = build_context(get_settings())
    try:
        done = grant_credits(ctx, args.email, args.credits, args.reason)
    except ClientError as exc:
        print(f"genhook: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        ctx.close()
    print(f"account         {done.account.id} ({done.account.email})")
    print(f"granted         {done.credits:+d}")
    print(f"credits         {done.balance}")
    return 0


def _secrets_generate_key(args: argparse.Namespace) -> int:
    from backend.secret_box import generate_key

    print(generate_key())
    return 0


def _secrets_status(args: argparse.Namespace) -> int:
    """Exit 1 when a stored secret cannot be opened with the configured keys."""
    from backend.secret_box import SecretBox
    from backend.secrets_at_rest import census
    from backend.store import Store

    settings = get_settings()
    box = SecretBox.from_setting(settings.secret_key.get_secret_value())
    store = Store(settings.effective_database_url)
    try:
        found = census(store)
    finally:
        store.dispose()
    print("\n".join(found.lines(box)))
    return 1 if found.unknown_keys(box) else 0


def _secrets_rotate(args: argparse.Namespace) -> int:
    from backend.secret_box import SecretBox
    from backend.secrets_at_rest import rotate
    from backend.store import Store

    settings = get_settings()
    box = SecretBox.from_setting(settings.secret_key.get_secret_value())
    store = Store(settings.effective_database_url)
    try:
        changed = rotate(store, box)
    finally:
        store.dispose()
    print(f"sealed {changed} signing secrets again with key {box.current_key_id}")
    print("every stored secret is now sealed with it: older keys can leave GENHOOK_SECRET_KEY")
    return 0


if __name__ == "__main__":
    sys.exit(main())
