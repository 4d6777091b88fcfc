"""The shipped alert rules and scrape config pass promtool, and each alert fires on the
series it is about (and stays quiet on its look-alikes), with its real ``for`` durations:
``promtool test rules`` on synthetic series (no waiting, no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .prometheus import ALERTS, CONFIG, promtool

API = 'job="firstvalue-api"'
INGEST = 'job="firstvalue-ingest", instance="ingest-1"'
WATERMARK_LAG = 'firstvalue_watermark_lag_seconds{{job="firstvalue-{job}"}}'
LAG = f'firstvalue_consumer_lag_messages{{{INGEST}, topic="analytics.events", group="ingest"}}'


def breach(segment: str, severity: str, first_value: str, instance: str) -> str:
    return (
        f'firstvalue_ttfv_breach_onboardings{{{API}, instance="{instance}", '
        f'segment="{segment}", severity="{severity}", first_value="{first_value}"}}'
    )


def lateness(le: str) -> str:
    return f'firstvalue_timer_lateness_seconds_bucket{{job="firstvalue-milestones", le="{le}"}}'


def alert(name: str, at: str, *expected: dict[str, Any]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": list(expected)}


def fired(summary: str, **labels: str) -> dict[str, Any]:
    return {"exp_labels": labels, "exp_annotations": {"summary": summary}}


SMB_BREACH = {"segment": "smb", "severity": "warning", "team": "customer-success"}
CASES: list[dict[str, Any]] = [
    {  # Two API instances report the same database: counted once, severe ones included.
        "interval": "1m",
        "input_series": [
            {"series": breach("smb", "breach", "open", "api-1"), "values": "2x20"},
            {"series": breach("smb", "breach", "open", "api-2"), "values": "2x20"},
            {"series": breach("smb", "severe", "open", "api-1"), "values": "1x20"},
            {"series": breach("smb", "severe", "open", "api-2"), "values": "1x20"},
            {"series": breach("smb", "breach", "reached", "api-1"), "values": "7x20"},
            {"series": breach("mid_market", "breach", "open", "api-1"), "values": "0x20"},
            {"series": breach("mid_market", "breach", "reached", "api-1"), "values": "4x20"},
        ],
        "alert_rule_test": [
            alert("FirstvalueTTFVBreach", "4m"),  # pending: `for: 5m`
            alert(
                "FirstvalueTTFVBreach",
                "6m",
                fired("3 smb onboarding(s) past the TTFV target without first value", **SMB_BREACH),
            ),
            alert(
                "FirstvalueTTFVSevereBreach",
                "6m",
                fired(
                    "1 smb onboarding(s) at 2x the TTFV target or more",
                    segment="smb",
                    severity="critical",
                    team="customer-success",
                ),
            ),
        ],
    },
    {  # Only breaches whose first value came (late): history, not a page.
        "interval": "1m",
        "input_series": [
            {"series": breach("smb", "breach", "reached", "api-1"), "values": "5x20"},
            {"series": breach("smb", "breach", "open", "api-1"), "values": "0x20"},
            {"series": breach("smb", "severe", "open", "api-1"), "values": "0x20"},
        ],
        "alert_rule_test": [
            alert("FirstvalueTTFVBreach", "15m"),
            alert("FirstvalueTTFVSevereBreach", "15m"),
        ],
    },
    {  # Batches stop at minute 5 while events wait: stalled once 10 + 5 minutes passed.
        "interval": "1m",
        "input_series": [
            {
                "series": LAG,
                "values": "500x30",
            },
            {"series": f"firstvalue_ingest_batches_total{{{INGEST}}}", "values": "0+10x5 50x25"},
        ],
        "alert_rule_test": [
            alert("FirstvalueIngestStalled", "18m"),
            alert(
                "FirstvalueIngestStalled",
                "21m",
                fired(
                    "Ingest stalled: 500 events waiting on analytics.events, "
                    "none stored for 15 minutes",
                    topic="analytics.events",
                    group="ingest",
                    severity="critical",
                    team="platform",
                ),
            ),
            alert("FirstvalueConsumerLagHigh", "20m"),  # 500 is not high
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            {
                "series": LAG,
                "values": "20000x30",
            },
            {"series": f"firstvalue_ingest_batches_total{{{INGEST}}}", "values": "0+10x30"},
        ],
        "alert_rule_test": [
            alert("FirstvalueIngestStalled", "20m"),
            alert(
                "FirstvalueConsumerLagHigh",
                "20m",
                fired(
                    "Consumer group ingest is 20000 messages behind on analytics.events",
                    topic="analytics.events",
                    group="ingest",
                    severity="warning",
                    team="platform",
                ),
            ),
        ],
    },
    {  # A DLQ still growing after 10 minutes alerts; one that stopped growing does not.
        "interval": "1m",
        "input_series": [
            {
                "series": f'firstvalue_dlq_messages{{{INGEST}, topic="analytics.events.dlq"}}',
                "values": "0+2x40",
            },
        ],
        "alert_rule_test": [
            alert("FirstvalueDLQGrowing", "8m"),
            alert(
                "FirstvalueDLQGrowing",
                "20m",
                fired(
                    "analytics.events.dlq grew by 30 messages in 15 minutes",
                    topic="analytics.events.dlq",
                    severity="warning",
                    team="platform",
                ),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            {
                "series": f'firstvalue_dlq_messages{{{INGEST}, topic="analytics.events.dlq"}}',
                "values": "0+2x5 10x40",
            },
        ],
        "alert_rule_test": [alert("FirstvalueDLQGrowing", "30m")],
    },
    {  # Timers firing 2-5 minutes late for 10 minutes alert; 30 s late (the tick) does not.
        "interval": "1m",
        "input_series": [
            {"series": lateness("60"), "values": "0x30"},
            {"series": lateness("120"), "values": "0x30"},
            {"series": lateness("300"), "values": "0+10x30"},
            {"series": lateness("+Inf"), "values": "0+10x30"},
        ],
        "alert_rule_test": [
            alert("FirstvalueTimersLate", "8m"),
            alert(  # p99 interpolated in the (120, 300] bucket: 120 + 0.99 * 180 = 298.2 s
                "FirstvalueTimersLate",
                "15m",
                fired(
                    "SLA timers fire 4m 58s after their due moment (p99)",
                    severity="warning",
                    team="platform",
                ),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            {"series": lateness("30"), "values": "0+10x30"},
            {"series": lateness("60"), "values": "0+10x30"},
            {"series": lateness("+Inf"), "values": "0+10x30"},
        ],
        "alert_rule_test": [alert("FirstvalueTimersLate", "25m")],
    },
    {  # A watermark 20 minutes behind for 10 minutes alerts; 30 s behind (live) does not.
        "interval": "1m",
        "input_series": [
            {"series": WATERMARK_LAG.format(job="ingest"), "values": "30 30 1200x20"},
            {"series": WATERMARK_LAG.format(job="milestones"), "values": "5x22"},
        ],
        "alert_rule_test": [
            alert("FirstvalueWatermarkBehind", "8m"),  # pending: `for: 10m`
            alert(
                "FirstvalueWatermarkBehind",
                "13m",
                fired(
                    "Input watermark 20m 0s behind the clock: announcements held",
                    severity="warning",
                    team="platform",
                ),
            ),
        ],
    },
    {
        "interval": "1m",
        "input_series": [{"series": WATERMARK_LAG.format(job="ingest"), "values": "30x30"}],
        "alert_rule_test": [alert("FirstvalueWatermarkBehind", "25m")],
    },
    {
        "interval": "1m",
        "input_series": [
            {"series": f"up{{{INGEST}}}", "values": "1 1 0x10"},
            {"series": 'up{job="node", instance="other"}', "values": "0x12"},
        ],
        "alert_rule_test": [
            alert("FirstvalueServiceDown", "4m"),
            alert(
                "FirstvalueServiceDown",
                "9m",
                fired(
                    "firstvalue-ingest on ingest-1 is not answering /metrics",
                    job="firstvalue-ingest",
                    instance="ingest-1",
                    severity="critical",
                    team="platform",
                ),
            ),
        ],
    },
]


def summaries_only(rules: dict[str, Any]) -> dict[str, Any]:
    """The rules with their prose annotations dropped (promtool compares annotations
    verbatim; the summary, which carries the value, stays)."""
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    return rules


def test_alert_rules_pass_promtool_check_rules() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout


def test_example_scrape_config_passes_promtool_check_config() -> None:
    checked = promtool("check", "config", "--syntax-only", str(CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_fires_on_its_condition_and_not_on_look_alikes(tmp_path: Path) -> None:
    rules = summaries_only(yaml.safe_load(ALERTS.read_text()))
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    covered = {case["alertname"] for test in CASES for case in test["alert_rule_test"]}
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert covered == names  # every shipped alert has a case
    cases = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": CASES}
    (tmp_path / "cases.yml").write_text(yaml.safe_dump(cases, sort_keys=False))
    tested = promtool("test", "rules", str(tmp_path / "cases.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
