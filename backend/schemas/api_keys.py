"""API key shapes: an account's keys as listed, and a new key shown once."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas import examples
from backend.store.api_keys import LAST_USED_RESOLUTION_SECONDS, ApiKeyRecord

#: How an API key's id is shown: ``key_`` and its row number.
ID_PREFIX = "key_"


def public_id(key_id: int) -> str:
    return f"{ID_PREFIX}{key_id}"


def parse_id(value: str) -> int | None:
    """The row number behind a ``key_…`` id, or ``None`` for anything else."""
    digits = value.removeprefix(ID_PREFIX)
    if not value.startswith(ID_PREFIX) or not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)


class ApiKey(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.API_KEY_OBJECT]})

    object: Literal["api_key"] = Field(default="api_key", description="Always `api_key`.")
    id: str = Field(description="The key's id (`key_…`): what to revoke.")
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_at: datetime = Field(description="When the key was created.")
    last_used_at: datetime | None = Field(
        description="When the key last authenticated a request (to within "
        f"{LAST_USED_RESOLUTION_SECONDS} s); null if never."
    )
    revoked_at: datetime | None = Field(
        description="When the key was revoked (it is refused since); null while it is live."
    )
    current: bool = Field(description="Whether this is the key that made this request.")

    @classmethod
    def of(cls, record: ApiKeyRecord, current_key_id: int | None) -> ApiKey:
        return cls(
            id=public_id(record.id),
            prefix=record.key_prefix,
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
            current=record.id == current_key_id,
        )


class ApiKeyCreated(ApiKey):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.API_KEY_CREATED]})

    api_key: str = Field(description="The key itself. Shown once; only its hash is kept.")


class ApiKeyList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.API_KEY_LIST]})

    object: Literal["list"] = Field(default="list", description="Always `list`.")
    data: list[ApiKey] = Field(description="Every key of the account, oldest first.")
