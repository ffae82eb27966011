"""Step 1: accept a generation request, charge for it and queue it for submission."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from backend import ids
from backend.catalog import END_IMAGE, IMAGE, MODELS, CatalogModel, Route
from backend.context import Context
from backend.errors import ValidationFailed
from backend.images import links
from backend.images.checked import CheckedImage, check_image_source
from backend.jobs.credits import charge
from backend.providers.registry import SIMULATOR
from backend.schemas.generations import GenerationCreate
from backend.store import images as images_store
from backend.store import jobs as jobs_store
from backend.store.jobs import JobRecord
from backend.webhooks import url_guard

log = logging.getLogger(__name__)

#: Request field, catalog input it needs, and how to name it in an error.
_IMAGE_FIELDS = (
    ("image_url", IMAGE, "a first-frame image"),
    ("end_image_url", END_IMAGE, "a last-frame image"),
)


def create_generation(ctx: Context, account_id: str, request: GenerationCreate) -> JobRecord:
    """Check everything, then debit and insert in one transaction, then enqueue the
    submission.

    Images are fetched and checked before the transaction, so a bad one is a 422 that
    charges nothing. If enqueueing fails the job is still safe in the database and the
    recovery sweep submits it later, so the client gets its 202 either way.
    """
    model = MODELS[request.model]
    route = _route(ctx, model)
    _check_model_inputs(model, request)
    if request.webhook_url is not None:
        url_guard.require_public(
            request.webhook_url, ctx.settings.webhook_allowed_networks, "webhook_url"
        )
    image = _checked_image(ctx, request.image_url, "image_url")
    end_image = _checked_image(ctx, request.end_image_url, "end_image_url")

    price = model.price(request.duration_seconds)
    job_id = ids.job_id()
    with ctx.store.begin() as conn:
        image_id = _store_image(conn, account_id, image)
        end_image_id = _store_image(conn, account_id, end_image)
        job = jobs_store.insert_job(
            conn,
            job_id=job_id,
            account_id=account_id,
            model=model.id,
            prompt=request.prompt,
            duration_seconds=request.duration_seconds,
            aspect_ratio=request.aspect_ratio,
            webhook_url=request.webhook_url,
            metadata=request.metadata,
            provider=route.provider,
            provider_model=route.model,
            credits_charged=price,
            image_id=image_id,
            end_image_id=end_image_id,
        )
        # Raises InsufficientCredits, which rolls the inserts back with it.
        charge(conn, account_id=account_id, job_id=job_id, amount=price)
    ctx.cache.put(job, ctx.now())
    ctx.queue.submit_job(job.id)
    log.info("job %s accepted: %s via %s, %s credits", job.id, model.id, route.provider, price)
    return job


def _route(ctx: Context, model: CatalogModel) -> Route:
    """The first route whose provider is enabled; the native simulator when the operator
    asked it to stand in (``GENHOOK_SIMULATOR_FALLBACK``)."""
    route = model.route_for(ctx.providers)
    if route is not None:
        return route
    if SIMULATOR in ctx.providers:
        return Route(SIMULATOR, model.id)
    raise ValidationFailed.for_field(
        "model", f"{model.id} is not available: no provider that renders it is configured"
    )


def _check_model_inputs(model: CatalogModel, request: GenerationCreate) -> None:
    for field, input_name, what in _IMAGE_FIELDS:
        if getattr(request, field) is not None and not model.takes(input_name):
            raise ValidationFailed.for_field(field, f"the model {model.id} does not take {what}")
    if request.aspect_ratio not in model.aspect_ratios:
        ratios = ", ".join(model.aspect_ratios)
        raise ValidationFailed.for_field(
            "aspect_ratio", f"the model {model.id} renders only {ratios}"
        )


def _checked_image(ctx: Context, source: str | None, field: str) -> CheckedImage | None:
    if source is None:
        return None
    return check_image_source(source, field=field, settings=ctx.settings, client=ctx.webhook_client)


def _store_image(conn: sa.Connection, account_id: str, image: CheckedImage | None) -> str | None:
    if image is None:
        return None
    image_id = ids.image_id()
    images_store.insert_image(
        conn,
        image_id=image_id,
        account_id=account_id,
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        sha256=image.sha256,
        data=image.data,
        link_key=links.new_link_key(),
    )
    return image_id
