"""The credit ledger as clients read it: every change of an account's balance."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas import examples
from backend.store.ledger import LedgerReason

#: Prefix of a ledger entry's public id (``led_5821``).
ENTRY_ID_PREFIX = "led_"


class LedgerEntry(BaseModel):
    """One change of the balance, with why it happened."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.LEDGER_ENTRY]})

    object: Literal["ledger_entry"] = Field(
        default="ledger_entry", description="Always `ledger_entry`."
    )
    id: str = Field(description="The entry's id.", examples=[examples.LEDGER_ENTRY_ID])
    created_at: datetime = Field(description="When the balance changed.")
    delta: int = Field(
        description="Credits added (positive) or taken (negative) by this entry.", examples=[-3]
    )
    reason: LedgerReason = Field(
        description="Why: `signup` (the starting credits), `debit` (a generation's price, "
        "charged when it was accepted), `refund` (a failed or canceled generation's charge "
        "given back), `reprice` (a failover to a cheaper route: the difference given back) "
        "or `grant` (credits an operator added or took back; `note` says why).",
        examples=["debit"],
    )
    route_index: int | None = Field(
        description="For `reprice`: the route of the generation's plan that took it at the "
        "lower price (the `route_index` of its `status_chain`, 0 the first); `null` otherwise.",
        examples=[None],
    )
    job_id: str | None = Field(
        description="The generation this entry is for; `null` for `signup` and `grant`.",
        examples=[examples.GENERATION_ID],
    )
    note: str | None = Field(
        description="The operator's reason for a `grant`; `null` otherwise.", examples=[None]
    )
    balance_after: int = Field(
        description="The balance right after this entry: the sum of it and every earlier "
        "entry (the newest entry's is the account's `credits`).",
        examples=[47],
    )


class LedgerList(BaseModel):
    """One page of the ledger, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.LEDGER_LIST]})

    object: Literal["list"] = Field(default="list", description="Always `list`.")
    data: list[LedgerEntry] = Field(description="The entries of this page, newest first.")
    has_more: bool = Field(description="Whether older entries follow.")
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")


class LedgerListQuery(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.LEDGER_LIST_QUERY]}
    )

    limit: int = Field(
        default=20, ge=1, le=100, description="Entries per page, 1 to 100.", examples=[20]
    )
    cursor: str | None = Field(
        default=None,
        max_length=512,
        description="The `next_cursor` of the previous page; left out for the first page.",
        examples=[examples.LEDGER_CURSOR],
    )
