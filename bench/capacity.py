"""What breaks first: a target upload rate turned into per-partition write rates of every index,
and the load on every quota the path crosses. `python -m bench.capacity --rate 1000` prints it and
exits 1 if a DynamoDB partition would take more than 1,000 write units a second (or a table or
index more than its quota); `--report` writes bench/CAPACITY.md, which docs/performance.md includes.

The per-operation numbers are the cost vector (devstack/cost_vector.py), which the local stack's
ledger measures and tests/test_capacity_e2e.py pins, so the model cannot drift from the code. The
quotas are AWS's published defaults, each with its page, as read on QUOTAS_READ.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chalicelib.aws.records import OWNER_SHARDS, SHARDS
from chalicelib.images import MAX_WAIT_SECONDS
from devstack.cost_vector import LONG_POLL_READS, POLL_READS, REPROCESS, RULES_READ, UNIT_RULES, UPLOAD, Vector

REPORT = Path(__file__).resolve().parent / "CAPACITY.md"
QUOTAS_READ = "2026-12-05"


@dataclass(frozen=True)
class Quota:
    """An AWS default quota as published on QUOTAS_READ, per account and Region unless it says otherwise."""

    limit: float
    what: str
    page: str  # where AWS publishes it, as a Markdown link


_DOCS = "https://docs.aws.amazon.com"
_DYNAMODB_QUOTAS = f"[DynamoDB quotas]({_DOCS}/amazondynamodb/latest/developerguide/ServiceQuotas.html)"
_S3_PERFORMANCE = f"[S3 performance]({_DOCS}/AmazonS3/latest/userguide/optimizing-performance.html)"
_SNS_QUOTAS = f"[SNS endpoints and quotas]({_DOCS}/general/latest/gr/sns.html)"
PARTITION_WRITE_UNITS = Quota(
    1_000,
    "DynamoDB write units a second per partition key value of a table or index",
    f"[DynamoDB partition key design]({_DOCS}/amazondynamodb/latest/developerguide/bp-partition-key-design.html)",
)
TABLE_WRITE_UNITS = Quota(40_000, "DynamoDB on-demand write units a second per table, and per index", _DYNAMODB_QUOTAS)
TABLE_READ_UNITS = Quota(40_000, "DynamoDB on-demand read units a second per table", _DYNAMODB_QUOTAS)
NEW_TABLE_WRITE_UNITS = Quota(
    4_000,
    "DynamoDB write units a second a new on-demand table serves at once (then double its previous peak within 30 min)",
    f"[on-demand capacity mode]({_DOCS}/amazondynamodb/latest/developerguide/on-demand-capacity-mode.html)",
)
LAMBDA_CONCURRENCY = Quota(
    1_000,
    "Lambda concurrent executions, all functions of the account together",
    f"[Lambda quotas]({_DOCS}/lambda/latest/dg/gettingstarted-limits.html)",
)
LAMBDA_SCALING = Quota(
    1_000,
    "Lambda new execution environments per function every 10 s",
    f"[Lambda scaling behavior]({_DOCS}/lambda/latest/dg/scaling-behavior.html)",
)
API_GATEWAY_RPS = Quota(
    10_000,
    "API Gateway requests a second, all APIs of the account together (burst 5,000)",
    f"[API Gateway quotas]({_DOCS}/apigateway/latest/developerguide/limits.html)",
)
S3_WRITES_PER_PREFIX = Quota(3_500, "S3 PUT/COPY/POST/DELETE a second per partitioned prefix", _S3_PERFORMANCE)
S3_READS_PER_PREFIX = Quota(5_500, "S3 GET/HEAD a second per partitioned prefix", _S3_PERFORMANCE)
SNS_PUBLISH = {
    "us-east-1": Quota(30_000, "SNS publishes a second to standard topics, us-east-1", _SNS_QUOTAS),
    "us-west-2": Quota(9_000, "SNS publishes a second, us-west-2", _SNS_QUOTAS),
    "eu-west-1": Quota(9_000, "SNS publishes a second, eu-west-1", _SNS_QUOTAS),
    "us-east-2": Quota(1_500, "SNS publishes a second, us-east-2 (and a few other Regions)", _SNS_QUOTAS),
    "other": Quota(300, "SNS publishes a second, the other Regions", _SNS_QUOTAS),
}
QUOTAS = (
    PARTITION_WRITE_UNITS,
    TABLE_WRITE_UNITS,
    TABLE_READ_UNITS,
    NEW_TABLE_WRITE_UNITS,
    LAMBDA_CONCURRENCY,
    LAMBDA_SCALING,
    API_GATEWAY_RPS,
    S3_WRITES_PER_PREFIX,
    S3_READS_PER_PREFIX,
    *SNS_PUBLISH.values(),
)

# Seconds a function is busy per invocation (Little's law: concurrency = rate x duration).
# The handler's: a typical 12-20 MP photo's render (bench/COST.md) plus its AWS calls, rounded up.
HANDLER_SECONDS = 0.6
API_SECONDS = 0.05  # a route that reads or writes one item


@dataclass(frozen=True)
class Load:
    """The traffic to model."""

    uploads_per_second: float
    owners: int = 10_000  # owners uploading, evenly, besides the hottest
    hot_owner_share: float = 0.0  # the hottest owner's share of all uploads (one API key uploading for all: 1.0)
    duplicate_share: float = 0.0  # the hottest owner's uploads that are the very same bytes
    reprocess_per_second: float = 0.0
    pollers: int = 0  # front ends waiting for an image at once
    poll_interval: float = 1.0  # seconds between their GET /images/{id}; 0: they long-poll (?wait=25)
    region: str = "us-east-1"

    @property
    def hot_owner_rate(self) -> float:
        even = self.uploads_per_second / max(self.owners, 1)
        return max(self.uploads_per_second * self.hot_owner_share, even)


@dataclass(frozen=True)
class Check:
    limit_name: str  # what runs out
    load: float  # per second (or concurrent executions)
    limit: float
    change: str  # what to raise or change when it does
    fails: bool = False  # a hard failure of the model (a hot DynamoDB partition or a table over its quota)

    @property
    def used(self) -> float:
        return self.load / self.limit


def partition_rate(pattern: str, load: Load, rate: float) -> float:
    """Writes per second landing on the busiest partition key value matching `pattern`."""
    if "{sha256}" in pattern:
        return load.hot_owner_rate * load.duplicate_share if rate else 0.0
    if "{owner}" in pattern:
        owners = load.hot_owner_rate / load.uploads_per_second * rate if load.uploads_per_second else 0.0
        return owners / OWNER_SHARDS if "{owner_shard}" in pattern else owners
    if "{shard}" in pattern:
        return rate / SHARDS
    return rate


def partition_writes(load: Load) -> list[tuple[str, str, float, float]]:
    """(index, partition key pattern, units per upload, units per second on its busiest value)."""
    rows = []
    for vector, rate in ((UPLOAD, load.uploads_per_second), (REPROCESS, load.reprocess_per_second)):
        for index, partitions in vector.index_writes.items():
            for pattern, units in partitions.items():
                rows.append((index, pattern, units, partition_rate(pattern, load, units * rate)))
    merged: dict[tuple[str, str], tuple[float, float]] = {}
    for index, pattern, units, per_second in rows:
        old_units, old_rate = merged.get((index, pattern), (0.0, 0.0))
        merged[(index, pattern)] = (max(old_units, units), old_rate + per_second)
    return [(i, p, u, r) for (i, p), (u, r) in sorted(merged.items())]


def index_totals(load: Load) -> dict[str, float]:
    totals: dict[str, float] = {}
    for vector, rate in ((UPLOAD, load.uploads_per_second), (REPROCESS, load.reprocess_per_second)):
        for index, partitions in vector.index_writes.items():
            totals[index] = totals.get(index, 0.0) + rate * sum(partitions.values())
    return totals


def checks(load: Load) -> list[Check]:
    """Every limit the load meets, with its use of it."""
    up, re = load.uploads_per_second, load.reprocess_per_second
    found = [
        Check(
            f"DynamoDB partition {index} `{pattern}`",
            per_second,
            PARTITION_WRITE_UNITS.limit,
            "spread the key (more shards: SHARDS, OWNER_SHARDS in chalicelib/records.py)",
            fails=True,
        )
        for index, pattern, _, per_second in partition_writes(load)
    ]
    table_writes = up * UPLOAD.table_write_units + re * REPROCESS.table_write_units
    found.append(Check("DynamoDB table writes", table_writes, TABLE_WRITE_UNITS.limit, "table quota increase", True))
    found.extend(
        Check(f"DynamoDB index {index} writes", total, TABLE_WRITE_UNITS.limit, "table quota increase", True)
        for index, total in index_totals(load).items()
    )
    found.append(
        Check(
            "DynamoDB new on-demand table, first burst",
            table_writes,
            NEW_TABLE_WRITE_UNITS.limit,
            "set warm throughput before launch, or ramp up over 30 min (it doubles the previous peak)",
        )
    )
    polls = load.pollers / load.poll_interval if load.poll_interval else load.pollers / MAX_WAIT_SECONDS
    reads = up * UPLOAD.read_units + re * REPROCESS.read_units + load.pollers * _reads_per_poller(load)
    found.append(Check("DynamoDB table reads", reads, TABLE_READ_UNITS.limit, "table quota increase", True))
    api_rps = up + re + polls  # POST /uploads, POST .../reprocess, the polls
    found.append(Check("API Gateway requests", api_rps, API_GATEWAY_RPS.limit, "API Gateway throttle quota increase"))
    long_polling = load.pollers if not load.poll_interval else 0
    concurrency = (up + re) * HANDLER_SECONDS + api_rps * API_SECONDS + long_polling
    found.append(
        Check(
            "Lambda concurrent executions (account)",
            concurrency,
            LAMBDA_CONCURRENCY.limit,
            "concurrency quota increase; reserved concurrency for handle_upload so the API keeps some",
        )
    )
    found.append(
        Check(
            "Lambda scaling of handle_upload (new environments per 10 s)",
            (up + re) * HANDLER_SECONDS,
            LAMBDA_SCALING.limit,
            "provisioned concurrency ahead of a launch; the rate cannot be raised",
        )
    )
    outputs = UPLOAD.requests["s3:PutObject"]
    found.append(
        Check(
            "S3 output bucket writes (one prefix)",
            (up + re) * outputs,
            S3_WRITES_PER_PREFIX.limit,
            "ramp up; S3 splits",
        )
    )
    found.append(Check("S3 input bucket writes (one prefix)", up, S3_WRITES_PER_PREFIX.limit, "ramp up; S3 splits"))
    found.append(
        Check("S3 input bucket reads (one prefix)", up + 2 * re, S3_READS_PER_PREFIX.limit, "ramp up; S3 splits")
    )
    sns = SNS_PUBLISH.get(load.region, SNS_PUBLISH["other"]).limit
    found.append(Check(f"SNS publishes ({load.region})", up + re, sns, "SNS Publish quota increase"))
    return found


def _reads_per_poller(load: Load) -> float:
    """Read units per second per waiting front end: a poll reads once; a ?wait=25 reads about every 2 s."""
    if load.poll_interval:
        return POLL_READS / load.poll_interval
    return LONG_POLL_READS / MAX_WAIT_SECONDS


def first_limit(load: Load) -> Check:
    return max(checks(load), key=lambda check: check.used)


def failures(load: Load) -> list[Check]:
    return [check for check in checks(load) if check.fails and check.load > check.limit]


# -- the report ---------------------------------------------------------------------------------------

SCENARIOS: Sequence[tuple[str, Load]] = (
    ("10 uploads/s", Load(10)),
    ("100 uploads/s", Load(100)),
    ("1,000 uploads/s", Load(1_000)),
    ("1,000 uploads/s, 1,000 reprocesses/s (a backfill)", Load(1_000, reprocess_per_second=1_000)),
    ("100 uploads/s, all from one owner (one API key)", Load(100, hot_owner_share=1.0)),
    ("1,000 uploads/s, all from one owner", Load(1_000, hot_owner_share=1.0)),
    ("2,000 uploads/s, all from one owner", Load(2_000, hot_owner_share=1.0)),
    ("10,000 front ends polling every 1 s", Load(10, pollers=10_000, poll_interval=1.0)),
    ("10,000 front ends long-polling (?wait=25)", Load(10, pollers=10_000, poll_interval=0.0)),
    ("1,000 uploads/s in a Region with a 300/s SNS quota", Load(1_000, region="eu-south-1")),
)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.2f}"


def vector_table(vector: Vector) -> list[str]:
    lines = ["| request | per operation |", "|---|---|"]
    lines += [f"| {name} | {count} |" for name, count in vector.requests.items()]
    lines.append(f"| DynamoDB write units (table) | {_number(vector.table_write_units)} |")
    for index, partitions in vector.index_writes.items():
        spread = ", ".join(f"`{p}` {_number(u)}" for p, u in partitions.items())
        lines.append(f"| DynamoDB write units ({index}) | {_number(sum(partitions.values()))}: {spread} |")
    lines.append(f"| DynamoDB write units, all | {_number(vector.write_units)} |")
    lines.append(f"| DynamoDB read units | {_number(vector.read_units)} |")
    return lines


def _rate_row(rate: float) -> str:
    load = Load(rate)
    hottest = max(partition_writes(load), key=lambda row: row[3])
    return (
        f"| {_number(rate)} | {_number(rate * HANDLER_SECONDS)} | {_number(rate * UPLOAD.write_units)} | "
        f"{_number(hottest[3])} ({hottest[0]} `{hottest[1]}`) | {_number(rate * UPLOAD.requests['s3:PutObject'])} | "
        f"{_number(rate)} | {_number(rate)} |"
    )


def report() -> str:
    lines = [
        "<!-- Written by `python -m bench.capacity --report` (bench/capacity.py); do not edit. -->",
        "",
        "<!-- --8<-- [start:vectors] -->",
        "### One upload (default profile)",
        "",
        *vector_table(UPLOAD),
        "",
        "### One reprocess",
        "",
        *vector_table(REPROCESS),
        "<!-- --8<-- [end:vectors] -->",
        "",
        "<!-- --8<-- [start:rates] -->",
        "| uploads/s | handle_upload concurrency | DynamoDB write units/s (table + indexes) | busiest partition, write units/s | S3 PUT/s, output bucket | SNS publishes/s | API requests/s |",
        "|---|---|---|---|---|---|---|",
        *(_rate_row(rate) for rate in (10, 100, 1_000)),
        "<!-- --8<-- [end:rates] -->",
        "",
        "<!-- --8<-- [start:scenarios] -->",
        "Use is load over the default quota; the first limit is the one used most. "
        f"Quotas as published on {QUOTAS_READ}.",
        "",
        "| scenario | first limit reached | load / limit | use | then | hottest partition (write units/s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, load in SCENARIOS:
        first = first_limit(load)
        hottest = max(partition_writes(load), key=lambda row: row[3])
        lines.append(
            f"| {name} | {first.limit_name} | {_number(first.load)} / {_number(first.limit)} | "
            f"{100 * first.used:.0f} % | {first.change} | {hottest[0]} `{hottest[1]}`: {_number(hottest[3])} |"
        )
    lines += ["<!-- --8<-- [end:scenarios] -->", "", *quota_table(), ""]
    return "\n".join(lines)


def quota_table() -> list[str]:
    """Every quota the model checks, and the unit rules it is weighed by, each with its page."""
    rules = ", ".join(f"[{what}]({page})" for what, page in UNIT_RULES.items())
    return [
        "<!-- --8<-- [start:quotas] -->",
        f"Default quotas, per account and Region unless noted, as published on {QUOTAS_READ}:",
        "",
        "| quota | default | page |",
        "|---|---|---|",
        *(f"| {quota.what} | {_number(quota.limit)} | {quota.page} |" for quota in QUOTAS),
        "",
        f"DynamoDB's units follow the rules AWS publishes (devstack/cost_vector.py, read {RULES_READ}): {rules}.",
        "<!-- --8<-- [end:quotas] -->",
    ]


def table(load: Load) -> str:
    rows = ["index  partition key  units/upload  units/s on the busiest value  limit"]
    for index, pattern, units, per_second in partition_writes(load):
        flag = "  OVER" if per_second > PARTITION_WRITE_UNITS.limit else ""
        rows.append(
            f"{index}  {pattern}  {_number(units)}  {_number(per_second)}  {PARTITION_WRITE_UNITS.limit:,}{flag}"
        )
    rows.append("")
    rows.append("limit  load  quota  use")
    for check in sorted(checks(load), key=lambda c: -c.used):
        rows.append(f"{check.limit_name}  {_number(check.load)}  {_number(check.limit)}  {100 * check.used:.0f} %")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0, help="uploads per second (default %(default)s)")
    parser.add_argument("--owners", type=int, default=10_000, help="owners uploading evenly (default %(default)s)")
    parser.add_argument("--hot-owner-share", type=float, default=0.0, help="the hottest owner's share, 0 to 1")
    parser.add_argument("--duplicate-share", type=float, default=0.0, help="its uploads of the very same bytes")
    parser.add_argument("--reprocess-rate", type=float, default=0.0, help="reprocesses per second")
    parser.add_argument("--pollers", type=int, default=0, help="front ends waiting at once")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between polls; 0: long-poll")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--report", action="store_true", help="write bench/CAPACITY.md instead")
    args = parser.parse_args(argv)
    if args.report:
        REPORT.write_text(report())
        print(f"wrote {REPORT}")
        return 0
    load = Load(
        args.rate,
        args.owners,
        args.hot_owner_share,
        args.duplicate_share,
        args.reprocess_rate,
        args.pollers,
        args.poll_interval,
        args.region,
    )
    print(table(load))
    first = first_limit(load)
    print(f"\nfirst limit: {first.limit_name} at {100 * first.used:.0f} % ({first.change})")
    over = failures(load)
    for check in over:
        print(f"OVER: {check.limit_name}: {_number(check.load)} > {_number(check.limit)}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
