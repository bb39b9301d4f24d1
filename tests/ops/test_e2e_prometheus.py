"""End to end: simulator -> exporter -> real Prometheus (our rules) -> real Alertmanager -> webhook.

The simulator and exporter run as subprocesses with 1 s polls; Prometheus scrapes and evaluates
every second with our alerts.yml (every `for:` cut to 1 s) and recording.yml; Alertmanager
runs our example config (severity routes) with its webhooks pointed at a local sink and its
group timers cut to 1 s. We drive the simulator (a lost backup, a flapping master, a dropped
stream), then assert that the expected alerts reach the sink on the `page` route, and that
every panel query of every dashboard returns data from that Prometheus.

Everything listens on 127.0.0.1; every wait is a poll against a deadline.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest
import yaml

from tests._prom import select

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARDS = REPO / "dashboards"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"

SECRET_ID = "AKIDe2eopskit000000000000000000000"
SECRET_KEY = "e2e-ops-kit-secret-key"
ACCOUNT = "e2e"
REGION = "ap-guangzhou"
REGIONS = ("ap-guangzhou", "ap-hongkong")
FLAPS = 3  # TencentLiveStreamFlapping fires at >= 3 switchovers in 15 minutes
EXPECTED_DROP = "e2e-drop"
EXPECTED_NEVER = "e2e-never"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

needs_binaries = pytest.mark.skipif(
    not (Path(PROMETHEUS).exists() and Path(ALERTMANAGER).exists()),
    reason="needs /usr/bin/prometheus and /usr/bin/prometheus-alertmanager (installed by .ci/run)",
)

T = TypeVar("T")


# ------------------------------------------------------------------------------ plumbing


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return int(reply.status), reply.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.load(reply)


def _await(what: str, probe: Callable[[], T | None], deadline: float, logs: Callable[[], str]) -> T:
    """Call ``probe`` until it returns something truthy or the deadline passes (then fail loudly)."""
    last_error = ""
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (OSError, ValueError) as exc:  # not up yet, connection refused, bad JSON mid-start
            value, last_error = None, repr(exc)
        if value:
            return value
        time.sleep(0.2)  # polling interval of a deadline loop, not a wait for an event
    pytest.fail(f"timed out waiting for {what} {last_error}\n{logs()}")


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return f"--- {self.name} (exit {self.popen.poll()}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


class _Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[_Proc] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> _Proc:
        log = self.workdir / f"{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            argv, cwd=self.workdir, stdout=handle, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
        )
        handle.close()
        proc = _Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def _load_sink() -> ModuleType:
    path = DEPLOY / "compose" / "webhook_sink.py"
    spec = importlib.util.spec_from_file_location("e2e_webhook_sink", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------ config transforms


def short_for_rules(text: str, hold: str = "1s") -> str:
    """alerts.yml with every ``for:`` cut to ``hold``, so a test sees alerts fire in seconds."""
    data = yaml.safe_load(text)
    for group in data["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = hold
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def fast_alertmanager_config(text: str, sink_url: str) -> str:
    """Our example Alertmanager config with webhooks pointed at ``sink_url`` and 1 s group timers."""
    data = yaml.safe_load(text)

    def speed_up(route: dict[str, Any]) -> None:
        route["group_wait"] = "1s"
        route["group_interval"] = "1s"
        for child in route.get("routes", []):
            speed_up(child)

    speed_up(data["route"])
    for receiver in data["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            path = urllib.parse.urlsplit(hook["url"]).path
            hook["url"] = sink_url + path
    return str(yaml.safe_dump(data, sort_keys=False))


def test_short_for_rules_only_touches_for() -> None:
    original = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    short = yaml.safe_load(
        short_for_rules((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    )
    for group, short_group in zip(original["groups"], short["groups"], strict=True):
        for rule, short_rule in zip(group["rules"], short_group["rules"], strict=True):
            assert {k: v for k, v in short_rule.items() if k != "for"} == {
                k: v for k, v in rule.items() if k != "for"
            }
            assert short_rule.get("for", "1s") == "1s"


# ------------------------------------------------------------------------------ the stack


@dataclass
class Driven:
    prometheus: str
    exporter: str
    simulator: str
    sink: Any
    stack: _Stack
    streams: dict[str, str]


def _simulator(stack: _Stack, env: dict[str, str]) -> str:
    port = _free_port()
    stack.start(
        "simulator",
        [
            sys.executable,
            "-m",
            "exporter.simulator",
            "--listen",
            f"127.0.0.1:{port}",
            "--secret-id",
            SECRET_ID,
            "--secret-key",
            SECRET_KEY,
            "--streams",
            "2",
            "--seed",
            "5",
            "--tick",
            "0",
            "--regions",
            ",".join(REGIONS),
        ],
        env,
    )
    return f"http://127.0.0.1:{port}"


def _exporter(stack: _Stack, env: dict[str, str], simulator: str) -> str:
    config = {
        "poll_interval": "1s",
        "request_timeout": "800ms",
        "drop_confirmations": 2,
        "stream_retention": "10m",
        "accounts": [{"name": ACCOUNT, "endpoint": simulator, "regions": list(REGIONS), "rate_limit": 20}],
        # e2e-drop goes off air during the run; e2e-never is never pushed at all.
        "streams": {"expected": [EXPECTED_DROP, EXPECTED_NEVER, "e2e-healthy"]},
    }
    path = stack.workdir / "exporter.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    stack.start(
        "exporter",
        [
            sys.executable,
            "-m",
            "exporter",
            "--config.file",
            str(path),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--log.level",
            "info",
        ],
        {**env, "TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY},
    )
    return f"http://127.0.0.1:{port}"


def _alertmanager(stack: _Stack, sink_url: str) -> str:
    config = stack.workdir / "alertmanager.yml"
    config.write_text(
        fast_alertmanager_config((DEPLOY / "alertmanager" / "alertmanager.yml").read_text("utf-8"), sink_url),
        encoding="utf-8",
    )
    port = _free_port()
    stack.start(
        "alertmanager",
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={stack.workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
    )
    return f"http://127.0.0.1:{port}"


def _prometheus(stack: _Stack, exporter: str, alertmanager: str) -> str:
    rules = stack.workdir / "rules"
    rules.mkdir()
    (rules / "alerts.yml").write_text(
        short_for_rules((DEPLOY / "prometheus" / "alerts.yml").read_text("utf-8")), encoding="utf-8"
    )
    shutil.copy(DEPLOY / "prometheus" / "recording.yml", rules / "recording.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(rules / "alerts.yml"), str(rules / "recording.yml")],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [urllib.parse.urlsplit(alertmanager).netloc]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "tencent-live-exporter",
                "static_configs": [{"targets": [urllib.parse.urlsplit(exporter).netloc]}],
            }
        ],
    }
    path = stack.workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    stack.start(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={path}",
            f"--storage.tsdb.path={stack.workdir / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
    )
    return f"http://127.0.0.1:{port}"


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = _get(url)
    reply = json.loads(body)
    if status != 200 or reply.get("status") != "success":
        raise AssertionError(f"query failed: {expr!r}: {reply.get('error', body[:200])}")
    result = reply["data"]["result"]
    return result if isinstance(result, list) else [result]


def _metric_value(exporter: str, name: str, **labels: str) -> float | None:
    _, body = _get(f"{exporter}/metrics")
    return next(iter(select(body, name, **labels)), None)


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driven]:
    workdir = tmp_path_factory.mktemp("e2e-ops")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    stack = _Stack(workdir)
    sink = _load_sink().SinkServer("127.0.0.1", 0)
    sink.start()
    deadline = time.monotonic() + 60
    try:
        simulator = _simulator(stack, env)
        _await("simulator", lambda: _get(f"{simulator}/_sim/state")[0] == 200, deadline, stack.logs)
        streams = {"backup": "e2e-backup", "flap": "e2e-flap", "drop": "e2e-drop", "healthy": "e2e-healthy"}
        for name in streams.values():
            _post_json(f"{simulator}/_sim/add_stream", {"region": REGION, "name": name, "publishers": 2})

        exporter = _exporter(stack, env, simulator)
        _await("exporter /readyz", lambda: _get(f"{exporter}/readyz")[0] == 200, deadline, stack.logs)
        alertmanager = _alertmanager(stack, sink.url)
        _await("alertmanager", lambda: _get(f"{alertmanager}/-/ready")[0] == 200, deadline, stack.logs)
        prometheus = _prometheus(stack, exporter, alertmanager)
        _await("prometheus", lambda: _get(f"{prometheus}/-/ready")[0] == 200, deadline, stack.logs)
        # Prometheus must have scraped the baseline (counters at 0) before anything changes.
        baseline = f'tencent_live_stream_switchovers_total{{stream="{streams["flap"]}"}} == 0'
        _await("baseline scrape", lambda: _query(prometheus, baseline), deadline, stack.logs)

        drive = time.monotonic() + 60
        _post_json(f"{simulator}/_sim/lose_backup", {"region": REGION, "name": streams["backup"]})
        _post_json(f"{simulator}/_sim/remove_stream", {"region": REGION, "name": streams["drop"]})
        for flap in range(1, FLAPS + 1):
            _post_json(f"{simulator}/_sim/handover", {"region": REGION, "name": streams["flap"]})
            # each handover must be seen by a poll before the next one, or two collapse into one
            _await(
                f"switchover {flap} seen by the exporter",
                lambda n=flap: (  # type: ignore[misc]
                    _metric_value(exporter, "tencent_live_stream_switchovers_total", stream=streams["flap"])
                    == n
                ),
                drive,
                stack.logs,
            )
        yield Driven(prometheus, exporter, simulator, sink, stack, streams)
    finally:
        stack.stop()
        sink.stop()


# ------------------------------------------------------------------------------ tests


def _received(sink: Any) -> dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]:
    """(alertname, stream-or-region) -> [(receiver path, alert)] of firing alerts received."""
    out: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for note in sink.notifications():
        for alert in note.alerts():
            if alert.get("status") != "firing":
                continue
            labels = alert["labels"]
            key = (labels["alertname"], labels.get("stream") or labels.get("region", ""))
            out.setdefault(key, []).append((note.path, alert))
    return out


@needs_binaries
def test_expected_alerts_reach_the_pager(driven: Driven) -> None:
    expected = {
        ("TencentLiveStreamBackupLost", driven.streams["backup"]),
        ("TencentLiveStreamFlapping", driven.streams["flap"]),
        ("TencentLiveStreamsDropped", REGION),
        ("TencentLiveExpectedStreamOffline", EXPECTED_DROP),
        ("TencentLiveExpectedStreamOffline", EXPECTED_NEVER),
    }
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not expected <= set(_received(driven.sink)):
        driven.sink.wait_for(1.0)
    received = _received(driven.sink)
    missing = expected - set(received)
    assert not missing, f"alerts not received: {missing}; got {sorted(received)}\n{driven.stack.logs()}"
    # Drops of streams that are not in streams.expected are tickets: most are broadcasts ending.
    routes = {key: ("/ticket" if key[0] == "TencentLiveStreamsDropped" else "/page") for key in expected}
    for key in expected:
        path, alert = received[key][0]
        assert path == routes[key], f"{key} routed to {path}, not {routes[key]}"
        assert alert["labels"]["account"] == ACCOUNT
        if key[0] != "TencentLiveExpectedStreamOffline":  # aggregated over the account's regions
            assert alert["labels"]["job"] == "tencent-live-exporter"
        assert alert["annotations"]["runbook_url"].endswith("#" + key[0].lower())
    (_, dropped), *_ = received[("TencentLiveStreamsDropped", REGION)]
    assert driven.streams["drop"] in dropped["annotations"]["description"]
    # Streams that did nothing wrong raise nothing.
    # Expected and on air in one region: the never-seen 0 of the other region pages nobody.
    for name in (driven.streams["healthy"],):
        assert not [k for k in received if k[1] == name], f"{name} alerted: {received}"


def _dashboard_models() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def _label_values(prometheus: str, query: str, values: dict[str, str], regex: str = "") -> list[str]:
    """The options Grafana would offer: label_values(...), or query_result(...) through ``regex``."""
    result = re.fullmatch(r"query_result\((.+)\)", _substitute(query, values))
    if result:
        pattern = re.compile(regex.strip("/"))
        options = set()
        for series in _query(prometheus, result.group(1)):
            text = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(series["metric"].items())) + "}"
            found = pattern.search(text)
            if found:
                options.add(found.group(1))
        return sorted(options)
    match = re.fullmatch(r"label_values\((.+), *(\w+)\)", _substitute(query, values))
    assert match, query
    selector, label = match.groups()
    url = f"{prometheus}/api/v1/series?" + urllib.parse.urlencode({"match[]": selector})
    _, body = _get(url)
    return sorted({series[label] for series in json.loads(body)["data"] if label in series})


def _substitute(expr: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("$" + name, values[name])
    return expr


PREFERRED = {"account": ACCOUNT, "region": REGION, "stream": "e2e-flap"}
# Panels that are empty by design in this run: static keys (no expiry) and clean simulator replies.
EMPTY_HERE = {
    "tencent-live-exporter-health.json / Credential validity left",
    "tencent-live-exporter-health.json / Parse anomalies",
}
GRAFANA_BUILTINS = {"__rate_interval": "20s", "__interval": "5s", "__range": "5m"}


def _resolve_variables(prometheus: str, model: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for var in model["templating"]["list"]:
        if var["type"] != "query":
            continue
        options = _label_values(prometheus, var["query"], values, var.get("regex", ""))
        assert options, f"{model['title']}: variable {var['name']} has no values ({var['query']})"
        values[var["name"]] = PREFERRED[var["name"]] if PREFERRED[var["name"]] in options else options[0]
    return values


@needs_binaries
def test_every_dashboard_panel_query_returns_data(driven: Driven) -> None:
    queries: list[tuple[str, str, str]] = []
    for name, model in _dashboard_models().items():
        values = {**_resolve_variables(driven.prometheus, model), **GRAFANA_BUILTINS}
        assert values.get("account") == ACCOUNT
        for panel in model["panels"]:
            for target in panel["targets"]:
                title = f"{name} / {panel['title']}"
                queries.append((title, f"{title} [{target['refId']}]", _substitute(target["expr"], values)))
    assert len(queries) >= 30
    # Recording rules over rate windows need a few evaluations: retry the empty ones until a deadline.
    assert {panel for panel, _, _ in queries} >= EMPTY_HERE, "EMPTY_HERE names a panel that does not exist"
    # One entry per target (a panel with two queries needs both to return data).
    pending = {key: expr for panel, key, expr in queries if panel not in EMPTY_HERE}
    deadline = time.monotonic() + 45
    while pending and time.monotonic() < deadline:
        pending = {title: expr for title, expr in pending.items() if not _query(driven.prometheus, expr)}
        if pending:
            time.sleep(0.5)  # polling interval of the deadline loop
    detail = "\n".join(f"{title}: {expr}" for title, expr in pending.items())
    assert not pending, f"panels without data:\n{detail}"


@needs_binaries
def test_stream_picker_offers_online_streams_only(driven: Driven) -> None:
    """The stream dashboard opens on a live stream: dropped ones (kept for retention) are not offered."""
    model = _dashboard_models()["tencent-live-stream.json"]
    (var,) = [v for v in model["templating"]["list"] if v["name"] == "stream"]
    deadline = time.monotonic() + 30
    options: list[str] = []
    while time.monotonic() < deadline:
        options = _label_values(
            driven.prometheus, var["query"], {"account": ACCOUNT, "region": REGION}, var["regex"]
        )
        if driven.streams["drop"] not in options and driven.streams["flap"] in options:
            break
        time.sleep(0.5)  # polling interval of the deadline loop
    assert driven.streams["flap"] in options and driven.streams["healthy"] in options
    assert driven.streams["drop"] not in options, options
    # ... while the raw series of the dropped stream is still there (stream_online 0).
    assert _query(driven.prometheus, f'tencent_live_stream_online{{stream="{driven.streams["drop"]}"}} == 0')


@needs_binaries
def test_stream_dashboard_shows_the_flapping_master(driven: Driven) -> None:
    """The master timeline has one series per master the stream had: the original plus each handover."""
    selector = f'account="{ACCOUNT}",region="{REGION}",stream="{driven.streams["flap"]}"'
    expr = f"count(count_over_time(tencent_live_stream_master_info{{{selector}}}[5m]))"
    deadline = time.monotonic() + 30
    value = 0.0
    while time.monotonic() < deadline:
        result = _query(driven.prometheus, expr)
        value = float(result[0]["value"][1]) if result else 0.0
        if value >= 2:
            break
        time.sleep(0.5)  # polling interval of the deadline loop
    # handovers between two publishers alternate: both sequences have been master
    assert value == 2


@needs_binaries
def test_exporter_metrics_are_scraped_under_the_documented_job(driven: Driven) -> None:
    result = _query(driven.prometheus, 'up{job="tencent-live-exporter"} == 1')
    assert len(result) == 1
    with contextlib.suppress(KeyError):
        assert result[0]["metric"]["instance"] == urllib.parse.urlsplit(driven.exporter).netloc
