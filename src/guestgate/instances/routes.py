"""HTTP routes of captive portal instances, their images and the signed asset URLs."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Body, File, Path, Query, Request, Response, UploadFile

from guestgate.deps import InstanceId, PageDep, Reader, RuntimeDep, SessionDep, Writer, set_next_link
from guestgate.errors import FileInvalid
from guestgate.gateways import service as gateway_service
from guestgate.instances import images, service
from guestgate.instances.schemas import Instance, InstanceCreate, InstanceUpdate
from guestgate.openapi import errors

router = APIRouter(prefix="/captive/instances", tags=["Captive Portal Instances"])
assets_router = APIRouter(prefix="/captive/assets", tags=["Captive Portal Instances"])

# Swagger UI's "Try it out" sends the first example: none of them names a site that does not exist,
# and the update's first example leaves `sites` out, so trying it never replaces an instance's sites.
_BASIC = {"name": "Lobby Wi-Fi", "strategy": "coupon", "session_ttl": 28800}
_LOOK = {
    "theme": {"accent_color": "#0396d5", "accent_text": "#FFFFFF"},
    "terms_text": "Be kind to other guests.",
    "locale": "en",
}
CREATE_EXAMPLES = {
    "coupon": {"summary": "A coupon portal with the default look", "value": _BASIC},
    "branded": {"summary": "[extension] With theme, terms and language at once", "value": {**_BASIC, **_LOOK}},
}
UPDATE_EXAMPLES = {
    "keep_sites": {
        "summary": "Change the look; the sites stay as they are (no `sites` key)",
        "value": {**_BASIC, **_LOOK},
    },
    "set_sites": {
        "summary": "Replace the sites (use ids from GET /captive/sites)",
        "value": {**_BASIC, "sites": [{"id": "<siteId>", "subnets": ["10.10.0.0/24"]}]},
    },
    "no_sites": {"summary": "Remove every site", "value": {**_BASIC, "sites": []}},
}
PUT_SEMANTICS = """

**PUT semantics.** `name`, `strategy` and `session_ttl` are required and replace the stored values
(and `auth_integration_id` with them). Every optional field left out keeps its current value:
leave `sites` out to keep the instance's sites, send `"sites": []` to remove them all, or a list
to replace them; the theme's colours given replace those colours only; `"terms_text": null`
clears the terms."""


@router.get(
    "", operation_id="listInstances", summary="List all captive portal instances", responses=errors(401, 403)
)
def list_instances(
    request: Request, response: Response, who: Reader, session: SessionDep, runtime: RuntimeDep, page: PageDep
) -> list[Instance]:
    """Retrieves a list of all captive portal instances for your organization."""
    result = service.list_instances(org_id=who.org_id, page=page, session=session)
    set_next_link(request, response, result.next_cursor)
    return [
        service.to_out(item, signer=runtime.signer, public_url=runtime.settings.public_url)
        for item in result.items
    ]


@router.post(
    "",
    status_code=201,
    operation_id="createInstance",
    summary="Create a captive portal instance",
    responses=errors(400, 401, 403, 409),
)
def create_instance(
    body: Annotated[InstanceCreate, Body(openapi_examples=CREATE_EXAMPLES)],
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Instance:
    """Creates a new captive portal instance with a basic configuration.

    [extension] It also takes what an update takes (`auth_window_ttl`, `theme`, `terms_text`,
    `locale`, `sites`), checked by the same rules.
    """
    item = service.create(body, org_id=who.org_id, session=session)
    return service.to_out(item, signer=runtime.signer, public_url=runtime.settings.public_url)


@router.get(
    "/{instanceId}",
    operation_id="getInstance",
    summary="Retrieve a captive portal instance",
    responses=errors(401, 403, 404),
)
def get_instance(instance_id: InstanceId, who: Reader, session: SessionDep, runtime: RuntimeDep) -> Instance:
    """Retrieves the complete details of a specific captive portal instance by its unique ID."""
    item = service.view(instance_id, org_id=who.org_id, session=session)
    return service.to_out(item, signer=runtime.signer, public_url=runtime.settings.public_url)


@router.put(
    "/{instanceId}",
    operation_id="updateInstance",
    summary="Update a captive portal instance",
    description="Updates the configuration of an existing captive portal instance, including its theme, "
    "terms and sites." + PUT_SEMANTICS,
    responses=errors(400, 401, 403, 404, 409),
)
def update_instance(
    instance_id: InstanceId,
    body: Annotated[InstanceUpdate, Body(openapi_examples=UPDATE_EXAMPLES)],
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Instance:
    """Updates the configuration of an existing captive portal instance, including its theme, terms and sites."""
    item = service.replace(instance_id, body, org_id=who.org_id, session=session)
    return service.to_out(item, signer=runtime.signer, public_url=runtime.settings.public_url)


@router.delete(
    "/{instanceId}",
    status_code=204,
    operation_id="deleteInstance",
    summary="Delete a captive portal instance",
    responses=errors(401, 403, 404),
)
def delete_instance(
    instance_id: InstanceId,
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> Response:
    """Permanently deletes a captive portal instance: its coupons and schedules, its active sessions end."""
    service.get(instance_id, org_id=who.org_id, session=session)
    ending = gateway_service.active_sessions_of_instance(instance_id, session=session)
    service.delete(instance_id, org_id=who.org_id, session=session)
    # After the response: the ended sessions leave their gateways (the reconciler catches any missed).
    background.add_task(gateway_service.revoke, runtime, ending)
    return Response(status_code=204, background=background)


@router.post(
    "/{instanceId}/images/{type}",
    status_code=202,
    operation_id="uploadInstanceImage",
    summary="Upload an image for an instance",
    responses=errors(400, 401, 403, 404, 507),
)
async def upload_image(
    instance_id: InstanceId,
    kind: Annotated[
        Literal["logo", "icon"], Path(alias="type", description="The type of image: `logo` or `icon`.")
    ],
    file: Annotated[UploadFile, File(description="PNG, JPEG, WebP or GIF, at most 2 MiB.")],
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Instance:
    """Uploads a logo (at least 120x80) or a square icon (at least 32x32) for the instance's theme."""
    raw = await file.read(images.MAX_BYTES + 1)
    if len(raw) > images.MAX_BYTES:
        raise FileInvalid(f"The file is larger than {images.MAX_BYTES // (1024 * 1024)} MiB.")
    images.store(instance_id, kind, raw, org_id=who.org_id, session=session)
    item = service.view(instance_id, org_id=who.org_id, session=session)
    return service.to_out(item, signer=runtime.signer, public_url=runtime.settings.public_url)


@assets_router.get(
    "/{assetId}",
    operation_id="getAsset",
    summary="Fetch an uploaded image (signed URL)",
    responses={
        200: {
            "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "image/gif": {}},
            "description": "The image.",
        },
        **errors(403, 404),
    },
)
def get_asset(
    asset_id: Annotated[str, Path(alias="assetId")],
    expires: Annotated[int, Query(description="Unix time the URL expires.")],
    signature: Annotated[str, Query(description="HMAC-SHA256 signature of the URL.")],
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    """Serves a logo or icon through the signed, expiring URL given in an instance's theme."""
    image = images.fetch(
        asset_id, expires=expires, signature=signature, signer=runtime.signer, session=session
    )
    max_age = max(0, expires - int(time.time()))
    return Response(
        image.data,
        media_type=image.content_type,
        headers={
            "Cache-Control": f"private, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
            "ETag": f'"{image.sha256}"',
        },
    )
