"""bench/capacity.py: per-partition write rates from the vector, the first limit, the exit status."""

from __future__ import annotations

import pytest

from bench.capacity import REPORT, Load, failures, first_limit, main, partition_writes, report
from devstack.cost_vector import UPLOAD


def busiest(load: Load, index: str, pattern: str) -> float:
    return next(rate for i, p, _, rate in partition_writes(load) if (i, p) == (index, pattern))


def test_owner_keys_carry_an_eighth_of_one_owner_and_shards_a_sixteenth_of_all() -> None:
    even = Load(1_000, owners=10_000)
    pending = "{owner}#pending#{owner_shard}"
    assert busiest(even, "by-owner-status-shard", pending) == pytest.approx(2 * 1_000 / 10_000 / 8)
    assert busiest(even, "by-created-shard", "{shard}") == pytest.approx(3 * 1_000 / 16)
    hot = Load(1_000, hot_owner_share=0.25)
    assert busiest(hot, "by-owner-shard", "{owner}#{owner_shard}") == pytest.approx(250 / 8)
    assert busiest(Load(1_000, hot_owner_share=1), "by-owner-status-shard", pending) == pytest.approx(250)
    assert busiest(hot, "by-owner-sha256", "{owner}#{sha256}") == 0  # distinct bytes: a key per image
    assert busiest(Load(100, hot_owner_share=1, duplicate_share=0.5), "by-owner-sha256", "{owner}#{sha256}") == 50


def test_every_index_write_of_the_vector_is_placed() -> None:
    placed = sum(units for _, _, units, _ in partition_writes(Load(1)))
    assert placed == UPLOAD.write_units - UPLOAD.table_write_units


def test_one_owner_fails_the_model_only_past_4000_uploads_a_second() -> None:
    assert failures(Load(1_000, owners=10_000)) == []
    assert failures(Load(1_000, hot_owner_share=1.0)) == []
    assert failures(Load(4_000, hot_owner_share=1.0)) == []  # one owner's ceiling: 2 units x 4,000 / 8 shards
    over = {check.limit_name for check in failures(Load(4_100, hot_owner_share=1.0))}
    assert over == {
        "DynamoDB partition by-owner-status-shard `{owner}#pending#{owner_shard}`",
        "DynamoDB partition by-owner-status-shard `{owner}#processing#{owner_shard}`",
    }


def test_the_first_limit_of_each_front_end() -> None:
    assert first_limit(Load(10, pollers=10_000, poll_interval=1.0)).limit_name == "API Gateway requests"
    assert first_limit(Load(10, pollers=10_000, poll_interval=0)).limit_name.startswith("Lambda concurrent")
    assert first_limit(Load(1_000, region="eu-south-1")).limit_name == "SNS publishes (eu-south-1)"


def test_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rate", "1000"]) == 0
    assert "first limit" in capsys.readouterr().out
    assert main(["--rate", "1000", "--hot-owner-share", "1"]) == 0
    assert main(["--rate", "5000", "--hot-owner-share", "1"]) == 1
    assert "OVER: DynamoDB partition by-owner-status-shard" in capsys.readouterr().err


def test_the_report_in_the_docs_is_the_current_one() -> None:
    assert REPORT.read_text() == report(), "run `python -m bench.capacity --report`"
