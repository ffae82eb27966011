"""``/v1/account`` and its credit ledger."""

from __future__ import annotations

import falcon

from backend.accounts import get_account
from backend.api.body import parse_query
from backend.api.openapi import operation
from backend.context import Context
from backend.errors import NotFound
from backend.ledger import ledger_page
from backend.schemas.accounts import Account
from backend.schemas.ledger import LedgerList, LedgerListQuery


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
