"""devstack/moto_internals.py: the table shapes and items the ledger weighs, read from moto itself."""

from __future__ import annotations

from devstack.moto_internals import MotoTables
from devstack.resources import table_definition
from tests.conftest import ENV, Aws

REGION = "us-east-1"


def test_a_tables_shape_is_its_keys_and_indexes_as_the_template_defines_them(aws: Aws) -> None:
    shape = MotoTables().shape(REGION, ENV["TABLE_NAME"])
    assert shape is not None and shape.keys == ("id",)
    defined = {index["IndexName"]: index for index in table_definition()["GlobalSecondaryIndexes"]}
    assert {index.name for index in shape.indexes} == set(defined)
    for index in shape.indexes:
        assert index.keys == tuple(key["AttributeName"] for key in defined[index.name]["KeySchema"])
        projection = defined[index.name]["Projection"]
        if projection["ProjectionType"] == "ALL":
            assert index.projected is None
        else:
            assert index.projected == tuple(projection.get("NonKeyAttributes", []))
    assert MotoTables().shape(REGION, "no-such-table") is None


def test_an_item_is_read_as_stored_and_a_missing_or_malformed_key_reads_none(aws: Aws) -> None:
    aws.table.put_item(Item={"id": "a" * 32, "status": "pending", "size": 12})
    tables = MotoTables()
    assert tables.item(REGION, ENV["TABLE_NAME"], {"id": {"S": "a" * 32}}) == {
        "id": {"S": "a" * 32},
        "status": {"S": "pending"},
        "size": {"N": "12"},
    }
    assert tables.item(REGION, ENV["TABLE_NAME"], {"id": {"S": "b" * 32}}) is None
    assert tables.item(REGION, ENV["TABLE_NAME"], {"nope": {"S": "x"}}) is None
