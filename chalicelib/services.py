"""The wiring: lazily built AWS clients and the adapters that use them, one per warm Lambda.

boto3 is imported on first use, not at import time: routes that never touch AWS, and the cold
start itself, do not pay for it. Request handlers get every adapter through `ports()`; the
functions that are not routes get their workers (`processor()`, `recovery()`). Tests call
`reset()` after changing the environment.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache, lru_cache
from typing import Any

from chalicelib import settings as configuration
from chalicelib.aws.notify import SnsNotifier
from chalicelib.aws.queue import SqsReprocessQueue
from chalicelib.aws.quota_store import DynamoQuotaStore
from chalicelib.aws.records import DynamoBackfillLog, DynamoRecordStore
from chalicelib.aws.secrets import read_signing_keys
from chalicelib.aws.storage import S3ObjectStore, S3Uploads
from chalicelib.aws.transform_ledger import DynamoTransformLedger
from chalicelib.domain import utc_now
from chalicelib.endings import Endings
from chalicelib.pipeline import UploadProcessor
from chalicelib.quota import Quotas
from chalicelib.recovery import Recovery
from chalicelib.settings import get_settings
from chalicelib.signing import SigningKeys


@cache
def _client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 3})
    return boto3.client(service, config=config)


def s3() -> Any:
    return _client("s3")


def sns() -> Any:
    return _client("sns")


def sqs() -> Any:
    return _client("sqs")


@lru_cache(maxsize=1)
def table() -> Any:
    import boto3

    return boto3.resource("dynamodb").Table(get_settings().table_name)


@lru_cache(maxsize=1)
def records() -> DynamoRecordStore:
    return DynamoRecordStore(table())


@lru_cache(maxsize=1)
def quotas() -> Quotas:
    return Quotas(get_settings().quotas, DynamoQuotaStore(table()))


@lru_cache(maxsize=1)
def store() -> S3ObjectStore:
    settings = get_settings()
    return S3ObjectStore(
        s3(), settings.output_bucket, settings.output_cache_control, settings.output_sse, settings.kms_key_id
    )


@lru_cache(maxsize=1)
def uploads() -> S3Uploads:
    return S3Uploads(s3(), get_settings().input_bucket)


@lru_cache(maxsize=1)
def reprocess_queue() -> SqsReprocessQueue:
    settings = get_settings()
    return SqsReprocessQueue(sqs(), settings.reprocess_queue, settings.reprocess_dead_letter_queue)


@lru_cache(maxsize=1)
def backfills() -> DynamoBackfillLog:
    return DynamoBackfillLog(table())


@lru_cache(maxsize=1)
def transforms() -> DynamoTransformLedger:
    return DynamoTransformLedger(table())


@lru_cache(maxsize=1)
def signing_keys() -> SigningKeys | None:
    """The transform links' keys: the stage's inline ones, or its secret's versions, read once per
    container (a rotation reaches warm containers as they are replaced; docs: security)."""
    settings = get_settings().transforms
    if settings.keys_secret is not None:
        return read_signing_keys(_client("secretsmanager"), settings.keys_secret)
    return settings.keys


@lru_cache(maxsize=1)
def endings() -> Endings:
    return Endings(records(), SnsNotifier(sns(), get_settings().topic_arn))


@lru_cache(maxsize=1)
def processor() -> UploadProcessor:
    return UploadProcessor(get_settings(), records(), store(), endings(), quotas=quotas())


@lru_cache(maxsize=1)
def recovery() -> Recovery:
    return Recovery(get_settings(), records(), store(), uploads(), endings())


class AwsPorts:
    """ports.Ports on AWS: each adapter is built the first time a handler asks for it, so a route
    pays only for the clients it uses."""

    @property
    def records(self) -> DynamoRecordStore:
        return records()

    @property
    def store(self) -> S3ObjectStore:
        return store()

    @property
    def uploads(self) -> S3Uploads:
        return uploads()

    @property
    def quotas(self) -> Quotas:
        return quotas()

    @property
    def endings(self) -> Endings:
        return endings()

    @property
    def reprocess_queue(self) -> SqsReprocessQueue:
        return reprocess_queue()

    @property
    def backfills(self) -> DynamoBackfillLog:
        return backfills()

    @property
    def transforms(self) -> DynamoTransformLedger:
        return transforms()

    @property
    def signing_keys(self) -> SigningKeys | None:
        return signing_keys()

    def now(self) -> datetime:
        return utc_now()


def ports() -> AwsPorts:
    return _PORTS


_PORTS = AwsPorts()


def reset() -> None:
    """Forget settings and clients (tests change the environment between cases)."""
    for cached in (_client, table, records, quotas, store, uploads, reprocess_queue, backfills, endings, transforms):
        cached.cache_clear()
    for worker in (processor, recovery, signing_keys):
        worker.cache_clear()
    configuration.reset()
