"""Everything the stack takes from moto beyond its public API, in one place to check when moto moves.

The ledger weighs each DynamoDB write from the item before and after it, which moto's server does not
answer with: `MotoTables` reads them from moto's backends in this process. `recording_moto_server`
is moto's threaded server with the ledger, S3's upload rules (devstack/s3_rules.py) and the metrics
endpoint in front of its WSGI app, which its constructor offers no way to add.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devstack.cost_vector import IndexShape, TableShape
from devstack.idle import IdleEndpoint
from devstack.ledger import Item, Ledger, LedgerMiddleware
from devstack.metrics import MetricsEndpoint, MetricStore
from devstack.s3_rules import S3Rules


class MotoTables:
    """moto's DynamoDB tables and items (the `Tables` the ledger reads), in moto's default account."""

    def shape(self, region: str, table: str) -> TableShape | None:
        try:
            found = _backend(region).get_table(table)
        except Exception:  # an unknown table: moto answers the error, nothing to weigh
            return None
        keys = tuple(k for k in (found.hash_key_attr, found.range_key_attr) if k)
        return TableShape(keys, tuple(_index_shape(index) for index in found.global_indexes))

    def item(self, region: str, table: str, key: Item) -> Item | None:
        try:
            found = _backend(region).get_item(table, key)
        except Exception:  # a malformed key: moto answers the error
            return None
        return dict(found.to_json()["Attributes"]) if found is not None else None


SHUTDOWN_POLL_SECONDS = 0.05  # how soon a stopped server notices (werkzeug's default, 0.5 s, each stop)


def queue_depth(region: str, name: str) -> int:
    """Messages in an SQS queue, in flight (received, not yet deleted) and delayed ones too; read from
    moto's backend, not over HTTP, so that asking is no request in the ledger."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    try:
        queue = sqs_backends[DEFAULT_ACCOUNT_ID][region].get_queue(name)
    except Exception:  # not created (yet): nothing in it
        return 0
    return int(queue.approximate_number_of_messages) + int(queue.approximate_number_of_messages_not_visible)


def _backend(region: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][region]


def _index_shape(index: Any) -> IndexShape:
    keys = tuple(k["AttributeName"] for k in sorted(index.schema, key=lambda k: k["KeyType"] != "HASH"))
    projection = index.projection or {}
    kind = projection.get("ProjectionType")
    projected = None if kind == "ALL" else tuple(projection.get("NonKeyAttributes", []) if kind == "INCLUDE" else [])
    return IndexShape(index.name, keys, projected)


def recording_moto_server(
    host: str,
    port: int,
    ledger: Ledger,
    metrics: MetricStore,
    credentials: dict[str, str],
    busy: Callable[[], list[str]],
) -> Any:
    """moto's ThreadedMotoServer with the ledger (and `GET /_metrics`, `GET /_idle`, which asks `busy`)
    in front of its app, and S3's upload rules between them (so the ledger counts refused requests
    too); `credentials`: access key -> secret."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class RecordingMotoServer(ThreadedMotoServer):  # type: ignore[misc]
        def _server_entry(self) -> None:
            moto = DomainDispatcherApplication(create_backend_app)
            recorded = LedgerMiddleware(S3Rules(moto, credentials), ledger, MotoTables())
            app = IdleEndpoint(MetricsEndpoint(recorded, metrics), busy)
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)

    return RecordingMotoServer(ip_address=host, port=port, verbose=False)
