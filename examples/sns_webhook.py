"""A webhook for imgpress's SNS topic: an HTTP(S) endpoint that receives image events.

Subscribe it with
    aws sns subscribe --topic-arn "$TOPIC_ARN" --protocol https --notification-endpoint https://example.com/imgpress
SNS first POSTs a SubscriptionConfirmation (this server visits its SubscribeURL), then one
Notification per image event. Delivery is at least once and unordered, so events are
de-duplicated on their outcome (id, type, completed_at, and the reprocess request a failed
reprocess names) before `on_event` sees them.

Anyone can POST to a public URL, so every message's signature is verified before anything in it
is trusted: the signing certificate must come over HTTPS from an `sns.<region>.amazonaws.com`
host, and the RSA signature (SignatureVersion 1: SHA1, 2: SHA256) must match the message's
canonical string. Unsigned, tampered or foreign messages get 403 and are never acted on.

Run:  python -m examples.sns_webhook --port 8080 --topic-arn arn:aws:sns:...:imgpress-dev-events
Against the local stack (moto signs with its own certificate, which it serves itself):
      python -m examples.sns_webhook --port 8080 --topic-arn ... --certificates-from http://127.0.0.1:<aws port>
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

EventHandler = Callable[[dict[str, Any]], None]
CertificateFetcher = Callable[[str], bytes]  # SigningCertURL -> PEM bytes

_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
# The fields SNS signs, in this order, per message type (absent optional fields are skipped).
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}


def is_sns_url(url: str) -> bool:
    """An HTTPS URL on SNS's own hosts: where certificates and SubscribeURLs may point."""
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.port in (None, 443) and bool(_SNS_HOST.match(parts.hostname or ""))


def string_to_sign(envelope: dict[str, Any]) -> bytes | None:
    """SNS's canonical form of a message: each signed field's name and value, one per line."""
    fields = _SIGNED_FIELDS.get(envelope.get("Type", ""))
    if fields is None:
        return None
    lines = []
    for name in fields:
        if name in envelope:
            lines += [name, str(envelope[name])]
        elif name != "Subject":
            return None  # a required field is missing: nothing valid to verify
    return ("\n".join(lines) + "\n").encode()


def fetch_from_aws(url: str) -> bytes:
    with urlopen(url, timeout=10) as response:
        return response.read()


def fetch_from(endpoint: str) -> CertificateFetcher:
    """Fetch certificates from `endpoint` at the same path: the local stack's moto serves the
    certificate it signs with there. moto picks the service from a request's credential scope, so
    the request names SNS and the certificate's region in an (unsigned) SigV4-style header."""

    def fetch(url: str) -> bytes:
        parts = urlsplit(url)
        region = (parts.hostname or "").split(".")[1]
        scope = f"AWS4-HMAC-SHA256 Credential=local/20000101/{region}/sns/aws4_request, SignedHeaders=host, Signature=0"
        request = Request(endpoint.rstrip("/") + parts.path, headers={"Authorization": scope})
        with urlopen(request, timeout=10) as response:
            return response.read()

    return fetch


class SignatureVerifier:
    """Checks SNS message signatures; certificates are fetched once per URL and kept.

    `verified` and `refused` count the outcomes, for logs and alarms: refusals mean forged
    messages or a misconfigured subscription.
    """

    def __init__(self, fetch_certificate: CertificateFetcher = fetch_from_aws) -> None:
        self._fetch = fetch_certificate
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()
        self.verified = self.refused = 0

    def verify(self, envelope: dict[str, Any]) -> bool:
        genuine = self._check(envelope)
        with self._lock:
            if genuine:
                self.verified += 1
            else:
                self.refused += 1
        return genuine

    def _check(self, envelope: dict[str, Any]) -> bool:
        hash_type = _HASHES.get(str(envelope.get("SignatureVersion", "")))
        cert_url = envelope.get("SigningCertURL", "")
        message = string_to_sign(envelope)
        if hash_type is None or message is None or not isinstance(cert_url, str) or not is_sns_url(cert_url):
            return False
        try:
            signature = base64.b64decode(envelope.get("Signature", ""), validate=True)
            self._key(cert_url).verify(signature, message, padding.PKCS1v15(), hash_type())
        except (InvalidSignature, binascii.Error, ValueError, OSError):
            return False
        return True

    def _key(self, cert_url: str) -> rsa.RSAPublicKey:
        with self._lock:
            if cert_url not in self._keys:
                key = x509.load_pem_x509_certificate(self._fetch(cert_url)).public_key()
                if not isinstance(key, rsa.RSAPublicKey):
                    raise ValueError("SNS signs with RSA keys")
                self._keys[cert_url] = key
            return self._keys[cert_url]


def outcome_key(event: dict[str, Any]) -> tuple[str, str, str, str]:
    """One per outcome: an upload's or a reprocess's result has its own completed_at; a failed
    reprocess keeps the standing outcome's, and is told apart by its request."""
    request = (event.get("reprocess") or {}).get("id") or ""
    return (str(event["id"]), str(event.get("type", event["status"])), str(event.get("completed_at") or ""), request)


def make_server(
    host: str, port: int, topic_arn: str, on_event: EventHandler, verifier: SignatureVerifier | None = None
) -> ThreadingHTTPServer:
    seen: set[tuple[str, str, str, str]] = set()
    lock = threading.Lock()
    checker = verifier or SignatureVerifier()

    class SnsHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            try:
                envelope = json.loads(self.rfile.read(length))
            except ValueError:
                envelope = None
            if not isinstance(envelope, dict):
                self._reply(400)
                return
            if envelope.get("TopicArn") != topic_arn or not checker.verify(envelope):
                self._reply(403)
                return
            kind = envelope["Type"]
            if kind == "SubscriptionConfirmation":
                if not is_sns_url(envelope["SubscribeURL"]):
                    self._reply(403)
                    return
                urlopen(envelope["SubscribeURL"], timeout=10).read()
            elif kind == "Notification":
                event = json.loads(envelope["Message"])
                key = outcome_key(event)
                with lock:
                    fresh = key not in seen
                    seen.add(key)
                if fresh:
                    on_event(event)
            self._reply(200)

        def _reply(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), SnsHandler)


def main() -> None:
    parser = argparse.ArgumentParser(description="Print imgpress image events received from SNS.")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--topic-arn", required=True)
    parser.add_argument(
        "--certificates-from",
        metavar="ENDPOINT",
        help="fetch signing certificates from this endpoint instead of AWS (the local stack)",
    )
    args = parser.parse_args()

    def show(event: dict[str, Any]) -> None:
        print(json.dumps({k: event.get(k) for k in ("id", "status", "profile", "error")}), flush=True)

    fetch = fetch_from(args.certificates_from) if args.certificates_from else fetch_from_aws
    make_server(args.host, args.port, args.topic_arn, show, SignatureVerifier(fetch)).serve_forever()


if __name__ == "__main__":
    main()
