"""The supervisor examples in deploy/ start real commands and probe real endpoints: each
Kubernetes container runs a ``firstvalue`` command, probes ``/healthz`` (liveness) and
``/readyz`` (readiness) on a port it declares and configures, and the systemd unit restarts
everything but the refusal exit status."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

from firstvalue.cli import app

DEPLOY = Path(__file__).parents[2] / "deploy"
PORT_SETTING = {
    "api": "FIRSTVALUE_API_PORT",
    "ingest": "FIRSTVALUE_INGEST_METRICS_PORT",
    "milestones": "FIRSTVALUE_MILESTONES_METRICS_PORT",
}


def _commands() -> set[str]:
    return {command.name or command.callback.__name__ for command in app.registered_commands}


def test_each_kubernetes_service_probes_liveness_and_readiness_on_its_own_port() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "firstvalue.yaml").read_text()))
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    assert {d["spec"]["template"]["spec"]["containers"][0]["args"][0] for d in deployments} == set(
        PORT_SETTING
    )
    for deployment in deployments:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        command = container["args"][0]
        assert command in _commands()
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = {e["name"]: e["value"] for e in container["env"]}
        assert int(env[PORT_SETTING[command]]) in ports.values()
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ports
            assert container[probe]["timeoutSeconds"] > 1  # /readyz answers within a second


def test_the_systemd_unit_restarts_a_service_unless_it_refused_to_start() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "firstvalue@.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("/firstvalue %i")
    assert service["Restart"] == "always"
    assert service["RestartPreventExitStatus"] == "2"  # the CLI's exit for bad settings
