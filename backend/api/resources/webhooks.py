"""Webhook endpoints, signing-secret rotation, and the delivery log with replay."""

from __future__ import annotations

import falcon

from backend.api.body import parse_body, parse_optional_body
from backend.api.openapi import operation
from backend.context import Context
from backend.schemas.webhooks import (
    AccountRecoverRequest,
    AccountRecoverResult,
    Delivery,
    DeliveryList,
    RecoverRequest,
    RecoverResult,
    RotateSecretRequest,
    SigningSecret,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointList,
    WebhookEndpointUpdate,
)
from backend.store.endpoints import EndpointRecord
from backend.webhooks import endpoints, replay

TAGS = ("webhooks",)


def to_endpoint(record: EndpointRecord) -> WebhookEndpoint:
    return WebhookEndpoint.model_validate(record, from_attributes=True)


class WebhookEndpointsResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="createWebhookEndpoint",
        summary="Subscribe a URL to generation events",
        description="The events it subscribes to are POSTed to the URL, signed with the "
        "endpoint's own `whsec_` secret (returned here) and retried on its schedule. A URL "
        "that points at a private, loopback or otherwise non-public address is a 422; an "
        f"account may have {endpoints.MAX_ENDPOINTS_PER_ACCOUNT} endpoints (409 beyond).",
        tags=TAGS,
        request=WebhookEndpointCreate,
        responses={201: WebhookEndpointCreated},
        headers={201: {"Location": "URL of the new endpoint"}},
        errors=(400, 409, 413, 422),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = parse_body(req, WebhookEndpointCreate)
        new = endpoints.create_endpoint(self.ctx, req.context.account_id, request)
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/webhook-endpoints/{new.record.id}"
        resp.text = WebhookEndpointCreated(
            **to_endpoint(new.record).model_dump(), secret=new.secret
        ).model_dump_json()

    @operation(
        operation_id="listWebhookEndpoints",
        summary="The account's webhook endpoints",
        description="Every endpoint the account has not deleted, oldest first, without "
        "their secrets.",
        tags=TAGS,
        responses={200: WebhookEndpointList},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        records = endpoints.list_endpoints(self.ctx, req.context.account_id)
        resp.text = WebhookEndpointList(data=[to_endpoint(r) for r in records]).model_dump_json()


class WebhookEndpointResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="getWebhookEndpoint",
        summary="One webhook endpoint",
        description="Its URL, events and retry settings, and why and since when it is "
        "disabled or failing. A deleted endpoint is a 404.",
        tags=TAGS,
        responses={200: WebhookEndpoint},
        errors=(404,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        record = endpoints.get_endpoint(self.ctx, req.context.account_id, endpoint_id)
        resp.text = to_endpoint(record).model_dump_json()

    @operation(
        operation_id="updateWebhookEndpoint",
        summary="Change a webhook endpoint",
        description="Changes only the fields given; `null` puts `retry_schedule` or "
        "`timeout_seconds` back to the server's default. `enabled: true` re-enables a "
        "disabled endpoint and forgets its failures; a new URL is checked as at creation.",
        tags=TAGS,
        request=WebhookEndpointUpdate,
        responses={200: WebhookEndpoint},
        errors=(400, 404, 413, 422),
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        request = parse_body(req, WebhookEndpointUpdate)
        record = endpoints.update_endpoint(self.ctx, req.context.account_id, endpoint_id, request)
        resp.text = to_endpoint(record).model_dump_json()

    @operation(
        operation_id="deleteWebhookEndpoint",
        summary="Delete a webhook endpoint",
        description="No event is sent to it any more, and its pending deliveries fail "
        "unsent. Its deliveries stay readable in the delivery log.",
        tags=TAGS,
        responses={204: None},
        errors=(404,),
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        endpoints.delete_endpoint(self.ctx, req.context.account_id, endpoint_id)
        resp.status = falcon.HTTP_204


class WebhookEndpointSecretResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="getWebhookEndpointSecret",
        summary="The endpoint's current signing secret",
        description="The `whsec_` secret that signs the endpoint's webhooks now and, after a "
        "rotation, until when the previous one signs too.",
        tags=TAGS,
        responses={200: SigningSecret},
        errors=(404,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        secret = endpoints.current_secret(self.ctx, req.context.account_id, endpoint_id)
        resp.text = secret.model_dump_json()


class RotateWebhookEndpointSecretResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="rotateWebhookEndpointSecret",
        summary="Replace the endpoint's signing secret",
        description="The old secret keeps signing, as a second `v1,` signature in "
        "`webhook-signature`, until `previous_secret_expires_at` (24 h by default; "
        "`overlap_seconds: 0` retires it at once).",
        tags=TAGS,
        request=RotateSecretRequest,
        request_required=False,
        responses={200: SigningSecret},
        errors=(400, 404, 422),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        body = parse_optional_body(req, RotateSecretRequest)
        secret = endpoints.rotate_endpoint_secret(
            self.ctx, req.context.account_id, endpoint_id, body.overlap_seconds
        )
        resp.text = secret.model_dump_json()


class RecoverWebhookEndpointResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="recoverWebhookEndpoint",
        summary="Re-send every failed delivery to this endpoint since a time",
        description="Each delivery gets a fresh round on the endpoint's retry schedule, with "
        f"its original `webhook-id`. At most {replay.MAX_RECOVER} per call; call again "
        "with a later `since` for more. A disabled endpoint is a 409 (re-enable it first). "
        "Recover calls have an hourly quota, and are refused while the account's webhook "
        "delivery quota is used up: 429 `quota-exceeded` with `Retry-After`.",
        tags=TAGS,
        request=RecoverRequest,
        responses={202: RecoverResult},
        errors=(400, 404, 409, 413, 422),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, endpoint_id: str) -> None:
        request = parse_body(req, RecoverRequest)
        ids = replay.recover(self.ctx, req.context.account_id, endpoint_id, request.since)
        resp.status = falcon.HTTP_202
        resp.text = RecoverResult(
            endpoint_id=endpoint_id, since=request.since, delivery_ids=ids
        ).model_dump_json()


class RecoverAccountDeliveriesResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="recoverDeliveries",
        summary="Re-send the account's failed (or waiting) deliveries since a time",
        description="Covers generations' own `webhook_url`s as well as webhook endpoints "
        "(those disabled or deleted are left out). `failed` deliveries get a fresh round on "
        "their retry schedule; `pending` ones, waiting for a later retry, are sent now. "
        f"Each keeps its original `webhook-id`. At most {replay.MAX_RECOVER} per call; call "
        "again with a later `since` for more. Recover calls have an hourly quota, and are "
        "refused while the account's webhook delivery quota is used up: 429 "
        "`quota-exceeded` with `Retry-After`.",
        tags=TAGS,
        request=AccountRecoverRequest,
        responses={202: AccountRecoverResult},
        errors=(400, 413, 422),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = parse_body(req, AccountRecoverRequest)
        ids = replay.recover_account(
            self.ctx, req.context.account_id, request.status, request.since
        )
        resp.status = falcon.HTTP_202
        resp.text = AccountRecoverResult(
            since=request.since, status=request.status, delivery_ids=ids
        ).model_dump_json()


class RotateAccountSecretResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="rotateAccountSigningSecret",
        summary="Replace the account's signing secret",
        description="This secret signs deliveries to generations' own `webhook_url` "
        "(endpoints have their own). The old secret keeps signing, as a second `v1,` "
        "signature in `webhook-signature`, until `previous_secret_expires_at` (24 h by "
        "default; `overlap_seconds: 0` retires it at once).",
        tags=("accounts", *TAGS),
        request=RotateSecretRequest,
        request_required=False,
        responses={200: SigningSecret},
        errors=(400, 422),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_optional_body(req, RotateSecretRequest)
        secret = endpoints.rotate_account_secret(
            self.ctx, req.context.account_id, body.overlap_seconds
        )
        resp.text = secret.model_dump_json()


class GenerationDeliveriesResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="listGenerationDeliveries",
        summary="Every webhook delivery of a generation, with its attempts",
        description="One delivery per event and destination (the generation's own "
        "`webhook_url` and each subscribed endpoint), with every attempt's status code, "
        "error and the start of the receiver's answer: where to look when a webhook did "
        "not arrive.",
        tags=("generations", *TAGS),
        responses={200: DeliveryList},
        errors=(404,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        found = replay.deliveries_of_generation(self.ctx, req.context.account_id, job_id)
        resp.text = DeliveryList(data=found).model_dump_json()


class DeliveryResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="getDelivery",
        summary="One webhook delivery with its attempts",
        description="The delivery and every attempt: when and where it was sent, the "
        "receiver's status code, the first 2 KB of its answer, and what went wrong.",
        tags=TAGS,
        responses={200: Delivery},
        errors=(404,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, delivery_id: str) -> None:
        found = replay.get_delivery(self.ctx, req.context.account_id, delivery_id)
        resp.text = found.model_dump_json()


class RedeliverResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="redeliverDelivery",
        summary="One more attempt now, with the same `webhook-id`",
        description="Sent even if an earlier attempt succeeded. A delivery still being "
        "retried has its next attempt brought forward. A delivery to a disabled or deleted "
        "endpoint is a 409. Redeliver calls have an hourly quota, and are refused while the "
        "account's webhook delivery quota is used up: 429 `quota-exceeded` with "
        "`Retry-After`.",
        tags=TAGS,
        responses={202: Delivery},
        errors=(404, 409),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, delivery_id: str) -> None:
        found = replay.redeliver(self.ctx, req.context.account_id, delivery_id)
        resp.status = falcon.HTTP_202
        resp.text = found.model_dump_json()
