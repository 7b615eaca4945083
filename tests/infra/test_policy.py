"""Each function's policy grants exactly what that function calls: derived from the source, then at run time.

Two independent derivations of "what the code calls":
- statically, every boto3 call on an AWS handle in chalicelib/ (handles are named after their
  service: `s3`, `table`, `sns`), mapped to the IAM action AWS authorizes it with. Which function
  reaches which call is a question of control flow the scan cannot answer, so it is compared with
  the union of the functions' policies;
- at run time, per function: each handler runs on moto as Lambda runs it (the API through a whole
  image lifecycle, S3 events including dedupe, a replaced upload and a deleted image's late event,
  failure-queue records, a sweep that redrives and fails), every AWS request is recorded against
  the function that made it, and that function's own policy must allow each one (action and ARN)
  and grant nothing that none of them used. What the deployment does with the role (logs, the
  on-failure destination, the SQS poller) is added from infra/ and app.py, not from a run.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import botocore.session
import pytest
import requests
from botocore import xform_name
from chalice.app import SQSEventConfig
from chalice.test import Client
from moto import mock_aws

from chalicelib import services
from chalicelib.auth.principal import Principal
from chalicelib.aws.records import BY_OPEN_SHARD, BY_OWNER_SHA256, DynamoRecordStore
from chalicelib.domain import ImageRecord, utc_now
from chalicelib.settings import Settings
from infra import stages
from infra.policy import FUNCTIONS, LOG_GROUP_OUTPUTS, function_policies, stage_functions
from tests import images
from tests.conftest import invoke, use_fake_account
from tests.infra.iam import ACCOUNT, REGION, Need, Recorder, allows, unused_grants

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONFIG = stages.load_config(ROOT)
HANDLE_SERVICES = {
    "s3": "s3",
    "table": "dynamodb",
    "dynamodb": "dynamodb",
    "sns": "sns",
    "sqs": "sqs",
    "secretsmanager": "secretsmanager",
}
# Operations AWS authorizes under another action name.
IAM_ACTION_OF = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
    ("s3", "HeadObject"): "s3:GetObject",
    # A transaction is authorized as the actions it is made of: updates (a new on-demand variant's
    # transaction also puts its item: PutItem, which the records' grant has anyway).
    ("dynamodb", "TransactWriteItems"): "dynamodb:UpdateItem",
    # A copy is authorized as PutObject on the target (+ GetObject on the source, see below).
    ("s3", "CopyObject"): "s3:PutObject",
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    # Multipart uploads are authorized as PutObject, but for listing and aborting them.
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "ListParts"): "s3:ListMultipartUploadParts",
    ("s3", "AbortMultipartUpload"): "s3:AbortMultipartUpload",
}
# Granted although no line of our code calls them: Lambda uses the function's role for these.
PLATFORM_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "sqs:SendMessage",  # the S3 handler's on-failure destination
    "sqs:ReceiveMessage",  # the three: the SQS consumers' event source mappings
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}
DEPLOY_STAGES = ("dev", "prod")
# Called only on stages with an option no committed stage has (on-demand variants' keys in Secrets
# Manager): the every-option run below holds their grants to the calls.
OPTIONAL_ACTIONS = {"secretsmanager:GetSecretValue"}


def _operations(service: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def _handle_service(receiver: ast.expr) -> str | None:
    """`self._s3`, `s3`, `services.s3()` -> "s3"; anything else is not an AWS handle."""
    if isinstance(receiver, ast.Call):
        receiver = receiver.func
    name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
    return HANDLE_SERVICES.get(name.lstrip("_"))


def _operation_of(service: str, call: ast.Call) -> str:
    assert isinstance(call.func, ast.Attribute)
    method = call.func.attr
    if method == "generate_presigned_post":
        return "PutObject"  # the browser's POST is authorized as this role's PutObject
    if method in ("generate_presigned_url", "get_paginator"):
        first = call.args[0]
        assert isinstance(first, ast.Constant), f"{method} with a computed operation: the scan cannot follow it"
        method = str(first.value)
    operations = _operations(service)
    assert method in operations, f"{service} handle calls {method!r}, which is no {service} operation"
    return operations[method]


def _aws_calls(under: Path) -> Iterator[tuple[str, str, set[str]]]:
    """(service, operation, the parameters it names) of every boto3 call on an AWS handle under `under`.

    A call's parameters are its keywords, and the keys of a dict literal it expands (`**request`)
    when that dict is built in the same function."""
    for path in sorted(under.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for function in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))]:
            built = _dict_keys_by_name(function)
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    service = _handle_service(node.func.value)
                    if service is not None:
                        yield service, _operation_of(service, node), _parameters(node, built)


def _dict_keys_by_name(scope: ast.AST) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for node in ast.walk(scope):
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Dict):
            keys[target.id] = {str(k.value) for k in value.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            subscript = node.targets[0]
            if isinstance(subscript.value, ast.Name) and isinstance(subscript.slice, ast.Constant):
                keys.setdefault(subscript.value.id, set()).add(str(subscript.slice.value))
    return keys


def _parameters(call: ast.Call, built: dict[str, set[str]]) -> set[str]:
    named = {k.arg for k in call.keywords if k.arg is not None}
    for expanded in (k.value for k in call.keywords if k.arg is None):
        named |= built.get(expanded.id, set()) if isinstance(expanded, ast.Name) else set()
    return named


def code_calls(under: Path = ROOT / "chalicelib") -> set[tuple[str, str]]:
    return {(service, operation) for service, operation, _ in _aws_calls(under)}


def code_actions(under: Path = ROOT / "chalicelib") -> set[str]:
    """The IAM actions of those calls. (Which KMS actions depends on settings: the run-time check sees them.)"""
    actions: set[str] = set()
    for service, operation, parameters in _aws_calls(under):
        actions.add(IAM_ACTION_OF.get((service, operation), f"{service}:{operation}"))
        if operation in ("PutObject", "CopyObject") and "Tagging" in parameters:
            actions.add("s3:PutObjectTagging")  # tags on a write need their own grant
        if operation == "CopyObject":
            actions.add("s3:GetObject")  # reading the copy's source
    return actions


def committed_policies(stage: str) -> dict[str, dict[str, Any]]:
    """Function -> the policy document `chalice deploy` gives its role on `stage`."""
    functions = CONFIG["stages"][stage]["lambda_functions"]
    return {
        name: json.loads((ROOT / ".chalice" / body["iam_policy_file"]).read_text())
        for name, body in functions.items()
        if "iam_policy_file" in body
    }


def lambda_name(stage: str, function: str) -> str:
    """Chalice's name for the function on the stage (log groups and roles follow it)."""
    return stages.function_name(CONFIG, stage, None if function == "api_handler" else function)


def granted_actions(document: dict[str, Any]) -> set[str]:
    return {action for statement in document["Statement"] for action in statement["Action"]}


# --- statically ---------------------------------------------------------------------------------


def test_the_scan_finds_the_calls_the_code_is_known_to_make() -> None:
    calls = code_calls()
    assert {("s3", "GetObject"), ("s3", "PutObject"), ("dynamodb", "PutItem"), ("sns", "Publish")} <= calls
    assert ("s3", "ListObjectsV2") in calls  # through get_paginator("list_objects_v2")
    assert code_calls(ROOT / "chalicelib" / "auth") == set()  # the JWT authorizer's code: no AWS call


@pytest.mark.parametrize("stage", DEPLOY_STAGES)
def test_every_function_has_its_own_policy_file(stage: str) -> None:
    env = stages.stage_environment(CONFIG, stage)
    functions = CONFIG["stages"][stage]["lambda_functions"]
    files = {name: body.get("iam_policy_file") for name, body in functions.items()}
    assert set(files) == set(stage_functions(env)) and None not in files.values(), files
    assert len(set(files.values())) == len(files), "two functions share a policy file"
    assert "iam_policy_file" not in CONFIG["stages"][stage], "a stage-wide policy would be every function's fallback"


@pytest.mark.parametrize("stage", DEPLOY_STAGES)
def test_the_policies_together_grant_every_called_action_and_nothing_more(stage: str) -> None:
    needed = code_actions()
    granted = set().union(*(granted_actions(d) for d in committed_policies(stage).values()))
    assert needed - granted - OPTIONAL_ACTIONS == set(), "the code calls these but no function's policy allows them"
    assert granted - needed - PLATFORM_ACTIONS == set(), "a policy grants actions no code needs"


@pytest.mark.parametrize("stage", DEPLOY_STAGES)
def test_policies_name_only_the_stage_resources(stage: str) -> None:
    env = stages.stage_environment(CONFIG, stage)
    for function, document in committed_policies(stage).items():
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow" and "*" not in statement["Action"], (function, statement)
            for resource in statement["Resource"]:
                assert resource != "*" and f"imgpress-{stage}" in resource, (function, resource)
                assert resource.count("*") <= 1 and (resource.endswith("*") or "*" not in resource), resource
            if "s3:ListBucket" in statement["Action"]:
                prefix = env.get("OUTPUT_PREFIX", "processed/")
                assert statement["Condition"] == {"StringLike": {"s3:prefix": [f"{prefix}*"]}}, function
        (logs,) = [s for s in document["Statement"] if s["Sid"] == "WriteLogs"]
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{lambda_name(stage, function)}:*"
        assert logs["Resource"] == [group], function


# --- the deployment's own use of the roles ------------------------------------------------------


def platform_needs(stage: str, env: dict[str, str]) -> dict[str, list[Need]]:
    """What Lambda does with each function's role: write its logs (to the group Chalice's naming
    gives it), send failed async events to an on-failure destination (infra/handler.json), poll
    the queue of an @app.on_sqs_message function (app.py)."""
    from app import app

    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{env['UPLOAD_FAILURE_QUEUE']}"
    consumed = {
        "end_abandoned_uploads": queue,
        "reprocess_images": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{env['REPROCESS_QUEUE']}",
    }
    needs: dict[str, list[Need]] = {}
    for function in stage_functions(env):
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{lambda_name(stage, function)}"
        stream = f"{group}:log-stream:2026/11/29/[$LATEST]0a1b"
        needs[function] = [Need("logs:CreateLogStream", stream), Need("logs:PutLogEvents", stream)]
    handler_stack = json.loads((stages.TEMPLATES / "handler.json").read_text())["Resources"]
    for body in handler_stack.values():
        if body["Type"] == "AWS::Lambda::EventInvokeConfig":
            properties = body["Properties"]
            assert properties["DestinationConfig"]["OnFailure"]["Destination"] == {"Ref": "UploadFailureQueueArn"}
            named = properties["FunctionName"]["Fn::Sub"].replace("${Stage}", stage)
            (function,) = [f for f in FUNCTIONS if lambda_name(stage, f) == named]
            needs[function].append(Need("sqs:SendMessage", queue))
    for source in app.event_sources:
        if isinstance(source, SQSEventConfig):  # its queue's variable: test_package checks
            needs[source.name] += [
                Need(action, consumed[source.name])
                for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
            ]
    return needs


# --- at run time --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Configuration:
    """A stage's settings to run the functions with, and the policies to hold them to."""

    stage: str
    extra_env: tuple[tuple[str, str], ...] = ()
    kms: bool = False  # OUTPUT_SSE=aws:kms with a key made in moto
    transforms: bool = False  # on-demand variants, TRANSFORM_KEYS_SECRET a secret made in moto

    @property
    def committed(self) -> bool:
        return not self.extra_env and not self.kms and not self.transforms


CONFIGURATIONS = {
    "dev": Configuration("dev"),
    "prod-cdn": Configuration("prod"),  # OUTPUT_BASE_URL: the API presigns no downloads
    # Every option on (generated, not committed): dedupe, SSE-KMS outputs, on-demand variants.
    "dev-dedupe-kms": Configuration("dev", (("DEDUPE", "true"),), kms=True, transforms=True),
}


def stack_outputs(stage: str, env: dict[str, str]) -> dict[str, str]:
    """The resources stack's outputs as moto names them (tests/infra/test_stacks.py deploys the real one)."""
    prefix = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/"
    return {
        "ImagesTableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{env['TABLE_NAME']}",
        "EventsTopic": env["TOPIC_ARN"],
        "UploadFailureQueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{env['UPLOAD_FAILURE_QUEUE']}",
        "ReprocessQueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{env['REPROCESS_QUEUE']}",
        "ReprocessDeadLetterQueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{env['REPROCESS_DEAD_LETTER_QUEUE']}",
        **{
            output: f"{prefix}{lambda_name(stage, f)}:*"
            for f, output in LOG_GROUP_OUTPUTS.items()
            if f in stage_functions(env)
        },
    }


@pytest.mark.parametrize("stage", DEPLOY_STAGES)
def test_the_outputs_used_here_regenerate_the_committed_policies(stage: str) -> None:
    """So a configuration that is not committed is held to policies made from the same inputs."""
    env = stages.stage_environment(CONFIG, stage)
    assert function_policies(env, stack_outputs(stage, env)) == committed_policies(stage)


@dataclass
class Run:
    configuration: Configuration
    env: dict[str, str]
    policies: dict[str, dict[str, Any]]
    recorder: Recorder
    arrange: Any  # a boto3 session of the test's own, whose requests are not recorded


@pytest.fixture(params=list(CONFIGURATIONS))
def run(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    configuration = CONFIGURATIONS[str(request.param)]
    env = {**stages.stage_environment(CONFIG, configuration.stage), **dict(configuration.extra_env)}
    # The AWS calls are the subject here, not auth: the routes run as on an open local stack.
    use_fake_account(monkeypatch, {k: v for k, v in env.items() if k != "API_AUTH"})
    with mock_aws():
        from devstack.resources import RESOURCES_TEMPLATE, create_queues, create_resources

        arrange = boto3.session.Session()
        if configuration.kms:
            key = arrange.client("kms").create_key()["KeyMetadata"]["Arn"]
            env.update(OUTPUT_SSE="aws:kms", KMS_KEY_ID=key)
            monkeypatch.setenv("OUTPUT_SSE", "aws:kms")
            monkeypatch.setenv("KMS_KEY_ID", key)
        if configuration.transforms:
            secret = arrange.client("secretsmanager").create_secret(Name="transform-keys", SecretString="s" * 48)
            env["TRANSFORM_KEYS_SECRET"] = secret["ARN"]
            monkeypatch.setenv("TRANSFORM_KEYS_SECRET", secret["ARN"])
        create_resources(env)
        create_queues(RESOURCES_TEMPLATE, configuration.stage, ACCOUNT, REGION)
        policies = (
            committed_policies(configuration.stage)
            if configuration.committed
            else function_policies(env, stack_outputs(configuration.stage, env))
        )
        s3 = arrange.client("s3")
        recorder = Recorder(lambda bucket, key: s3.head_object(Bucket=bucket, Key=key))
        events = boto3._get_default_session().events
        events.register("provide-client-params", recorder)
        services.reset()
        try:
            yield Run(configuration, env, policies, recorder, arrange)
        finally:
            events.unregister("provide-client-params", recorder)
    services.reset()


class Lifecycle:
    """Images through every function, each step run as that function (`Recorder.running`); the
    objects and records a step starts from are arranged with the test's own session."""

    def __init__(self, run: Run, client: Client) -> None:
        self.run, self.client, self.env = run, client, run.env
        self.s3 = run.arrange.client("s3")
        self.table = run.arrange.resource("dynamodb").Table(self.env["TABLE_NAME"])
        self.photo = images.jpeg(1200, 900)

    def invoke(self, function: str, event: dict[str, Any]) -> None:
        timeout = CONFIG["stages"][self.run.configuration.stage]["lambda_functions"][function]["lambda_timeout"]
        with self.run.recorder.running(function):
            invoke(self.client, function, event, timeout_seconds=timeout)

    def upload_slots(self, count: int) -> list[str]:
        ids = []
        with self.run.recorder.running("api_handler"):
            for _ in range(count):
                created = self.client.http.post(
                    "/uploads",
                    headers={"Content-Type": "application/json"},
                    body=json.dumps({"content_type": "image/jpeg", "size": len(self.photo)}).encode(),
                )
                body = json.loads(created.body)
                self.run.recorder.posted(body["upload"]["fields"]["key"])
                ids.append(str(body["id"]))
        return ids

    def s3_event(self, image_id: str, data: bytes | None = None) -> dict[str, Any]:
        """The event of an upload of `data` (or of no new upload) to the image's slot."""
        key = self.env.get("UPLOAD_PREFIX", "uploads/") + image_id
        event = self.client.events.generate_s3_event(bucket=self.env["INPUT_BUCKET"], key=key)
        if data is not None:
            etag = self.s3.put_object(Bucket=self.env["INPUT_BUCKET"], Key=key, Body=data)["ETag"]
            event["Records"][0]["s3"]["object"].update(eTag=etag.strip('"'), size=len(data))
        return event

    def multipart_upload(self) -> None:
        """A resumable upload as Uppy drives it (the part itself goes from the browser to S3), and
        one abandoned: every /s3/multipart route, each as the API function runs it."""
        json_body = {"headers": {"Content-Type": "application/json"}}
        for finish in ("complete", "abort"):
            answer = self.client.http.post(
                "/s3/multipart", body=json.dumps({"type": "image/jpeg", "size": len(self.photo)}).encode(), **json_body
            )
            assert answer.status_code == 201, answer.body
            started = json.loads(answer.body)
            key = quote(started["key"], safe="")
            base = f"/s3/multipart/{started['uploadId']}"
            signed = json.loads(self.client.http.get(f"{base}/1?key={key}").body)
            etag = requests.put(signed["url"], data=self.photo, headers=signed.get("headers"), timeout=30).headers[
                "ETag"
            ]
            assert self.client.http.get(f"{base}?key={key}").status_code == 200
            if finish == "complete":
                parts = json.dumps({"parts": [{"PartNumber": 1, "ETag": etag}]}).encode()
                assert self.client.http.post(f"{base}/complete?key={key}", body=parts, **json_body).status_code == 200
            else:
                assert self.client.http.delete(f"{base}?key={key}").status_code == 204

    def leftover_output(self, image_id: str) -> None:
        """What an attempt that outlived a DELETE leaves behind."""
        key = f"{self.env.get('OUTPUT_PREFIX', 'processed/')}{image_id}/late/web.webp"
        self.s3.put_object(Bucket=self.env["OUTPUT_BUCKET"], Key=key, Body=b"late")

    def abandoned_slots(self) -> tuple[str, str, str]:
        """An upload whose S3 event never came (as the sweeper first looks at one: its event is
        overdue), one whose worker died an hour ago, and a multipart upload started and never
        completed (as the sweeper last looks at one: long after its slot expired)."""
        records = DynamoRecordStore(self.table)
        hour_ago = utc_now() - timedelta(hours=1)
        settings = Settings.from_env(self.env)
        redrive, stuck_after = settings.redrive_after_seconds, settings.stuck_after_seconds
        overdue = utc_now() - timedelta(seconds=redrive + 60)
        expired = utc_now() - timedelta(seconds=settings.upload_url_ttl + redrive + stuck_after + 60)
        quiet, stuck, unfinished = "a" * 32, "b" * 32, "d" * 32
        for image_id, created in ((quiet, overdue), (stuck, hour_ago), (unfinished, expired)):
            key = self.env.get("UPLOAD_PREFIX", "uploads/") + image_id
            upload_id = None
            if image_id == unfinished:
                upload_id = self.s3.create_multipart_upload(Bucket=self.env["INPUT_BUCKET"], Key=key)["UploadId"]
            else:
                self.s3.put_object(Bucket=self.env["INPUT_BUCKET"], Key=key, Body=self.photo, ContentType="image/jpeg")
            pending = ImageRecord.pending(
                image_id,
                owner="anonymous",
                profile="default",
                content_type="image/jpeg",
                input_bucket=self.env["INPUT_BUCKET"],
                input_key=key,
                now=created,
                upload_id=upload_id,
            )
            records.create(pending)
            if image_id == stuck:
                records.save(pending.claimed("token", "etag", len(self.photo), hour_ago.timestamp(), hour_ago))
        return quiet, stuck, unfinished

    def on_demand(self, image_id: str) -> None:
        """A variant rendered on its first request and found stored on the second (stages with keys)."""
        template = json.loads(self.client.http.get(f"/images/{image_id}").body)["links"]["transform"]
        for _ in range(2):
            answer = self.client.http.get(template.replace("{width}", "320").replace("{format}", "webp"))
            assert answer.status_code == 302, answer.body

    def reprocess(self, image_id: str) -> None:
        """Ask for the image to be rendered again, once alone and once by a backfill, watch the
        backfill's progress, and run the reprocess consumer on what was queued."""
        json_body = {"Content-Type": "application/json"}
        with self.run.recorder.running("api_handler"):
            asked = self.client.http.post(f"/images/{image_id}/reprocess", headers=json_body, body=b"{}")
            assert asked.status_code == 202, asked.body
            page = self.client.http.post("/backfills", headers=json_body, body=b'{"profile": "avatar"}')
            backfill = json.loads(page.body)
            assert backfill["queued"] >= 1, backfill
            assert self.client.http.get(f"/backfills/{backfill['backfill']}").status_code == 200
        sqs = self.run.arrange.client("sqs")
        url = sqs.get_queue_url(QueueName=self.env["REPROCESS_QUEUE"])["QueueUrl"]
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        batch = [
            {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]} for m in received
        ]
        self.invoke("reprocess_images", {"Records": batch})

    def state(self, image_id: str) -> str:
        item = self.table.get_item(Key={"id": image_id})["Item"]
        if "deleted_at" in item:
            return "deleted"
        return "redriven" if "redriven_at" in item else str(item["status"])


def run_every_function(run: Run, client: Client, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Returns what each image ended as."""
    import app as application

    life = Lifecycle(run, client)
    good, bad, twin, abandoned = life.upload_slots(4)
    life.invoke("handle_upload", life.s3_event(good, life.photo))
    life.invoke("handle_upload", life.s3_event(bad, b"not an image at all"))
    life.invoke("handle_upload", life.s3_event(twin, life.photo))  # same bytes: a copy, with DEDUPE
    life.invoke("handle_upload", life.s3_event(twin, images.jpeg(700, 500)))  # newer bytes replace the outputs
    life.reprocess(twin)  # rendered again, one image and as a backfill
    with run.recorder.running("api_handler"):
        digest = json.loads(client.http.get(f"/images/{good}").body)["sha256"]
        for query in ("", "?status=done", f"?sha256={digest}"):
            assert client.http.get(f"/images{query}").status_code == 200
        with monkeypatch.context() as admin:  # what an admin's token would make of the caller
            admin.setattr(application, "_caller", lambda: Principal("root", True, "jwt"))
            assert client.http.get("/images").status_code == 200  # every owner's: the sharded index
        if run.configuration.transforms:
            life.on_demand(good)
        assert client.http.delete(f"/images/{good}").status_code == 204
        life.multipart_upload()  # Uppy's routes: start, sign, list, complete; and an abort
    life.leftover_output(good)
    life.invoke("handle_upload", life.s3_event(good, life.photo))  # a late upload of the deleted image
    life.leftover_output(good)
    for image_id in (abandoned, good):  # Lambda gave up on their events
        failure = {
            "requestContext": {"condition": "RetriesExhausted", "requestId": "req-1"},
            "requestPayload": life.s3_event(image_id),
        }
        message = client.events.generate_sqs_event([json.dumps(failure)], run.env["UPLOAD_FAILURE_QUEUE"])
        life.invoke("end_abandoned_uploads", message)
    quiet, stuck, unfinished = life.abandoned_slots()
    life.invoke("sweep", client.events.generate_cw_event("aws.events", "Scheduled Event", {}, []))
    names = {"good": good, "bad": bad, "twin": twin, "abandoned": abandoned, "quiet": quiet, "stuck": stuck}
    names["unfinished"] = unfinished
    return {name: life.state(image_id) for name, image_id in names.items()}


def test_each_function_s_policy_allows_its_requests_and_grants_nothing_else(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import app

    with Client(app, stage_name=run.configuration.stage) as client:
        ended = run_every_function(run, client, monkeypatch)
    assert ended == {
        "good": "deleted",
        "bad": "failed",
        "twin": "done",
        "abandoned": "failed",
        "quiet": "redriven",
        "stuck": "failed",
        "unfinished": "failed",
    }
    assert run.recorder.calls <= code_calls(), "a call the static scan missed"
    if not run.configuration.committed:  # every setting on: every call the code has
        rare = {("dynamodb", "TransactWriteItems")}  # a slot made in a UTC day's last 15 minutes only
        assert run.recorder.calls | rare == code_calls(), "a call of the code this run never made"
    needs = platform_needs(run.configuration.stage, run.env)
    for function, made in run.recorder.needs.items():
        needs[function] += made
    assert set(needs) == set(run.policies)
    for function, document in run.policies.items():
        refused = [(need.action, need.resource) for need in needs[function] if not allows(document, need)]
        assert refused == [], f"{function}'s policy refuses requests it makes"
        assert unused_grants(document, needs[function]) == [], f"{function}'s policy grants what it never uses"


def test_outputs_are_read_decrypted_and_deduplicated_only_where_configured() -> None:
    """What the dedupe/KMS run above checked at run time, stated on the documents."""
    env = {**stages.stage_environment(CONFIG, "dev"), "DEDUPE": "true"}
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    kms = {"OUTPUT_SSE": "aws:kms", "KMS_KEY_ID": key}

    def kms_actions(env: dict[str, str]) -> dict[str, set[str]]:
        policies = function_policies(env, stack_outputs("dev", env))
        return {f: {a for a in granted_actions(d) if a.startswith("kms:")} for f, d in policies.items()}

    plain = kms_actions(stages.stage_environment(CONFIG, "dev"))
    assert set().union(*plain.values()) == set()
    assert kms_actions({**env, **kms}) == {
        "api_handler": {"kms:Decrypt"},  # presigned download links
        "handle_upload": {"kms:GenerateDataKey", "kms:Decrypt"},  # writes outputs; copies a twin's
        "end_abandoned_uploads": set(),
        "sweep": set(),
        "reprocess_images": {"kms:GenerateDataKey"},  # writes outputs
        "jwt_authorizer": set(),
    }
    behind_cdn = kms_actions({**env, **kms, "DEDUPE": "false", "OUTPUT_BASE_URL": "https://cdn.example.com"})
    assert behind_cdn["api_handler"] == set() and behind_cdn["handle_upload"] == {"kms:GenerateDataKey"}
    (statement,) = [
        s
        for s in function_policies({**env, **kms}, stack_outputs("dev", env))["api_handler"]["Statement"]
        if s["Sid"] == "OutputEncryptionKey"
    ]
    assert statement["Resource"] == [key]


# --- what each function must never be able to do -----------------------------------------------


def _policies_everywhere() -> Iterator[tuple[str, dict[str, str], dict[str, dict[str, Any]]]]:
    """(what, the stage's environment, its policies): the committed stages, and dev with every option on."""
    for stage in DEPLOY_STAGES:
        yield stage, stages.stage_environment(CONFIG, stage), committed_policies(stage)
    env = {**stages.stage_environment(CONFIG, "dev"), "DEDUPE": "true", "OUTPUT_SSE": "aws:kms"}
    env["KMS_KEY_ID"] = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    yield "dev with dedupe and KMS", env, function_policies(env, stack_outputs("dev", env))


def _queried_indexes(document: dict[str, Any]) -> set[str]:
    return {
        resource.rsplit("/index/", 1)[1]
        for statement in document["Statement"]
        if "dynamodb:Query" in statement["Action"]
        for resource in statement["Resource"]
    }


def test_no_function_can_do_what_its_code_never_needs() -> None:
    for where, env, policies in _policies_everywhere():
        original = Need("s3:PutObject", f"arn:aws:s3:::{env['INPUT_BUCKET']}/uploads/{'c' * 32}")
        output = Need("s3:PutObject", f"arn:aws:s3:::{env['OUTPUT_BUCKET']}/processed/{'c' * 32}/r/web.webp")
        topic = Need("sns:Publish", env["TOPIC_ARN"])
        table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{env['TABLE_NAME']}"
        api, handler = policies["api_handler"], policies["handle_upload"]
        consumer, sweeper = policies["end_abandoned_uploads"], policies["sweep"]
        image_update = Need("dynamodb:UpdateItem", table, {"dynamodb:LeadingKeys": "c" * 32})
        for function, document in policies.items():
            actions = granted_actions(document)
            assert not {"dynamodb:DeleteItem", "dynamodb:Scan"} & actions, (where, function)
            assert not any(action.endswith("*") for action in actions), (where, function)
            # Records change only by version-checked PutItem; UpdateItem reaches backfill counters only.
            assert not allows(document, image_update), (where, function)
        # The S3 handler writes outputs, never originals; it deletes no record; it queries by hash only.
        assert not allows(handler, original) and allows(handler, output), where
        assert _queried_indexes(handler) <= {BY_OWNER_SHA256}, where
        # The API signs uploads of originals but cannot write outputs; it publishes to the topic only
        # (the end of a multipart upload its client gave up on).
        assert allows(api, original) and not allows(api, output), where
        assert "s3:PutObjectTagging" not in granted_actions(api), where
        assert [s["Resource"] for s in api["Statement"] if "sns:Publish" in s["Action"]] == [[env["TOPIC_ARN"]]], where
        # The consumer and the sweeper: no output writes; the consumer reads no objects, the sweeper
        # deletes none and touches no output; each queries only what it must.
        assert not allows(consumer, original) and not allows(consumer, output) and allows(consumer, topic), where
        assert not {"s3:GetObject", "dynamodb:Query", "dynamodb:BatchGetItem"} & granted_actions(consumer), where
        assert not allows(sweeper, output) and "s3:DeleteObject" not in granted_actions(sweeper), where
        assert not any(env["OUTPUT_BUCKET"] in r for s in sweeper["Statement"] for r in s["Resource"]), where
        assert _queried_indexes(sweeper) == {BY_OPEN_SHARD}, where
        assert not any(a.startswith("sqs:") for a in granted_actions(sweeper)), where
        # The API only sends to the reprocess queue and reads its depth; it never consumes.
        assert {a for a in granted_actions(api) if a.startswith("sqs:")} == {
            "sqs:SendMessage",
            "sqs:GetQueueUrl",
            "sqs:GetQueueAttributes",
        }, where
        counter = Need("dynamodb:UpdateItem", table, {"dynamodb:LeadingKeys": "backfill#bf-1"})
        assert {f for f, d in policies.items() if allows(d, counter)} == {"api_handler", "reprocess_images"}, where
        # The reprocess consumer writes outputs, reads originals, never writes them or lists.
        reprocessor = policies["reprocess_images"]
        assert allows(reprocessor, output) and not allows(reprocessor, original), where
        assert not {"dynamodb:Query", "dynamodb:BatchGetItem", "s3:ListBucket"} & granted_actions(reprocessor), where
        if "jwt_authorizer" in policies:
            assert granted_actions(policies["jwt_authorizer"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
