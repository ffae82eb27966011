"""The Falcon application: routes, authentication and error handling, wired to a Context."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import falcon

from backend.api import errors
from backend.api.auth import BearerAuth
from backend.api.openapi import build_document
from backend.api.rate_limit import AccountRateLimit
from backend.api.resources.accounts import AccountResource, LedgerResource
from backend.api.resources.api_keys import ApiKeyResource, ApiKeysResource
from backend.api.resources.catalog import ModelsResource
from backend.api.resources.generations import (
    CancelGenerationResource,
    GenerationResource,
    GenerationsResource,
)
from backend.api.resources.health import HealthResource, ReadyResource
from backend.api.resources.image_inputs import ImageInputResource
from backend.api.resources.outputs import OutputResource
from backend.api.resources.provider_callbacks import ProviderCallbackResource
from backend.api.resources.signup import SignupResource, SignupVerifyResource
from backend.api.resources.webhooks import (
    DeliveryResource,
    GenerationDeliveriesResource,
    RecoverAccountDeliveriesResource,
    RecoverWebhookEndpointResource,
    RedeliverResource,
    RotateAccountSecretResource,
    RotateWebhookEndpointSecretResource,
    WebhookEndpointResource,
    WebhookEndpointSecretResource,
    WebhookEndpointsResource,
)
from backend.api.retry import retry_responders
from backend.api.security_headers import SecurityHeaders
from backend.context import Context
from backend.jobs import events
from backend.schemas.generations import WebhookPayload


def genhook_version() -> str:
    try:
        return version("genhook")
    except PackageNotFoundError:
        return "0.0.0"


def routes(ctx: Context) -> list[tuple[str, Any, str]]:
    """(path, resource, responder suffix) for every endpoint; the OpenAPI document is
    generated from this same list."""
    return [
        ("/healthz", HealthResource(), ""),
        ("/readyz", ReadyResource(ctx), ""),
        ("/v1/signup", SignupResource(ctx), ""),
        ("/v1/signup/verify", SignupVerifyResource(ctx), ""),
        ("/v1/account", AccountResource(ctx), ""),
        ("/v1/account/ledger", LedgerResource(ctx), ""),
        ("/v1/account/api-keys", ApiKeysResource(ctx), ""),
        ("/v1/account/api-keys/{key_id}", ApiKeyResource(ctx), ""),
        ("/v1/models", ModelsResource(ctx), ""),
        ("/v1/video/generations", GenerationsResource(ctx), ""),
        ("/v1/video/generations/{job_id}", GenerationResource(ctx), ""),
        ("/v1/video/generations/{job_id}/cancel", CancelGenerationResource(ctx), ""),
        ("/v1/video/generations/{job_id}/deliveries", GenerationDeliveriesResource(ctx), ""),
        ("/v1/deliveries/recover", RecoverAccountDeliveriesResource(ctx), ""),
        ("/v1/deliveries/{delivery_id}", DeliveryResource(ctx), ""),
        ("/v1/deliveries/{delivery_id}/redeliver", RedeliverResource(ctx), ""),
        ("/v1/account/rotate-signing-secret", RotateAccountSecretResource(ctx), ""),
        ("/v1/webhook-endpoints", WebhookEndpointsResource(ctx), ""),
        ("/v1/webhook-endpoints/{endpoint_id}", WebhookEndpointResource(ctx), ""),
        ("/v1/webhook-endpoints/{endpoint_id}/secret", WebhookEndpointSecretResource(ctx), ""),
        (
            "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
            RotateWebhookEndpointSecretResource(ctx),
            "",
        ),
        ("/v1/webhook-endpoints/{endpoint_id}/recover", RecoverWebhookEndpointResource(ctx), ""),
        ("/v1/provider-callbacks/{provider}/{token}", ProviderCallbackResource(ctx), ""),
        ("/v1/image-inputs/{image_id}", ImageInputResource(ctx), ""),
        ("/v1/outputs/{job_id}", OutputResource(ctx), ""),
    ]


class OpenAPIResource:
    public = True

    def __init__(self, document: dict[str, Any]) -> None:
        self.body = json.dumps(document)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.text = self.body


#: The webhooks genhook sends, for the OpenAPI document's ``webhooks`` section.
WEBHOOKS = {
    events.COMPLETED: ("A generation completed; `output_url` holds the video.", WebhookPayload),
    events.FAILED: (
        "A generation failed; `error` says why. Its credits were refunded.",
        WebhookPayload,
    ),
    events.CANCELED: (
        "A generation was canceled by its owner; its credits were refunded.",
        WebhookPayload,
    ),
    events.STATUS_CHANGED: (
        "A generation entered a new phase (endpoints that subscribed only).",
        WebhookPayload,
    ),
}


def openapi_document(ctx: Context) -> dict[str, Any]:
    return build_document(
        routes(ctx), title="genhook API", version=genhook_version(), webhooks=WEBHOOKS
    )


def create_app(ctx: Context) -> falcon.App:
    middleware: list[Any] = [SecurityHeaders(), BearerAuth(ctx), AccountRateLimit(ctx)]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    table = routes(ctx)
    for path, resource, suffix in table:
        retry_responders(resource)
        app.add_route(path, resource, suffix=suffix or None)
    app.add_route("/openapi.json", OpenAPIResource(openapi_document(ctx)))
    return app
