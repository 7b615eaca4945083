"""S3's upload rules in front of a stand-in (devstack/s3_rules.py), on a WSGI app that accepts
everything: what passes, what is refused with which code, and time from an injected clock.
tests/test_upload_contract.py runs the same rules over HTTP against LocalStack's S3."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from werkzeug.test import Client

from devstack.s3_rules import S3Rules

ENDPOINT = "http://127.0.0.1:4566"
KEY_ID = SECRET = "imgpress-local"


def accept_all(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("204 No Content", [])
    return [b""]


def s3() -> Any:
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def rules(now: datetime | None = None) -> Client:
    return Client(S3Rules(accept_all, {KEY_ID: SECRET}, lambda: now or datetime.now(UTC)))


def code(response: Any) -> tuple[int, str | None]:
    found = re.search(r"<Code>([^<]+)</Code>", response.get_data(as_text=True))
    return response.status_code, found.group(1) if found else None


def post(client: Client, fields: dict[str, str], data: bytes = b"photo") -> tuple[int, str | None]:
    form: dict[str, Any] = {**fields, "file": (io.BytesIO(data), "a.jpg", "image/jpeg")}
    return code(client.post("/input", data=form, content_type="multipart/form-data", headers={"Host": "127.0.0.1"}))


def presigned_form(conditions: list[Any], fields: dict[str, str] | None = None) -> dict[str, str]:
    form = s3().generate_presigned_post("input", "uploads/a", Fields=fields, Conditions=conditions, ExpiresIn=60)
    return {str(k): str(v) for k, v in form["fields"].items()}


def test_a_form_within_its_policy_passes_and_ignored_fields_need_no_condition() -> None:
    fields = presigned_form([["starts-with", "$Content-Type", "image/"]], {"Content-Type": "image/jpeg"})
    assert post(rules(), {**fields, "x-ignore-trace": "1"}) == (204, None)
    assert post(rules(), {**fields, "Content-Type": "text/html"}) == (403, "AccessDenied")


def test_a_form_is_refused_once_its_policy_expires_by_the_stand_ins_clock() -> None:
    fields = presigned_form([])
    assert post(rules(datetime.now(UTC) + timedelta(seconds=59)), fields) == (204, None)
    assert post(rules(datetime.now(UTC) + timedelta(seconds=61)), fields) == (403, "AccessDenied")


@pytest.mark.parametrize(
    "change, answer",
    [
        ({"policy": None}, (403, "AccessDenied")),
        ({"x-amz-credential": "someone/20261207/us-east-1/s3/aws4_request"}, (403, "InvalidAccessKeyId")),
        ({"x-amz-credential": "nonsense"}, (400, "AuthorizationQueryParametersError")),
    ],
)
def test_a_form_without_a_known_signer_is_refused(change: dict[str, str | None], answer: tuple[int, str]) -> None:
    fields = {name: value for name, value in {**presigned_form([]), **change}.items() if value is not None}
    assert post(rules(), fields) == answer


def test_presigned_urls_by_the_stand_ins_clock_and_preflights_pass() -> None:
    url = urlsplit(s3().generate_presigned_url("get_object", Params={"Bucket": "input", "Key": "a b+c"}, ExpiresIn=60))
    target = f"{url.path}?{url.query}"
    assert code(rules().get(target, headers={"Host": url.netloc})) == (204, None)
    later = rules(datetime.now(UTC) + timedelta(seconds=61))
    assert code(later.get(target, headers={"Host": url.netloc})) == (403, "AccessDenied")
    assert code(rules().get(target, headers={"Host": "elsewhere:1"})) == (403, "SignatureDoesNotMatch")
    assert code(rules().options(target, headers={"Host": url.netloc})) == (204, None)
    assert code(rules().delete(target, headers={"Host": url.netloc})) == (403, "SignatureDoesNotMatch")
