"""What Chalice leaves out of the SQS event source mappings it creates: ReportBatchItemFailures.

Chalice 1.34 creates (and updates) SQS mappings without `FunctionResponseTypes`, so AWS ignores
the `batchItemFailures` a consumer returns and retries its whole batch, the images that finished
included. `python -m infra attach` turns the setting on after every `chalice deploy` (an update by
Chalice leaves it alone: UpdateEventSourceMapping changes only what it is given), and
`make package` writes it into the Terraform configuration Chalice generates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
# The SQS consumers that answer with batchItemFailures (chalicelib/reprocess.py consume_batch).
PARTIAL_BATCH_CONSUMERS = ("reprocess_images",)


def report_batch_item_failures(lambda_client: Any, function_names: Iterable[str]) -> list[str]:
    """Turn the setting on for every SQS mapping of each function; returns the mappings changed."""
    changed: list[str] = []
    for function in function_names:
        for mapping in _mappings(lambda_client, function):
            if ":sqs:" not in str(mapping.get("EventSourceArn", "")):
                continue
            if REPORT_BATCH_ITEM_FAILURES in mapping.get("FunctionResponseTypes", []):
                continue
            lambda_client.update_event_source_mapping(
                UUID=mapping["UUID"], FunctionResponseTypes=[REPORT_BATCH_ITEM_FAILURES]
            )
            changed.append(str(mapping["UUID"]))
    return changed


def _mappings(lambda_client: Any, function: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in lambda_client.get_paginator("list_event_source_mappings").paginate(FunctionName=function):
        found.extend(page.get("EventSourceMappings", []))
    return found


def patch_terraform(document: Mapping[str, Any], handlers: Iterable[str] = PARTIAL_BATCH_CONSUMERS) -> dict[str, Any]:
    """The chalice.tf.json document with `function_response_types` on the named handlers' mappings.

    Chalice's Terraform refers to a function as `${aws_lambda_function.<handler>.arn}`."""
    patched = {**document, "resource": {**document.get("resource", {})}}
    mappings = dict(patched["resource"].get("aws_lambda_event_source_mapping", {}))
    wanted = {f"${{aws_lambda_function.{handler}.arn}}" for handler in handlers}
    for name, mapping in mappings.items():
        if mapping.get("function_name") in wanted:
            mappings[name] = {**mapping, "function_response_types": [REPORT_BATCH_ITEM_FAILURES]}
    if mappings:
        patched["resource"]["aws_lambda_event_source_mapping"] = mappings
    return patched
