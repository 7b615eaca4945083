"""S3's upload rules in front of moto's server, which checks none of them.

Real S3 refuses a browser form POST whose policy is unsigned, expired or unmet, and a presigned
URL that has expired or whose signature does not match the request (a signed Content-Length
included). moto stores all of them. This WSGI layer answers those requests as S3 does, with S3's
status codes and XML error codes, before moto sees them; everything else passes through unchanged.

Checked, as AWS documents them:
- Browser form POSTs (`multipart/form-data` to `/<bucket>`): the policy's SigV4 signature, its
  expiration, every condition (exact, `starts-with`, `content-length-range`, `bucket`), and that
  every form field is covered by a condition (`Extra input fields`), as real S3 does.
- Presigned SigV4 URLs (`X-Amz-Signature` in the query): expiry, and the signature over the
  method, path, query and signed headers.

Requests signed in an `Authorization` header (the SDK's own calls) and SigV2 URLs pass unchecked.
tests/test_upload_contract_reference.py runs the same cases against LocalStack's S3 and this layer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from werkzeug.formparser import parse_form_data

from devstack.wsgi import Environ, StartResponse, WsgiApp

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_EXPIRES_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs live at most a week
# Form fields a POST policy need not name (AWS: "Creating a POST policy").
UNCONDITIONED_FIELDS = {"file", "policy", "x-amz-signature"}
_STATUS_TEXT = {400: "400 Bad Request", 403: "403 Forbidden"}


@dataclass(frozen=True)
class Refusal(Exception):
    """What S3 answers instead of doing the request."""

    status: int
    code: str
    message: str
    details: tuple[tuple[str, str], ...] = ()

    def body(self) -> bytes:
        extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in self.details)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>{extra}"
            f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
        ).encode()


def access_denied(message: str) -> Refusal:
    return Refusal(403, "AccessDenied", message)


SIGNATURE_MISMATCH = Refusal(
    403,
    "SignatureDoesNotMatch",
    "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
)


class S3Rules:
    """The WSGI layer: `credentials` maps each access key the stand-in knows to its secret."""

    def __init__(
        self, app: WsgiApp, credentials: Mapping[str, str], clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.app = app
        self.credentials = dict(credentials)
        self.clock = clock

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            if environ.get("REQUEST_METHOD") == "OPTIONS":  # a CORS preflight: answered by the bucket's CORS rule
                pass
            elif "X-Amz-Signature=" in str(environ.get("QUERY_STRING", "")):
                self._check_presigned(environ)
            elif _is_form_post(environ):
                self._check_form_post(environ)
        except Refusal as refusal:
            body = refusal.body()
            headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
            if environ.get("HTTP_ORIGIN"):  # as moto's own answers: CORS for every origin
                headers.append(("Access-Control-Allow-Origin", str(environ["HTTP_ORIGIN"])))
            start_response(_STATUS_TEXT[refusal.status], headers)
            return [body]
        return self.app(environ, start_response)

    # -- presigned URLs (SigV4 query authentication) ---------------------------------------------

    def _check_presigned(self, environ: Environ) -> None:
        raw_query = str(environ.get("QUERY_STRING", ""))
        pairs = [_split_pair(part) for part in raw_query.split("&") if part]
        query = dict(pairs)
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise Refusal(400, "AuthorizationQueryParametersError", f"X-Amz-Algorithm only supports {ALGORITHM}")
        scope = Scope.parse(query.get("X-Amz-Credential", ""))
        signed_at = _amz_date(query.get("X-Amz-Date", ""))
        expires = query.get("X-Amz-Expires", "")
        if not expires.isascii() or not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES_SECONDS:
            raise Refusal(
                400,
                "AuthorizationQueryParametersError",
                f"X-Amz-Expires must be a number of seconds from 1 to {MAX_EXPIRES_SECONDS}",
            )
        now = self.clock()
        if now > signed_at + timedelta(seconds=int(expires)):
            raise access_denied("Request has expired")
        if signed_at > now + timedelta(minutes=15):
            raise access_denied("Request is not valid yet")
        secret = self._secret(scope.access_key)
        canonical_query = "&".join(
            f"{_uri(name)}={_uri(value)}" for name, value in sorted(pairs) if name != "X-Amz-Signature"
        )
        signed_headers = query.get("X-Amz-SignedHeaders", "host")
        headers = "".join(f"{name}:{_header(environ, name)}\n" for name in signed_headers.split(";"))
        canonical_request = "\n".join(
            [
                str(environ.get("REQUEST_METHOD", "")),
                _raw_path(environ),
                canonical_query,
                headers,
                signed_headers,
                "UNSIGNED-PAYLOAD",
            ]
        )
        string_to_sign = "\n".join(
            [ALGORITHM, query["X-Amz-Date"], scope.text, hashlib.sha256(canonical_request.encode()).hexdigest()]
        )
        if not hmac.compare_digest(scope.sign(secret, string_to_sign), query.get("X-Amz-Signature", "")):
            raise SIGNATURE_MISMATCH

    # -- browser form POSTs (POST policy) --------------------------------------------------------

    def _check_form_post(self, environ: Environ) -> None:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads the form again
        parsed = {**environ, "wsgi.input": io.BytesIO(body)}
        _, form, files = parse_form_data(parsed)
        fields = {name.lower(): value for name, value in form.items()}
        upload = files.get("file")
        if "policy" not in fields:
            raise access_denied("Access Denied")  # an anonymous POST: only a public-write bucket takes it
        scope = Scope.parse(fields.get("x-amz-credential", ""))
        secret = self._secret(scope.access_key)
        if not hmac.compare_digest(scope.sign(secret, fields["policy"]), fields.get("x-amz-signature", "")):
            raise SIGNATURE_MISMATCH
        policy = _policy(fields["policy"])
        if self.clock() > _policy_time(policy.get("expiration")):
            raise access_denied("Invalid according to Policy: Policy expired.")
        fields["bucket"] = _raw_path(environ).strip("/").split("/")[0]
        size = len(upload.read()) if upload is not None else 0
        covered = {"bucket"}
        for condition in policy.get("conditions", []):
            covered |= _check_condition(condition, fields, size)
        extra = sorted(name for name in form if _must_be_covered(name) and name.lower() not in covered)
        if extra:
            raise access_denied(f"Invalid according to Policy: Extra input fields: {', '.join(extra)}")

    def _secret(self, access_key: str) -> str:
        secret = self.credentials.get(access_key)
        if secret is None:
            raise Refusal(
                403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
            )
        return secret


@dataclass(frozen=True)
class Scope:
    """`<access key>/<yyyymmdd>/<region>/s3/aws4_request`, and the signing key it derives."""

    access_key: str
    date: str
    region: str
    service: str

    @classmethod
    def parse(cls, credential: str) -> Scope:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise Refusal(400, "AuthorizationQueryParametersError", f"Invalid credential: {credential!r}")
        return cls(parts[0], parts[1], parts[2], parts[3])

    @property
    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"

    def sign(self, secret: str, text: str) -> str:
        key = f"AWS4{secret}".encode()
        for step in (self.date, self.region, self.service, "aws4_request"):
            key = hmac.new(key, step.encode(), hashlib.sha256).digest()
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _check_condition(condition: Any, fields: Mapping[str, str], size: int) -> set[str]:
    """One policy condition against the form; returns the field names it covers."""
    if isinstance(condition, dict) and len(condition) == 1:
        name, expected = next(iter(condition.items()))
        condition = ["eq", f"${name}", expected]
    if not isinstance(condition, list) or len(condition) != 3:
        raise Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: Invalid condition {json.dumps(condition)}")
    operator, subject, bound = condition
    if operator == "content-length-range":
        if size > int(bound):
            raise Refusal(
                400,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
                (("ProposedSize", str(size)), ("MaxSizeAllowed", str(bound))),
            )
        if size < int(subject):
            raise Refusal(
                400,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                (("ProposedSize", str(size)), ("MinSizeAllowed", str(subject))),
            )
        return set()
    name = str(subject).removeprefix("$").lower()
    value = fields.get(name, "")
    if operator == "eq":
        met = value == bound
    elif operator == "starts-with":
        met = value.startswith(str(bound))
    else:
        raise Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: Invalid condition operator {operator!r}")
    if not met:
        raise access_denied(f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}")
    return {name}


def _must_be_covered(name: str) -> bool:
    lowered = name.lower()
    return lowered not in UNCONDITIONED_FIELDS and not lowered.startswith("x-ignore-")


def _policy(encoded: str) -> dict[str, Any]:
    try:
        policy = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as error:
        raise Refusal(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from error
    if not isinstance(policy, dict):
        raise Refusal(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.")
    return policy


def _policy_time(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as error:
        raise Refusal(400, "InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value.") from error


def _amz_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as error:
        raise Refusal(400, "AuthorizationQueryParametersError", "X-Amz-Date must be in the ISO8601 format") from error


def _is_form_post(environ: Environ) -> bool:
    return environ.get("REQUEST_METHOD") == "POST" and str(environ.get("CONTENT_TYPE", "")).startswith(
        "multipart/form-data"
    )


def _split_pair(part: str) -> tuple[str, str]:
    name, _, value = part.partition("=")
    return unquote(name.replace("+", " ")), unquote(value.replace("+", " "))


def _uri(text: str) -> str:
    """SigV4's URI encoding: every byte but the unreserved characters."""
    return quote(text, safe="-_.~")


def _raw_path(environ: Environ) -> str:
    """The path exactly as the client sent it (S3 signs it un-normalised)."""
    uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(str(environ.get("PATH_INFO", ""))))
    return uri.split("?", 1)[0]


def _header(environ: Environ, name: str) -> str:
    if name == "content-length":
        value = environ.get("CONTENT_LENGTH", "")
    elif name == "content-type":
        value = environ.get("CONTENT_TYPE", "")
    else:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"), "")
    return " ".join(str(value).split())
