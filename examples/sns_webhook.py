"""A webhook for imgpress's SNS topic: an HTTP(S) endpoint that receives image events.

Subscribe it with
    aws sns subscribe --topic-arn "$TOPIC_ARN" --protocol https --notification-endpoint https://example.com/imgpress
SNS first POSTs a SubscriptionConfirmation (this server visits its SubscribeURL), then one
Notification per image event. Delivery is at least once and unordered, so events are
de-duplicated on (id, status, completed_at) before `on_event` sees them.

In production also verify each message's signature (`SignatureVersion`, `SigningCertURL` on an
amazonaws.com host) before trusting it; this example keeps to the standard library and checks
only that the message comes from the expected topic.

Run:  python -m examples.sns_webhook --port 8080 --topic-arn arn:aws:sns:...:imgpress-dev-events
"""
from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.request import urlopen

EventHandler = Callable[[dict[str, Any]], None]


def make_server(host: str, port: int, topic_arn: str, on_event: EventHandler) -> ThreadingHTTPServer:
    seen: set[tuple[str, str, str]] = set()
    lock = threading.Lock()

    class SnsHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length", "0"))
            try:
                envelope = json.loads(self.rfile.read(length))
            except ValueError:
                self._reply(400)
                return
            if envelope.get("TopicArn") != topic_arn:
                self._reply(403)
                return
            kind = envelope.get("Type") or self.headers.get("x-amz-sns-message-type")
            if kind == "SubscriptionConfirmation":
                urlopen(envelope["SubscribeURL"], timeout=10).read()  # noqa: S310 (an SNS URL)
            elif kind == "Notification":
                event = json.loads(envelope["Message"])
                key = (event["id"], event["status"], event.get("completed_at") or "")
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
    args = parser.parse_args()

    def show(event: dict[str, Any]) -> None:
        print(json.dumps({k: event.get(k) for k in ("id", "status", "profile", "error")}), flush=True)

    make_server(args.host, args.port, args.topic_arn, show).serve_forever()


if __name__ == "__main__":
    main()
