"""imgpress: HTTP routes and the S3 upload handler. Each handler parses, calls chalicelib, shapes.

Kept cheap to import (Lambda cold starts): boto3 and Pillow load on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chalice import AuthResponse, Chalice, Rate, Response
from chalice.app import AuthRequest, CloudWatchEvent, SQSEvent

from chalicelib import (
    apidoc,
    images,
    logs,
    metrics,
    multipart,
    parsing,
    reprocess,
    services,
    transforms,
    uploads,
    webpage,
)
from chalicelib.access import JWT_AUTHORIZER_TTL_SECONDS, route_access
from chalicelib.auth.oidc import OidcSettings
from chalicelib.auth.principal import Principal
from chalicelib.errors import ImgpressError
from chalicelib.pipeline import ClaimHeld
from chalicelib.s3events import UploadNotification, abandoned_uploads
from chalicelib.settings import get_access, get_settings, get_triggers

app = Chalice(app_name="imgpress")
# Read at import because Chalice wires these when it packages the app (stage env is set then).
_TRIGGERS = get_triggers()
_ACCESS = route_access(get_access())
logs.configure(app.log, _TRIGGERS.log_level)  # JSON lines from "imgpress" and its children, e.g. the pipeline

_OIDC = get_access().oidc  # API_AUTH=jwt only
if _OIDC is not None:  # only then: Chalice deploys a Lambda function for every registered authorizer
    _ISSUER: OidcSettings = _OIDC

    @app.authorizer(ttl_seconds=JWT_AUTHORIZER_TTL_SECONDS)
    def jwt_authorizer(auth_request: AuthRequest) -> AuthResponse:
        from chalicelib.auth import tokens  # PyJWT and cryptography: the authorizer function only

        logs.begin("jwt_authorizer", None)  # its log lines name the function; tokens are never logged
        return tokens.authorize(auth_request.token, _ISSUER)

    _ACCESS = _ACCESS.with_authorizer(jwt_authorizer)
_ACCESS.install_cors(app)
WAIT_MARGIN_SECONDS = 2.0  # ?wait ends this long before the Lambda's timeout, to answer in time


def route(path: str, method: str, public: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """app.route, plus the one mapping of domain errors to `{"error": {code, message}}` + status (+ headers).

    Every route gets the stage's auth (API_AUTH) and CORS; `public` ones only CORS. A protected
    route first reads the caller (a refused token becomes a 401 here, see chalicelib/access.py).
    401s and 429s are counted (chalicelib/metrics.py); every log line names the request.

    (Chalice catches view exceptions before any middleware sees them, hence a decorator.)
    """

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def json_errors(**params: Any) -> Any:
            logs.begin("api_handler", _request_id())
            caller = None
            try:
                if not public:
                    caller = _ACCESS.principal(_request().context)
                return view(**params)
            except ImgpressError as error:
                metrics.refused(error, caller.owner if caller else None)
                headers: dict[str, str | list[str]] = {**error.headers}  # Retry-After of a 429
                return Response({"error": error.to_dict()}, status_code=error.http_status, headers=headers)

        app.route(path, methods=[method], **_ACCESS.route_options(public))(json_errors)
        _ACCESS.add_preflight(app, path)
        return view

    return register


def _request() -> Any:
    """The request being handled (Chalice sets it before calling a view)."""
    assert app.current_request is not None
    return app.current_request


def _request_id() -> str | None:
    """Lambda's request id for this invocation, or API Gateway's where there is no Lambda (locally)."""
    context = getattr(app, "lambda_context", None)
    return getattr(context, "aws_request_id", None) or _request().context.get("requestId")


def _caller() -> Principal:
    """Who is calling: the owner their images are filed under (already checked by `route`)."""
    return _ACCESS.principal(_request().context)


@route("/", "GET", public=True)
def upload_page() -> Response:
    """The drag-and-drop upload page; it calls this same API (see README, "Web page")."""
    return Response(webpage.upload_page(), headers={"Content-Type": webpage.CONTENT_TYPE, "Cache-Control": "no-cache"})


@route("/page-config", "GET", public=True)
def page_config() -> Response:
    """How the upload page signs in to this stage and which other APIs it may call (docs: upload-page)."""
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json", "Cache-Control": "public, max-age=300"}
    return Response(get_settings().page.to_dict(), headers=headers)


@route("/vendor/oidc-client-ts.min.js", "GET", public=True)
def page_sign_in_script() -> Response:
    return Response(
        webpage.sign_in_script(),
        headers={"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "public, max-age=86400"},
    )


@route("/openapi.json", "GET", public=True)
def openapi_document() -> Response:
    """The OpenAPI 3.1 description of this API as this stage configures it (auth scheme, types, profiles)."""
    imaging = get_settings().imaging
    stage = apidoc.StageFacts(
        _ACCESS.mode,
        tuple(imaging.allowed_content_types),
        tuple(imaging.profiles.names),
        imaging.max_upload_bytes,
        _TRIGGERS.output_prefix,
    )
    return Response(apidoc.document(stage), headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})


@route("/docs", "GET", public=True)
def api_reference() -> Response:
    """The API reference, rendered from /openapi.json by Redoc (served from chalicelib/static)."""
    headers: dict[str, str | list[str]] = {
        "Content-Type": webpage.CONTENT_TYPE,
        "Cache-Control": "no-cache",
        "Content-Security-Policy": apidoc.REFERENCE_PAGE_POLICY,
    }
    return Response(apidoc.reference_page(), headers=headers)


@route("/docs/redoc.standalone.js", "GET", public=True)
def api_reference_script() -> Response:
    return Response(
        apidoc.redoc_script(),
        headers={"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "public, max-age=86400"},
    )


@route("/health", "GET", public=True)
def health() -> dict[str, str]:
    get_settings()
    return {"status": "ok"}


@route("/uploads", "POST")
def create_upload() -> Response:
    settings = get_settings()
    request = uploads.parse_upload_request(_request().raw_body, settings)
    body = uploads.create_upload(request, _caller(), settings, services.ports())
    return Response(body, status_code=201, headers={"Location": body["links"]["self"]})


@route("/upload-limits", "GET", public=True)
def upload_limits() -> Response:
    """What a front end may refuse before sending a byte: the size limit, the types, the part size."""
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json", "Cache-Control": "public, max-age=300"}
    return Response(multipart.upload_limits(get_settings()), headers=headers)


@route("/s3/params", "GET")
def uppy_params() -> dict[str, Any]:
    """Uppy's one-request upload (files it does not send in parts): a slot and its presigned POST."""
    settings = get_settings()
    request = uploads.parse_uppy_query(_request().query_params, settings)
    return uploads.uppy_params(request, _caller(), settings, services.ports())


@route("/s3/multipart", "POST")
def start_multipart() -> Response:
    settings = get_settings()
    request = uploads.parse_uppy_json(_request().raw_body, settings)
    body = multipart.start(request, _caller(), settings, services.ports())
    return Response(body, status_code=201, headers={"Location": body["links"]["self"]})


@route("/s3/multipart/{upload_id}/{part_number}", "GET")
def sign_part(upload_id: str, part_number: str) -> dict[str, Any]:
    params = _request().query_params
    return multipart.sign_part(upload_id, part_number, params, _caller(), get_settings(), services.ports())


@route("/s3/multipart/{upload_id}", "GET")
def list_parts(upload_id: str) -> Response:
    parts = multipart.list_parts(upload_id, _request().query_params, _caller(), get_settings(), services.ports())
    return Response(parts, status_code=200)  # a JSON array, as Uppy expects


@route("/s3/multipart/{upload_id}/complete", "POST")
def complete_multipart(upload_id: str) -> dict[str, Any]:
    body = parsing.json_object(_request().raw_body)
    params = _request().query_params
    return multipart.complete(upload_id, params, body, _caller(), get_settings(), services.ports())


@route("/s3/multipart/{upload_id}", "DELETE")
def abort_multipart(upload_id: str) -> Response:
    multipart.abort(upload_id, _request().query_params, _caller(), get_settings(), services.ports())
    return Response(body="", status_code=204)


@route("/images", "GET")
def list_images() -> dict[str, Any]:
    params = _request().query_params
    return images.list_images(params, _caller(), get_settings(), services.ports())


@route("/images/{image_id}", "GET")
def get_image(image_id: str) -> dict[str, Any]:
    """`?wait=N` holds the answer until the image is done or failed, at most N s (and never past
    the Lambda's own deadline)."""
    wait = min(images.parse_wait(_request().query_params), _seconds_left() - WAIT_MARGIN_SECONDS)
    record = images.wait_for_outcome(image_id, _caller(), services.ports(), max(wait, 0))
    return images.image_view(record, get_settings(), services.ports())


def _seconds_left() -> float:
    """What this invocation has left before Lambda's timeout (unbounded where there is no context)."""
    context = getattr(app, "lambda_context", None)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else float("inf")


@route("/images/{image_id}", "DELETE")
def delete_image(image_id: str) -> Response:
    images.delete_image(image_id, _caller(), get_settings(), services.ports())
    return Response(body="", status_code=204)


@route("/images/{image_id}/reprocess", "POST")
def reprocess_image(image_id: str) -> Response:
    record = reprocess.request_reprocess(image_id, _request().raw_body, _caller(), get_settings(), services.ports())
    return Response(images.image_view(record, get_settings(), services.ports()), status_code=202)


@route(f"/{_TRIGGERS.output_prefix}{{image_id}}/od/{{revision}}/{{name}}", "GET", public=True)
def transform(image_id: str, revision: str, name: str) -> Response:
    """An on-demand variant of a done image (`links.transform`): a 302 to the stored object, rendered
    first if nobody asked for it before. Public: the link's signature is the credential (an <img>
    sends no token). The path mirrors the object's key, so a CDN can fall back here (docs: deploy/cdn)."""
    request = _request()
    settings = get_settings()
    worker = transforms.Transforms(settings, services.ports(), services.signing_keys())
    served = worker.serve(image_id, name, request.query_params, request.headers.get("accept"))
    headers: dict[str, str | list[str]] = {
        "Location": images.object_url(served.bucket, served.key, services.ports().store, settings),
        "Cache-Control": transforms.TRANSFORM_CACHE_CONTROL,
    }
    if served.negotiated:
        headers["Vary"] = "Accept"
    return Response(body="", status_code=302, headers=headers)


@route("/backfills", "POST")
def enqueue_backfill_page() -> dict[str, Any]:
    page = reprocess.parse_backfill_page(_request().raw_body, _caller(), get_settings())
    return reprocess.enqueue_backfill_page(page, _caller(), services.ports())


@route("/backfills/{backfill_id}", "GET")
def backfill_progress(backfill_id: str) -> dict[str, Any]:
    return reprocess.backfill_progress(backfill_id, _caller(), services.ports())


@app.on_s3_event(bucket=_TRIGGERS.input_bucket, events=["s3:ObjectCreated:*"], prefix=_TRIGGERS.upload_prefix)
def handle_upload(event: UploadNotification) -> None:
    logs.begin("handle_upload", getattr(event.context, "aws_request_id", None))
    processor = services.processor()
    deadline = get_settings().attempt_deadline(event.context)
    upload_events = event.upload_events()
    if not upload_events:
        app.log.info("ignored a notification without records: %s", event.to_dict().get("Event"))
    for upload_event in upload_events:
        processor.process(upload_event, deadline, getattr(event.context, "aws_request_id", None))


# Chalice builds the handler's event with S3Event, which cannot parse s3:TestEvent.
handle_upload.event_class = UploadNotification


@app.on_sqs_message(queue=_TRIGGERS.upload_failure_queue, batch_size=1)
def end_abandoned_uploads(event: SQSEvent) -> None:
    """Lambda's on-failure destination for handle_upload: uploads whose every attempt failed."""
    logs.begin("end_abandoned_uploads", getattr(event.context, "aws_request_id", None))
    recovery = services.recovery()
    for message in event:
        for upload in abandoned_uploads(message.body):
            ended = recovery.end_abandoned(
                upload.bucket, upload.key, upload.reason, upload.request_id, upload.uploaded_at
            )
            if ended == "in_progress":
                # A live lease: raising returns the message to the queue for a later look.
                raise ClaimHeld(f"{upload.key} is still being worked on")


@app.on_sqs_message(
    queue=_TRIGGERS.reprocess_queue,
    batch_size=_TRIGGERS.reprocess_batch_size,
    maximum_batching_window_in_seconds=_TRIGGERS.reprocess_batching_window_seconds,
    maximum_concurrency=_TRIGGERS.reprocess_max_concurrency,
)
def reprocess_images(event: SQSEvent) -> dict[str, Any]:
    """Renders images again from their originals (POST /images/{id}/reprocess, backfills); reports
    the messages to retry as batchItemFailures, so one bad image does not retry its neighbours."""
    logs.begin("reprocess_images", getattr(event.context, "aws_request_id", None))
    return reprocess.consume_batch(event, services.processor(), get_settings(), event.context, services.backfills())


@app.schedule(Rate(_TRIGGERS.sweep_every_minutes, unit=Rate.MINUTES))
def sweep(event: CloudWatchEvent) -> None:
    """Ends records stuck past their lease and retries; re-sends S3 events that never came."""
    logs.begin("sweep", getattr(event.context, "aws_request_id", None))
    services.recovery().sweep(get_settings().attempt_deadline(event.context))
