"""The monitoring stack (infra/monitoring.py, written to infra/monitoring.json): every alarm the issue
asks for, each notifying the alarm topic and naming a runbook section that exists; the dashboard; the
saved queries; the stage's thresholds; and all of it accepted by CloudWatch's own API (moto's
CloudFormation skips alarms, so each alarm is put through PutMetricAlarm with the stage's values)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.metrics import METRICS, NAMESPACE
from infra import monitoring, stages
from tests.conftest import use_fake_account

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads(monitoring.TEMPLATE.read_text())
ALARMS = {
    name: body["Properties"] for name, body in TEMPLATE["Resources"].items() if body["Type"] == "AWS::CloudWatch::Alarm"
}
RUNBOOKS = (ROOT / monitoring.RUNBOOKS).read_text()


def test_the_committed_template_is_what_the_module_writes() -> None:
    assert monitoring.TEMPLATE.read_text() == monitoring.render(), "run `python -m infra.monitoring`"


def test_every_alarm_the_issue_asks_for_notifies_the_alarm_topic() -> None:
    assert {alarm.name for alarm in monitoring.ALARMS} == {
        "upload-failures",  # any message on the upload failure queue
        "function-errors",
        "function-throttles",
        "table-throttles",
        "api-5xx",
        "failed-image-rate",  # metric math over the outcome metrics
        "upload-latency",  # p95 upload -> final over the objective
        "reprocess-queue-age",
        "reprocess-dead-letters",
        "sweeper-endings",
    }
    for properties in ALARMS.values():
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}] == properties["OKActions"]
    subscription = TEMPLATE["Resources"]["AlarmEmailSubscription"]
    assert (
        subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"} and subscription["Condition"] == "HasAlarmEmail"
    )
    rate = ALARMS["FailedImageRateAlarm"]["Metrics"]
    assert {q["MetricStat"]["Metric"]["MetricName"] for q in rate if "MetricStat" in q} == {
        "ImagesDone",
        "ImagesFailed",
    }
    latency = ALARMS["UploadLatencyAlarm"]["Metrics"][0]["MetricStat"]
    assert latency["Stat"] == "p95" and ALARMS["UploadLatencyAlarm"]["Threshold"] == {
        "Ref": "UploadLatencyObjectiveSeconds"
    }


def test_each_alarm_names_its_runbook_section_which_exists() -> None:
    for alarm in monitoring.ALARMS:
        description = ALARMS[alarm.resource]["AlarmDescription"]["Fn::Sub"]
        assert description.endswith(f"Runbook: ${{RunbookUrl}}#{alarm.anchor}")
        assert len(description) < 1024 - 200  # CloudWatch's limit, with room for a long RunbookUrl
        assert re.search(rf"^##+ .*\{{#{alarm.anchor}\}}$", RUNBOOKS, re.MULTILINE), f"no section #{alarm.anchor}"
    assert monitoring.PARAMETERS["RunbookUrl"]["Default"] == monitoring.RUNBOOKS


def test_alarms_and_dashboard_read_only_metrics_imgpress_writes() -> None:
    body = TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    named = set(re.findall(rf'\["{NAMESPACE}","(\w+)"', body)) | set(re.findall(r'MetricName=\\"(\w+)\\"', body))
    for properties in ALARMS.values():
        for query in properties.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == NAMESPACE:
                named.add(metric["MetricName"])
    assert named and named <= set(METRICS)
    for metric in ("Duration", "ConcurrentExecutions", "Errors", "Throttles"):
        assert f'["AWS/Lambda","{metric}"' in body


def test_the_saved_queries_follow_an_image_and_find_the_slowest_renders() -> None:
    queries = {
        body["Properties"]["Name"]["Fn::Sub"]: body["Properties"]["QueryString"]
        for body in TEMPLATE["Resources"].values()
        if body["Type"] == "AWS::Logs::QueryDefinition"
    }
    assert "filter @message like 'PUT-THE-IMAGE-ID-HERE'" in queries["imgpress-${Stage}/why did image X fail"]
    assert "sort RenderTime desc" in queries["imgpress-${Stage}/slowest renders (pick today as the time range)"]


def test_each_stage_knob_is_a_parameter_of_the_template() -> None:
    knobs = json.loads(stages.STAGE_PARAMETERS.read_text())
    for stage in knobs:
        assert set(stages.extra_parameters(stage, "monitoring")) <= set(monitoring.PARAMETERS)
    parameters = stages.monitoring_parameters(stages.load_config(ROOT), "dev")
    assert parameters["ApiName"] == "imgpress" and parameters["ApiGatewayStage"] == "api"
    assert parameters["FailedImageRatePercent"] == "25"


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_fake_account(monkeypatch)
    with mock_aws():
        yield boto3.client("cloudwatch")


def resolved(value: Any, parameters: dict[str, str]) -> Any:
    """The template's Ref and Fn::Sub with the stage's values (the topic and the account moto's)."""
    known = {**parameters, "AlarmTopic": "arn:aws:sns:us-east-1:123456789012:imgpress-dev-alarms"}
    known.update({"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"})
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return known[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([\w:]+)\}", lambda m: known[m.group(1)], value["Fn::Sub"])
    if isinstance(value, dict):
        return {key: resolved(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item, parameters) for item in value]
    return value


def test_cloudwatch_accepts_every_alarm_and_the_dashboard_with_the_stages_values(cloudwatch: Any) -> None:
    defaults = {name: str(body.get("Default", "")) for name, body in monitoring.PARAMETERS.items()}
    parameters = {**defaults, **stages.monitoring_parameters(stages.load_config(ROOT), "prod")}
    for properties in ALARMS.values():
        alarm = resolved(properties, parameters)
        alarm["Threshold"] = float(alarm["Threshold"])
        cloudwatch.put_metric_alarm(**alarm)
    described = cloudwatch.describe_alarms()["MetricAlarms"]
    assert {a["AlarmName"] for a in described} == {f"imgpress-prod-{a.name}" for a in monitoring.ALARMS}
    assert all(a["AlarmActions"] == ["arn:aws:sns:us-east-1:123456789012:imgpress-dev-alarms"] for a in described)
    body = resolved(TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"], parameters)
    assert json.loads(body)["widgets"][0]["properties"]["alarms"][0].endswith(":alarm:imgpress-prod-upload-failures")
    cloudwatch.put_dashboard(DashboardName="imgpress-prod", DashboardBody=body)
