"""infra/migrate.py: a table deployed with older indexes moved to infra/resources.json's, step by step,
under moto's CloudFormation: the first design's (by-created, by-status, by-sha256, all projections ALL),
and the unsharded owner indexes (by-owner, by-owner-status) before owner sharding."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from chalicelib.aws.records import INDEX_KEYS, DynamoRecordStore, to_item
from chalicelib.domain import ImageRecord, Status, utc_now
from chalicelib.ports import ListQuery
from infra import migrate, stacks, stages
from infra.__main__ import main
from tests.infra.test_stacks import account, project, read  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")]
TEMPLATE = json.loads((stages.TEMPLATES / "resources.json").read_text())
TARGET = TEMPLATE["Resources"]["ImagesTable"]["Properties"]["GlobalSecondaryIndexes"]
OLD_KEYS = {"by-created": "kind", "by-status": "status", "by-sha256": "sha256"}
OLD = [
    {
        "IndexName": name,
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}, {"AttributeName": "created_at", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    }
    for name, key in OLD_KEYS.items()
]


def names(indexes: list[dict[str, Any]]) -> list[str]:
    return [index["IndexName"] for index in indexes]


def deploy_table_with(indexes: list[dict[str, Any]], project_dir: Path, tmp_path: Path) -> dict[str, str]:
    """The dev stage's resources stack as an older release deployed it, with `indexes`; its environment."""
    config = stages.load_config(project_dir)
    template = tmp_path / "older" / "resources.json"
    template.parent.mkdir()
    template.write_text(json.dumps(migrate.template_with_indexes(TEMPLATE, indexes)))
    stack = stages.stack_name(config, "dev", "resources")
    stacks.deploy(boto3.client("cloudformation"), stack, template, stages.resources_parameters(config, "dev"), {})
    return stages.stage_environment(config, "dev")


def test_every_step_changes_one_index_and_the_last_is_the_template() -> None:
    steps = migrate.plan(OLD, TARGET)
    assert [names(s) for s in steps.expand][-1] == [*OLD_KEYS, *INDEX_KEYS]
    assert len(steps.expand) == 5 and len(steps.contract) == 3
    assert steps.contract[-1] == TARGET
    lists = [OLD, *steps.expand, *steps.contract]
    for before, after in itertools.pairwise(lists):
        assert len(set(names(before)) ^ set(names(after))) == 1
    assert migrate.plan(TARGET, TARGET).done


def test_an_index_whose_keys_changed_is_deleted_then_created() -> None:
    older = [dict(i) for i in TARGET]
    older[-1] = {
        **older[-1],
        "KeySchema": [older[-1]["KeySchema"][0], {"AttributeName": "updated_at", "KeyType": "RANGE"}],
    }
    steps = migrate.plan(older, TARGET)
    assert [names(s) for s in steps.expand] == [names(TARGET)[:-1], names(TARGET)]
    assert steps.expand[-1] == TARGET and steps.contract == []


def test_templates_define_exactly_the_key_attributes_in_use() -> None:
    table = migrate.template_with_indexes(TEMPLATE, OLD)["Resources"]["ImagesTable"]["Properties"]
    assert [d["AttributeName"] for d in table["AttributeDefinitions"]] == [
        "id",
        "created_at",
        "kind",
        "status",
        "sha256",
    ]
    assert migrate.template_with_indexes(TEMPLATE, TARGET) == TEMPLATE


def old_item(image_id: str, owner: str, env: dict[str, str]) -> dict[str, Any]:
    """A record as the code before the index redesign wrote it: no derived index attributes."""
    record = ImageRecord.pending(
        image_id,
        owner=owner,
        profile="default",
        content_type="image/jpeg",
        input_bucket=env["INPUT_BUCKET"],
        input_key=f"uploads/{image_id}",
        now=utc_now(),
    )
    item = {k: v for k, v in to_item(record).items() if k not in {"owner_shard", "owner_status_shard", "created_shard"}}
    item.pop("open_shard", None)
    item.pop("open_since", None)
    return {**item, "kind": "image"}


# The indexes as deployed before owner sharding: by-owner and by-owner-status on one key per owner.
UNSHARDED = {"by-owner": "owner_list", "by-owner-status": "owner_status"}
PREVIOUS = [
    {
        "IndexName": name,
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}, {"AttributeName": "created_at", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    for name, key in UNSHARDED.items()
] + [i for i in TARGET if i["IndexName"] not in {"by-owner-shard", "by-owner-status-shard"}]


def previous_item(image_id: str, owner: str, env: dict[str, str]) -> dict[str, Any]:
    """A record as the code before owner sharding wrote it: `owner_list`, `owner_status`."""
    record = ImageRecord.pending(
        image_id,
        owner=owner,
        profile="default",
        content_type="image/jpeg",
        input_bucket=env["INPUT_BUCKET"],
        input_key=f"uploads/{image_id}",
        now=utc_now(),
    )
    item = {k: v for k, v in to_item(record).items() if k not in {"owner_shard", "owner_status_shard"}}
    return {**item, "owner_list": owner, "owner_status": f"{owner}#pending"}


def test_sharding_the_owner_indexes_adds_two_new_indexes_then_drops_the_old_two() -> None:
    steps = migrate.plan(PREVIOUS, TARGET)
    assert [names(s) for s in steps.expand] == [
        [*UNSHARDED, *names(PREVIOUS)[2:], "by-owner-shard"],
        [*UNSHARDED, *names(PREVIOUS)[2:], "by-owner-shard", "by-owner-status-shard"],
    ]
    assert [names(s) for s in steps.contract] == [
        ["by-owner-status", *names(PREVIOUS)[2:], "by-owner-shard", "by-owner-status-shard"],
        names(TARGET),
    ]


def update_like_cloudformation(cfn: Any, name: str, template: Path, parameters: Any, tags: Any) -> dict[str, str]:
    """What a stack update does to the table (moto's CloudFormation cannot update one): the one
    index the step's template adds or removes, by UpdateTable. More than one is refused, as
    CloudFormation refuses it."""
    properties = json.loads(template.read_text())["Resources"]["ImagesTable"]["Properties"]
    table_name = properties["TableName"]["Fn::Sub"].replace("${Stage}", parameters["Stage"])
    dynamodb = boto3.client("dynamodb")
    now = {i["IndexName"]: i for i in migrate.current_indexes(dynamodb, table_name)}
    wanted = {i["IndexName"]: i for i in properties["GlobalSecondaryIndexes"]}
    changes = [{"Delete": {"IndexName": n}} for n in now if n not in wanted]
    changes += [{"Create": wanted[n]} for n in wanted if n not in now]
    assert len(changes) == 1, changes
    dynamodb.update_table(
        TableName=table_name,
        AttributeDefinitions=properties["AttributeDefinitions"],
        GlobalSecondaryIndexUpdates=changes,
    )
    return {}


def test_an_old_table_is_migrated_and_its_records_listed(
    account: None,  # noqa: F811
    project: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = deploy_table_with(OLD, project, tmp_path)
    dynamodb = boto3.client("dynamodb")
    assert names(migrate.current_indexes(dynamodb, env["TABLE_NAME"])) == list(OLD_KEYS)
    table = boto3.resource("dynamodb").Table(env["TABLE_NAME"])
    ids = [f"{n:032x}" for n in range(1, 8)]
    for image_id in ids:  # written by the code before the index redesign
        table.put_item(Item=old_item(image_id, "alice", env))
    table.put_item(Item={"id": "backfill#x", "owner": "alice", "profile": "default", "queued": 1})

    monkeypatch.setattr(stacks, "deploy", update_like_cloudformation)
    main(["migrate-table", "--stage", "dev", "--step", "expand", "--project", str(project)])
    assert names(migrate.current_indexes(dynamodb, env["TABLE_NAME"])) == [*OLD_KEYS, *INDEX_KEYS]
    records = DynamoRecordStore(table)
    assert records.list_page(ListQuery("alice", 20)).items == []  # not in the new indexes yet

    checkpoint = tmp_path / "checkpoint.json"
    count = migrate.backfill(table, checkpoint, page_size=3, say=lambda _: None)
    assert (count.scanned, count.updated, count.skipped, count.unreadable) == (8, 7, 1, [])
    assert {r.id for r in records.list_page(ListQuery("alice", 20)).items} == set(ids)
    assert {r.id for r in records.list_page(ListQuery("alice", 20, status=Status.PENDING)).items} == set(ids)
    assert {r.id for r in records.list_page(ListQuery(None, 20)).items} == set(ids)
    assert json.loads(checkpoint.read_text()) == {"done": True}
    assert migrate.backfill(table, checkpoint, say=lambda _: None).scanned == 0  # finished: not run again
    again = migrate.backfill(table, tmp_path / "fresh.json", say=lambda _: None)
    assert (again.updated, again.current) == (0, 7)  # idempotent

    main(["migrate-table", "--stage", "dev", "--step", "contract", "--project", str(project)])
    assert names(migrate.current_indexes(dynamodb, env["TABLE_NAME"])) == list(INDEX_KEYS)
    committed = Path(__file__).resolve().parents[2] / ".chalice"
    for policy in ("policy-dev-api_handler.json", "policy-dev-sweep.json"):  # the new indexes' ARNs
        assert (project / ".chalice" / policy).read_text() == (committed / policy).read_text()
    main(["migrate-table", "--stage", "dev", "--step", "expand", "--project", str(project)])  # nothing to do


def test_a_table_with_unsharded_owner_indexes_is_migrated_and_its_records_listed(
    account: None,  # noqa: F811
    project: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = deploy_table_with(PREVIOUS, project, tmp_path)
    table = boto3.resource("dynamodb").Table(env["TABLE_NAME"])
    ids = [f"{n:04x}" + "0" * 28 for n in range(0, 16 * 4096, 4096)]  # one per shard of each index
    for image_id in ids:
        table.put_item(Item=previous_item(image_id, "alice", env))

    monkeypatch.setattr(stacks, "deploy", update_like_cloudformation)
    main(["migrate-table", "--stage", "dev", "--step", "expand", "--project", str(project)])
    records = DynamoRecordStore(table)
    assert records.list_page(ListQuery("alice", 20)).items == []  # not in the new indexes yet
    count = migrate.backfill(table, tmp_path / "checkpoint.json", say=lambda _: None)
    assert (count.scanned, count.updated) == (16, 16)
    listed = records.list_page(ListQuery("alice", 20))
    assert [r.id for r in listed.items] == sorted(ids, key=lambda i: (records.get(i).created_at, i), reverse=True)
    assert {r.id for r in records.list_page(ListQuery("alice", 20, status=Status.PENDING)).items} == set(ids)
    for image_id in ids:  # the old key attributes are gone: the old indexes are empty before they go
        assert not {"owner_list", "owner_status"} & set(table.get_item(Key={"id": image_id})["Item"])
    for old, key in UNSHARDED.items():
        answer = table.query(IndexName=old, KeyConditionExpression=Key(key).eq("alice"))
        assert answer["Items"] == []

    main(["migrate-table", "--stage", "dev", "--step", "contract", "--project", str(project)])
    assert sorted(names(migrate.current_indexes(boto3.client("dynamodb"), env["TABLE_NAME"]))) == sorted(INDEX_KEYS)


def test_a_backfill_resumes_from_its_checkpoint_and_skips_records_the_code_rewrote(tmp_path: Path) -> None:
    table = FakeTable([{"id": f"{n:032x}", "version": 1} for n in range(5)])
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text(json.dumps({"next": {"id": f"{1:032x}"}}))
    pages = list(migrate._pages(table, checkpoint, 2))
    assert [item["id"] for page in pages for item in page] == [f"{n:032x}" for n in range(2, 5)]


class FakeTable:
    """A table's Scan over sorted items, enough for the checkpoint logic."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def scan(self, Limit: int, ConsistentRead: bool, ExclusiveStartKey: dict[str, Any] | None = None) -> Any:
        start = 0 if ExclusiveStartKey is None else [i["id"] for i in self.items].index(ExclusiveStartKey["id"]) + 1
        page = self.items[start : start + Limit]
        more = start + Limit < len(self.items)
        return {"Items": page, **({"LastEvaluatedKey": {"id": page[-1]["id"]}} if more else {})}
