"""The /events ring and the JSON shape of an event (SPEC section 7)."""

from __future__ import annotations

import json
import threading

import pytest

from exporter.events import EventLog, event_to_dict, rfc3339
from exporter.model import Event, EventKind, SwitchoverReason

T0 = 1_795_762_800.0  # 2026-11-27T07:00:00Z


def event(stream: str = "room1", *, t: float = T0, kind: EventKind = EventKind.STREAM_START) -> Event:
    return Event(time=t, account="prod", region="ap-guangzhou", stream=stream, kind=kind)


class TestRfc3339:
    @pytest.mark.parametrize(
        ("ts", "text"),
        [
            (T0, "2026-11-27T07:00:00Z"),
            (T0 + 0.25, "2026-11-27T07:00:00.250Z"),
            (T0 + 0.0004, "2026-11-27T07:00:00Z"),  # below a millisecond: whole second
            (T0 + 59.9996, "2026-11-27T07:01:00Z"),  # rounds up across the second, never ".1000"
            (0.0, "1970-01-01T00:00:00Z"),
        ],
    )
    def test_format(self, ts: float, text: str) -> None:
        assert rfc3339(ts) == text


class TestEventToDict:
    def test_switchover_has_reason_from_and_to(self) -> None:
        e = Event(
            time=T0,
            account="prod",
            region="ap-guangzhou",
            stream="room1",
            kind=EventKind.SWITCHOVER,
            reason=SwitchoverReason.FAILOVER,
            from_="111",
            to="222",
        )
        assert event_to_dict(e) == {
            "time": "2026-11-27T07:00:00Z",
            "account": "prod",
            "region": "ap-guangzhou",
            "stream": "room1",
            "kind": "switchover",
            "reason": "failover",
            "from": "111",
            "to": "222",
        }

    def test_only_keys_that_apply(self) -> None:
        join = Event(time=T0, account="a", region="r", stream="s", kind=EventKind.PUBLISHER_JOIN, to="9")
        assert set(event_to_dict(join)) == {"time", "account", "region", "stream", "kind", "to"}
        assert set(event_to_dict(event())) == {"time", "account", "region", "stream", "kind"}

    def test_values_are_plain_json_strings(self) -> None:
        d = event_to_dict(event(kind=EventKind.STREAM_DROP))
        assert type(d["kind"]) is str
        assert json.loads(json.dumps(d)) == d

    def test_odd_values_untouched(self) -> None:
        name = 'a"b\\c\nd 直播间'
        assert event_to_dict(event(name))["stream"] == name

    def test_extra_never_shadows_spec_keys(self) -> None:
        e = Event(
            time=T0,
            account="a",
            region="r",
            stream="s",
            kind=EventKind.STREAM_START,
            extra={"kind": "x", "n": "1"},
        )
        d = event_to_dict(e)
        assert d["kind"] == "stream_start"
        assert d["n"] == "1"


class TestEventLog:
    def test_newest_batch_first_batch_order_kept(self) -> None:
        log = EventLog()
        log.record([event("a", t=1), event("b", t=1)])
        log.record([event("c", t=2), event("d", t=2)])
        assert [d["stream"] for d in log.recent()] == ["c", "d", "a", "b"]

    def test_bounded_keeps_newest(self) -> None:
        log = EventLog(maxlen=3)
        for i in range(5):
            log.record([event(f"s{i}")])
        assert [d["stream"] for d in log.recent()] == ["s4", "s3", "s2"]
        assert len(log) == 3

    def test_oversized_batch_keeps_its_head(self) -> None:
        log = EventLog(maxlen=2)
        log.record(iter([event("a"), event("b"), event("c")]))
        assert [d["stream"] for d in log.recent()] == ["a", "b"]

    def test_empty_batch_is_a_no_op(self) -> None:
        log = EventLog()
        log.record([])
        assert log.recent() == []

    def test_recent_returns_copies(self) -> None:
        log = EventLog()
        log.record([event("a")])
        log.recent()[0]["stream"] = "changed"
        assert log.recent()[0]["stream"] == "a"

    def test_maxlen_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="maxlen"):
            EventLog(maxlen=0)

    def test_concurrent_record_and_read(self) -> None:
        log = EventLog(maxlen=50)
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            for i in range(200):
                log.record([event(f"w{n}-{i}"), event(f"w{n}-{i}b")])

        def reader() -> None:
            try:
                for _ in range(200):
                    assert len(log.recent()) <= 50
            except BaseException as exc:  # surfaced below, on the main thread
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        threads.append(threading.Thread(target=reader))
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=30)
        assert errors == []
        recent = log.recent()
        assert len(recent) == 50
        # A batch is recorded atomically: each "x" sits directly above its "xb".
        streams = [str(d["stream"]) for d in recent]
        for i, s in enumerate(streams[:-1]):
            if not s.endswith("b"):
                assert streams[i + 1] == s + "b"
