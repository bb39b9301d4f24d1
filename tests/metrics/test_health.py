"""HealthMetrics: the exporter's own families, read back through the real parser."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from exporter.metrics import metrics_source
from exporter.metrics.families import ALL_FAMILIES
from exporter.metrics.health import UNKNOWN_REVISION, HealthMetrics, build_revision
from exporter.metrics.store import MetricStore
from exporter.model import Publisher, RegionKey, Snapshot, Stream
from tests._clock import ManualClock
from tests._prom import family_names, sample_names, samples, value

KEY = RegionKey("prod", "ap-guangzhou")
OTHER = RegionKey("prod", "ap-hongkong")


def get(health: HealthMetrics, name: str, **labels: str) -> float | None:
    return value(health.render(), "tencent_live_" + name, **labels)


def region(key: RegionKey = KEY) -> dict[str, str]:
    return {"account": key.account, "region": key.region}


class TestPollState:
    def test_registered_region_is_down_and_not_ready(self) -> None:
        health = HealthMetrics("1.0.0")
        health.register(KEY)
        assert get(health, "up", **region()) == 0.0
        assert get(health, "api_requests_total", **region(), code="OK") == 0.0
        assert get(health, "polls_late_total", **region()) == 0.0
        assert not health.all_polled()
        assert health.statuses()[0].polled is False

    def test_ready_when_every_region_polled_even_if_failed(self) -> None:
        health = HealthMetrics("1.0.0")
        health.register(KEY)
        health.register(OTHER)
        health.poll_succeeded(KEY, 100.0, 3)
        assert not health.all_polled()
        health.poll_failed(OTHER, "Timeout")
        assert health.all_polled()
        statuses = {(s.account, s.region): s for s in health.statuses()}
        assert statuses[OTHER].last_error == "Timeout" and not statuses[OTHER].up
        assert statuses[KEY].up and statuses[KEY].streams == 3 and statuses[KEY].last_success == 100.0

    def test_failure_keeps_last_success_and_age_grows(self) -> None:
        clock = ManualClock(1000.0)
        health = HealthMetrics("1.0.0", clock=clock)
        health.poll_succeeded(KEY, 1000.0, 1)
        health.poll_failed(KEY, "InternalError")
        clock.now = 1042.5
        assert get(health, "up", **region()) == 0.0
        assert get(health, "last_success_timestamp_seconds", **region()) == 1000.0
        assert get(health, "snapshot_age_seconds", **region()) == 42.5
        clock.now = 1100.0
        assert get(health, "snapshot_age_seconds", **region()) == 100.0

    def test_no_age_before_first_success(self) -> None:
        health = HealthMetrics("1.0.0")
        health.poll_failed(KEY, "Timeout")
        assert get(health, "snapshot_age_seconds", **region()) is None


class TestCounters:
    def test_requests_by_code_and_duration_histogram(self) -> None:
        health = HealthMetrics("1.0.0")
        health.observe_request(KEY, "OK", 0.2)
        health.observe_request(KEY, "RequestLimitExceeded", 0.05)
        health.observe_request(KEY, "Timeout", 5.01)
        assert get(health, "api_requests_total", **region(), code="OK") == 1.0
        assert get(health, "api_requests_total", **region(), code="Timeout") == 1.0
        assert get(health, "api_request_duration_seconds_count", **region()) == 3.0
        assert get(health, "api_request_duration_seconds_bucket", **region(), le="5.0") == 2.0
        assert get(health, "api_request_duration_seconds_bucket", **region(), le="6.0") == 3.0

    def test_rate_limit_poll_cycle_and_lateness(self) -> None:
        health = HealthMetrics("1.0.0")
        health.set_rate_limit("prod", 20.0)
        assert get(health, "rate_limit_wait_seconds_total", account="prod") == 0.0
        health.add_rate_limit_wait("prod", 0.25)
        health.add_rate_limit_wait("prod", -1.0)  # clock oddities never make a counter go down
        health.set_poll_cycle(KEY, 22.5)
        health.poll_late(KEY)
        health.observe_poll(KEY, 1.5)
        assert get(health, "rate_limit_requests_per_second", account="prod") == 20.0
        assert get(health, "rate_limit_wait_seconds_total", account="prod") == 0.25
        assert get(health, "poll_cycle_seconds", **region()) == 22.5
        assert get(health, "polls_late_total", **region()) == 1.0
        assert get(health, "poll_duration_seconds_count", **region()) == 1.0

    def test_build_info_and_no_created_series(self) -> None:
        health = HealthMetrics("9.9.9", revision="abc123")
        health.observe_request(KEY, "OK", 0.1)
        body = health.render()
        python = platform.python_version()
        assert (
            get(health, "exporter_build_info", version="9.9.9", revision="abc123", python_version=python)
            == 1.0
        )
        assert b"_created" not in body

    def test_build_revision_is_a_short_hex_or_unknown(self) -> None:
        revision = build_revision()
        assert revision == UNKNOWN_REVISION or re.fullmatch(r"[0-9a-f]{7,40}", revision)

    @pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process metrics read /proc")
    def test_process_metrics_in_the_private_registry(self) -> None:
        names = sample_names(HealthMetrics("1").render())
        assert {"process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"} <= names
        assert "process_cpu_seconds_total" in names
        off = sample_names(HealthMetrics("1", process_metrics=False).render())
        assert not {n for n in off if n.startswith("process_")}

    def test_parse_anomalies_count_by_reason(self) -> None:
        health = HealthMetrics("1")
        health.parse_anomalies(KEY, "duplicate_stream_name", 2)
        health.parse_anomalies(KEY, "duplicate_stream_name", 1)
        health.parse_anomalies(KEY, "missing_stream_name", 0)
        assert get(health, "parse_anomalies_total", **region(), reason="duplicate_stream_name") == 3.0
        assert get(health, "parse_anomalies_total", **region(), reason="missing_stream_name") == 0.0

    def test_credential_refreshes_and_expiry(self) -> None:
        health = HealthMetrics("1")
        health.credential_refreshed("prod", "ok")
        assert get(health, "credential_refreshes_total", account="prod", result="ok") == 1.0
        assert get(health, "credential_refreshes_total", account="prod", result="error") == 0.0
        health.credential_refreshed("prod", "error")
        assert get(health, "credential_refreshes_total", account="prod", result="error") == 1.0
        health.set_credential_expiry("prod", 1_800_000_000.0)
        assert get(health, "credential_expiry_timestamp_seconds", account="prod") == 1_800_000_000.0
        health.set_credential_expiry("prod", None)  # long-lived keys: no expiry series at all
        assert get(health, "credential_expiry_timestamp_seconds", account="prod") is None

    def test_config_reload_gauges(self) -> None:
        health = HealthMetrics("1", clock=ManualClock(500.0))
        health.config_reloaded(True)
        assert get(health, "config_last_reload_successful") == 1.0
        assert get(health, "config_last_reload_success_timestamp_seconds") == 500.0
        health.config_reloaded(False, 900.0)  # a rejected reload keeps the last success time
        assert get(health, "config_last_reload_successful") == 0.0
        assert get(health, "config_last_reload_success_timestamp_seconds") == 500.0

    def test_unregister_removes_every_series_of_the_region_only(self) -> None:
        health = HealthMetrics("1", process_metrics=False)
        for key in (KEY, OTHER):
            health.register(key)
            health.observe_request(key, "InternalError", 0.1)
            health.poll_succeeded(key, 1.0, 2)
            health.parse_anomalies(key, "odd", 1)
            health.set_poll_cycle(key, 15.0)
            health.observe_poll(key, 0.2)
        health.unregister(KEY)
        body = health.render().decode()
        assert 'region="ap-guangzhou"' not in body
        assert get(health, "up", **region(OTHER)) == 1.0
        assert get(health, "parse_anomalies_total", **region(OTHER), reason="odd") == 1.0
        assert [s.region for s in health.statuses()] == [OTHER.region]
        health.unregister(KEY)  # twice is harmless

    def test_unregister_account(self) -> None:
        health = HealthMetrics("1", process_metrics=False)
        health.set_rate_limit("prod", 20.0)
        health.credential_refreshed("prod", "ok")
        health.set_credential_expiry("prod", 10.0)
        health.set_rate_limit("staging", 5.0)
        health.unregister_account("prod")
        body = health.render().decode()
        assert 'account="prod"' not in body
        assert get(health, "rate_limit_requests_per_second", account="staging") == 5.0

    def test_registries_are_private(self) -> None:
        first, second = HealthMetrics("1"), HealthMetrics("1")
        first.observe_request(KEY, "OK", 0.1)
        assert get(second, "api_requests_total", **region(), code="OK") is None


class TestComposition:
    def _sources(self) -> tuple[MetricStore, HealthMetrics]:
        store = MetricStore()
        publisher = Publisher(
            upstream_sequence="1",
            domain="d",
            app="live",
            publish_time=1.0,
            source_from="直推流",
            is_master=True,
        )
        stream = Stream(name="s", host_group="", optimal_enable=0, publishers=(publisher,))
        snapshot = Snapshot(account=KEY.account, region=KEY.region, taken_at=1.0, streams={"s": stream})
        store.apply(snapshot, changed={"s"}, dropped=(), events=())
        health = HealthMetrics("1.0.0", clock=ManualClock(2.0))
        health.register(KEY)
        health.poll_succeeded(KEY, 1.0, 1)
        return store, health

    def test_no_family_from_both_sources(self) -> None:
        store, health = self._sources()
        health_names = family_names(health.render())
        store_names = family_names(store.render())
        assert store_names and health_names
        assert not store_names & health_names
        assert not {n.removesuffix("_total") for n in ALL_FAMILIES} & health_names

    def test_plain_and_gzip_bodies_agree_in_one_member(self) -> None:
        store, health = self._sources()
        source = metrics_source(store, health)
        plain = b"".join(source(False))
        # One member: httpx and curl 7.88 stop after the first member of a concatenated body.
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        inflated = decoder.decompress(b"".join(source(True)))
        assert decoder.eof and decoder.unused_data == b""
        # process_* samples (CPU seconds, RSS) move between the two renders; everything else may not.
        assert _without_process_lines(inflated) == _without_process_lines(plain)
        assert b"tencent_live_up{" in plain and b"tencent_live_stream_online{" in plain
        samples(plain)  # parses as one exposition

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
    def test_promtool_accepts_combined_body(self) -> None:
        store, health = self._sources()
        result = subprocess.run(
            ["promtool", "check", "metrics"],
            input=b"".join(metrics_source(store, health)(False)),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


class TestExtraCollectors:
    def test_another_parts_families_render_with_the_health_ones(self) -> None:
        from prometheus_client.core import GaugeMetricFamily

        class Connections:
            def collect(self):  # type: ignore[no-untyped-def]
                yield GaugeMetricFamily("tencent_live_http_connections_open", "Open connections.", value=3)

        health = HealthMetrics("1", process_metrics=False)
        health.register_collector(Connections())  # type: ignore[arg-type]
        assert get(health, "http_connections_open") == 3.0


def _without_process_lines(body: bytes) -> list[bytes]:
    return [line for line in body.splitlines() if b"process_" not in line]
