"""Each Lambda function's execution policy: only the actions its own code path performs, each on its own ARNs.

Chalice gives every function its own role when autogen_policy is off; `python -m infra resources`
writes one document per function (.chalice/policy-<stage>-<function>.json) and names it in
`stages.<stage>.lambda_functions.<function>.iam_policy_file`. (autogen_policy stays off:
`chalice gen-policy` cannot see boto3 calls made inside chalicelib/.)

A grant that depends on a setting (dedupe, SSE-KMS outputs, CDN links) is made only on stages
with that setting, read the way the functions read it (Settings.from_env).
tests/infra/test_policy.py runs each function on moto and checks its document grants exactly
what that function asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.aws.records import (
    BACKFILL_KEY_PREFIX,
    BY_CREATED_SHARD,
    BY_OPEN_SHARD,
    BY_OWNER_SHA256,
    BY_OWNER_SHARD,
    BY_OWNER_STATUS_SHARD,
)
from chalicelib.settings import Environment, Settings

Statement = dict[str, Any]

# Every Lambda function app.py registers, and the resources-stack output naming its log group.
# The JWT authorizer exists only on API_AUTH=jwt stages (so does its log group).
LOG_GROUP_OUTPUTS = {
    "api_handler": "ApiLogGroupArn",
    "handle_upload": "UploadHandlerLogGroupArn",
    "end_abandoned_uploads": "FailureConsumerLogGroupArn",
    "sweep": "SweeperLogGroupArn",
    "reprocess_images": "ReprocessLogGroupArn",
    "jwt_authorizer": "AuthorizerLogGroupArn",
}
FUNCTIONS = tuple(LOG_GROUP_OUTPUTS)
# The indexes the API's listings query (records.list_page); the others are the handler's and the sweeper's.
API_INDEXES = (BY_OWNER_SHARD, BY_OWNER_STATUS_SHARD, BY_OWNER_SHA256, BY_CREATED_SHARD)


def stage_functions(env: Mapping[str, str]) -> tuple[str, ...]:
    """The functions `chalice deploy` creates on a stage with this environment."""
    auth = Environment(env).text("API_AUTH")
    return tuple(name for name in FUNCTIONS if name != "jwt_authorizer" or auth == "jwt")


def policy_file(stage: str, function: str) -> str:
    """The file name under .chalice/ of one function's policy."""
    return f"policy-{stage}-{function}.json"


@dataclass(frozen=True)
class _Arns:
    """The stage's resources as IAM names them."""

    originals: str  # <input bucket>/<upload prefix>*
    outputs: str  # <output bucket>/<output prefix>*
    output_bucket: str
    output_prefix: str
    table: str
    topic: str
    failure_queue: str
    reprocess_queue: str
    reprocess_dead_letters: str

    @classmethod
    def of(cls, settings: Settings, outputs: Mapping[str, str]) -> _Arns:
        partition = outputs["ImagesTableArn"].split(":")[1]
        s3 = f"arn:{partition}:s3:::"
        return cls(
            originals=f"{s3}{settings.input_bucket}/{settings.upload_prefix}*",
            outputs=f"{s3}{settings.output_bucket}/{settings.output_prefix}*",
            output_bucket=f"{s3}{settings.output_bucket}",
            output_prefix=settings.output_prefix,
            table=outputs["ImagesTableArn"],
            topic=outputs["EventsTopic"],
            failure_queue=outputs["UploadFailureQueueArn"],
            reprocess_queue=outputs["ReprocessQueueArn"],
            reprocess_dead_letters=outputs["ReprocessDeadLetterQueueArn"],
        )

    def indexes(self, *names: str) -> list[str]:
        return [f"{self.table}/index/{name}" for name in names]


def _statement(sid: str, actions: list[str], resources: list[str], **extra: Any) -> Statement:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def _list_outputs(arns: _Arns) -> Statement:
    """ListObjectsV2 of <output prefix><id>/: every output of every attempt of an image being removed."""
    return _statement(
        "ListOutputs",
        ["s3:ListBucket"],
        [arns.output_bucket],
        Condition={"StringLike": {"s3:prefix": [f"{arns.output_prefix}*"]}},
    )


def _backfill_counters(arns: _Arns) -> Statement:
    """UpdateItem (an atomic ADD) of a backfill's progress item, and of nothing else: image records
    change only by version-checked PutItem, so the condition keeps UpdateItem off them."""
    return _statement(
        "BackfillCounters",
        ["dynamodb:UpdateItem"],
        [arns.table],
        Condition={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{BACKFILL_KEY_PREFIX}*"]}},
    )


def _quota_counters(arns: _Arns) -> Statement:
    """UpdateItem (alone or in a TransactWriteItems) on the per-owner quota counters only: their ids
    start with `quota#`, so this grant can never change an image record."""
    return _statement(
        "QuotaCounters",
        ["dynamodb:UpdateItem"],
        [arns.table],
        Condition={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["quota#*"]}},
    )


def _output_encryption_key(settings: Settings, actions: list[str]) -> list[Statement]:
    """With OUTPUT_SSE=aws:kms and a key: writing an output needs a data key, reading one Decrypt.
    (Originals are SSE-S3, the bucket default; the AWS-managed aws/s3 key needs no grant.)"""
    if settings.output_sse != "aws:kms" or not settings.kms_key_id or not actions:
        return []
    return [_statement("OutputEncryptionKey", actions, [settings.kms_key_id])]


def _on_demand_variants(arns: _Arns, settings: Settings) -> list[Statement]:
    """On stages with transform keys, the API renders on-demand variants (chalicelib/transforms.py):
    it reads originals (granted anyway), looks for and writes `<output prefix><id>/od/...` objects
    only, keeps its ledger in `transform*` items (UpdateItem on those only; PutItem and GetItem are
    the records' grant), and reads its keys' secret, the only function that may."""
    if not settings.transforms.enabled:
        return []
    statements = [
        # GetObject: HeadObject, is the variant stored already? PutObject(+Tagging): the variant.
        _statement(
            "OnDemandVariants",
            ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"],
            [f"{arns.output_bucket}/{arns.output_prefix}*/od/*"],
        ),
        _statement(
            "OnDemandLedger",
            ["dynamodb:UpdateItem"],
            [arns.table],
            Condition={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["transform*"]}},
        ),
    ]
    if settings.transforms.keys_secret:
        statements.append(
            _statement("TransformKeys", ["secretsmanager:GetSecretValue"], [settings.transforms.keys_secret])
        )
    return statements


def _api_handler(arns: _Arns, settings: Settings) -> list[Statement]:
    # Behind a CDN (OUTPUT_BASE_URL) download links are plain URLs: nothing is presigned.
    presigns_downloads = settings.output_base_url is None
    return [
        # PutObject: the presigned POST the browser sends, and the multipart upload (create, part
        # URLs, complete), are authorized as this role's PutObject. ListMultipartUploadParts,
        # AbortMultipartUpload: the /s3/multipart routes. DeleteObject: DELETE /images/{id} removes
        # the original. GetObject: HeadObject, is the original still there to be reprocessed?
        _statement(
            "Originals",
            [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:ListMultipartUploadParts",
                "s3:AbortMultipartUpload",
            ],
            [arns.originals],
        ),
        # GetObject: presigned download links. DeleteObject: DELETE /images/{id}.
        _statement("Outputs", [*(["s3:GetObject"] if presigns_downloads else []), "s3:DeleteObject"], [arns.outputs]),
        _list_outputs(arns),
        # GetItem: one image, a backfill's progress. PutItem: a new upload, the DELETE tombstone, a
        # reprocess request, a new backfill. BatchGetItem: listings.
        _statement("Records", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchGetItem"], [arns.table]),
        _backfill_counters(arns),
        *([_quota_counters(arns)] if settings.quotas.enabled else []),
        _statement("ListRecords", ["dynamodb:Query"], arns.indexes(*API_INDEXES)),
        # SendMessage (SendMessageBatch): reprocess requests. GetQueueUrl, GetQueueAttributes: the
        # queues' depth in a backfill's progress.
        _statement(
            "QueueReprocessing",
            ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
            [arns.reprocess_queue],
        ),
        _statement(
            "ReprocessDeadLetters", ["sqs:GetQueueUrl", "sqs:GetQueueAttributes"], [arns.reprocess_dead_letters]
        ),
        # A multipart upload its client aborted, or that was refused at completion, ends its image
        # failed: one message, as every outcome has.
        _statement("PublishResults", ["sns:Publish"], [arns.topic]),
        *_output_encryption_key(
            settings,
            [
                *(["kms:Decrypt"] if presigns_downloads else []),
                *(["kms:GenerateDataKey"] if settings.transforms.enabled else []),  # writing a variant
            ],
        ),
        *_on_demand_variants(arns, settings),
    ]


def _handle_upload(arns: _Arns, settings: Settings) -> list[Statement]:
    dedupe = settings.dedupe  # a twin's outputs are copied: read them, find them by hash
    return [
        # GetObject: the upload. DeleteObject: a late upload or attempt of a deleted image.
        _statement("Originals", ["s3:GetObject", "s3:DeleteObject"], [arns.originals]),
        # PutObject(+Tagging): tagged variants, or tagged copies of a twin's (GetObject: the copy's
        # source). DeleteObject: outputs of an attempt that lost its claim, a deleted image's.
        _statement(
            "Outputs",
            [
                *(["s3:GetObject"] if dedupe else []),
                "s3:PutObject",
                "s3:PutObjectTagging",
                "s3:DeleteObject",
            ],
            [arns.outputs],
        ),
        _list_outputs(arns),
        # GetItem: the record an event names. PutItem: claim, outcome, notified mark.
        # BatchGetItem: the twins the hash index found.
        _statement(
            "Records",
            ["dynamodb:GetItem", "dynamodb:PutItem", *(["dynamodb:BatchGetItem"] if dedupe else [])],
            [arns.table],
        ),
        # A first claim frees the owner's open upload slot.
        *([_quota_counters(arns)] if settings.quotas.open_slots else []),
        *([_statement("FindTwins", ["dynamodb:Query"], arns.indexes(BY_OWNER_SHA256))] if dedupe else []),
        _statement("PublishResults", ["sns:Publish"], [arns.topic]),
        # Not a call in our code: Lambda sends failed S3 events to the on-failure destination
        # (infra/handler.json) with the function's own role.
        _statement("UploadFailureDestination", ["sqs:SendMessage"], [arns.failure_queue]),
        *_output_encryption_key(settings, ["kms:GenerateDataKey", *(["kms:Decrypt"] if dedupe else [])]),
    ]


def _end_abandoned_uploads(arns: _Arns, settings: Settings) -> list[Statement]:
    return [
        # Not a call in our code: the SQS event source mapping polls the queue with the function's role.
        _statement(
            "ConsumeUploadFailures",
            ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            [arns.failure_queue],
        ),
        # A deleted image's leftovers: its original and outputs.
        _statement("Originals", ["s3:DeleteObject"], [arns.originals]),
        _statement("Outputs", ["s3:DeleteObject"], [arns.outputs]),
        _list_outputs(arns),
        # GetItem: the record the failed event names. PutItem: the failed outcome, the notified mark.
        _statement("Records", ["dynamodb:GetItem", "dynamodb:PutItem"], [arns.table]),
        _statement("PublishResults", ["sns:Publish"], [arns.topic]),
    ]


def _sweep(arns: _Arns, settings: Settings) -> list[Statement]:
    return [
        # GetObject: HeadObject (was it uploaded?) and the source of the redrive, a copy of the
        # upload onto itself; PutObject: that copy, which makes S3 send the event again.
        # AbortMultipartUpload: a multipart upload nobody completed, whose image ends abandoned.
        _statement("Originals", ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], [arns.originals]),
        # BatchGetItem: the open records the index found. PutItem: redriven mark, failed outcome.
        _statement("Records", ["dynamodb:PutItem", "dynamodb:BatchGetItem"], [arns.table]),
        _statement("ListOpenRecords", ["dynamodb:Query"], arns.indexes(BY_OPEN_SHARD)),
        _statement("PublishResults", ["sns:Publish"], [arns.topic]),
    ]


def _reprocess_images(arns: _Arns, settings: Settings) -> list[Statement]:
    return [
        # Not a call in our code: the SQS event source mapping polls the queue with the function's role.
        _statement(
            "ConsumeReprocessing",
            ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            [arns.reprocess_queue],
        ),
        # GetObject: the kept original.
        _statement("Originals", ["s3:GetObject"], [arns.originals]),
        # PutObject(+Tagging): the new revision's variants. DeleteObject: the outputs the new ones
        # replaced, and those of an attempt that lost its claim.
        _statement("Outputs", ["s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"], [arns.outputs]),
        # GetItem: the record a message names. PutItem: claim, outcome, notified mark.
        _statement("Records", ["dynamodb:GetItem", "dynamodb:PutItem"], [arns.table]),
        _backfill_counters(arns),
        _statement("PublishResults", ["sns:Publish"], [arns.topic]),
        *_output_encryption_key(settings, ["kms:GenerateDataKey"]),
    ]


def _jwt_authorizer(arns: _Arns, settings: Settings) -> list[Statement]:
    return []  # it verifies tokens against the issuer's keys over HTTPS: no AWS call


_GRANTS = {
    "api_handler": _api_handler,
    "handle_upload": _handle_upload,
    "end_abandoned_uploads": _end_abandoned_uploads,
    "sweep": _sweep,
    "reprocess_images": _reprocess_images,
    "jwt_authorizer": _jwt_authorizer,
}


def _write_logs(log_group_arn: str) -> Statement:
    """The function's own log group, which the resources stack creates (and sets the retention of).
    `<group arn>:*` covers its streams (GetAtt Arn may or may not end in `:*`)."""
    return _statement(
        "WriteLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [log_group_arn.removesuffix(":*") + ":*"]
    )


def function_policies(env: Mapping[str, str], outputs: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Function name -> its policy document, for the stage whose functions see `env` and whose
    resources stack gave `outputs`."""
    settings = Settings.from_env(env)
    arns = _Arns.of(settings, outputs)
    return {
        function: {
            "Version": "2012-10-17",
            "Statement": [_write_logs(outputs[LOG_GROUP_OUTPUTS[function]]), *_GRANTS[function](arns, settings)],
        }
        for function in stage_functions(env)
    }
