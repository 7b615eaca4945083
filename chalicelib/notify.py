"""SNS: one JSON message per finished image, success or failure."""

from __future__ import annotations

import json
from typing import Any


def result_message(record: dict[str, Any]) -> dict[str, Any]:
    """The message body subscribers receive. Outputs name bucket and key, never a signed URL."""
    return {
        "type": f"image.{record['status']}",
        "id": record["id"],
        "status": record["status"],
        "profile": record.get("profile"),
        "filename": record.get("filename"),
        "created_at": record.get("created_at"),
        "completed_at": record.get("completed_at"),
        "declared_content_type": record.get("content_type"),
        "type_mismatch": bool(record.get("type_mismatch")),
        "sha256": record.get("sha256"),
        "deduplicated_from": record.get("deduplicated_from"),
        "original": record.get("original"),
        "outputs": record.get("outputs") or {},
        "placeholders": record.get("placeholders"),
        "error": record.get("error"),
    }


class Notifier:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish_result(self, record: dict[str, Any]) -> str:
        """Publish and return the SNS message id. The `status` attribute allows filter policies."""
        response = self._sns.publish(
            TopicArn=self._topic_arn,
            Message=json.dumps(result_message(record), separators=(",", ":")),
            MessageAttributes={"status": {"DataType": "String", "StringValue": record["status"]}},
        )
        return str(response["MessageId"])
