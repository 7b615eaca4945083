"""Move a deployed images table to the indexes infra/resources.json defines, without downtime for
the indexes that stay and without a stack update CloudFormation would refuse.

DynamoDB creates or deletes one global secondary index per UpdateTable, and CloudFormation one per
stack update; a template that drops three indexes and adds five fails as one update. So the table
moves in steps, each a stack update of the resources stack whose template is the final one with
the table's index list of that step (CloudFormation waits for each new index to be ACTIVE):

expand    add every index the code needs, one stack update each; the old indexes stay, so the
          code running now keeps working. An index whose keys changed under the same name is
          deleted and created again (queries on it fail in between).
backfill  after the new code is deployed (it writes the index attributes on every write): give
          every record written before it its index attributes, and remove the retired ones. A paginated Scan; each write is
          conditional on the record's version (a record the code rewrote meanwhile is skipped,
          it has them), so it is idempotent; the position is kept in a checkpoint file after
          each page, so an interrupted run resumes where it stopped.
contract  delete the indexes the code no longer queries, one stack update each. The last step's
          template is infra/resources.json itself, so `make deploy` is a no-op for the table after.

docs/deploy/index.md ("Migrating a deployed table") gives the whole sequence with the code deploy.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.domain import is_image_id

Index = dict[str, Any]  # a GlobalSecondaryIndexes entry as CloudFormation spells it
# Index key attributes an earlier version derived, whose indexes the contract step deletes (by-owner
# and by-owner-status, before owner sharding). A changed key format gets a new attribute and a new
# index, so no index ever holds both formats; the backfill removes these, leaving the old indexes empty.
RETIRED_ATTRIBUTES = ("owner_list", "owner_status")


def _shape(index: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes two indexes the same index (throughput and status aside)."""
    projection = index.get("Projection", {})
    return (
        index["IndexName"],
        tuple((k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]),
        projection.get("ProjectionType"),
        tuple(sorted(projection.get("NonKeyAttributes", []))),
    )


@dataclass(frozen=True)
class Plan:
    """The index list after each step; consecutive lists differ by exactly one index."""

    expand: list[list[Index]] = field(default_factory=list)
    contract: list[list[Index]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.expand and not self.contract


def plan(current: Sequence[Index], target: Sequence[Index]) -> Plan:
    wanted = {index["IndexName"]: index for index in target}
    now = [dict(index) for index in current]
    expand: list[list[Index]] = []
    for name, index in wanted.items():
        existing = next((i for i in now if i["IndexName"] == name), None)
        if existing is not None and _shape(existing) == _shape(index):
            continue
        if existing is not None:  # same name, other keys or projection: delete, then create
            now = [i for i in now if i["IndexName"] != name]
            expand.append(copy.deepcopy(now))
        now = [*now, dict(index)]
        expand.append(copy.deepcopy(now))
    contract: list[list[Index]] = []
    for index in [i for i in now if i["IndexName"] not in wanted]:
        now = [i for i in now if i["IndexName"] != index["IndexName"]]
        contract.append(copy.deepcopy(now))
    if contract:  # the last step is the target itself, in its order
        contract[-1] = [dict(i) for i in target]
    elif expand:
        expand[-1] = [dict(i) for i in target]
    return Plan(expand, contract)


def template_with_indexes(template: Mapping[str, Any], indexes: Sequence[Index]) -> dict[str, Any]:
    """The resources template with the images table's indexes replaced. CloudFormation wants an
    attribute definition for exactly the key attributes in use (all strings here)."""
    result = copy.deepcopy(dict(template))
    table = result["Resources"]["ImagesTable"]["Properties"]
    table["GlobalSecondaryIndexes"] = [dict(i) for i in indexes]
    used = [k["AttributeName"] for k in table["KeySchema"]]
    for index in indexes:
        used += [k["AttributeName"] for k in index["KeySchema"] if k["AttributeName"] not in used]
    kept = [d for d in table["AttributeDefinitions"] if d["AttributeName"] in used]
    known = {d["AttributeName"] for d in kept}
    table["AttributeDefinitions"] = kept + [{"AttributeName": n, "AttributeType": "S"} for n in used if n not in known]
    return result


def current_indexes(dynamodb: Any, table_name: str) -> list[Index]:
    described = dynamodb.describe_table(TableName=table_name)["Table"]
    return [
        {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
        for i in described.get("GlobalSecondaryIndexes", [])
    ]


def deploy_steps(
    steps: Sequence[Sequence[Index]],
    template: Mapping[str, Any],
    deploy: Callable[[Path], Any],
    say: Callable[[str], None] = print,
) -> None:
    """One stack update per step, through `deploy(template_path)` (stacks.deploy, which waits)."""
    with tempfile.TemporaryDirectory() as directory:
        for number, indexes in enumerate(steps, 1):
            path = Path(directory) / f"step-{number}" / "resources.json"
            path.parent.mkdir()
            path.write_text(json.dumps(template_with_indexes(template, indexes), indent=2))
            say(f"step {number}/{len(steps)}: indexes {', '.join(i['IndexName'] for i in indexes) or '(none)'}")
            deploy(path)


@dataclass
class BackfillCount:
    scanned: int = 0
    updated: int = 0
    current: int = 0  # had the right index attributes already
    skipped: int = 0  # changed by the code meanwhile (it wrote them), or not an image record
    unreadable: list[str] = field(default_factory=list)


def backfill(table: Any, checkpoint: Path, page_size: int = 500, say: Callable[[str], None] = print) -> BackfillCount:
    """Give every image record the index attributes records.index_attributes derives for it, and
    only those (an index attribute it no longer derives, RETIRED_ATTRIBUTES too, is removed)."""
    from botocore.exceptions import ClientError

    from chalicelib.aws.records import INDEX_KEYS, from_item, index_attributes

    keys = {name for index_keys in INDEX_KEYS.values() for name in index_keys} - {"created_at"}
    derived = sorted(keys | set(RETIRED_ATTRIBUTES))
    count = BackfillCount()
    for items in _pages(table, checkpoint, page_size):
        for item in items:
            count.scanned += 1
            if not is_image_id(str(item.get("id", ""))):
                count.skipped += 1  # backfill progress, quota counters: never in an index
                continue
            try:
                wanted = index_attributes(from_item(item))
            except (KeyError, TypeError, ValueError):
                count.unreadable.append(str(item["id"]))
                continue
            stale = [name for name in derived if name in item and name not in wanted]
            changed = {name: value for name, value in wanted.items() if item.get(name) != value}
            if not changed and not stale:
                count.current += 1
                continue
            try:
                table.update_item(**_update(item, changed, stale))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                count.skipped += 1
                continue
            count.updated += 1
        say(f"scanned {count.scanned}, updated {count.updated}, already current {count.current}")
    return count


def _update(item: Mapping[str, Any], changed: Mapping[str, Any], stale: Sequence[str]) -> dict[str, Any]:
    names = {"#v": "version", **{f"#a{n}": name for n, name in enumerate([*changed, *stale])}}
    values: dict[str, Any] = {":v": item["version"]}
    sets = []
    for n, value in enumerate(changed.values()):
        sets.append(f"#a{n} = :a{n}")
        values[f":a{n}"] = value
    removes = [f"#a{len(changed) + n}" for n in range(len(stale))]
    expression = " ".join(part for part in (_clause("SET", sets), _clause("REMOVE", removes)) if part)
    return {
        "Key": {"id": item["id"]},
        "UpdateExpression": expression,
        "ConditionExpression": "#v = :v",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _clause(keyword: str, parts: Sequence[str]) -> str:
    return f"{keyword} {', '.join(parts)}" if parts else ""


def _pages(table: Any, checkpoint: Path, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """Scan pages from the checkpoint's position on, saving the position after each page; the
    checkpoint says `done` once the scan has ended, so a finished backfill is not run again."""
    state = json.loads(checkpoint.read_text()) if checkpoint.exists() else {}
    if state.get("done"):
        return
    start = state.get("next")
    while True:
        request: dict[str, Any] = {"Limit": page_size, "ConsistentRead": True}
        if start:
            request["ExclusiveStartKey"] = start
        response = table.scan(**request)
        yield list(response.get("Items", []))
        start = response.get("LastEvaluatedKey")
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text(json.dumps({"next": start} if start else {"done": True}))
        if not start:
            return
