"""The upload contract, case by case (issue 28): what S3 refuses, run against LocalStack's S3 as the
reference and against what `make run` serves (moto behind devstack/s3_rules.py), comparing the
status and S3's error code; then what the API refuses, over the same `make run`. Tier `reference`.

The forms and URLs are made by the project's own adapters (chalicelib/aws/storage.py), as the API
makes them. Expired ones are signed in the past (botocore's clock), so nothing here waits.

Where LocalStack is laxer than AWS (`LOCALSTACK_LAXER`: it checks neither a POST policy's
signature nor fields the policy does not cover), the local stack is held to AWS's documented
behaviour, and LocalStack's lax answer is asserted too, so the list stays true.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import boto3
import botocore.auth
import botocore.signers
import pytest
import requests
from botocore.config import Config

from chalicelib.aws.storage import S3ObjectStore, S3Uploads
from devstack.stack import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY
from tests import localstack
from tests.conftest import ENV
from tests.jwt_stack import JwtStack, jwt_stack

pytestmark = pytest.mark.reference

MAX_BYTES = 100
Answer = tuple[int, str | None]  # HTTP status, S3's <Code> (None for a success)


@dataclass(frozen=True)
class Target:
    """One S3 to run the cases against: its endpoint, a bucket, and credentials it checks signatures with."""

    name: str
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    @property
    def uploads(self) -> S3Uploads:
        return S3Uploads(self.client(), self.bucket)

    def holds(self, key: str) -> bool:
        return "Contents" in self.client().list_objects_v2(Bucket=self.bucket, Prefix=key)


@pytest.fixture(scope="session")
def reference() -> Iterator[Target]:
    """One LocalStack for the session."""
    with localstack.running_localstack() as endpoint:
        target = Target("localstack", endpoint, "imgpress-reference", localstack.ACCESS_KEY, localstack.SECRET_KEY)
        target.client().create_bucket(Bucket=target.bucket)
        yield target


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwtStack]:
    """`API_AUTH=jwt make run`: the stack's S3 stand-in, and two users for the API's cases."""
    with jwt_stack(tmp_path_factory.mktemp("issuer")) as stack:
        yield stack


@pytest.fixture(params=["localstack", "make run"])
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "localstack":
        reference: Target = request.getfixturevalue("reference")
        return reference
    stack: JwtStack = request.getfixturevalue("local")
    return Target("make run", stack.live.aws, ENV["INPUT_BUCKET"], LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY)


@contextmanager
def signed_seconds_ago(seconds: int) -> Iterator[None]:
    """botocore signs (and dates a policy's expiration) as if it were `seconds` ago."""
    then = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(seconds=seconds)
    with (
        mock.patch.object(botocore.auth, "get_current_datetime", lambda: then),
        mock.patch.object(botocore.signers, "get_current_datetime", lambda: then),
    ):
        yield


def answer(response: requests.Response) -> Answer:
    found = re.search(r"<Code>([^<]+)</Code>", response.text)
    return response.status_code, found.group(1) if found else None


# -- the cases: each sends one request to a target and returns S3's answer ---------------------------


def form_post(
    target: Target,
    key: str,
    *,
    size: int = 10,
    content_type: str = "image/jpeg",
    changed: dict[str, str] | None = None,
    signed_ago: int = 0,
    ttl: int = 900,
) -> Answer:
    """A browser's form POST of a slot's presigned form (the policy's fields, then the file)."""
    with signed_seconds_ago(signed_ago):
        form = target.uploads.presign_post(key, "image/jpeg", MAX_BYTES, ttl)
    fields = {**form.fields, **(changed or {})}
    files = {"file": ("photo.jpg", b"x" * size, content_type)}
    return answer(requests.post(form.url, data=fields, files=files, timeout=30))


def rewritten_policy(target: Target, key: str) -> dict[str, str]:
    """The slot's form with its policy widened to 1 GB, its signature kept."""
    form = target.uploads.presign_post(key, "image/jpeg", MAX_BYTES, 900)
    policy = json.loads(base64.b64decode(form.fields["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not isinstance(c, list)] + [
        ["content-length-range", 1, 10**9]
    ]
    return {"policy": base64.b64encode(json.dumps(policy).encode()).decode()}


def part_put(target: Target, key: str, *, size: int = 10, signed_ago: int = 0, forged: bool = False) -> Answer:
    """A PUT of part 1 to its presigned URL, signed over a Content-Length of 10."""
    client = target.client()
    upload_id = client.create_multipart_upload(Bucket=target.bucket, Key=key)["UploadId"]
    with signed_seconds_ago(signed_ago):
        url = target.uploads.presign_part(key, upload_id, 1, 10, 60)
    if forged:
        url = re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + "0" * 64, url)
    return answer(requests.put(url, data=b"y" * size, timeout=30))


def presigned_get(target: Target, key: str, *, signed_ago: int = 0, forged: bool = False) -> Answer:
    """A GET of an object through a presigned URL, as output links are."""
    client = target.client()
    client.put_object(Bucket=target.bucket, Key=key, Body=b"z")
    with signed_seconds_ago(signed_ago):
        url = S3ObjectStore(client, target.bucket, "no-cache").presign_get(target.bucket, key, 60)
    if forged:
        url = re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + "0" * 64, url)
    return answer(requests.get(url, timeout=30))


@dataclass(frozen=True)
class Case:
    send: Callable[[Target, str], Answer]
    aws: Answer  # what AWS S3 answers (its documentation; LocalStack agrees unless listed below)
    stores: bool = False  # whether the key holds an object afterwards


CASES: dict[str, Case] = {
    "form POST within the policy": Case(lambda t, k: form_post(t, k), (204, None), stores=True),
    "form POST over content-length-range": Case(lambda t, k: form_post(t, k, size=101), (400, "EntityTooLarge")),
    "form POST of an empty file": Case(lambda t, k: form_post(t, k, size=0), (400, "EntityTooSmall")),
    "form POST of another Content-Type": Case(
        lambda t, k: form_post(t, k, content_type="image/png", changed={"Content-Type": "image/png"}),
        (403, "AccessDenied"),
    ),
    "form POST to another slot's key": Case(
        lambda t, k: form_post(t, k, changed={"key": f"{k}-someone-elses"}), (403, "AccessDenied")
    ),
    "form POST of an expired policy": Case(lambda t, k: form_post(t, k, signed_ago=120, ttl=60), (403, "AccessDenied")),
    "form POST with a forged signature": Case(
        lambda t, k: form_post(t, k, changed={"x-amz-signature": "0" * 64}), (403, "SignatureDoesNotMatch")
    ),
    "form POST with a rewritten policy": Case(
        lambda t, k: form_post(t, k, size=101, changed=rewritten_policy(t, k)), (403, "SignatureDoesNotMatch")
    ),
    "form POST with a field the policy does not cover": Case(
        lambda t, k: form_post(t, k, changed={"x-amz-meta-owner": "mallory"}), (403, "AccessDenied")
    ),
    "part PUT of its signed length": Case(lambda t, k: part_put(t, k), (200, None)),
    "part PUT of another length than signed": Case(
        lambda t, k: part_put(t, k, size=11), (403, "SignatureDoesNotMatch")
    ),
    "part PUT to an expired URL": Case(lambda t, k: part_put(t, k, signed_ago=120), (403, "AccessDenied")),
    "part PUT with a forged signature": Case(lambda t, k: part_put(t, k, forged=True), (403, "SignatureDoesNotMatch")),
    "GET through a presigned URL": Case(lambda t, k: presigned_get(t, k), (200, None), stores=True),
    "GET through an expired URL": Case(lambda t, k: presigned_get(t, k, signed_ago=120), (403, "AccessDenied"), True),
    "GET with a forged signature": Case(
        lambda t, k: presigned_get(t, k, forged=True), (403, "SignatureDoesNotMatch"), True
    ),
}
# What LocalStack 2026.3.0 answers where AWS refuses (its source marks both checks TODO).
LOCALSTACK_LAXER: dict[str, Answer] = {
    "form POST with a forged signature": (204, None),
    "form POST with a rewritten policy": (204, None),
    "form POST with a field the policy does not cover": (204, None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_s3_answers_as_aws_does(target: Target, name: str) -> None:
    case = CASES[name]
    key = f"contract/{re.sub(r'[^a-z]+', '-', name)}"  # outside the upload prefix: no S3 event
    expected = LOCALSTACK_LAXER.get(name, case.aws) if target.name == "localstack" else case.aws
    assert case.send(target, key) == expected
    stored = case.stores or (target.name == "localstack" and name in LOCALSTACK_LAXER)
    assert target.holds(key) == stored, "a refused upload must store nothing"


# -- what the API refuses, over the same `make run` --------------------------------------------------


def test_a_multipart_upload_id_reaches_only_its_own_slot(local: JwtStack) -> None:
    alice, mallory = local.caller("alice"), local.caller("mallory")
    theirs = start_multipart(alice)
    mine = start_multipart(mallory)
    owned_key = {"key": mine["key"]}
    for method, path in [
        ("GET", f"/s3/multipart/{theirs['uploadId']}"),
        ("GET", f"/s3/multipart/{theirs['uploadId']}/1"),
        ("DELETE", f"/s3/multipart/{theirs['uploadId']}"),
    ]:
        refused = requests.request(method, f"{local.live.api}{path}", params=owned_key, headers=mallory.headers)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found", (path, refused.text)
    listed = requests.get(
        f"{local.live.api}/s3/multipart/{theirs['uploadId']}", params={"key": theirs["key"]}, headers=alice.headers
    )
    assert listed.status_code == 200 and listed.json() == []  # alice's upload is still there, untouched


def test_an_aborted_multipart_upload_ends_failed_with_one_message(local: JwtStack) -> None:
    alice = local.caller("alice")
    started = start_multipart(alice)
    aborted = requests.delete(
        f"{local.live.api}/s3/multipart/{started['uploadId']}", params={"key": started["key"]}, headers=alice.headers
    )
    assert aborted.status_code == 204
    image = alice.wait(started["id"], timeout=10)
    assert image["status"] == "failed" and image["error"]["code"] == "upload_aborted"
    events = local.events()
    assert not events.s3.list_multipart_uploads(Bucket=ENV["INPUT_BUCKET"], Prefix=started["key"]).get("Uploads")
    assert [m["status"] for m in events.notifications() if m["id"] == started["id"]] == ["failed"]


def test_an_over_size_file_is_refused_before_any_byte_is_sent(local: JwtStack) -> None:
    refused = requests.post(
        f"{local.live.api}/s3/multipart",
        json={"filename": "big.png", "type": "image/png", "metadata": {"size": str(10**12)}},
        headers=local.caller("alice").headers,
    )
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_large"


def test_a_token_whose_subject_is_empty_is_a_401(local: JwtStack) -> None:
    refused = local.caller("").get("/images")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/uploads", '{"filename": ' + "[" * 5000 + "]" * 5000 + "}"),
        ("POST", "/backfills", '{"profile": ' + "[" * 1500 + "]" * 1500 + "}"),
        ("POST", "/backfills", '{"profile": "default", "since": "0001-01-01T00:00:00+01:00"}'),
        ("POST", "/backfills", '{"profile": "default", "since": "9999-12-31T23:59:59-01:00"}'),
        ("POST", "/uploads", json.dumps({"content_type": "image/jpeg", "filename": "../" * 100 + "a.jpg"})),
        ("GET", f"/images/{'0' * 32}?wait=%C2%B2", None),
        ("GET", "/images?limit=%C2%B2", None),
        ("GET", "/images?limit=%D9%A1", None),
        ("GET", "/s3/params?filename=a.jpg&type=image/jpeg&metadata[size]=%C2%B2", None),
        ("POST", "/s3/multipart", json.dumps({"filename": "a.jpg", "type": "image/jpeg", "size": "²"})),
    ],
    ids=[
        "json-5000-deep",
        "json-1500-deep",
        "since-year-1",
        "since-year-9999",
        "filename-309-chars",
        "wait-superscript-two",
        "limit-superscript-two",
        "limit-arabic-one",
        "params-size-superscript",
        "multipart-size-superscript",
    ],
)
def test_what_the_parsers_refuse_is_a_400_never_a_500(
    local: JwtStack, method: str, path: str, body: str | None
) -> None:
    headers = {**local.caller("alice").headers, "Content-Type": "application/json"}
    refused = requests.request(method, f"{local.live.api}{path}", data=body, headers=headers, timeout=30)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] in ("invalid_json", "invalid_field")


def test_an_integral_json_number_is_an_integer_everywhere(local: JwtStack) -> None:
    alice = local.caller("alice")
    backfill = requests.post(
        f"{local.live.api}/backfills",
        json={"profile": "default", "limit": 60.0, "dry_run": True},
        headers=alice.headers,
    )
    assert backfill.status_code == 200, backfill.text
    slot = requests.post(
        f"{local.live.api}/uploads", json={"content_type": "image/jpeg", "size": 60.0}, headers=alice.headers
    )
    assert slot.status_code == 201 and slot.json()["upload"]["max_bytes"] == 60


def start_multipart(caller: Any) -> dict[str, Any]:
    started = requests.post(
        f"{caller.api}/s3/multipart",
        json={"filename": "photo.jpg", "type": "image/jpeg", "size": 1000},
        headers=caller.headers,
        timeout=10,
    )
    assert started.status_code == 201, started.text
    return dict(started.json())
