"""The ``genhook`` command: the local stack and each production process."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from backend.settings import Settings, get_settings
from backend.worker_pools import QUEUES

if TYPE_CHECKING:  # the commands import what they need when run: a fast CLI start
    from backend.context import Context
    from backend.store.accounts import AccountRecord

T = TypeVar("T")


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

    worker = sub.add_parser("worker", help="run a Dramatiq worker")
    worker.add_argument(
        "--queues",
        nargs="+",
        choices=QUEUES,
        default=None,
        help="serve only these queues, with their pool's processes and threads: jobs "
        "(GENHOOK_WORKER_*), webhooks (GENHOOK_WEBHOOK_WORKER_*); default: every queue",
    )
    worker.set_defaults(run=_worker)
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
    create.add_argument(
        "--allow-private-webhooks",
        action="store_true",
        help="let this account's webhooks and image URLs reach the private networks of "
        "GENHOOK_PRIVATE_WEBHOOK_NETWORKS (loopback and RFC 1918 by default)",
    )
    create.set_defaults(run=_accounts_create)
    update = accounts.add_parser(
        "set", help="change what an operator decides about an account (private webhooks)"
    )
    update.add_argument("--email", required=True)
    update.add_argument(
        "--allow-private-webhooks",
        action=argparse.BooleanOptionalAction,
        required=True,
        help="allow (or with --no-allow-private-webhooks forbid) private webhook targets; "
        "checked again at every delivery",
    )
    update.set_defaults(run=_accounts_set)
    keys = accounts.add_parser("keys", help="list an account's API keys (prefix, dates)")
    keys.add_argument("--email", required=True)
    keys.set_defaults(run=_accounts_keys)
    create_key = accounts.add_parser(
        "create-key", help="issue one more API key for an account and print it (shown once)"
    )
    create_key.add_argument("--email", required=True)
    create_key.set_defaults(run=_accounts_create_key)
    revoke = accounts.add_parser(
        "revoke-key",
        help="revoke an API key (refused from the next request on), even the account's last",
    )
    revoke.add_argument("--email", required=True)
    revoke.add_argument(
        "--prefix", required=True, help="the key's first characters, as `keys` lists them"
    )
    revoke.set_defaults(run=_accounts_revoke_key)
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
    limits = accounts.add_parser(
        "set-limits", help="set an account's own limits (overriding the server's settings)"
    )
    limits.add_argument("--email", required=True)
    limits.add_argument(
        "--max-jobs-in-flight",
        type=_cap,
        required=True,
        metavar="N|default",
        help="generations the account may have unfinished at once (0 stops its "
        "submissions); `default` goes back to GENHOOK_MAX_JOBS_IN_FLIGHT",
    )
    limits.set_defaults(run=_accounts_set_limits)

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


def _cap(text: str) -> int | None:
    if text == "default":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a whole number of at least 0, or `default`") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a whole number of at least 0, or `default`")
    return value


def _up(args: argparse.Namespace) -> int:
    from backend.up import run_up

    settings = get_settings()
    return run_up(settings, port=args.port or settings.api_port)


def _api(args: argparse.Namespace) -> int:
    import os

    from backend.commands import api_command

    settings = get_settings()
    _check_catalog(settings)
    settings.require_redis_url()
    _say_signup_mode(settings)
    _check_secret_key(settings)
    bind = args.bind or f"{settings.api_host}:{settings.api_port}"
    command = api_command(settings, bind, args.workers or settings.api_workers)
    os.execv(command[0], command)


def _say_signup_mode(settings: Settings) -> None:
    from backend.settings import SignupMode

    mode = settings.signup_mode
    if mode is SignupMode.VERIFY_EMAIL and not (settings.smtp_host and settings.signup_link_base):
        print(
            "genhook: signup verifies emails (GENHOOK_SIGNUP_MODE=verify_email) but mail is "
            "not configured (GENHOOK_SMTP_HOST, GENHOOK_SIGNUP_LINK_BASE_URL): signups will "
            "answer 503 until it is; set GENHOOK_SIGNUP_MODE=closed to turn signup off",
            file=sys.stderr,
        )
    elif mode is SignupMode.OPEN:
        print(
            "genhook: signup is OPEN (GENHOOK_SIGNUP_MODE=open): anyone who reaches this API "
            "gets an account and free credits without any check; for local use only",
            file=sys.stderr,
        )


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
    command = worker_command(settings, args.queues)
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


def _on_context(action: Callable[[Context], T]) -> T | None:
    """Run an operator command's ``action`` on a context of its own. A ``ClientError`` (an
    unknown email, a refused change) is said on stderr and gives ``None``: exit 1, with
    nothing written."""
    from backend.context import build_context
    from backend.errors import ClientError

    ctx = build_context(get_settings())
    try:
        return action(ctx)
    except ClientError as exc:
        print(f"genhook: {exc.detail}", file=sys.stderr)
        return None
    finally:
        ctx.close()


def _account(ctx: Context, email: str) -> AccountRecord:
    from backend.store import accounts as accounts_store

    with ctx.store.begin() as conn:
        return accounts_store.require_account_by_email(conn, email)


def _accounts_create(args: argparse.Namespace) -> int:
    from backend.accounts import create_account

    new = _on_context(
        lambda ctx: create_account(
            ctx,
            args.email,
            credits=args.credits,
            allow_private_webhooks=args.allow_private_webhooks,
        )
    )
    if new is None:
        return 1
    print(f"account         {new.account.id} ({new.account.email})")
    print(f"credits         {new.account.credits}")
    print(f"api key         {new.api_key}   (shown once)")
    print(f"signing secret  {new.signing_secret}")
    if new.account.allow_private_webhooks:
        print("webhooks        may target private networks (GENHOOK_PRIVATE_WEBHOOK_NETWORKS)")
    return 0


def _accounts_set(args: argparse.Namespace) -> int:
    from backend.accounts import set_private_webhooks

    account = _on_context(
        lambda ctx: set_private_webhooks(ctx, args.email, args.allow_private_webhooks)
    )
    if account is None:
        return 1
    allowed = "allowed" if account.allow_private_webhooks else "refused"
    print(f"account         {account.id} ({account.email})")
    print(f"private webhook targets {allowed}")
    return 0


def _accounts_keys(args: argparse.Namespace) -> int:
    from backend.api_keys import list_keys

    keys = _on_context(lambda ctx: list_keys(ctx, _account(ctx, args.email).id))
    if keys is None:
        return 1
    print(f"{'prefix':<12} {'created':<26} {'last used':<26} revoked")
    for key in keys:
        print(
            f"{key.key_prefix:<12} {_when(key.created_at):<26} {_when(key.last_used_at):<26} "
            f"{_when(key.revoked_at)}"
        )
    return 0


def _accounts_create_key(args: argparse.Namespace) -> int:
    from backend.accounts import issue_api_key

    def issue(ctx: Context) -> tuple[AccountRecord, str]:
        account = _account(ctx, args.email)
        return account, issue_api_key(ctx, account.id)

    issued = _on_context(issue)
    if issued is None:
        return 1
    account, api_key = issued
    print(f"account         {account.id} ({account.email})")
    print(f"api key         {api_key}   (shown once)")
    return 0


def _accounts_revoke_key(args: argparse.Namespace) -> int:
    """Exit 1, with nothing revoked, for an unknown email or a prefix that matches no live
    key, or several."""
    from backend.api_keys import revoke_by_prefix

    revoked = _on_context(lambda ctx: revoke_by_prefix(ctx, args.email, args.prefix))
    if revoked is None:
        return 1
    key, live_left = revoked
    print(f"revoked         {key.key_prefix}… at {_when(key.revoked_at)}")
    print(f"live keys left  {live_left}")
    if live_left == 0:
        print("(the account cannot call the API until you issue one: genhook accounts create-key)")
    return 0


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.isoformat(timespec="seconds")


def _accounts_grant(args: argparse.Namespace) -> int:
    """Exit 1, with nothing written, for an unknown email, a balance that would drop below
    zero, or a zero amount or empty reason."""
    from backend.ledger import grant_credits

    done = _on_context(lambda ctx: grant_credits(ctx, args.email, args.credits, args.reason))
    if done is None:
        return 1
    print(f"account         {done.account.id} ({done.account.email})")
    print(f"granted         {done.credits:+d}")
    print(f"credits         {done.balance}")
    return 0


def _accounts_set_limits(args: argparse.Namespace) -> int:
    """Exit 1, with nothing written, for an unknown email."""
    from backend.accounts import set_max_jobs_in_flight

    account = _on_context(
        lambda ctx: set_max_jobs_in_flight(ctx, args.email, args.max_jobs_in_flight)
    )
    if account is None:
        return 1
    cap = account.max_jobs_in_flight
    shown = f"{get_settings().max_jobs_in_flight} (the server's default)" if cap is None else cap
    print(f"account             {account.id} ({account.email})")
    print(f"max jobs in flight  {shown}")
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
