"""An independent, scripted fake of Tencent Cloud Live's ``DescribeBackupStreamList``.

Deliberately NOT ``exporter.simulator`` and importing nothing from ``exporter``: an acceptance
test whose fake shares code with the product can only prove that the product agrees with
itself. Everything here is written from the vendor's public documentation:

- API 3.0 signature v3 (``TC3-HMAC-SHA256``), checked strictly: the canonical request is
  ``POST\\n/\\n\\n<canonical headers>\\n<signed headers>\\n<hex sha256 of the body>``; header
  names and values lower-cased and trimmed, sorted by name; ``content-type`` and ``host`` must
  be signed; the credential scope is ``<UTC date of X-TC-Timestamp>/live/tc3_request``; the key
  is derived ``HMAC("TC3"+SecretKey, date) -> service -> "tc3_request"``; the timestamp may be
  off by at most 5 minutes. Failures answer ``AuthFailure.*`` with HTTP 200, as the vendor does.
- the default per-(sub-)account rate limit of 20 requests/second, as a sliding one-second window
  over arrivals per SecretId; arrivals beyond it answer ``RequestLimitExceeded``.
- errors as HTTP 200 with ``Response.Error {Code, Message}`` and a ``RequestId``.

What each region returns comes from a SCRIPT: a list of steps (a :class:`Listing` or a
:class:`Fault`) per region. In ``"request"`` mode every request of the region serves the step
under the cursor and moves it on (the last step repeats); in ``"manual"`` mode the step is
served until the test calls :meth:`VendorFake.advance` or :meth:`VendorFake.goto`, so a test can
say "this poll fails, whatever the retries" without racing the exporter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = [
    "ACTION",
    "REGIONS",
    "VERSION",
    "Fault",
    "Group",
    "Listing",
    "Pub",
    "Record",
    "Step",
    "VendorFake",
    "expected_signature",
    "max_in_window",
]

ACTION = "DescribeBackupStreamList"
VERSION = "2018-08-01"
SERVICE = "live"
REGIONS = ("ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai", "ap-seoul", "ap-tokyo")
_ALGORITHM = "TC3-HMAC-SHA256"
_MAX_SKEW = 300  # seconds: the vendor rejects timestamps more than 5 minutes off


@dataclass(frozen=True, slots=True)
class Pub:
    """One publisher (an entry of ``BackupList``)."""

    seq: str
    master: bool = False
    domain: str = "push.example.com"
    app: str = "live"
    publish_time: str = "2026-01-05T08:00:00Z"
    source_from: str = "直推流"

    def to_json(self) -> dict[str, object]:
        return {
            "DomainName": self.domain,
            "AppName": self.app,
            "PublishTime": self.publish_time,
            "UpstreamSequence": self.seq,
            "SourceFrom": self.source_from,
            "MasterFlag": 1 if self.master else 0,
        }


@dataclass(frozen=True, slots=True)
class Group:
    """One ``BackupStreamGroupInfo``."""

    name: str
    pubs: tuple[Pub, ...]
    optimal_enable: int = 1
    host_group: str = "hg-default"

    def to_json(self) -> dict[str, object]:
        return {
            "StreamName": self.name,
            "OptimalEnable": self.optimal_enable,
            "HostGroupName": self.host_group,
            "BackupList": [p.to_json() for p in self.pubs],
        }


@dataclass(frozen=True, slots=True)
class Listing:
    """A successful reply. ``groups=None`` answers ``StreamInfoList: null``."""

    groups: tuple[Group, ...] | None

    @classmethod
    def of(cls, *groups: Group) -> Listing:
        return cls(tuple(groups))

    def to_json(self, stream_name: str | None) -> list[dict[str, object]] | None:
        if self.groups is None:
            return None
        return [g.to_json() for g in self.groups if stream_name is None or g.name == stream_name]


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted vendor error reply (HTTP 200, ``Response.Error``)."""

    code: str = "InternalError"
    message: str = "scripted fault"


Step = Listing | Fault


@dataclass(frozen=True, slots=True)
class Record:
    """One request as the fake saw it."""

    at: float  # time.monotonic() on arrival
    secret_id: str
    region: str
    stream_name: str | None
    code: str  # "OK" or the error code answered


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """Most arrivals inside any half-open interval of ``window`` seconds, wherever it starts."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def expected_signature(
    *,
    secret_key: str,
    timestamp: int,
    service: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload: bytes,
    method: str = "POST",
    query: str = "",
) -> str:
    """The signature the vendor computes for a request, per the v3 documentation.

    Args:
        headers: the request's headers, any case.
        signed_headers: lower-case names from the Authorization header, in its order.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    canonical_headers = "".join(f"{name}:{lower.get(name, '').strip().lower()}\n" for name in signed_headers)
    canonical_request = "\n".join(
        [
            method,
            "/",
            query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [_ALGORITHM, str(timestamp), scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class _Reject(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Script:
    steps: list[Step]
    mode: str  # "request" | "manual"
    cursor: int = 0
    served: Counter[int] = field(default_factory=Counter)


class VendorFake:
    """The fake vendor on ``127.0.0.1:<free port>``; ``url`` is the endpoint to configure.

    Args:
        keys: SecretId -> SecretKey of every known (sub-)account.
        tokens: SecretId -> session token for temporary credentials (then ``X-TC-Token`` must match).
        rate_limit: requests per sliding second per SecretId before ``RequestLimitExceeded``.
        clock: seconds since the epoch, for the signature's timestamp check.
    """

    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        tokens: Mapping[str, str] | None = None,
        rate_limit: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = dict(keys)
        self._tokens = dict(tokens or {})
        self.rate_limit = rate_limit
        self._clock = clock
        self._lock = threading.Lock()
        self._scripts: dict[str, _Script] = {}
        self._arrivals: dict[str, list[float]] = {}
        self.records: list[Record] = []
        self._served_event = threading.Condition(self._lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length)
                body = fake._handle({k.lower(): v for k, v in self.headers.items()}, payload)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> VendorFake:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> VendorFake:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ script control

    def script(self, region: str, steps: Sequence[Step], *, mode: str = "manual") -> None:
        """Replace the region's script; the cursor goes back to step 0."""
        if mode not in ("manual", "request"):
            raise ValueError(mode)
        if not steps:
            raise ValueError("a script needs at least one step")
        with self._lock:
            self._scripts[region] = _Script(list(steps), mode)

    def goto(self, region: str, index: int) -> None:
        with self._lock:
            script = self._scripts[region]
            if not 0 <= index < len(script.steps):
                raise IndexError(index)
            script.cursor = index

    def served(self, region: str, index: int) -> int:
        """How many requests were answered with step ``index`` of the region's script."""
        with self._lock:
            return self._scripts[region].served[index]

    def wait_served(self, region: str, index: int, count: int = 1, timeout: float = 10.0) -> None:
        """Block until step ``index`` of ``region`` has been served ``count`` times."""
        deadline = time.monotonic() + timeout
        with self._served_event:
            while self._scripts[region].served[index] < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{region} step {index} served {self._scripts[region].served[index]}x")
                self._served_event.wait(left)

    # ------------------------------------------------------------------ inspection

    def codes(self) -> Counter[str]:
        with self._lock:
            return Counter(r.code for r in self.records)

    def max_window(self, secret_id: str, window: float = 1.0) -> int:
        with self._lock:
            return max_in_window(self._arrivals.get(secret_id, []), window)

    def ok_counts(self) -> Counter[tuple[str, str]]:
        """Successful replies per (SecretId, region)."""
        with self._lock:
            return Counter((r.secret_id, r.region) for r in self.records if r.code == "OK")

    def regions_served(self, secret_id: str) -> set[str]:
        with self._lock:
            return {r.region for r in self.records if r.secret_id == secret_id and r.code == "OK"}

    # ------------------------------------------------------------------ the API

    def _handle(self, headers: Mapping[str, str], payload: bytes) -> bytes:
        arrived = time.monotonic()
        request_id = str(uuid.uuid4())
        secret_id = ""
        region = headers.get("x-tc-region", "")
        stream_name: str | None = None
        try:
            secret_id = self._authenticate(headers, payload)
            with self._lock:
                self._arrivals.setdefault(secret_id, []).append(arrived)
                recent = [t for t in self._arrivals[secret_id] if arrived - t < 1.0]
            if len(recent) > self.rate_limit:
                raise _Reject("RequestLimitExceeded", "Your current request times equals to `21` in a second")
            stream_name = self._check_request(headers, payload)
        except _Reject as reject:
            self._record(Record(arrived, secret_id, region, stream_name, reject.code))
            return _error(reject.code, reject.message, request_id)
        with self._lock:
            script = self._scripts.get(region)
            if script is None:
                step: Step = Listing(())
                index = None
            else:
                index = script.cursor
                step = script.steps[index]
                script.served[index] += 1
                if script.mode == "request":
                    script.cursor = min(index + 1, len(script.steps) - 1)
        if isinstance(step, Fault):
            self._record(Record(arrived, secret_id, region, stream_name, step.code))
            return _error(step.code, step.message, request_id)
        self._record(Record(arrived, secret_id, region, stream_name, "OK"))
        response = {"Response": {"StreamInfoList": step.to_json(stream_name), "RequestId": request_id}}
        return json.dumps(response, ensure_ascii=False).encode("utf-8")

    def _record(self, record: Record) -> None:
        with self._served_event:
            self.records.append(record)
            self._served_event.notify_all()

    def _authenticate(self, headers: Mapping[str, str], payload: bytes) -> str:
        """Return the caller's SecretId, or raise the vendor's AuthFailure."""
        auth = headers.get("authorization", "")
        algorithm, _, rest = auth.partition(" ")
        if algorithm != _ALGORITHM:
            raise _Reject("AuthFailure.InvalidAuthorization", "Authorization header is not TC3-HMAC-SHA256")
        parts: dict[str, str] = {}
        for item in rest.split(","):
            name, sep, value = item.strip().partition("=")
            if not sep:
                raise _Reject("AuthFailure.InvalidAuthorization", "malformed Authorization header")
            parts[name] = value
        try:
            credential, signed, signature = parts["Credential"], parts["SignedHeaders"], parts["Signature"]
        except KeyError as exc:
            raise _Reject("AuthFailure.InvalidAuthorization", f"Authorization lacks {exc.args[0]}") from None
        scope = credential.split("/")
        if len(scope) != 4 or scope[3] != "tc3_request":
            raise _Reject("AuthFailure.InvalidAuthorization", "bad credential scope")
        secret_id, date, service, _ = scope
        if secret_id not in self._keys:
            raise _Reject("AuthFailure.SecretIdNotFound", "The SecretId is not found")
        stamp = headers.get("x-tc-timestamp", "")
        if not stamp.isdigit():
            raise _Reject("MissingParameter", "X-TC-Timestamp is missing or not an integer")
        timestamp = int(stamp)
        if abs(self._clock() - timestamp) > _MAX_SKEW:
            raise _Reject("AuthFailure.SignatureExpire", "The request timestamp is too far from server time")
        if date != datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d") or service != SERVICE:
            raise _Reject("AuthFailure.SignatureFailure", "credential scope does not match the request")
        signed_headers = signed.split(";")
        present = set(headers)
        if (
            "content-type" not in signed_headers
            or "host" not in signed_headers
            or signed_headers != sorted(signed_headers)
            or any(n not in present or n != n.lower() for n in signed_headers)
        ):
            raise _Reject("AuthFailure.SignatureFailure", "SignedHeaders must list content-type and host")
        want = expected_signature(
            secret_key=self._keys[secret_id],
            timestamp=timestamp,
            service=SERVICE,
            headers=headers,
            signed_headers=signed_headers,
            payload=payload,
        )
        if not hmac.compare_digest(want, signature):
            raise _Reject("AuthFailure.SignatureFailure", "The provided credentials could not be validated")
        token = self._tokens.get(secret_id)
        if token is not None and not hmac.compare_digest(token, headers.get("x-tc-token", "")):
            raise _Reject("AuthFailure.TokenFailure", "The token is invalid or expired")
        return secret_id

    def _check_request(self, headers: Mapping[str, str], payload: bytes) -> str | None:
        if headers.get("x-tc-action") != ACTION:
            raise _Reject("InvalidAction", f"action {headers.get('x-tc-action')!r} not found")
        if headers.get("x-tc-version") != VERSION:
            raise _Reject("NoSuchVersion", f"version {headers.get('x-tc-version')!r} not supported")
        if headers.get("x-tc-region") not in REGIONS:
            raise _Reject("UnsupportedRegion", f"region {headers.get('x-tc-region')!r} not supported")
        if not headers.get("content-type", "").startswith("application/json"):
            raise _Reject("InvalidParameter", "Content-Type must be application/json")
        try:
            body = json.loads(payload or b"{}")
        except ValueError:
            raise _Reject("InvalidParameter", "body is not JSON") from None
        if not isinstance(body, dict) or set(body) - {"StreamName"}:
            raise _Reject("UnknownParameter", "unknown parameter in body")
        name = body.get("StreamName")
        if name is not None and not isinstance(name, str):
            raise _Reject("InvalidParameterValue", "StreamName must be a string")
        return name or None


def _error(code: str, message: str, request_id: str) -> bytes:
    body = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}
    return json.dumps(body).encode("utf-8")
