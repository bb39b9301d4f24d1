"""parse_snapshot on recorded vendor replies: exact values, tolerated oddities, every malformed kind."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.model import Publisher, Stream
from exporter.parse import (
    VENDOR_CEILING,
    Anomaly,
    ParseCache,
    parse_publish_time,
    parse_snapshot,
    parse_snapshot_cached,
)
from exporter.tencent.errors import ApiError, BadResponse, PollError, Throttled
from tests._replies import synthetic_reply

FIXTURES = Path(__file__).parent / "fixtures"
VENDOR_EXAMPLE = "describe_backup_stream_list_vendor_example.json"


def _load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _parse(body: bytes, **kwargs: Any) -> Any:
    return parse_snapshot(body, account="prod", region="ap-guangzhou", taken_at=1_700_000_000.0, **kwargs)


def _example() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(_load(VENDOR_EXAMPLE))
    return document


class TestVendorExample:
    def test_exact_values(self) -> None:
        snapshot = _parse(_load(VENDOR_EXAMPLE))
        assert snapshot.account == "prod"
        assert snapshot.region == "ap-guangzhou"
        assert snapshot.taken_at == 1_700_000_000.0
        assert snapshot.request_id == "4b3d1d04-6f79-4f56-a8e7-46de97de1713"
        assert snapshot.scope is None
        assert dict(snapshot.streams) == {
            "stream1": Stream(
                name="stream1",
                host_group="",
                optimal_enable=0,
                publishers=(
                    Publisher(
                        upstream_sequence="710313341080024595",
                        domain="5000.livepush.com",
                        app="live",
                        publish_time=1530298800.0,  # 2018-06-29T19:00:00Z
                        source_from="直推流",
                        is_master=False,
                    ),
                    Publisher(
                        upstream_sequence="710313341080024599",
                        domain="5000.livepush.com",
                        app="gifshow",
                        publish_time=1530298800.0,
                        source_from="拉流转推(123)",
                        is_master=True,
                    ),
                ),
            )
        }
        assert snapshot.streams["stream1"].master is not None
        assert snapshot.streams["stream1"].master.upstream_sequence == "710313341080024599"

    def test_scope_passes_through(self) -> None:
        scope = frozenset({"stream1", "other"})
        assert _parse(_load(VENDOR_EXAMPLE), scope=scope).scope == scope

    def test_admit_drops_streams_entirely(self) -> None:
        assert dict(_parse(_load(VENDOR_EXAMPLE), admit=lambda name: name != "stream1").streams) == {}
        assert set(_parse(_load(VENDOR_EXAMPLE), admit=lambda name: True).streams) == {"stream1"}

    def test_admit_skips_publisher_reading_of_excluded_streams(self) -> None:
        # An excluded stream exists nowhere: an oddity inside it is not even counted.
        document = _example()
        document["Response"]["StreamInfoList"][0]["BackupList"][0]["MasterFlag"] = 7
        body = orjson.dumps(document)
        assert _parse(body).anomalies == {"bad_master_flag": 1}
        excluded = _parse(body, admit=lambda name: False)
        assert dict(excluded.streams) == {} and excluded.anomalies == {} and excluded.judging_absences


class TestNoStreams:
    @pytest.mark.parametrize(
        "name", ["describe_backup_stream_list_null.json", "describe_backup_stream_list_empty.json"]
    )
    def test_null_or_empty_list_is_a_successful_empty_snapshot(self, name: str) -> None:
        snapshot = _parse(_load(name))
        assert dict(snapshot.streams) == {}
        assert snapshot.request_id


class TestEdgeCases:
    def test_tolerated_oddities(self) -> None:
        snapshot = _parse(_load("describe_backup_stream_list_edge_cases.json"))
        assert sorted(snapshot.streams) == ["news-main", "no-publishers", "直播频道"]
        first = snapshot.streams["news-main"]
        # Duplicate StreamName: the copy whose master has the lowest sequence wins (the other
        # has no master at all), and the duplicate is counted.
        assert first.host_group == "group-a" and first.optimal_enable == 1
        assert [p.upstream_sequence for p in first.publishers] == [
            "2000000000000000001",
            "2000000000000000002",
        ]
        assert first.publishers[0].publish_time == 1714557600.0  # 2024-05-01T10:00:00Z
        assert first.publishers[1].publish_time == 1714557605.0 - 8 * 3600  # Beijing time
        assert snapshot.streams["no-publishers"] == Stream("no-publishers", "", 0, ())
        assert snapshot.streams["直播频道"].publishers[0].publish_time == 1714607999.0
        assert snapshot.anomalies == {"duplicate_stream_name": 1}
        assert snapshot.judging_absences and snapshot.unknown == frozenset()

    def test_a_huge_request_id_is_cut(self) -> None:
        snapshot = _parse(_reply([_stream_group("a")], request_id="r" * 100_000))
        assert snapshot.request_id == "r" * 64

    def test_a_clean_reply_has_no_anomalies(self) -> None:
        snapshot = _parse(_load(VENDOR_EXAMPLE))
        assert snapshot.anomalies == {} and snapshot.judging_absences and snapshot.unknown == frozenset()

    def test_unknown_extra_fields_are_ignored(self) -> None:
        # The vendor adds output fields over time; that is not a shape change.
        document = _example()
        document["Response"]["NewTopLevel"] = 1
        document["Response"]["StreamInfoList"][0]["NewGroupField"] = [1]
        document["Response"]["StreamInfoList"][0]["BackupList"][0]["NewPublisherField"] = {}
        assert _parse(orjson.dumps(document)) == _parse(_load(VENDOR_EXAMPLE))


class TestApiErrors:
    def test_error_reply_raises_api_error_with_code_and_request_id(self) -> None:
        with pytest.raises(ApiError) as info:
            _parse(_load("error_auth_signature_failure.json"))
        assert type(info.value) is ApiError
        assert info.value.code == "AuthFailure.SignatureFailure"
        assert info.value.request_id == "ed93f3cb-f35e-473f-b9f3-0d451b8b79c6"
        assert "could not be validated" in info.value.message
        assert info.value.retryable is False

    def test_request_limit_exceeded_is_throttled(self) -> None:
        with pytest.raises(Throttled) as info:
            _parse(_load("error_request_limit_exceeded.json"))
        assert info.value.code == "RequestLimitExceeded"
        assert info.value.retryable is True

    def test_internal_error_is_retryable(self) -> None:
        with pytest.raises(ApiError) as info:
            _parse(_load("error_internal_get_stream_info.json"))
        assert info.value.code == "InternalError.GetStreamInfoError"
        assert info.value.retryable is True
        assert "获取流信息失败" in str(info.value)

    def test_error_wins_over_a_stream_list(self) -> None:
        document = _example()
        document["Response"]["Error"] = {"Code": "InternalError", "Message": "m"}
        with pytest.raises(ApiError, match="InternalError"):
            _parse(orjson.dumps(document))

    def test_huge_vendor_message_is_cut(self) -> None:
        body = orjson.dumps(
            {"Response": {"Error": {"Code": "InternalError", "Message": "x" * 100_000}, "RequestId": "r"}}
        )
        with pytest.raises(ApiError) as info:
            _parse(body)
        assert len(str(info.value)) < 1000


Mutation = Callable[[dict[str, Any]], None]


def _group(mutate: Callable[[dict[str, Any]], None]) -> Mutation:
    return lambda doc: mutate(doc["Response"]["StreamInfoList"][0])


def _publisher(index: int, mutate: Callable[[dict[str, Any]], None]) -> Mutation:
    return lambda doc: mutate(doc["Response"]["StreamInfoList"][0]["BackupList"][index])


def _set(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj.__setitem__(key, value)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj.__delitem__(key)


_MASTER = "710313341080024599"
_BACKUP = "710313341080024595"

# (mutation of the vendor example's one group, anomalies, what is kept of stream1 as a check)
# The check gets the stream (None when the group was skipped).
ODD_GROUPS = [
    # Skipped, nameless: nothing judged absent in this reply.
    pytest.param(_group(_drop("StreamName")), {"nameless_group": 1}, None, id="name-missing"),
    pytest.param(_group(_set("StreamName", "")), {"nameless_group": 1}, None, id="name-empty"),
    pytest.param(_group(_set("StreamName", 12)), {"nameless_group": 1}, None, id="name-int"),
    pytest.param(_group(_set("StreamName", None)), {"nameless_group": 1}, None, id="name-null"),
    # Skipped, named: the stream is unknown.
    pytest.param(_group(_set("StreamName", "n" * 257)), {"stream_name_too_long": 1}, None, id="name-long"),
    pytest.param(_group(_set("BackupList", {})), {"malformed_group": 1}, None, id="backups-object"),
    pytest.param(_group(_drop("BackupList")), {"malformed_group": 1}, None, id="backups-missing"),
    # Kept, with what can be read.
    pytest.param(_group(_set("OptimalEnable", None)), {}, ("optimal_enable", None), id="optimal-null"),
    pytest.param(_group(_drop("OptimalEnable")), {}, ("optimal_enable", None), id="optimal-missing"),
    pytest.param(
        _group(_set("OptimalEnable", "0")), {"mistyped_field": 1}, ("optimal_enable", None), id="optimal-str"
    ),
    pytest.param(
        _group(_set("OptimalEnable", True)),
        {"mistyped_field": 1},
        ("optimal_enable", None),
        id="optimal-bool",
    ),
    pytest.param(_group(_set("HostGroupName", None)), {}, ("host_group", ""), id="hostgroup-null"),
    pytest.param(
        _group(_set("HostGroupName", 3)), {"mistyped_field": 1}, ("host_group", ""), id="hostgroup-int"
    ),
    pytest.param(
        _group(_set("HostGroupName", "h" * 300)),
        {"long_field": 1},
        ("host_group", "h" * 256),
        id="hostgroup-long",
    ),
    pytest.param(
        _group(_set("BackupList", ["x", None])),
        {"publisher_without_sequence": 2},
        ("publishers", ()),
        id="pub-str",
    ),
    pytest.param(_publisher(1, _drop("DomainName")), {}, ("domain", ""), id="domain-missing"),
    pytest.param(
        _publisher(1, _set("DomainName", 5)), {"mistyped_field": 1}, ("domain", ""), id="domain-int"
    ),
    pytest.param(_publisher(1, _set("AppName", None)), {}, ("app", ""), id="app-null"),
    pytest.param(
        _publisher(1, _set("SourceFrom", "s" * 257)), {"long_field": 1}, ("source", "s" * 256), id="src-long"
    ),
    pytest.param(
        _publisher(1, _drop("PublishTime")), {"bad_publish_time": 1}, ("time", None), id="time-missing"
    ),
    pytest.param(
        _publisher(1, _set("PublishTime", "2018-06-29")),
        {"bad_publish_time": 1},
        ("time", None),
        id="time-date",
    ),
    pytest.param(
        _publisher(1, _set("PublishTime", "2018-W26-5T19:00:00Z")),
        {"bad_publish_time": 1},
        ("time", None),
        id="week",
    ),
    pytest.param(
        _publisher(1, _set("PublishTime", "2018-02-30T19:00:00Z")),
        {"bad_publish_time": 1},
        ("time", None),
        id="feb30",
    ),
    pytest.param(
        _publisher(1, _set("PublishTime", 1530298800)), {"bad_publish_time": 1}, ("time", None), id="num"
    ),
    pytest.param(
        _publisher(1, _set("PublishTime", ["x"])), {"bad_publish_time": 1}, ("time", None), id="list"
    ),
    pytest.param(
        _publisher(1, _set("PublishTime", "2018-06-30T03:00:00+08:00")),
        {},
        ("time", 1530298800.0),
        id="offset",
    ),
    pytest.param(
        _publisher(1, _set("PublishTime", "2018-06-29T19:00:00.250Z")),
        {},
        ("time", 1530298800.25),
        id="millis",
    ),
    pytest.param(
        _publisher(1, _set("PublishTime", "2018-06-30 03:00:00")), {}, ("time", 1530298800.0), id="beijing"
    ),
    pytest.param(
        _publisher(1, _drop("UpstreamSequence")),
        {"publisher_without_sequence": 1},
        ("only", _BACKUP),
        id="seq-none",
    ),
    pytest.param(
        _publisher(1, _set("UpstreamSequence", "")),
        {"publisher_without_sequence": 1},
        ("only", _BACKUP),
        id="seq-empty",
    ),
    pytest.param(
        _publisher(1, _set("UpstreamSequence", "12a")),
        {"publisher_without_sequence": 1},
        ("only", _BACKUP),
        id="seq-abc",
    ),
    pytest.param(
        _publisher(1, _set("UpstreamSequence", "١٢٣")),
        {"publisher_without_sequence": 1},
        ("only", _BACKUP),
        id="seq-arab",
    ),
    pytest.param(
        _publisher(1, _set("UpstreamSequence", -1)),
        {"publisher_without_sequence": 1},
        ("only", _BACKUP),
        id="seq-neg",
    ),
    pytest.param(
        _publisher(1, _set("UpstreamSequence", 1.5)),
        {"publisher_without_sequence": 1},
        ("only", _BACKUP),
        id="seq-float",
    ),
    pytest.param(
        _publisher(1, _set("UpstreamSequence", "9" * 40)),
        {"publisher_without_sequence": 1},
        ("only", _BACKUP),
        id="seq-long",
    ),
    pytest.param(_publisher(1, _set("MasterFlag", 2)), {"bad_master_flag": 1}, ("master", None), id="flag-2"),
    pytest.param(
        _publisher(1, _set("MasterFlag", True)), {"bad_master_flag": 1}, ("master", None), id="flag-bool"
    ),
    pytest.param(
        _publisher(1, _set("MasterFlag", 1.0)), {"bad_master_flag": 1}, ("master", None), id="flag-float"
    ),
    pytest.param(
        _publisher(1, _set("MasterFlag", "1")), {"bad_master_flag": 1}, ("master", None), id="flag-str"
    ),
    pytest.param(
        _publisher(1, _drop("MasterFlag")), {"bad_master_flag": 1}, ("master", None), id="flag-missing"
    ),
]


def _check(stream: Stream, check: tuple[str, object]) -> None:
    what, expected = check
    master = stream.publishers[1] if len(stream.publishers) > 1 else None
    if what == "optimal_enable":
        assert stream.optimal_enable == expected
    elif what == "host_group":
        assert stream.host_group == expected
    elif what == "publishers":
        assert stream.publishers == expected
    elif what == "only":
        assert [p.upstream_sequence for p in stream.publishers] == [expected]
    elif what == "master":
        assert stream.master is None
    else:
        assert master is not None
        field = {"domain": "domain", "app": "app", "source": "source_from", "time": "publish_time"}[what]
        assert getattr(master, field) == expected


class TestOneOddRecord:
    """SPEC section 9: an odd group costs at most that group, never the region."""

    @pytest.mark.parametrize(("mutate", "anomalies", "check"), ODD_GROUPS)
    def test_odd_group_next_to_a_healthy_one(
        self, mutate: Mutation, anomalies: dict[str, int], check: tuple[str, object] | None
    ) -> None:
        document = _example()
        healthy = copy.deepcopy(document["Response"]["StreamInfoList"][0])
        healthy["StreamName"] = "healthy"
        mutate(document)
        document["Response"]["StreamInfoList"].append(healthy)
        snapshot = _parse(orjson.dumps(document))
        assert snapshot.streams["healthy"] == replace(
            _parse(_load(VENDOR_EXAMPLE)).streams["stream1"], name="healthy"
        )
        assert snapshot.anomalies == anomalies
        assert snapshot.request_id == "4b3d1d04-6f79-4f56-a8e7-46de97de1713"
        nameless = "nameless_group" in anomalies
        assert snapshot.judging_absences is not nameless
        if check is None:
            assert set(snapshot.streams) == {"healthy"}
            group = document["Response"]["StreamInfoList"][0]
            assert snapshot.unknown == (frozenset() if nameless else frozenset({group["StreamName"]}))
        else:
            assert snapshot.unknown == frozenset()
            _check(snapshot.streams["stream1"], check)

    def test_a_garbage_group_is_nameless(self) -> None:
        body = _reply([None, [1, 2], "x", 5, _stream_group("a")])
        snapshot = _parse(body)
        assert list(snapshot.streams) == ["a"]
        assert snapshot.anomalies == {"nameless_group": 4}
        assert snapshot.judging_absences is False

    def test_long_name_is_measured_in_utf8_bytes(self) -> None:
        fits, too_long = "流" * 85, "流" * 86  # 255 and 258 bytes
        snapshot = _parse(_reply([_stream_group(fits), _stream_group(too_long), _stream_group("x" * 256)]))
        assert set(snapshot.streams) == {fits, "x" * 256}
        assert snapshot.unknown == frozenset({too_long})

    def test_duplicate_choice_does_not_depend_on_reply_order(self) -> None:
        low = _stream_group("a", sequence="9")  # 9 < 10: lower by number, not by text
        high = _stream_group("a", sequence="10")
        broken = {**_stream_group("a"), "BackupList": {}}
        for order in ([low, high, broken], [broken, high, low], [high, low, broken]):
            snapshot = _parse(_reply(order))
            assert snapshot.streams["a"].master is not None
            assert snapshot.streams["a"].master.upstream_sequence == "9"
            assert snapshot.anomalies == {"duplicate_stream_name": 2, "malformed_group": 1}
            assert snapshot.unknown == frozenset()  # one usable copy: the stream is known

    def test_a_full_list_at_the_vendor_ceiling_judges_no_absence(self) -> None:
        groups = [_stream_group(f"s{i}") for i in range(VENDOR_CEILING)]
        snapshot = _parse(_reply(groups))
        assert len(snapshot.streams) == VENDOR_CEILING
        assert snapshot.judging_absences is False
        assert snapshot.anomalies == {"list_at_vendor_ceiling": 1}
        assert _parse(_reply(groups[1:])).judging_absences is True

    @pytest.mark.parametrize(
        ("name", "anomalies"),
        [
            ("odd/missing_request_id.json", {}),
            ("odd/publish_time_local_offset.json", {}),
            ("odd/master_flag_string.json", {"bad_master_flag": 1}),
            ("odd/upstream_sequence_not_digits.json", {"publisher_without_sequence": 1}),
            ("odd/stream_name_missing.json", {"nameless_group": 1}),
        ],
    )
    def test_recorded_odd_replies(self, name: str, anomalies: dict[str, int]) -> None:
        assert _parse(_load(name)).anomalies == anomalies


class TestNotThisResponse:
    @pytest.mark.parametrize(
        ("name", "fragment"),
        [
            ("html_bad_gateway.html", "not JSON"),
            ("truncated.json", "not JSON"),
            ("empty.json", "not JSON"),
            ("top_level_array.json", "not a JSON object"),
            ("no_response_object.json", "no Response object"),
            ("missing_stream_info_list.json", "StreamInfoList: missing"),
            ("stream_info_list_object.json", "StreamInfoList: not a list"),
            ("error_without_code.json", "Error.Code"),
        ],
    )
    def test_recorded_malformed_replies(self, name: str, fragment: str) -> None:
        with pytest.raises(BadResponse) as info:
            _parse(_load(f"malformed/{name}"))
        assert fragment in str(info.value)
        assert len(str(info.value)) < 300

    @pytest.mark.parametrize(
        "body",
        [
            b"\xff\xfe not utf-8",
            b"null",
            b'"Response"',
            b'{"Response": null}',
            b'{"Response": []}',
            b'{"Response": {"Error": "boom", "RequestId": "r"}}',
            b'{"Response": {"Error": {"Code": ""}, "RequestId": "r"}}',
            b'{"Response": {"RequestId": "r", "StreamInfoList": "abc"}}',
            b'{"Response": {"RequestId": "r", "StreamInfoList": 1}}',
        ],
    )
    def test_wrong_shapes(self, body: bytes) -> None:
        with pytest.raises(BadResponse):
            _parse(body)

    def test_failures_are_poll_errors_never_empty_snapshots(self) -> None:
        # "Failure dressed as data" is the one mistake parse must never make.
        for path in sorted((FIXTURES / "malformed").iterdir()):
            with pytest.raises(PollError):
                _parse(path.read_bytes())


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_PUBLISHER_KEYS = ("DomainName", "AppName", "PublishTime", "UpstreamSequence", "SourceFrom", "MasterFlag")
_GARBAGE_PUBLISHER = st.dictionaries(st.sampled_from(_PUBLISHER_KEYS), _JSON_VALUES) | _JSON_VALUES
_GARBAGE_GROUP = (
    st.fixed_dictionaries(
        {},
        optional={
            "StreamName": st.text(max_size=90) | _JSON_VALUES,
            "OptimalEnable": _JSON_VALUES,
            "HostGroupName": _JSON_VALUES,
            "BackupList": st.lists(_GARBAGE_PUBLISHER, max_size=3) | _JSON_VALUES,
        },
    )
    | _JSON_VALUES
)


class TestGarbageProperties:
    @settings(max_examples=300, deadline=None)
    @given(
        document=st.dictionaries(
            st.sampled_from(["Response", "x"]),
            st.dictionaries(
                st.sampled_from(["RequestId", "StreamInfoList", "Error"]),
                _JSON_VALUES | st.lists(_GARBAGE_GROUP, max_size=3),
            )
            | _JSON_VALUES,
        )
        | _JSON_VALUES
    )
    def test_any_document_parses_or_raises_a_poll_error(self, document: Any) -> None:
        body = orjson.dumps(document)
        try:
            snapshot = _parse(body)
        except (BadResponse, ApiError):
            return
        assert snapshot == _cached(body, _cached(body, None)[1])[0]

    @settings(max_examples=300, deadline=None)
    @given(garbage=st.lists(_GARBAGE_GROUP, max_size=5), position=st.integers(0, 5))
    def test_garbage_groups_never_raise_and_never_blind_the_others(
        self, garbage: list[Any], position: int
    ) -> None:
        healthy = [_stream_group("healthy-1"), _stream_group("healthy-2", sequence="12")]
        groups = garbage[:position] + healthy + garbage[position:]
        body = _reply(groups)
        snapshot = _parse(body)  # raises nothing: any failure here is the bug
        names = {g["StreamName"] for g in garbage if type(g) is dict and type(g.get("StreamName")) is str}
        expected = _parse(_reply(healthy)).streams
        for good in ("healthy-1", "healthy-2"):
            if good not in names:  # a garbage copy of the same name may legitimately win
                assert snapshot.streams[good] == expected[good]
        cached, cache = _cached(body, None)
        again, _ = _cached(body, cache)
        assert cached == again == snapshot
        assert all(type(count) is int and count > 0 for count in snapshot.anomalies.values())
        assert set(snapshot.anomalies) <= {a.value for a in Anomaly}


class TestPublishTime:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1970-01-01T00:00:00Z", 0.0),
            ("2018-06-29T19:00:00Z", 1530298800.0),
            ("2018-06-30 03:00:00", 1530298800.0),  # no zone: Beijing time
            ("2018-06-30T03:00:00", 1530298800.0),
            ("2018-06-30T03:00:00+08:00", 1530298800.0),
            ("2018-06-29T19:00:00.5Z", 1530298800.5),
            ("2018-06-29T19:00:00.123+00:00", 1530298800.123),
            ("2024-02-29T23:59:59Z", 1709251199.0),
        ],
    )
    def test_accepted_forms(self, text: str, expected: float) -> None:
        assert parse_publish_time(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "2018-06-29t19:00:00z",
            "20180629T190000Z",
            "2018-06-29T19:00:60Z",
            " 2018-06-29T19:00:00Z",
            "2018-06-29T19:00:00Z ",
            "2018-06-29T1９:00:00Z",
        ],
    )
    def test_rejected_forms(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_publish_time(text)


def _cached(body: bytes, previous: ParseCache | None, **kwargs: Any) -> Any:
    return parse_snapshot_cached(
        body, account="prod", region="ap-guangzhou", taken_at=1_700_000_000.0, previous=previous, **kwargs
    )


def _reply(groups: list[Any], request_id: str = "r") -> bytes:
    return orjson.dumps({"Response": {"RequestId": request_id, "StreamInfoList": groups}})


def _stream_group(
    name: str, *, flag: object = 1, sequence: object = "11", optimal: object = 1
) -> dict[str, Any]:
    return {
        "StreamName": name,
        "OptimalEnable": optimal,
        "HostGroupName": "g",
        "BackupList": [
            {
                "DomainName": "push.example.com",
                "AppName": "live",
                "PublishTime": "2024-05-01T10:00:00Z",
                "UpstreamSequence": sequence,
                "SourceFrom": "直推流",
                "MasterFlag": flag,
            }
        ],
    }


class TestCachedParse:
    """parse_snapshot_cached returns what parse_snapshot returns; it only reuses objects."""

    @pytest.mark.parametrize(
        "name",
        [
            VENDOR_EXAMPLE,
            "describe_backup_stream_list_edge_cases.json",
            "describe_backup_stream_list_null.json",
        ],
    )
    def test_same_snapshot_as_the_plain_parse_cold_and_warm(self, name: str) -> None:
        body = _load(name)
        cold, cache = _cached(body, None)
        warm, _ = _cached(body, cache)
        assert cold == warm == _parse(body)
        assert list(warm.streams) == list(_parse(body).streams)  # vendor order kept

    def test_unchanged_groups_reuse_the_stream_object_changed_ones_do_not(self) -> None:
        first, cache = _cached(_reply([_stream_group("a"), _stream_group("b"), _stream_group("c")]), None)
        second, cache = _cached(
            _reply([_stream_group("a"), _stream_group("b", flag=0), _stream_group("d")]), cache
        )
        assert second.streams["a"] is first.streams["a"]
        assert second.streams["b"] is not first.streams["b"]
        assert second.streams["b"].master is None
        assert list(second.streams) == ["a", "b", "d"]
        third, _ = _cached(_reply([_stream_group("c"), _stream_group("a"), _stream_group("x")]), cache)
        assert third.streams["c"] is not first.streams["c"]  # only the last reply is remembered
        assert third.streams["a"] is first.streams["a"]

    @pytest.mark.parametrize(
        ("field", "before", "after"),
        [
            # Each pair is equal as Python values (1 == True == 1.0), so dict == dict would call the
            # group unchanged; the strict checks reject the second spelling, and so must the cache.
            ("MasterFlag", 1, True),
            ("MasterFlag", 0, 0.0),
            ("UpstreamSequence", 11, 11.0),
            ("OptimalEnable", 1, True),
        ],
    )
    def test_a_group_equal_only_by_python_value_is_checked_again(
        self, field: str, before: object, after: object
    ) -> None:
        def group(value: object) -> dict[str, Any]:
            if field == "OptimalEnable":
                return _stream_group("a", optimal=value)
            if field == "MasterFlag":
                return _stream_group("a", flag=value)
            return _stream_group("a", sequence=value)

        assert group(before) == group(after)
        _, cache = _cached(_reply([group(before)]), None)
        snapshot, _ = _cached(_reply([group(after)]), cache)
        assert snapshot == _parse(_reply([group(after)]))
        assert snapshot.anomalies  # read again, so the oddity is seen and counted

    def test_a_different_filter_ignores_the_cache(self) -> None:
        body = _reply([_stream_group("a"), _stream_group("b")])
        _, cache = _cached(body, None)
        snapshot, cache = _cached(body, cache, admit=lambda name: name != "a")
        assert list(snapshot.streams) == ["b"]
        snapshot, _ = _cached(body, cache, admit=lambda name: True)  # another filter again
        assert list(snapshot.streams) == ["a", "b"]

    def test_rejected_groups_are_remembered_as_rejected(self) -> None:
        asked: list[str] = []

        def admit(name: str) -> bool:
            asked.append(name)
            return name != "a"

        body = _reply([_stream_group("a"), _stream_group("b"), _stream_group("z")])
        _, cache = _cached(body, None, admit=admit)
        assert asked[:2] == ["a", "b"]
        asked.clear()
        snapshot, _ = _cached(body, cache, admit=admit)
        assert list(snapshot.streams) == ["b", "z"]
        assert "a" not in asked  # its answer was remembered with its text

    def test_duplicates_resolve_as_in_the_plain_parse(self) -> None:
        # The first "a" was cached; the second is new and odd: same choice either way.
        odd = _stream_group("a", flag=7)
        _, cache = _cached(_reply([_stream_group("a")]), None)
        body = _reply([_stream_group("a"), odd, _stream_group("b")])
        snapshot, _ = _cached(body, cache)
        assert snapshot == _parse(body)
        assert snapshot.streams["a"].master is not None  # the copy with a master wins
        assert snapshot.anomalies == {"duplicate_stream_name": 1, "bad_master_flag": 1}

    def test_an_odd_group_is_counted_again_when_reused_from_the_cache(self) -> None:
        groups = [_stream_group(f"s{n}") for n in range(5)]
        groups[3] = _stream_group("s3", flag=-1)
        first, cache = _cached(_reply(groups), None)
        second, _ = _cached(_reply(groups, request_id="r2"), cache)
        assert first.anomalies == second.anomalies == {"bad_master_flag": 1}
        assert second.streams["s0"] is first.streams["s0"]
        assert second.streams["s3"] is first.streams["s3"]

    def test_groups_nested_too_deep_to_fingerprint_still_parse(self) -> None:
        deep: Any = []
        for _ in range(300):  # orjson reads 1024 levels but writes only 254
            deep = [deep]
        group = {**_stream_group("a"), "VendorExtra": deep}
        body = json.dumps({"Response": {"RequestId": "r", "StreamInfoList": [group, _stream_group("b")]}})
        snapshot, cache = _cached(body.encode(), None)
        assert list(snapshot.streams) == ["a", "b"]
        again, _ = _cached(body.encode(), cache)
        assert again == snapshot

    def test_api_errors_raise_as_in_the_plain_parse(self) -> None:
        _, cache = _cached(_load(VENDOR_EXAMPLE), None)
        with pytest.raises(Throttled):
            _cached(_load("error_request_limit_exceeded.json"), cache)


_GROUP_VARIANTS = [
    _stream_group("a"),
    _stream_group("a", flag=0),
    _stream_group("a", flag=True),  # invalid, equal to the first by Python value
    _stream_group("b"),
    _stream_group("b", sequence=11),
    _stream_group("b", sequence=11.0),  # invalid
    _stream_group("c", optimal=0),
    _stream_group("c", optimal=False),  # invalid
    {"StreamName": "d", "OptimalEnable": 0, "HostGroupName": None, "BackupList": None},
    {"StreamName": "", "OptimalEnable": 0, "HostGroupName": None, "BackupList": None},  # invalid
    # An object nested in a group that starts like a group: cutting the reply text there fails.
    {**_stream_group("e"), "VendorExtra": {"StreamName": "x", "OptimalEnable": 1}},
    {"OptimalEnable": 1, "StreamName": "f", "HostGroupName": "", "BackupList": []},  # other key order
    _stream_group("a", flag=7),  # odd: not master
    _stream_group("a", sequence="5"),  # a duplicate that wins by its lower master sequence
    None,  # nameless: absences judge nothing
    _stream_group("n" * 257),  # over the name limit: unknown
    {**_stream_group("g"), "BackupList": {}},  # malformed: unknown
    {**_stream_group("h"), "BackupList": ["x", {"UpstreamSequence": "12", "MasterFlag": 1}]},
]

# How the reply is spelled: compact (the steady-state text path), spaced, pretty (parsed whole).
_SPELLINGS: list[Callable[[Any], bytes]] = [
    orjson.dumps,
    lambda document: json.dumps(document, ensure_ascii=False).encode(),
    lambda document: json.dumps(document, indent=1).encode(),
]


def _spelled(groups: list[Any], spelling: int, error: bool) -> bytes:
    response: dict[str, Any] = {"RequestId": "r", "StreamInfoList": groups}
    if error:
        response["Error"] = {"Code": "InternalError", "Message": "m"}
    return _SPELLINGS[spelling]({"Response": response})


def _outcome(parse: Callable[[], Any]) -> Any:
    try:
        snapshot = parse()
    except PollError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("ok", snapshot.request_id, list(snapshot.streams.items()), *_judgement(snapshot))


def _judgement(snapshot: Any) -> tuple[Any, ...]:
    return (dict(snapshot.anomalies), snapshot.unknown, snapshot.judging_absences)


class TestCachedParseProperties:
    @settings(max_examples=300, deadline=None)
    @given(
        replies=st.lists(
            st.tuples(
                st.lists(st.sampled_from(range(len(_GROUP_VARIANTS))), max_size=6),
                st.sampled_from(range(len(_SPELLINGS))),
                st.sampled_from([False, False, False, True]),
            ),
            min_size=1,
            max_size=6,
        ),
        exclude_c=st.booleans(),
    )
    def test_any_sequence_of_replies_parses_as_without_a_cache(
        self, replies: list[tuple[list[int], int, bool]], exclude_c: bool
    ) -> None:
        # Whatever came before (including failed replies, whose cache the caller drops), a
        # cached parse returns exactly what the plain parse returns, or fails just like it.
        def admit(name: str) -> bool:
            return not (exclude_c and name == "c")

        cache: ParseCache | None = None
        for picks, spelling, error in replies:
            body = _spelled([copy.deepcopy(_GROUP_VARIANTS[i]) for i in picks], spelling, error)
            expected = _outcome(lambda: _parse(body, admit=admit))  # noqa: B023  # called at once
            try:
                snapshot, new_cache = _cached(body, cache, admit=admit)
            except PollError as exc:
                assert expected == ("error", type(exc).__name__, str(exc))
                continue  # the caller keeps its previous cache
            assert expected == (
                "ok",
                snapshot.request_id,
                list(snapshot.streams.items()),
                *_judgement(snapshot),
            )
            cache = new_cache


class TestScale:
    def test_20k_streams_parse_in_reasonable_time(self) -> None:
        # A loose ceiling (prints the same-run json.loads baseline); the real bar is below 3x.
        body = synthetic_reply(20_000)
        start = time.perf_counter()
        json.loads(body)
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        snapshot = _parse(body)
        elapsed = time.perf_counter() - start
        print(f"json.loads {baseline * 1e3:.0f} ms, parse_snapshot {elapsed * 1e3:.0f} ms")
        assert len(snapshot.streams) == 20_000
        assert sum(len(s.publishers) for s in snapshot.streams.values()) == 40_000
        assert all(s.master is not None for s in snapshot.streams.values())
        assert elapsed < max(10 * baseline, 2.0)
