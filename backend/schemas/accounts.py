"""Signup and account shapes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.schemas import examples

# Deliberately loose (RFC 5322 is not worth enforcing): one @, no spaces, a dotted domain.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SignupRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [examples.SIGNUP_REQUEST]},
    )

    email: str = Field(
        max_length=320,
        description="The account's email address (stored in lower case); one account each.",
        examples=["dev@example.com"],
    )

    @field_validator("email")
    @classmethod
    def _looks_like_email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("must be an email address like name@example.com")
        return value.lower()


class SignupResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.SIGNUP_RESPONSE]})

    object: Literal["account"] = Field(default="account", description="Always `account`.")
    id: str = Field(description="The account's id.", examples=[examples.ACCOUNT_ID])
    email: str = Field(description="The account's email address, in lower case.")
    credits: int = Field(description="The credit balance: the free credits of a new account.")
    api_key: str = Field(description="Bearer key for the API. Shown once; only its hash is kept.")
    signing_secret: str = Field(
        description="`whsec_…` secret that signs the webhooks sent to generations' own "
        "`webhook_url` (HMAC-SHA256); webhook endpoints have their own."
    )
    created_at: datetime = Field(description="When the account was created.")


class SignupVerifyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The one-time token of the link in the verification mail.",
        examples=["Zq3-8vG1kXw2PbN9sT4yLm7QrD5hJc0eUa6iOf1gKzE"],
    )


class SignupAccepted(BaseModel):
    """The 202 of a signup on a server that verifies emails: the same for every address,
    new or already signed up, so that signup tells nobody which addresses have accounts."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.SIGNUP_ACCEPTED]})

    object: Literal["signup"] = Field(default="signup", description="Always `signup`.")
    status: Literal["check_inbox"] = Field(
        default="check_inbox",
        description="Always `check_inbox`: a mail is on its way to the address (unless one "
        "was sent less than a minute ago).",
    )
    email: str = Field(description="The address, in lower case, as it was sent.")
    detail: str = Field(description="What to do next, for people.")


class Account(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.ACCOUNT]})

    object: Literal["account"] = Field(default="account", description="Always `account`.")
    id: str = Field(description="The account's id.", examples=[examples.ACCOUNT_ID])
    email: str = Field(description="The account's email address, in lower case.")
    credits: int = Field(description="The credit balance: what the account can still spend.")
    created_at: datetime = Field(description="When the account was created.")
