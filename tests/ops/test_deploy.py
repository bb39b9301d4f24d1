"""deploy/: image, compose stack, Kubernetes manifests, systemd unit, Alertmanager config.

Real validators run where they exist offline (amtool, systemd-analyze, kubernetes-validate,
kubectl kustomize); the rest are structural checks of what the files promise each other:
names, ports, paths and the config the exporter itself accepts (`--check-config`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests._cli import check_config

REPO = Path(__file__).resolve().parents[2]
CREDENTIALS = ("AKIDtest", "test-key")  # as a deployment's Secret would hand them over
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
AM_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
CREDENTIAL_ENV = ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in _yaml(ALERTS)["groups"] for rule in group["rules"]]


# ------------------------------------------------------------------------------ Dockerfile


def _dockerfile() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_is_slim_non_root_and_healthchecked_with_python() -> None:
    lines = _dockerfile()
    froms = [line.split()[1] for line in lines if line.startswith("FROM")]
    assert froms and all(image == "python:3.11-slim" for image in froms)
    users = [line.split()[1] for line in lines if line.startswith("USER")]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "USER must be a numeric non-root uid (runAsNonRoot)"
    (health,) = [line for line in lines if line.startswith("HEALTHCHECK")]
    assert '"python"' in health and "healthcheck.py" in health
    assert not re.search(r"\b(curl|wget)\b", " ".join(lines))
    assert any(line.startswith("ENTRYPOINT") and "tencent-live-exporter" in line for line in lines)


def test_dockerignore_keeps_the_package_and_nothing_else() -> None:
    rules = [
        line
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"
    kept = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    # Sources of every COPY from the build context (not --from=stage copies).
    copied = {
        part.rstrip("/")
        for line in _dockerfile()
        if line.startswith("COPY ") and "--from" not in line
        for part in line.split()[1:-1]
    }
    assert {"pyproject.toml", "README.md", "exporter"} <= kept
    assert copied and copied <= kept


def test_healthcheck_port_is_the_default_listen_port() -> None:
    from exporter.cli import parse_flags

    flags = parse_flags([])
    assert not isinstance(flags, str)
    port = flags.listen_address.rpartition(":")[2]
    (health,) = [line for line in _dockerfile() if line.startswith("HEALTHCHECK")]
    assert f'"127.0.0.1:{port}"' in health
    assert any(line == f"EXPOSE {port}" for line in _dockerfile())


# ------------------------------------------------------------------------------ compose


def _compose() -> dict[str, Any]:
    return dict(_yaml(DEPLOY / "compose.yaml"))


def test_compose_has_the_whole_stack() -> None:
    services = _compose()["services"]
    assert set(services) >= {"simulator", "exporter", "prometheus", "alertmanager", "grafana", "webhook-sink"}


def test_compose_bind_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


def test_compose_ports_are_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def _container_path(service: dict[str, Any], target: str) -> Path:
    """The host file bind-mounted at ``target`` (or containing it)."""
    for volume in service["volumes"]:
        source, mount = volume.split(":")[:2]
        if target == mount or target.startswith(mount + "/"):
            return DEPLOY / source / target[len(mount) :].lstrip("/")  # type: ignore[no-any-return]
    raise AssertionError(f"{target} is not mounted")


def test_compose_exporter_flags_parse_and_link_an_existing_dashboard() -> None:
    from exporter.cli import parse_flags

    command = _compose()["services"]["exporter"]["command"]
    assert not isinstance(parse_flags(command), str), command
    url = next(a.split("=", 1)[1] for a in command if a.startswith("--web.dashboards-url="))
    uids = {json.loads(p.read_text(encoding="utf-8"))["uid"] for p in (REPO / "dashboards").glob("*.json")}
    assert url.rsplit("/d/", 1)[1] in uids
    grafana_port = _compose()["services"]["grafana"]["ports"][0].split(":")[1]
    assert urlsplit(url).port == int(grafana_port)


def test_compose_wiring_names_and_ports_agree() -> None:
    services = _compose()["services"]
    simulator_listen = services["simulator"]["command"][
        services["simulator"]["command"].index("--listen") + 1
    ]
    sim_port = simulator_listen.rpartition(":")[2]
    exporter_config = _yaml(_container_path(services["exporter"], "/etc/tencent-live-exporter/config.yml"))
    endpoint = urlsplit(exporter_config["accounts"][0]["endpoint"])
    assert (endpoint.hostname, str(endpoint.port)) == ("simulator", sim_port)

    prometheus = _yaml(_container_path(services["prometheus"], "/etc/prometheus/prometheus.yml"))
    (job,) = [s for s in prometheus["scrape_configs"] if s["job_name"] == "tencent-live-exporter"]
    assert job["static_configs"][0]["targets"] == ["exporter:9877"]
    am_targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am_targets == ["alertmanager:9093"] and "alertmanager" in services

    am = _yaml(_container_path(services["alertmanager"], "/etc/alertmanager/alertmanager.yml"))
    sink_listen = services["webhook-sink"]["command"][-1]
    for receiver in am["receivers"]:
        for hook in receiver["webhook_configs"]:
            url = urlsplit(hook["url"])
            assert (url.hostname, str(url.port)) == ("webhook-sink", sink_listen.rpartition(":")[2])

    datasources = _yaml(
        _container_path(services["grafana"], "/etc/grafana/provisioning/datasources/prometheus.yml")
    )
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"


def test_compose_simulator_command_is_accepted_by_the_simulator() -> None:
    from exporter.simulator.__main__ import build_parser

    service = _compose()["services"]["simulator"]
    assert service["entrypoint"] == ["python", "-m", "exporter.simulator"]
    args = build_parser().parse_args(service["command"])
    assert args.tick > 0, "the demo needs the scenario ticking to show alerts"
    assert set(service["environment"]) >= set(CREDENTIAL_ENV)
    assert service["environment"] == _compose()["services"]["exporter"]["environment"]


def test_compose_exporter_config_passes_check_config(tmp_path: Path) -> None:
    result = check_config(DEPLOY / "compose" / "exporter.yml", credentials=CREDENTIALS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_webhook_sink_records_and_serves_notifications() -> None:
    sink_module = _load_module(DEPLOY / "compose" / "webhook_sink.py", "webhook_sink_under_test")
    sink = sink_module.SinkServer("127.0.0.1", 0)
    sink.start()
    try:
        payload = {
            "status": "firing",
            "alerts": [{"status": "firing", "labels": {"alertname": "X", "stream": "s"}}],
        }
        request = urllib.request.Request(
            sink.url + "/page",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            assert reply.status == 200
        (note,) = sink.notifications()
        assert note.path == "/page" and note.lines() == ["/page firing X stream=s :: "]
        with urllib.request.urlopen(sink.url + "/", timeout=5) as reply:
            assert json.load(reply)["notifications"][0]["path"] == "/page"
    finally:
        sink.stop()


# ------------------------------------------------------------------------------ Alertmanager

AMTOOL = shutil.which("amtool")
needs_amtool = pytest.mark.skipif(
    AMTOOL is None, reason="amtool not installed (Debian prometheus-alertmanager)"
)


@needs_amtool
def test_amtool_check_config() -> None:
    assert AMTOOL is not None
    result = subprocess.run(
        [AMTOOL, "check-config", str(AM_CONFIG)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_amtool
@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: r["alert"])
def test_each_alert_routes_by_severity(rule: dict[str, Any]) -> None:
    assert AMTOOL is not None
    labels = [f"alertname={rule['alert']}", f"severity={rule['labels']['severity']}"]
    result = subprocess.run(
        [AMTOOL, "config", "routes", "test", f"--config.file={AM_CONFIG}", *labels],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    expected = {"critical": "page", "warning": "ticket"}[rule["labels"]["severity"]]
    assert result.stdout.strip() == expected, result.stdout + result.stderr


def test_inhibit_rules_name_existing_alerts() -> None:
    names = {rule["alert"] for rule in _alerts()}
    config = _yaml(AM_CONFIG)
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            name, op, value = re.fullmatch(r'(\w+)(=~|=)"?([^"]*)"?', matcher).groups()  # type: ignore[union-attr]
            assert name == "alertname"
            matched = {n for n in names if re.fullmatch(value, n)} if op == "=~" else {value} & names
            assert matched, f"{matcher} matches no alert"


# ------------------------------------------------------------------------------ Kubernetes


def _manifests() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out[path.name] = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return out


def _one(kind: str) -> dict[str, Any]:
    (found,) = [doc for docs in _manifests().values() for doc in docs if doc["kind"] == kind]
    return found


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _yaml(K8S / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(_manifests())


def test_core_manifests_validate_against_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = "1.30.0"
    checked = 0
    for docs in _manifests().values():
        for doc in docs:
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # CRDs: checked structurally below
            kubernetes_validate.validate(doc, version, strict=True)
            checked += 1
    assert checked >= 3  # ConfigMap, Deployment, Service


def test_kubernetes_validate_would_catch_a_typo() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    broken = json.loads(json.dumps(_one("Deployment")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)


def test_deployment_probes_resources_and_security() -> None:
    deployment = _one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    port_names = {p["name"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names


def test_kustomization_never_applies_a_secret_over_the_users() -> None:
    """The Secret is created out of band (docs); re-applying the directory cannot clobber it."""
    kinds = [doc["kind"] for docs in _manifests().values() for doc in docs]
    assert "Secret" not in kinds
    kustomization = _yaml(K8S / "kustomization.yaml")
    assert "secretGenerator" not in kustomization
    (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    (source,) = container["envFrom"]
    name = source["secretRef"]["name"]
    # the documented command creates exactly that Secret, with the SDK variable names
    for text in (
        (K8S / "kustomization.yaml").read_text(encoding="utf-8"),
        (REPO / "docs" / "deploy.md").read_text(encoding="utf-8"),
    ):
        assert f"kubectl create secret generic {name}" in text
        assert all(f"--from-literal={env}=" in text for env in CREDENTIAL_ENV)
    config = _one("ConfigMap")["data"]["config.yml"]
    assert "secret" not in config.lower()


def test_configmap_config_passes_check_config_and_is_mounted(tmp_path: Path) -> None:
    configmap = _one("ConfigMap")
    path = tmp_path / "config.yml"
    path.write_text(configmap["data"]["config.yml"], encoding="utf-8")
    result = check_config(path, credentials=CREDENTIALS)
    assert result.returncode == 0, result.stdout + result.stderr

    pod = _one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    config_arg = next(a for a in container["args"] if a.startswith("--config.file="))
    config_path = Path(config_arg.split("=", 1)[1])
    assert volumes[mounts[str(config_path.parent)]]["configMap"]["name"] == configmap["metadata"]["name"]
    assert config_path.name in configmap["data"]
    state_file = Path(yaml.safe_load(configmap["data"]["config.yml"])["state_file"])
    assert str(state_file.parent) in mounts, "state_file must be on a writable volume (read-only root)"


def test_service_and_servicemonitor_agree() -> None:
    service, monitor = _one("Service"), _one("ServiceMonitor")
    deployment = _one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
    # prometheus-operator sets job to the value of the Service label named by jobLabel.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "tencent-live-exporter"


def test_prometheusrule_holds_the_rule_files_groups() -> None:
    """Rendered by deploy/mixin with the same groups as deploy/prometheus (test_mixin checks drift)."""
    rule = _one("PrometheusRule")
    expected = [
        g for name in ("alerts.yml", "recording.yml") for g in _yaml(DEPLOY / "prometheus" / name)["groups"]
    ]
    assert rule["spec"]["groups"] == expected
    assert rule["metadata"]["labels"]["app.kubernetes.io/name"] == "tencent-live-exporter"


# kubectl from PATH, or the one .ci/run unpacks next to helm.
KUBECTL = shutil.which("kubectl") or next(
    (str(p) for p in [REPO / ".ci" / "bin" / "kubectl"] if os.access(p, os.X_OK)), None
)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not in PATH nor .ci/bin (.ci/run fetches it)")
def test_kustomize_builds_offline() -> None:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc]
    assert sorted(kinds) == sorted(["ConfigMap", "Deployment", "Service", "ServiceMonitor", "PrometheusRule"])
