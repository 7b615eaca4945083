"""`chalice local`'s server, with API Gateway's own errors answered as the deployed API answers them.

Chalice local rejects a request without an Authorization header itself, with `{"message":
"Unauthorized"}`. On AWS, infra/gateway_responses.json turns API Gateway's rejections into
imgpress's `{"error": {code, message}}`; this server renders the very same file, so a client
sees one shape locally and deployed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalDevServer, LocalGatewayException

from infra.gateway import definitions, error_body

# chalice local's (status, x-amzn-ErrorType) -> the API Gateway response type AWS would use.
RESPONSE_TYPES = {(401, "UnauthorizedException"): "UNAUTHORIZED", (403, "AccessDeniedException"): "ACCESS_DENIED"}


def gateway_response(
    status: int, error_type: str, request_headers: Mapping[str, str]
) -> tuple[int, dict[str, str], str] | None:
    """Status, headers and body API Gateway would send for this rejection, or None if not customised."""
    document = definitions()
    response = document["Responses"].get(RESPONSE_TYPES.get((status, error_type), ""))
    if response is None:
        return None
    headers = {"Content-Type": "application/json"}
    for name, expression in document["Headers"].items():
        value = _mapped(expression, request_headers)
        if value:
            headers[name] = value
    return int(response["StatusCode"]), headers, error_body(response)


def _mapped(expression: str, request_headers: Mapping[str, str]) -> str | None:
    """A gateway response header mapping: 'literal' or method.request.header.<Name>."""
    if expression.startswith("'") and expression.endswith("'"):
        return expression[1:-1]
    prefix = "method.request.header."
    if expression.startswith(prefix):
        wanted = expression[len(prefix) :].lower()
        return next((v for k, v in request_headers.items() if k.lower() == wanted), None)
    raise ValueError(f"unsupported gateway response mapping {expression!r}")


class GatewayResponseHandler(ChaliceRequestHandler):
    def _send_error_response(self, error: LocalGatewayException) -> None:
        rendered = gateway_response(error.CODE, str(error.headers.get("x-amzn-ErrorType", "")), dict(self.headers))
        if rendered is None:
            super()._send_error_response(error)
            return
        status, headers, body = rendered
        self._send_http_response(status, {**error.headers, **headers}, body)

    def __getattr__(self, name: str) -> Any:
        """Every HTTP method is routed: http.server answers a method without a `do_` handler (TRACE,
        QUERY…) with its own HTML 501, where chalice local answers 405 (found by Schemathesis)."""
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)


def create_local_server(app: Chalice, config: Config, host: str, port: int) -> Any:
    """chalice.local.create_local_server, answering API Gateway's rejections like the deployed API,
    each request's `app.current_request` its own (per_thread_requests)."""
    per_thread_requests(app)
    return LocalDevServer(app, config, host, port, handler_cls=GatewayResponseHandler)


def per_thread_requests(app: Chalice) -> None:
    """Make `app.current_request` and `app.lambda_context` per thread.

    chalice local serves each request on a thread of its own but keeps the request on the one app
    object, so two requests at once could read each other's: under load a slot was opened with
    another request's declared size (found by tests/test_load.py). On Lambda each invocation has
    the app to itself; here each thread does."""
    state = threading.local()

    def slot(name: str) -> property:
        return property(lambda _: getattr(state, name, None), lambda _, value: setattr(state, name, value))

    app.__class__ = type(
        f"PerThread{type(app).__name__}",
        (type(app),),
        {"current_request": slot("current_request"), "lambda_context": slot("lambda_context")},
    )
