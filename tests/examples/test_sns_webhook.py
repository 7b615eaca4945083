"""The SNS webhook example acts only on messages SNS really signed, over real HTTP.

Messages are signed here the way SNS signs them, with a throwaway key and certificate; the
end-to-end test in tests/test_contract_e2e.py checks the same code against moto's own signatures.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from devstack.stack import free_port
from examples.sns_webhook import SignatureVerifier, is_sns_url, make_server, string_to_sign
from tests.certificates import self_signed

TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:imgpress-dev-events"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"


def certificate(key: Any) -> bytes:
    return self_signed(key, "sns.amazonaws.com")


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeAws:
    """Serves certificates by URL and counts the fetches."""

    def __init__(self, pems: dict[str, bytes]) -> None:
        self.pems, self.fetched = pems, []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.pems[url]


def signed(fields: dict[str, Any], version: str = "2", key: Any = KEY, cert_url: str = CERT_URL) -> dict[str, Any]:
    envelope = {
        "TopicArn": TOPIC_ARN,
        "MessageId": "m-1",
        "Timestamp": "2026-11-24T10:00:00.000Z",
        **fields,
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
    }
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    message = string_to_sign(envelope)
    assert message is not None
    envelope["Signature"] = base64.b64encode(key.sign(message, padding.PKCS1v15(), digest)).decode()
    return envelope


def notification(event_id: str = "img-1", subject: str | None = None) -> dict[str, Any]:
    event = {"id": event_id, "status": "done", "completed_at": "2026-11-24T10:00:00Z"}
    fields = {"Type": "Notification", "Message": json.dumps(event)}
    return fields if subject is None else {**fields, "Subject": subject}


def test_canonical_string_follows_the_sns_field_order_and_skips_an_absent_subject() -> None:
    envelope = {"Type": "Notification", "Message": "hi", "MessageId": "m", "Timestamp": "t", "TopicArn": "a"}
    assert string_to_sign(envelope) == b"Message\nhi\nMessageId\nm\nTimestamp\nt\nTopicArn\na\nType\nNotification\n"
    assert string_to_sign({**envelope, "Subject": "s"}) == (
        b"Message\nhi\nMessageId\nm\nSubject\ns\nTimestamp\nt\nTopicArn\na\nType\nNotification\n"
    )
    assert string_to_sign({**envelope, "Type": "Surprise"}) is None
    assert string_to_sign({k: v for k, v in envelope.items() if k != "Timestamp"}) is None


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_genuine_signature_verifies_and_the_certificate_is_fetched_once(version: str) -> None:
    aws = FakeAws({CERT_URL: certificate(KEY)})
    verifier = SignatureVerifier(aws)
    assert verifier.verify(signed(notification(), version))
    assert verifier.verify(signed(notification("img-2", subject="imgpress"), version))
    assert aws.fetched == [CERT_URL]


def test_tampered_unsigned_or_wrongly_signed_messages_are_refused() -> None:
    verifier = SignatureVerifier(FakeAws({CERT_URL: certificate(KEY)}))
    genuine = signed(notification())
    assert not verifier.verify({**genuine, "Message": json.dumps({"id": "img-1", "status": "failed"})})
    assert not verifier.verify({k: v for k, v in genuine.items() if k != "Signature"})
    assert not verifier.verify({**genuine, "Signature": "not base64!"})
    assert not verifier.verify({**genuine, "SignatureVersion": "3"})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not verifier.verify(signed(notification(), key=other_key))
    assert (verifier.verified, verifier.refused) == (0, 5)


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/cert.pem",  # not HTTPS
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
    ],
)
def test_certificates_are_only_fetched_from_sns_hosts(url: str) -> None:
    aws = FakeAws({url: certificate(KEY)})
    assert not is_sns_url(url)
    assert not SignatureVerifier(aws).verify(signed(notification(), cert_url=url))
    assert aws.fetched == []  # refused before any request is made
    assert is_sns_url("https://sns.cn-north-1.amazonaws.com.cn/cert.pem")


def test_a_certificate_without_an_rsa_key_is_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    assert not SignatureVerifier(FakeAws({CERT_URL: certificate(ec_key)})).verify(signed(notification()))


@pytest.fixture()
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    port = free_port()
    server = make_server(
        "127.0.0.1", port, TOPIC_ARN, received.append, SignatureVerifier(FakeAws({CERT_URL: certificate(KEY)}))
    )
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/", received
    finally:
        server.shutdown()


def test_the_server_hands_over_each_signed_event_once_and_refuses_the_rest(
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = webhook
    genuine = signed(notification())
    assert requests.post(url, json=genuine, timeout=5).status_code == 200
    assert requests.post(url, json=genuine, timeout=5).status_code == 200  # SNS redelivers: not handed over twice
    forged = {**genuine, "Message": json.dumps({"id": "img-9", "status": "done"})}
    assert requests.post(url, json=forged, timeout=5).status_code == 403
    assert requests.post(url, json={**genuine, "TopicArn": TOPIC_ARN + "-other"}, timeout=5).status_code == 403
    assert requests.post(url, data=b"not json", timeout=5).status_code == 400
    assert requests.post(url, json=["a", "list"], timeout=5).status_code == 400
    assert [event["id"] for event in received] == ["img-1"]


def test_a_subscription_is_confirmed_only_at_an_sns_url(webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    elsewhere = signed(
        {
            "Type": "SubscriptionConfirmation",
            "Message": "confirm",
            "Token": "t",
            "SubscribeURL": "https://evil.example/confirm",
        }
    )
    assert requests.post(url, json=elsewhere, timeout=5).status_code == 403
    assert received == []


def test_each_outcome_of_an_image_has_its_own_key() -> None:
    from examples.sns_webhook import outcome_key

    done = {"id": "i", "type": "image.done", "status": "done", "completed_at": "t1", "reprocess": None}
    again = {**done, "completed_at": "t2"}  # reprocessed: a new outcome
    refused = {**again, "type": "image.reprocess_failed", "reprocess": {"id": "r1"}}
    refused_later = {**refused, "reprocess": {"id": "r2"}}
    keys = [outcome_key(e) for e in (done, again, refused, refused_later, dict(refused))]
    assert len(set(keys)) == 4 and keys[2] == keys[4]  # the redelivered one is a duplicate
