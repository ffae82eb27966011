"""``/v1/signup``, ``/v1/account`` and its credit ledger."""

from __future__ import annotations

import falcon

from backend.accounts import create_account, get_account, signup_answer
from backend.api.body import parse_body, parse_query
from backend.api.client_address import client_address
from backend.api.idempotent import write_answer
from backend.api.openapi import operation
from backend.context import Context
from backend.errors import Forbidden, NotFound
from backend.idempotency import HEADER, SIGNUP_SCOPE, Answer, key_from_header, run_once
from backend.ledger import ledger_page
from backend.schemas.accounts import Account, SignupRequest, SignupResponse
from backend.schemas.ledger import LedgerList, LedgerListQuery


class SignupResource:
    public = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="signUp",
        summary="Create an account",
        description="Creates an account with the server's starting credits and returns its "
        "API key, shown only this once, and the `whsec_` secret that signs webhooks sent to "
        "generations' own `webhook_url`. An email already signed up is a 409; a server with "
        "signup turned off answers 403. Signups are limited per client address and per "
        "email domain (`GENHOOK_SIGNUP_LIMIT_PER_ADDRESS`, `GENHOOK_SIGNUP_LIMIT_PER_DOMAIN`): "
        "past either, a 429 with `Retry-After`.",
        tags=("accounts",),
        request=SignupRequest,
        responses={201: SignupResponse},
        errors=(400, 403, 409, 422, 429),
        idempotent=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.ctx.settings.signup_enabled:
            raise Forbidden("signup is turned off on this server; ask its operator for a key")
        request = parse_body(req, SignupRequest)
        address = client_address(req, self.ctx.settings.trusted_proxies)
        key = key_from_header(req.get_header(HEADER), SIGNUP_SCOPE, request.model_dump(mode="json"))

        def sign_up() -> Answer:
            # Counted only when a signup is attempted: a replayed answer is free.
            self.ctx.rate_limits.require_signup(address, request.email)
            return signup_answer(create_account(self.ctx, request.email, idempotency=key))

        answer, replayed = run_once(self.ctx, key, sign_up)
        write_answer(resp, answer, replayed)


class AccountResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="getAccount",
        summary="The calling account and its credit balance",
        description="The account the API key belongs to, with its credit balance: what it "
        "can still spend on generations.",
        tags=("accounts",),
        responses={200: Account},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        account = get_account(self.ctx, req.context.account_id)
        if account is None:
            raise NotFound("account not found")
        resp.text = Account(
            id=account.id,
            email=account.email,
            credits=account.credits,
            created_at=account.created_at,
        ).model_dump_json()


class LedgerResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="listLedger",
        summary="The credit ledger, newest first",
        description="Every change of the calling account's balance, a page at a time: the "
        "signup credits, each generation's debit, refunds of failed or canceled ones, "
        "failover price drops and operators' grants, each with the balance after it. Pass "
        "`next_cursor` as `cursor` while `has_more` is true. The balance always equals the "
        "sum of the ledger.",
        tags=("accounts",),
        query=LedgerListQuery,
        responses={200: LedgerList},
        errors=(422,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, LedgerListQuery)
        resp.text = ledger_page(self.ctx, req.context.account_id, query).model_dump_json()
