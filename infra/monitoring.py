"""What tells an operator that imgpress breaks, as the template infra/monitoring.json: the alarms (each
notifying the stage's alarm topic, each naming its runbook), a dashboard and saved Logs Insights queries.

Its own stack, `imgpress-<stage>-monitoring`, deployed by `python -m infra resources` right after the
resources stack: the step both ways to deploy run (`make deploy`, and `make package` with Terraform,
docs/deploy/index.md). Everything it watches is named by the stage alone (functions as Chalice names
them, queues, table, log groups), so it needs no output of another stack and can exist before the
functions do: an alarm on a metric nobody has written yet waits in INSUFFICIENT_DATA.

The template is written from here, so the dashboard's JSON body and the alarms' runbook anchors have
one source: `python -m infra.monitoring` rewrites it (tests/infra/test_monitoring.py checks it is current).
The metrics are chalicelib/metrics.py's; the runbooks are docs/troubleshooting.md's sections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.metrics import NAMESPACE
from infra.policy import FUNCTIONS

TEMPLATE = Path(__file__).resolve().parent / "monitoring.json"
RUNBOOKS = "docs/troubleshooting.md"
PERIOD = 300
# The functions every stage has (the JWT authorizer exists on API_AUTH=jwt stages only).
WATCHED_FUNCTIONS = tuple(name for name in FUNCTIONS if name != "jwt_authorizer")

PARAMETERS: dict[str, dict[str, Any]] = {
    "Stage": {
        "Type": "String",
        "AllowedPattern": "^[a-z][a-z0-9-]{0,15}$",
        "Description": "Chalice stage name; every name watched is derived from it.",
    },
    "AlarmEmail": {
        "Type": "String",
        "Default": "",
        "Description": "An address the alarm topic mails every alarm to (it must confirm the subscription); empty: none.",
    },
    "RunbookUrl": {
        "Type": "String",
        "Default": RUNBOOKS,
        "Description": "Where each alarm's runbook section is read, before its #anchor: the docs site's troubleshooting.html where it is published.",
    },
    "ApiName": {
        "Type": "String",
        "Default": "imgpress",
        "Description": "The REST API's name, which API Gateway's metrics are filed under (Chalice names it after the app).",
    },
    "ApiGatewayStage": {
        "Type": "String",
        "Default": "api",
        "Description": "api_gateway_stage of the Chalice stage.",
    },
    "UploadLatencyObjectiveSeconds": {
        "Type": "Number",
        "Default": 30,
        "MinValue": 1,
        "Description": "Objective: 95 % of uploads done or failed within this many seconds of their upload.",
    },
    "FailedImageRatePercent": {
        "Type": "Number",
        "Default": 10,
        "MinValue": 0,
        "MaxValue": 100,
        "Description": "Alarm when more than this share of the uploads ended in 15 minutes failed.",
    },
    "FailedImageMinimum": {
        "Type": "Number",
        "Default": 10,
        "MinValue": 1,
        "Description": "The failed-image rate counts only in 15 minutes with at least this many uploads ended.",
    },
    "FunctionErrorsThreshold": {
        "Type": "Number",
        "Default": 5,
        "MinValue": 1,
        "Description": "Alarm when the functions' errors in 5 minutes reach this many (retried faults count too).",
    },
    "Api5xxRatePercent": {
        "Type": "Number",
        "Default": 1,
        "MinValue": 0,
        "MaxValue": 100,
        "Description": "Alarm when more than this share of the API's answers in 5 minutes (at least 20) are 5xx.",
    },
    "ReprocessQueueAgeSeconds": {
        "Type": "Number",
        "Default": 3600,
        "MinValue": 60,
        "Description": "Alarm when the oldest reprocess message has waited this long (a backfill drains in order).",
    },
}


def _queue(name: str) -> dict[str, Any]:
    return {"Name": "QueueName", "Value": {"Fn::Sub": f"imgpress-${{Stage}}-{name}"}}


def _function(name: str) -> str:
    """Chalice's function name on the stage: the API handler is the app's, the others have a suffix."""
    return "imgpress-${Stage}" if name == "api_handler" else f"imgpress-${{Stage}}-{name}"


STAGE_DIMENSION = {"Name": "Stage", "Value": {"Ref": "Stage"}}
TABLE_DIMENSION = {"Name": "TableName", "Value": {"Fn::Sub": "imgpress-${Stage}-images"}}
API_DIMENSIONS = [
    {"Name": "ApiName", "Value": {"Ref": "ApiName"}},
    {"Name": "Stage", "Value": {"Ref": "ApiGatewayStage"}},
]


def _query(
    query_id: str, namespace: str, metric: str, dimensions: list[dict[str, Any]], stat: str, period: int = PERIOD
) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions},
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": False,
    }


def _expression(expression: str | dict[str, Any], label: str) -> dict[str, Any]:
    return {"Id": "result", "Expression": expression, "Label": label, "ReturnData": True}


def _per_function(prefix: str, metric: str) -> tuple[list[dict[str, Any]], str]:
    """The Lambda metric of every function, and the sum of them (0 where one has no data)."""
    queries = [
        _query(
            f"{prefix}{index}",
            "AWS/Lambda",
            metric,
            [{"Name": "FunctionName", "Value": {"Fn::Sub": _function(f)}}],
            "Sum",
        )
        for index, f in enumerate(WATCHED_FUNCTIONS)
    ]
    return queries, " + ".join(f"FILL({query['Id']}, 0)" for query in queries)


@dataclass(frozen=True)
class Alarm:
    """One alarm: its resource, its name (imgpress-<stage>-<name>, the runbook's anchor `alarm-<name>`),
    what it means in one sentence, and what it watches (the metric part of AWS::CloudWatch::Alarm)."""

    resource: str
    name: str
    meaning: str
    watches: dict[str, Any]

    @property
    def anchor(self) -> str:
        return f"alarm-{self.name}"

    def properties(self) -> dict[str, Any]:
        return {
            "AlarmName": {"Fn::Sub": f"imgpress-${{Stage}}-{self.name}"},
            "AlarmDescription": {"Fn::Sub": f"{self.meaning} Runbook: ${{RunbookUrl}}#{self.anchor}"},
            "AlarmActions": [{"Ref": "AlarmTopic"}],
            "OKActions": [{"Ref": "AlarmTopic"}],
            "TreatMissingData": "notBreaching",
            **self.watches,
        }


def _at_least(threshold: Any, periods: int = 1) -> dict[str, Any]:
    return {
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": threshold,
        "EvaluationPeriods": periods,
        "DatapointsToAlarm": periods,
    }


def _above(threshold: Any, periods: int = 1) -> dict[str, Any]:
    return {**_at_least(threshold, periods), "ComparisonOperator": "GreaterThanThreshold"}


def _alarms() -> list[Alarm]:
    errors, errors_sum = _per_function("errors", "Errors")
    throttles, throttles_sum = _per_function("throttles", "Throttles")
    stage = [STAGE_DIMENSION]
    return [
        Alarm(
            "UploadFailuresAlarm",
            "upload-failures",
            "An upload used up every attempt and went to the failure queue: its image ends failed (processing_error).",
            {
                "Namespace": "AWS/SQS",
                "MetricName": "NumberOfMessagesSent",
                "Dimensions": [_queue("upload-failures")],
                "Statistic": "Sum",
                "Period": PERIOD,
                **_at_least(1),
            },
        ),
        Alarm(
            "FunctionErrorsAlarm",
            "function-errors",
            "imgpress's functions raised (or timed out, or ran out of memory) this often in 5 minutes.",
            {"Metrics": [*errors, _expression(errors_sum, "errors")], **_at_least({"Ref": "FunctionErrorsThreshold"})},
        ),
        Alarm(
            "FunctionThrottlesAlarm",
            "function-throttles",
            "Lambda refused to run an imgpress function: the account's or the function's concurrency is used up.",
            {"Metrics": [*throttles, _expression(throttles_sum, "throttles")], **_at_least(1)},
        ),
        Alarm(
            "TableThrottlesAlarm",
            "table-throttles",
            "DynamoDB throttled reads or writes of the images table.",
            {
                "Metrics": [
                    _query("reads", "AWS/DynamoDB", "ReadThrottleEvents", [TABLE_DIMENSION], "Sum"),
                    _query("writes", "AWS/DynamoDB", "WriteThrottleEvents", [TABLE_DIMENSION], "Sum"),
                    _expression("FILL(reads, 0) + FILL(writes, 0)", "throttle events"),
                ],
                **_at_least(1),
            },
        ),
        Alarm(
            "Api5xxAlarm",
            "api-5xx",
            "Too many of the API's answers are 5xx.",
            {
                "Metrics": [
                    _query("failed", "AWS/ApiGateway", "5XXError", API_DIMENSIONS, "Sum"),
                    _query("answers", "AWS/ApiGateway", "Count", API_DIMENSIONS, "Sum"),
                    _expression("IF(answers >= 20, 100 * FILL(failed, 0) / answers, 0)", "5xx (%)"),
                ],
                **_above({"Ref": "Api5xxRatePercent"}),
            },
        ),
        Alarm(
            "FailedImageRateAlarm",
            "failed-image-rate",
            "Too many uploads ended failed in 15 minutes.",
            {
                "Metrics": [
                    _query("failed", NAMESPACE, "ImagesFailed", stage, "Sum", 900),
                    _query("done", NAMESPACE, "ImagesDone", stage, "Sum", 900),
                    _expression(
                        {
                            "Fn::Sub": "IF(FILL(done, 0) + FILL(failed, 0) >= ${FailedImageMinimum}, "
                            "100 * FILL(failed, 0) / (FILL(done, 0) + FILL(failed, 0)), 0)"
                        },
                        "failed (%)",
                    ),
                ],
                **_above({"Ref": "FailedImageRatePercent"}),
            },
        ),
        Alarm(
            "UploadLatencyAlarm",
            "upload-latency",
            "The objective is missed: over 15 minutes, the slowest 5 % of uploads took longer than it allows from upload to done or failed.",
            {
                "Metrics": [
                    _query("latency", NAMESPACE, "UploadToFinal", stage, "p95"),
                    _expression("latency / 1000", "p95 upload to final (s)"),
                ],
                **_above({"Ref": "UploadLatencyObjectiveSeconds"}, periods=3),
            },
        ),
        Alarm(
            "ReprocessQueueAgeAlarm",
            "reprocess-queue-age",
            "A reprocess request has waited too long on its queue.",
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [_queue("reprocess")],
                "Statistic": "Maximum",
                "Period": PERIOD,
                **_above({"Ref": "ReprocessQueueAgeSeconds"}),
            },
        ),
        Alarm(
            "ReprocessDeadLettersAlarm",
            "reprocess-dead-letters",
            "Reprocess messages the consumer could not handle reached the dead-letter queue.",
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [_queue("reprocess-dead-letters")],
                "Statistic": "Maximum",
                "Period": PERIOD,
                **_at_least(1),
            },
        ),
        Alarm(
            "SweeperEndingsAlarm",
            "sweeper-endings",
            "The sweeper ended a stuck image or re-sent an S3 event that never came: an upload's own path broke.",
            {
                "Metrics": [
                    _query("ended", NAMESPACE, "EndedBySweeper", stage, "Sum"),
                    _query("redriven", NAMESPACE, "RedrivenBySweeper", stage, "Sum"),
                    _expression("FILL(ended, 0) + FILL(redriven, 0)", "ended or re-sent by the sweeper"),
                ],
                **_at_least(1),
            },
        ),
    ]


ALARMS = _alarms()


# -- the dashboard --------------------------------------------------------------------------------


def _own(metric: str, stat: str = "Sum", label: str | None = None) -> list[Any]:
    """One of imgpress's metrics, stage-wide, as a dashboard widget lists it."""
    return [NAMESPACE, metric, "Stage", "${Stage}", {"stat": stat, "label": label or metric}]


def _each_function(metric: str, stat: str) -> list[list[Any]]:
    return [
        ["AWS/Lambda", metric, "FunctionName", _function(name), {"stat": stat, "label": name}]
        for name in WATCHED_FUNCTIONS
    ]


def _search(metric: str, dimensions: str, label: str) -> list[Any]:
    """Every series of `metric` under a dimension set (by code, by profile), found when the widget loads."""
    query = f"SEARCH('{{{NAMESPACE},{dimensions}}} MetricName=\"{metric}\" Stage=\"${{Stage}}\"', 'Sum', {PERIOD})"
    return [{"expression": query, "label": label, "id": f"search{metric}"}]


def _widget(title: str, metrics: list[list[Any]], x: int, y: int, **extra: Any) -> dict[str, Any]:
    properties = {
        "title": title,
        "region": "${AWS::Region}",
        "view": "timeSeries",
        "period": PERIOD,
        "metrics": metrics,
    }
    return {"type": "metric", "x": x, "y": y, "width": 8, "height": 6, "properties": {**properties, **extra}}


def _queue_metric(queue: str, metric: str, stat: str) -> list[Any]:
    return [
        "AWS/SQS",
        metric,
        "QueueName",
        f"imgpress-${{Stage}}-{queue}",
        {"stat": stat, "label": f"{queue}: {metric}"},
    ]


def dashboard_body() -> str:
    """The dashboard's JSON, with ${Stage}, ${AWS::Region} and the stack's parameters left to Fn::Sub."""
    alarm_arns = [
        f"arn:aws:cloudwatch:${{AWS::Region}}:${{AWS::AccountId}}:alarm:imgpress-${{Stage}}-{a.name}" for a in ALARMS
    ]
    objective = {"horizontal": [{"label": "objective", "value": "OBJECTIVE"}]}
    api_dimensions = ["ApiName", "${ApiName}", "Stage", "${ApiGatewayStage}"]
    widgets = [
        {
            "type": "alarm",
            "x": 0,
            "y": 0,
            "width": 24,
            "height": 3,
            "properties": {"title": "Alarms", "alarms": alarm_arns},
        },
        _widget(
            "Images",
            [
                _own(m)
                for m in ("ImagesDone", "ImagesFailed", "ImagesDeduplicated", "ImagesReprocessed", "ReprocessesFailed")
            ],
            0,
            3,
        ),
        _widget("Failed images by code", [_search("ImagesFailed", "Stage,Function,Code", "")], 8, 3),
        _widget(
            "Ended by recovery",
            [
                _own("EndedByFailureQueue"),
                _own("EndedBySweeper"),
                _own("RedrivenBySweeper"),
                _queue_metric("upload-failures", "NumberOfMessagesSent", "Sum"),
            ],
            16,
            3,
        ),
        _widget(
            "Upload to done or failed (s)",
            [
                [NAMESPACE, "UploadToFinal", "Stage", "${Stage}", {"stat": stat, "id": f"m{stat}", "visible": False}]
                for stat in ("p50", "p95", "p99")
            ]
            + [[{"expression": f"mp{p} / 1000", "label": f"p{p}"}] for p in (50, 95, 99)],
            0,
            9,
            annotations=objective,
        ),
        _widget(
            "Render and retry wait (ms)",
            [
                _own("RenderTime", "p50", "render p50"),
                _own("RenderTime", "p95", "render p95"),
                _own("RetryWait", "p95", "retry wait p95"),
            ],
            8,
            9,
        ),
        _widget("Bytes", [_own("BytesIn"), _own("BytesOut"), _own("BytesSaved")], 16, 9),
        _widget("Function duration p95 (ms)", _each_function("Duration", "p95"), 0, 15),
        _widget("Function concurrency (max)", _each_function("ConcurrentExecutions", "Maximum"), 8, 15),
        _widget(
            "Function errors and throttles",
            _each_function("Errors", "Sum") + _each_function("Throttles", "Sum"),
            16,
            15,
        ),
        _widget(
            "API answers",
            [
                ["AWS/ApiGateway", metric, *api_dimensions, {"stat": "Sum", "label": metric}]
                for metric in ("Count", "4XXError", "5XXError")
            ]
            + [_own("QuotaRefusals"), _own("AuthRefusals")],
            0,
            21,
        ),
        _widget(
            "Table",
            [
                ["AWS/DynamoDB", metric, "TableName", "imgpress-${Stage}-images", {"stat": "Sum", "label": metric}]
                for metric in (
                    "ReadThrottleEvents",
                    "WriteThrottleEvents",
                    "ConsumedReadCapacityUnits",
                    "ConsumedWriteCapacityUnits",
                )
            ],
            8,
            21,
        ),
        _widget(
            "Reprocess queues",
            [
                _queue_metric("reprocess", "ApproximateAgeOfOldestMessage", "Maximum"),
                _queue_metric("reprocess", "ApproximateNumberOfMessagesVisible", "Maximum"),
                _queue_metric("reprocess-dead-letters", "ApproximateNumberOfMessagesVisible", "Maximum"),
            ],
            16,
            21,
        ),
    ]
    body = json.dumps({"widgets": widgets}, separators=(",", ":"))
    return body.replace('"OBJECTIVE"', "${UploadLatencyObjectiveSeconds}")


# -- saved Logs Insights queries ------------------------------------------------------------------

QUERIES = {
    "ImageStoryQuery": (
        "why did image X fail",
        "fields @timestamp, function, outcome, code, ended_by, attempt, message, exception, request_id\n"
        "| filter @message like 'PUT-THE-IMAGE-ID-HERE'\n"
        "| sort @timestamp asc",
    ),
    "SlowestRendersQuery": (
        "slowest renders (pick today as the time range)",
        "fields @timestamp, image_id, function, Profile, RenderTime, UploadToFinal, BytesIn, OutputPixels\n"
        "| filter ispresent(RenderTime)\n"
        "| sort RenderTime desc\n"
        "| limit 25",
    ),
    "FailuresByCodeQuery": (
        "failed images by code and function",
        "filter outcome = 'failed'\n| stats count(*) as images by code, function, ended_by\n| sort images desc",
    ),
}


def _log_groups() -> list[dict[str, Any]]:
    return [{"Fn::Sub": f"/aws/lambda/{_function(name)}"} for name in WATCHED_FUNCTIONS]


def template() -> dict[str, Any]:
    resources: dict[str, Any] = {
        "AlarmTopic": {
            "Type": "AWS::SNS::Topic",
            "Properties": {"TopicName": {"Fn::Sub": "imgpress-${Stage}-alarms"}},
        },
        "AlarmEmailSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Properties": {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}},
        },
    }
    for alarm in ALARMS:
        resources[alarm.resource] = {"Type": "AWS::CloudWatch::Alarm", "Properties": alarm.properties()}
    resources["Dashboard"] = {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": {"Fn::Sub": "imgpress-${Stage}"},
            "DashboardBody": {"Fn::Sub": dashboard_body()},
        },
    }
    for resource, (title, query) in QUERIES.items():
        resources[resource] = {
            "Type": "AWS::Logs::QueryDefinition",
            "Properties": {
                "Name": {"Fn::Sub": f"imgpress-${{Stage}}/{title}"},
                "QueryString": query,
                "LogGroupNames": _log_groups(),
            },
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "imgpress: a stage's alarms, dashboard and saved queries (written by `python -m infra.monitoring`, deployed by `python -m infra resources`).",
        "Parameters": PARAMETERS,
        "Conditions": {"HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}},
        "Resources": resources,
        "Outputs": {
            "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}},
            "DashboardUrl": {
                "Value": {
                    "Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards:name=imgpress-${Stage}"
                }
            },
        },
    }


def render() -> str:
    return json.dumps(template(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    TEMPLATE.write_text(render())
    print(f"wrote {TEMPLATE}")
