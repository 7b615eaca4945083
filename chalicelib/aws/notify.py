"""SNS: one JSON message per finished image, success or failure."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib.domain import ImageRecord
from chalicelib.views import message_type, result_message

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class SnsNotifier:
    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def publish(self, record: ImageRecord) -> str:
        """Publish and return the SNS message id. `type`, `status` and `owner` attributes allow filter policies."""
        response = self._sns.publish(
            TopicArn=self._topic_arn,
            Message=json.dumps(result_message(record), separators=(",", ":")),
            MessageAttributes={
                "type": {"DataType": "String", "StringValue": message_type(record)},
                "status": {"DataType": "String", "StringValue": str(record.status)},
                "owner": {"DataType": "String", "StringValue": record.owner},
            },
        )
        return str(response["MessageId"])
