"""``POST /v1/signup`` and the link of its verification mail, ``/v1/signup/verify``."""

from __future__ import annotations

import json

import falcon

from backend.api import signup_pages
from backend.api.body import parse_body, parse_query
from backend.api.client_address import client_address
from backend.api.idempotent import write_answer
from backend.api.openapi import operation
from backend.context import Context
from backend.errors import ClientError
from backend.idempotency import HEADER, SIGNUP_SCOPE, key_from_header
from backend.schemas.accounts import (
    SignupAccepted,
    SignupRequest,
    SignupResponse,
    SignupVerifyQuery,
)
from backend.signup import VERIFY_SCOPE, check_open, refuse_if_closed, sign_up, token_state, verify


class SignupResource:
    public = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="signUp",
        summary="Sign up for an account",
        description="On a server that verifies emails (`verify_email`, the default) every "
        "address gets the same `202`, whether it is new or already has an account: a mail "
        "goes to it with a one-time link (or, for an account that exists, a notice that "
        "someone tried). Following the link adds the free credits and shows the API key and "
        "`whsec_` signing secret, once. On a local server with open signup (`genhook up`) "
        "the answer is a `201` with the key and secret at once, and an email already signed "
        "up is a 409. A server with signup closed answers 403 (`signup-closed`); one that "
        "has not configured mail, 503. The body must be `application/json` (else 415). "
        "Signups are limited per client address and per email domain "
        "(`GENHOOK_SIGNUP_LIMIT_PER_ADDRESS`, `GENHOOK_SIGNUP_LIMIT_PER_DOMAIN`): past either, "
        "a 429 with `Retry-After`.",
        tags=("accounts",),
        request=SignupRequest,
        responses={202: SignupAccepted, 201: SignupResponse},
        errors=(400, 403, 409, 422, 429),
        idempotent=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        check_open(self.ctx)
        request = parse_body(req, SignupRequest)
        address = client_address(req, self.ctx.settings.trusted_proxies)
        key = key_from_header(req.get_header(HEADER), SIGNUP_SCOPE, request.model_dump(mode="json"))
        answer, replayed = sign_up(
            self.ctx,
            request.email,
            key,
            count_attempt=lambda: self.ctx.rate_limits.require_signup(address, request.email),
        )
        write_answer(resp, answer, replayed)


class SignupVerifyResource:
    """Opening the link shows a page with a button (GET changes nothing, so mail scanners
    that fetch links cannot use it up); the button, or an API client, POSTs to it."""

    public = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="openSignupLink",
        summary="Open a verification link (a page with a button)",
        description="The link in the verification mail. Opening it changes nothing: it "
        "answers an HTML page whose button POSTs to the same address. 404 for a token "
        "genhook never made, 410 once it was used or expired (then sign up again).",
        tags=("accounts",),
        query=SignupVerifyQuery,
        responses={200: None},
        html=(200,),
        errors=(403, 404, 410, 422),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            refuse_if_closed(self.ctx)
            token = parse_query(req, SignupVerifyQuery).token
            token_state(self.ctx, token)
        except ClientError as exc:
            if not signup_pages.prefers_html(req):
                raise
            signup_pages.problem_page(resp, exc.status, exc.title, exc.detail)
            return
        signup_pages.confirm_page(resp)

    @operation(
        operation_id="verifySignup",
        summary="Follow a verification link: the API key, once",
        description="Verifies the address, adds the account's free credits (once, in its "
        "ledger as `signup`) and answers its new API key and `whsec_` signing secret: the "
        "only time they are shown. A browser (`Accept: text/html`) gets them as a page. A "
        "link works once and expires (`GENHOOK_SIGNUP_VERIFICATION_TTL_SECONDS`, 24 h): 410 "
        "after that; 404 for a token genhook never made. Send an `Idempotency-Key` to be "
        "able to retry and get the same key again.",
        tags=("accounts",),
        query=SignupVerifyQuery,
        responses={200: SignupResponse},
        errors=(403, 404, 410, 422),
        idempotent=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        html = signup_pages.prefers_html(req)
        try:
            token = parse_query(req, SignupVerifyQuery).token
            key = key_from_header(req.get_header(HEADER), VERIFY_SCOPE, {"token": token})
            answer, replayed = verify(self.ctx, token, key)
        except ClientError as exc:
            if not html:
                raise
            signup_pages.problem_page(resp, exc.status, exc.title, exc.detail)
            return
        if html:
            signup_pages.credentials_page(resp, json.loads(answer.body))
        else:
            write_answer(resp, answer, replayed)
