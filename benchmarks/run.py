"""Issue 6 benchmark: the naive client_python registry vs our cached store, in the same run.

    python benchmarks/run.py [--streams-per-region 20000] [--regions 5] [--quick]

Each approach runs in its own subprocess so its RSS is its own. Printed side by side:
populate time, scrape time (plain and gzip; cached, and right after a poll changed a region),
body size, RSS; then one region's steady-state processing (parse with the runner's cache +
diff + store.apply) against a plain ``json.loads`` of the same bytes. Results also go to
``benchmarks/results/<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import orjson  # noqa: E402
from synth import Fleet, to_vendor_json  # noqa: E402

from exporter.metrics import HealthMetrics, metrics_source  # noqa: E402
from exporter.metrics.families import REGION_FAMILIES, STREAM_FAMILIES, RegionFacts, StreamFacts  # noqa: E402
from exporter.metrics.store import MetricStore  # noqa: E402
from exporter.model import Snapshot, SwitchoverReason  # noqa: E402

RESULTS = HERE / "results"
_MB = 1024 * 1024


# -- measurement helpers -----------------------------------------------------------------------


def rss_mb() -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident set of this process, in MiB."""
    values: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    except OSError:
        values["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rss_mb": round(values.get("VmRSS", 0.0), 1), "peak_mb": round(values.get("VmHWM", 0.0), 1)}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def timed_fair(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``timed`` from a clean collector state, so each side of a comparison meets it alike.

    A 9 MB reply is ~100k new containers; whether a full (generation 2) collection, ~80 ms
    over a 100k-stream heap, lands inside one operation or the next depends on what ran
    before. Collecting first makes every measured operation start with nothing pending.
    """
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


# -- workers (one per subprocess) --------------------------------------------------------------


def _naive_metrics(registry: Any) -> tuple[list[Any], list[Any]]:
    from prometheus_client import Counter, Gauge

    def make(spec: Any, scope: tuple[str, ...]) -> Any:
        kind = Counter if spec.type == "counter" else Gauge
        name = spec.name.removesuffix("_total") if spec.type == "counter" else spec.name
        return kind(name, spec.help, (*scope, *spec.labels), registry=registry)

    return (
        [make(s, ("account", "region", "stream")) for s in STREAM_FAMILIES],
        [make(s, ("account", "region")) for s in REGION_FAMILIES],
    )


def _naive_populate(stream_metrics: list[Any], region_metrics: list[Any], snap: Snapshot) -> None:
    """What an exporter written with labeled client_python metrics does on a baseline poll."""
    scope = (snap.account, snap.region)
    redundant = without = publishers = 0
    for stream in snap.streams.values():
        facts = StreamFacts(stream=stream, online=True, expected=False, switchovers=0, joins=0, losses=0)
        for spec, metric in zip(STREAM_FAMILIES, stream_metrics, strict=True):
            for values, value in spec.samples(facts):
                child = metric.labels(*scope, stream.name, *values)
                child.inc(value) if spec.type == "counter" else child.set(value)
        publishers += len(stream.publishers)
        redundant += len(stream.publishers) >= 2
        without += stream.master is None
    facts_r = RegionFacts(
        streams=len(snap.streams),
        redundant=redundant,
        without_master=without,
        publishers=publishers,
        unexported=0,
        switchovers={r: 0 for r in SwitchoverReason},
        joins=0,
        losses=0,
        starts=0,
        drops=0,
    )
    for region_spec, metric in zip(REGION_FAMILIES, region_metrics, strict=True):
        for values, value in region_spec.samples(facts_r):
            child = metric.labels(*scope, *values)
            child.inc(value) if region_spec.type == "counter" else child.set(value)


def worker_naive(args: argparse.Namespace) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry, generate_latest

    fleet = Fleet(regions=args.regions, streams_per_region=args.streams_per_region)
    memory_fleet = rss_mb()
    registry = CollectorRegistry(auto_describe=False)
    stream_metrics, region_metrics = _naive_metrics(registry)
    populate, _ = timed(lambda: [_naive_populate(stream_metrics, region_metrics, s) for s in fleet.snapshots])  # type: ignore[func-returns-value]
    plain, gz = [], []
    body = b""
    for _ in range(args.naive_reps):
        seconds, body = timed(lambda: generate_latest(registry))
        plain.append(seconds)
    for _ in range(max(1, args.naive_reps - 1)):
        # client_python's _bake_output: generate, then gzip.compress at its default level.
        seconds, packed = timed(lambda: gzip.compress(generate_latest(registry)))
        gz.append(seconds)
    body_bytes, gzip_bytes = len(body), len(packed)
    del body, packed  # same rule as for ours: served bodies are transient
    return {
        "populate_s": populate,
        "scrape_plain_p50_s": p50(plain),
        "scrape_gzip_p50_s": p50(gz),
        "body_bytes": body_bytes,
        "gzip_bytes": gzip_bytes,
        "memory_fleet": memory_fleet,
        "memory": rss_mb(),
    }


def _changed(old: Snapshot, new: Snapshot) -> tuple[frozenset[str], frozenset[str]]:
    """Fallback when exporter.diff is absent: changed by value, absent counts as dropped."""
    changed = frozenset(n for n, s in new.streams.items() if old.streams.get(n) != s)
    return changed, frozenset(old.streams.keys() - new.streams.keys())


def worker_ours(args: argparse.Namespace) -> dict[str, Any]:
    from exporter.cli import tune_malloc

    tune_malloc()  # as the daemon does at startup
    diff_mod = _optional("exporter.diff")
    fleet = Fleet(regions=args.regions, streams_per_region=args.streams_per_region)
    memory_fleet = rss_mb()
    store = MetricStore(max_per_region=max(20000, args.streams_per_region * 2))
    states: list[Any] = [None] * len(fleet.snapshots)

    def populate() -> None:
        for index, snap in enumerate(fleet.snapshots):
            store.apply(snap, changed=frozenset(snap.streams), dropped=(), events=())
            if diff_mod is not None:
                states[index] = diff_mod.diff(None, snap, diff_mod.DiffRules()).state

    populate_s, _ = timed(populate)
    # /metrics as served: the store's cached body plus the health families (web.WebSources.metrics).
    health = HealthMetrics("bench")
    for snap in fleet.snapshots:
        health.register(snap.key)
        health.poll_succeeded(snap.key, snap.taken_at, len(snap.streams))
    parts = metrics_source(store, health)

    def source(gzipped: bool) -> int:
        # What the server does with a body, minus the socket: walk every buffer or chunk
        # (plain: inflated on the way, never joined).
        return sum(len(chunk) for chunk in parts(gzipped))

    def digest(gzipped: bool) -> tuple[int, int]:
        """CRC-32 and length of what a client reads, inflated on the way: no 100 MB copy."""
        crc = size = 0
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
        for part in parts(gzipped):
            data = part
            while data:
                text = inflater.decompress(data, 1 << 20) if inflater else data
                data = inflater.unconsumed_tail if inflater else b""
                crc, size = zlib.crc32(text, crc), size + len(text)
        return crc, size

    cold_plain, _ = timed(lambda: source(False))
    cold_gzip, _ = timed(lambda: source(True))
    cached = [timed(store.exposition)[0] for _ in range(args.ours_reps)]
    plain = [timed(lambda: source(False))[0] for _ in range(max(5, args.ours_reps // 10))]
    gz = [timed(lambda: source(True))[0] for _ in range(args.ours_reps)]
    health.render = lambda: b"# health\n"  # type: ignore[method-assign]  # fixed, to compare bodies
    exposition = store.exposition()
    expected = (zlib.crc32(b"# health\n", exposition.crc), exposition.size + len(b"# health\n"))
    assert digest(True) == digest(False) == expected
    del health.render

    # Steady state: one region's poll lands (churned snapshot), then a scrape comes.
    apply_s, after_plain, after_gzip, prepare_s, after_prepared = [], [], [], [], []
    events = 0
    current = list(fleet.snapshots)
    for step in range(args.change_reps):
        index = step % len(current)
        old, new = current[index], fleet.churn(current[index], current[index].taken_at + 15.0)
        current[index] = new
        start = time.perf_counter()
        if diff_mod is not None:
            result = diff_mod.diff(states[index], new, diff_mod.DiffRules())
            states[index] = result.state
            changed, dropped, found = result.changed, result.dropped, result.events
        else:
            (changed, dropped), found = _changed(old, new), ()
        store.apply(new, changed=changed, dropped=dropped, events=found)
        apply_s.append(time.perf_counter() - start)
        events += len(found)
        if step % 3 == 0:
            after_plain.append(timed(lambda: source(False))[0])
        elif step % 3 == 1:
            after_gzip.append(timed(lambda: source(True))[0])
        else:  # the poller prepares the bodies right after apply
            prepare_s.append(timed(store.prepare)[0])
            after_prepared.append(timed(lambda: source(True))[0])
    fleet.snapshots = current
    if args.dump:
        with open(args.dump, "wb") as dump:
            for chunk in parts(False):
                dump.write(chunk)
    body_bytes, gzip_bytes = source(False), source(True)
    gc.collect()
    memory = rss_mb()  # what stays: fleet data, diff state, the store (compressed) and the process
    return {
        "populate_s": populate_s,
        "scrape_plain_cold_s": cold_plain,
        "scrape_gzip_cold_s": cold_gzip,
        "store_render_cached_p50_s": p50(cached),
        "scrape_plain_p50_s": p50(plain),
        "scrape_gzip_p50_s": p50(gz),
        "poll_diff_apply_p50_s": p50(apply_s),
        "scrape_plain_after_poll_p50_s": p50(after_plain),
        "scrape_gzip_after_poll_p50_s": p50(after_gzip),
        "prepare_p50_s": p50(prepare_s),
        "scrape_gzip_after_prepare_p50_s": p50(after_prepared),
        "events_in_steady_polls": events,
        "diff_used": diff_mod is not None,
        "body_bytes": body_bytes,
        "gzip_bytes": gzip_bytes,
        "memory_fleet": memory_fleet,
        "memory": memory,
    }


def worker_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    """One region's poll as the runner does it, against ``json.loads`` of the same bytes.

    Steady state: a baseline poll first (not measured in the p50s), then successive polls with
    issue 6's churn (1% switchovers, 0.5% drops, 0.5% starts). Each poll is timed as
    ``json.loads`` | the cached parse (the runner's path) | the plain parse (every group
    checked and built, the path before the cache) | diff | store.apply, all on the same bytes
    in the same process, each from a clean collector state (``timed_fair``).
    """
    from exporter.diff import DiffRules, diff
    from exporter.parse import parse_snapshot, parse_snapshot_cached

    fleet = Fleet(regions=1, streams_per_region=args.streams_per_region)
    rules = DiffRules()
    store = MetricStore(max_per_region=max(20000, args.streams_per_region * 2))
    snap = fleet.snapshots[0]
    where = {"account": snap.account, "region": snap.region}

    body = to_vendor_json(snap)
    baseline_s, (first, cache) = timed_fair(
        partial(parse_snapshot_cached, body, taken_at=snap.taken_at, previous=None, **where)
    )
    baseline_loads_s, _ = timed_fair(partial(json.loads, body))
    result = diff(None, first, rules)
    store.apply(first, changed=result.changed, dropped=result.dropped, events=result.events)
    state = result.state
    store.prepare()
    rows: dict[str, list[float]] = {
        k: [] for k in ("json_loads", "orjson_loads", "parse", "parse_uncached", "diff", "apply", "total")
    }
    changed: list[int] = []
    size = 0
    for new in fleet.polls(0, args.pipeline_reps):
        body = to_vendor_json(new)
        size = len(body)
        rows["json_loads"].append(timed_fair(partial(json.loads, body))[0])
        parse = partial(parse_snapshot_cached, body, taken_at=new.taken_at, previous=cache, **where)
        parse_s, (parsed, cache) = timed_fair(parse)
        assert parsed.streams == new.streams  # same values, whatever was reused
        diff_s, result = timed_fair(partial(diff, state, parsed, rules))
        state = result.state
        apply = partial(
            store.apply, parsed, changed=result.changed, dropped=result.dropped, events=result.events
        )
        apply_s, _ = timed_fair(apply)
        store.prepare()  # as the runner does, outside the measured path
        # For comparison only: orjson alone, and the parse before the cache (every group built).
        rows["orjson_loads"].append(timed_fair(partial(orjson.loads, body))[0])
        rows["parse_uncached"].append(
            timed_fair(partial(parse_snapshot, body, taken_at=new.taken_at, **where))[0]
        )
        for key, value in (("parse", parse_s), ("diff", diff_s), ("apply", apply_s)):
            rows[key].append(value)
        rows["total"].append(parse_s + diff_s + apply_s)
        changed.append(len(result.changed))
    ratios = [t / j for t, j in zip(rows["total"], rows["json_loads"], strict=True)]
    return {
        "streams": args.streams_per_region,
        "reply_bytes": size,
        "polls": args.pipeline_reps,
        "changed_per_poll_p50": p50([float(c) for c in changed]),
        "baseline_parse_s": baseline_s,
        "baseline_json_loads_s": baseline_loads_s,
        **{f"{key}_p50_s": p50(values) for key, values in rows.items()},
        "ratio_p50": p50(ratios),
        "ratio_of_p50s": p50(rows["total"]) / p50(rows["json_loads"]),
    }


def _optional(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        return None


WORKERS = {"naive": worker_naive, "ours": worker_ours, "pipeline": worker_pipeline}


# -- orchestration -----------------------------------------------------------------------------


def run_worker(name: str, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--regions",
        str(args.regions),
        "--streams-per-region",
        str(args.streams_per_region),
        *(["--quick"] if args.quick else []),
        *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {name} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def promtool_check(path: str) -> dict[str, Any]:
    if shutil.which("promtool") is None:
        return {"skipped": "promtool not installed"}
    with open(path, "rb") as body:
        check = partial(subprocess.run, ["promtool", "check", "metrics"], stdin=body, capture_output=True)
        seconds, done = timed(check)
    output = (done.stdout + done.stderr).decode(errors="replace").strip()
    return {"ok": done.returncode == 0, "output": output[:2000], "seconds": seconds}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.2f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _row(label: str, naive: str, ours: str, note: str = "") -> str:
    return f"{label:<34}{naive:>16}{ours:>16}  {note}"


def print_table(results: dict[str, Any]) -> None:
    naive, ours, pipe = results["naive"], results["ours"], results["pipeline"]
    total = results["regions"] * results["streams_per_region"]
    plain_ratio = ours["scrape_plain_p50_s"] / naive["scrape_plain_p50_s"]
    gzip_ratio = ours["scrape_gzip_p50_s"] / naive["scrape_gzip_p50_s"]
    passed = "PASS" if results["targets"]["scrape_ratio_ok"] else "FAIL"
    print(f"\n{results['regions']} regions x {results['streams_per_region']:,} streams = {total:,} streams")
    print(_row("", "naive", "ours", "ours/naive"))
    rows = [
        ("populate (baseline poll)", naive["populate_s"], ours["populate_s"]),
        ("/metrics plain p50 (unchanged)", naive["scrape_plain_p50_s"], ours["scrape_plain_p50_s"]),
        ("/metrics gzip p50 (unchanged)", naive["scrape_gzip_p50_s"], ours["scrape_gzip_p50_s"]),
    ]
    for label, a, b in rows:
        print(_row(label, _ms(a), _ms(b), f"{b / a:.4%}"))
    print(_row("  of which store.exposition()", "", _ms(ours["store_render_cached_p50_s"])))
    print(_row("scrape plain, first after a poll", "", _ms(ours["scrape_plain_after_poll_p50_s"]),
               f"{ours['scrape_plain_after_poll_p50_s'] / naive['scrape_plain_p50_s']:.2%} (p50; cold "
               f"{_ms(ours['scrape_plain_cold_s'])})"))  # fmt: skip
    print(_row("scrape gzip, first after a poll", "", _ms(ours["scrape_gzip_after_poll_p50_s"]),
               f"{ours['scrape_gzip_after_poll_p50_s'] / naive['scrape_gzip_p50_s']:.2%} (p50; cold "
               f"{_ms(ours['scrape_gzip_cold_s'])})"))  # fmt: skip
    print(_row("scrape gzip, after poll + prepare()", "", _ms(ours["scrape_gzip_after_prepare_p50_s"]),
               f"{ours['scrape_gzip_after_prepare_p50_s'] / naive['scrape_gzip_p50_s']:.2%} "
               f"(prepare() in the poller: {_ms(ours['prepare_p50_s'])})"))  # fmt: skip
    print(_row("body size", f"{naive['body_bytes'] / _MB:,.1f} MB", f"{ours['body_bytes'] / _MB:,.1f} MB"))
    print(_row("gzip size", f"{naive['gzip_bytes'] / _MB:,.1f} MB", f"{ours['gzip_bytes'] / _MB:,.2f} MB"))
    print(_row("RSS steady", f"{naive['memory']['rss_mb']:,.0f} MB", f"{ours['memory']['rss_mb']:,.0f} MB",
               f"(fleet data alone: {ours['memory_fleet']['rss_mb']:,.0f} MB)"))  # fmt: skip
    print(_row("RSS peak", f"{naive['memory']['peak_mb']:,.0f} MB", f"{ours['memory']['peak_mb']:,.0f} MB"))
    print(_row("poll: diff + store.apply p50", "", _ms(ours["poll_diff_apply_p50_s"]),
               f"(one region, diff {'real' if ours['diff_used'] else 'fallback'})"))  # fmt: skip
    if "skipped" in pipe:
        print(f"\nper-region processing: skipped ({pipe['skipped']})")
    else:
        print(f"\nper-region processing, steady state (poll 2 onward, {pipe['changed_per_poll_p50']:.0f} of "
              f"{pipe['streams']:,} streams new or changed), reply {pipe['reply_bytes'] / _MB:.1f} MB, "
              f"p50 of {pipe['polls']} polls, same bytes, same run:")  # fmt: skip
        print(
            f"  json.loads {_ms(pipe['json_loads_p50_s'])} (orjson.loads {_ms(pipe['orjson_loads_p50_s'])})"
        )
        print(f"  parse {_ms(pipe['parse_p50_s'])} (without the cache {_ms(pipe['parse_uncached_p50_s'])}) | "
              f"diff {_ms(pipe['diff_p50_s'])} | store.apply {_ms(pipe['apply_p50_s'])}")  # fmt: skip
        verdict = "PASS" if pipe["ratio_p50"] <= 1.5 else "FAIL"
        print(f"  parse+diff+apply {_ms(pipe['total_p50_s'])} = {pipe['ratio_p50']:.2f}x json.loads "
              f"(p50 of per-poll ratios; target <= 1.5x: {verdict})")  # fmt: skip
        print(f"  baseline poll (first, nothing cached): parse {_ms(pipe['baseline_parse_s'])}, "
              f"json.loads {_ms(pipe['baseline_json_loads_s'])}")  # fmt: skip
    check = results["promtool"]
    print(f"\npromtool check metrics: {check.get('skipped') or ('clean' if check['ok'] else 'FAILED')}"
          + (f" ({check['seconds']:.1f} s)" if "seconds" in check else ""))  # fmt: skip
    if check.get("output"):
        print("  " + check["output"].replace("\n", "\n  "))
    targets = results["targets"]
    print(f"targets: /metrics gzip p50 <= 1% and plain p50 <= 2% of naive: {passed} (gzip {gzip_ratio:.4%}, "
          f"plain {plain_ratio:.2%}); RSS <= 200 MB: {targets['rss_ok']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams-per-region", type=int, default=None)
    parser.add_argument("--regions", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="small fleet, few repetitions (CI smoke test)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--dump", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.regions is None:
        args.regions = 2 if args.quick else 5
    if args.streams_per_region is None:
        args.streams_per_region = 2000 if args.quick else 20000
    args.naive_reps = 2 if args.quick else 3
    args.ours_reps = 50 if args.quick else 200
    args.change_reps = 6 if args.quick else 15
    args.pipeline_reps = 3 if args.quick else 15

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0

    with tempfile.TemporaryDirectory() as scratch:
        dump = os.path.join(scratch, "metrics.txt")
        started = time.time()
        results: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "regions": args.regions,
            "streams_per_region": args.streams_per_region,
            "quick": args.quick,
            "python": sys.version.split()[0],
            "naive": run_worker("naive", args, []),
            "ours": run_worker("ours", args, ["--dump", dump]),
            "pipeline": run_worker("pipeline", args, []),
            "promtool": promtool_check(dump),
        }
    full_size = args.regions * args.streams_per_region >= 100_000
    results["targets"] = {
        "scrape_ratio_ok": (
            results["ours"]["scrape_gzip_p50_s"] <= 0.01 * results["naive"]["scrape_gzip_p50_s"]
            and results["ours"]["scrape_plain_p50_s"] <= 0.02 * results["naive"]["scrape_plain_p50_s"]
        ),
        "rss_ok": (results["ours"]["memory"]["rss_mb"] <= 200) if full_size else "n/a below 100k streams",
        "processing_ratio_ok": results["pipeline"].get("ratio_p50", 0.0) <= 1.5,
    }
    results["wall_s"] = time.time() - started
    print_table(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {out} (wall {results['wall_s']:.1f} s)")
    return 0 if results["promtool"].get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
