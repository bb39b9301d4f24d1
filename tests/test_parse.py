"""parse_snapshot on recorded vendor replies: exact values, tolerated oddities, every malformed kind."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from exporter.model import Publisher, Stream
from exporter.parse import ParseCache, parse_publish_time, parse_snapshot, parse_snapshot_cached
from exporter.tencent.errors import ApiError, BadResponse, PollError, Throttled

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

    def test_admit_skips_publisher_parsing_of_excluded_streams(self) -> None:
        # An excluded stream exists nowhere; a quirk inside it must not fail the region.
        document = _example()
        document["Response"]["StreamInfoList"][0]["BackupList"][0]["MasterFlag"] = 7
        body = orjson.dumps(document)
        with pytest.raises(BadResponse):
            _parse(body)
        assert dict(_parse(body, admit=lambda name: False).streams) == {}


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
        with capture_logs() as logs:
            snapshot = _parse(_load("describe_backup_stream_list_edge_cases.json"))
        assert list(snapshot.streams) == ["news-main", "no-publishers", "直播频道"]
        first = snapshot.streams["news-main"]
        # Duplicate StreamName: the first group wins, untouched by the second.
        assert first.host_group == "group-a" and first.optimal_enable == 1
        assert [p.upstream_sequence for p in first.publishers] == [
            "2000000000000000001",
            "2000000000000000002",
        ]
        assert first.publishers[0].publish_time == 1714557600.0  # 2024-05-01T10:00:00Z
        assert first.publishers[1].publish_time == 1714557605.0  # "2024-05-01 10:00:05" read as UTC
        assert snapshot.streams["no-publishers"] == Stream("no-publishers", "", 0, ())
        assert snapshot.streams["直播频道"].publishers[0].publish_time == 1714607999.0
        assert [entry["event"] for entry in logs] == ["duplicate_stream_names"]
        assert logs[0]["count"] == 1 and logs[0]["examples"] == ["news-main"]
        assert logs[0]["log_level"] == "warning"

    def test_no_log_without_duplicates(self) -> None:
        with capture_logs() as logs:
            _parse(_load(VENDOR_EXAMPLE))
        assert logs == []

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


MALFORMED_FIELDS = [
    # (mutation, expected fragment of the message)
    pytest.param(_group(_drop("StreamName")), "StreamInfoList[0]: StreamName: missing", id="name-missing"),
    pytest.param(_group(_set("StreamName", "")), "StreamName: want a non-empty string", id="name-empty"),
    pytest.param(
        _group(_set("StreamName", 12)), "StreamName: want a non-empty string, got 12", id="name-int"
    ),
    pytest.param(_group(_drop("OptimalEnable")), "('stream1'): OptimalEnable: missing", id="optimal-missing"),
    pytest.param(_group(_set("OptimalEnable", "0")), "OptimalEnable: want an integer", id="optimal-str"),
    pytest.param(_group(_set("OptimalEnable", True)), "OptimalEnable: want an integer", id="optimal-bool"),
    pytest.param(_group(_set("HostGroupName", 3)), "HostGroupName: want a string", id="hostgroup-int"),
    pytest.param(_group(_drop("HostGroupName")), "HostGroupName: missing", id="hostgroup-missing"),
    pytest.param(_group(_drop("BackupList")), "BackupList: missing", id="backups-missing"),
    pytest.param(_group(_set("BackupList", {})), "BackupList: want a list", id="backups-object"),
    pytest.param(_group(_set("BackupList", ["x"])), "BackupList[0]: not an object", id="publisher-str"),
    pytest.param(
        _publisher(1, _drop("DomainName")), "BackupList[1].DomainName: missing", id="domain-missing"
    ),
    pytest.param(_publisher(0, _set("AppName", None)), "BackupList[0].AppName: want a string", id="app-null"),
    pytest.param(
        _publisher(0, _set("SourceFrom", 1)), "BackupList[0].SourceFrom: want a string", id="source-int"
    ),
    pytest.param(
        _publisher(1, _drop("PublishTime")), "BackupList[1].PublishTime: missing", id="time-missing"
    ),
    pytest.param(
        _publisher(0, _set("PublishTime", "2018-06-29")), "PublishTime: want 'YYYY", id="time-date-only"
    ),
    pytest.param(
        _publisher(0, _set("PublishTime", "2018-06-29T19:00:00+08:00")), "PublishTime", id="time-offset"
    ),
    pytest.param(
        _publisher(0, _set("PublishTime", "2018-W26-5T19:00:00Z")), "PublishTime", id="time-week-date"
    ),
    pytest.param(
        _publisher(0, _set("PublishTime", "2018-02-30T19:00:00Z")), "PublishTime", id="time-impossible"
    ),
    pytest.param(_publisher(0, _set("PublishTime", 1530298800)), "PublishTime", id="time-number"),
    pytest.param(_publisher(0, _set("PublishTime", ["x"])), "PublishTime", id="time-unhashable"),
    pytest.param(_publisher(0, _drop("UpstreamSequence")), "UpstreamSequence: missing", id="seq-missing"),
    pytest.param(
        _publisher(0, _set("UpstreamSequence", "")),
        "UpstreamSequence: want a string of digits",
        id="seq-empty",
    ),
    pytest.param(_publisher(0, _set("UpstreamSequence", "12a")), "UpstreamSequence", id="seq-letters"),
    pytest.param(_publisher(0, _set("UpstreamSequence", "١٢٣")), "UpstreamSequence", id="seq-arabic-digits"),
    pytest.param(_publisher(0, _set("UpstreamSequence", -1)), "UpstreamSequence", id="seq-negative"),
    pytest.param(_publisher(0, _set("UpstreamSequence", 1.5)), "UpstreamSequence", id="seq-float"),
    pytest.param(
        _publisher(1, _set("MasterFlag", 2)), "BackupList[1].MasterFlag: want 0 or 1, got 2", id="flag-2"
    ),
    pytest.param(_publisher(1, _set("MasterFlag", True)), "MasterFlag", id="flag-bool"),
    pytest.param(_publisher(1, _set("MasterFlag", 1.0)), "MasterFlag", id="flag-float"),
    pytest.param(_publisher(1, _drop("MasterFlag")), "MasterFlag: missing", id="flag-missing"),
]


class TestMalformed:
    @pytest.mark.parametrize(("mutate", "fragment"), MALFORMED_FIELDS)
    def test_field_deviation_names_field_and_stream(self, mutate: Mutation, fragment: str) -> None:
        document = copy.deepcopy(_example())
        mutate(document)
        with pytest.raises(BadResponse) as info:
            _parse(orjson.dumps(document))
        assert fragment in str(info.value)
        assert info.value.code == "BadResponse"
        assert info.value.request_id == "4b3d1d04-6f79-4f56-a8e7-46de97de1713"
        assert len(str(info.value)) < 200

    def test_bad_group_after_good_ones_is_located(self) -> None:
        document = _example()
        groups = document["Response"]["StreamInfoList"]
        for n in range(1, 4):
            clone = copy.deepcopy(groups[0])
            clone["StreamName"] = f"s{n}"
            groups.append(clone)
        groups[3]["BackupList"][1]["MasterFlag"] = -1
        with pytest.raises(BadResponse, match=r"^StreamInfoList\[3\] \('s3'\): BackupList\[1\]\.MasterFlag"):
            _parse(orjson.dumps(document))

    def test_long_values_are_not_dumped(self) -> None:
        document = _example()
        document["Response"]["StreamInfoList"][0]["BackupList"][0]["PublishTime"] = "9" * 10_000
        document["Response"]["StreamInfoList"][0]["StreamName"] = "n" * 10_000
        with pytest.raises(BadResponse) as info:
            _parse(orjson.dumps(document))
        assert len(str(info.value)) < 200

    @pytest.mark.parametrize(
        ("name", "fragment"),
        [
            ("html_bad_gateway.html", "not JSON"),
            ("truncated.json", "not JSON"),
            ("empty.json", "not JSON"),
            ("top_level_array.json", "not a JSON object"),
            ("no_response_object.json", "no Response object"),
            ("missing_request_id.json", "RequestId"),
            ("missing_stream_info_list.json", "StreamInfoList: missing"),
            ("stream_info_list_object.json", "StreamInfoList: not a list"),
            ("error_without_code.json", "Error.Code"),
            ("publish_time_local_offset.json", "BackupList[1].PublishTime"),
            ("master_flag_string.json", "BackupList[0].MasterFlag"),
            ("upstream_sequence_not_digits.json", "BackupList[1].UpstreamSequence"),
            ("stream_name_missing.json", "StreamInfoList[0]: StreamName: missing"),
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
            b'{"Response": {"RequestId": 5, "StreamInfoList": []}}',
            b'{"Response": {"Error": "boom", "RequestId": "r"}}',
            b'{"Response": {"Error": {"Code": ""}, "RequestId": "r"}}',
            b'{"Response": {"RequestId": "r", "StreamInfoList": [null]}}',
            b'{"Response": {"RequestId": "r", "StreamInfoList": [[1, 2]]}}',
            b'{"Response": {"RequestId": "r", "StreamInfoList": "abc"}}',
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


class TestPublishTime:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1970-01-01T00:00:00Z", 0.0),
            ("2018-06-29T19:00:00Z", 1530298800.0),
            ("2018-06-29 19:00:00", 1530298800.0),
            ("2024-02-29T23:59:59Z", 1709251199.0),
        ],
    )
    def test_accepted_forms(self, text: str, expected: float) -> None:
        assert parse_publish_time(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "2018-06-29T19:00:00",
            "2018-06-29T19:00:00.5Z",
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
        with pytest.raises(BadResponse, match=field):
            _cached(_reply([group(after)]), cache)

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

    def test_duplicates_keep_the_first_copy_as_the_plain_parse_does(self) -> None:
        # The first "a" was cached; the second is new and its publishers are broken. The plain
        # parse never looks at a duplicate's publishers, so neither may the cached one.
        broken = _stream_group("a", flag=7)
        _, cache = _cached(_reply([_stream_group("a")]), None)
        body = _reply([_stream_group("a"), broken, _stream_group("b")])
        with capture_logs() as logs:
            snapshot, _ = _cached(body, cache)
        assert snapshot == _parse(body)
        assert [entry["event"] for entry in logs] == ["duplicate_stream_names"]
        assert logs[0]["examples"] == ["a"]

    def test_a_changed_copy_before_an_unchanged_duplicate_wins(self) -> None:
        _, cache = _cached(_reply([_stream_group("a")]), None)
        body = _reply([_stream_group("a", flag=0), _stream_group("a")])
        snapshot, _ = _cached(body, cache)
        assert snapshot == _parse(body)
        assert snapshot.streams["a"].master is None

    def test_a_malformed_group_fails_with_the_plain_parse_message(self) -> None:
        groups = [_stream_group(f"s{n}") for n in range(5)]
        _, cache = _cached(_reply(groups), None)
        groups[3] = _stream_group("s3", flag=-1)
        body = _reply(groups)
        with pytest.raises(BadResponse) as plain:
            _parse(body)
        with pytest.raises(BadResponse) as cached:
            _cached(body, cache)
        assert str(cached.value) == str(plain.value)
        assert str(cached.value).startswith("StreamInfoList[3] ('s3'): BackupList[0].MasterFlag")

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
    _stream_group("a", flag=7),  # invalid
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
    return ("ok", snapshot.request_id, list(snapshot.streams.items()))


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
            assert expected == ("ok", snapshot.request_id, list(snapshot.streams.items()))
            cache = new_cache


def _synthetic(streams: int) -> bytes:
    groups = [
        {
            "StreamName": f"stream-{i:06d}",
            "OptimalEnable": i % 2,
            "HostGroupName": "g",
            "BackupList": [
                {
                    "DomainName": "push.example.com",
                    "AppName": "live",
                    "PublishTime": f"2024-05-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z",
                    "UpstreamSequence": str(10**17 + 2 * i + k),
                    "SourceFrom": "直推流",
                    "MasterFlag": int(k == 0),
                }
                for k in range(2)
            ],
        }
        for i in range(streams)
    ]
    return orjson.dumps({"Response": {"RequestId": "r", "StreamInfoList": groups}})


class TestScale:
    def test_20k_streams_parse_in_reasonable_time(self) -> None:
        # A loose ceiling (prints the same-run json.loads baseline); the real bar is below 3x.
        body = _synthetic(20_000)
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
