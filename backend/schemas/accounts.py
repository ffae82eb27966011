"""Signup and account shapes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Deliberately loose (RFC 5322 is not worth enforcing): one @, no spaces, a dotted domain.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str = Field(max_length=320, examples=["dev@example.com"])

    @field_validator("email")
    @classmethod
    def _looks_like_email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("must be an email address like name@example.com")
        return value.lower()


class SignupResponse(BaseModel):
    object: Literal["account"] = "account"
    id: str
    email: str
    credits: int
    api_key: str = Field(description="Bearer key for the API. Shown once; only its hash is kept.")
    signing_secret: str = Field(
        description="`whsec_…` secret that signs this account's webhooks (HMAC-SHA256)."
    )
    created_at: datetime


class Account(BaseModel):
    object: Literal["account"] = "account"
    id: str
    email: str
    credits: int
    created_at: datetime
