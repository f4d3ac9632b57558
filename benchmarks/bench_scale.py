"""Scale: grow a mirror to 1,000, 10,000, 100,000 studies; measure, then project.

    python benchmarks/bench_scale.py [--sizes 1000,10000,100000] [--updates 700]
                                     [--store-dir DIR] [--queries 11]

A local registry (benchmarks/local_registry.py, its own process, no pacing: this measures
our side) serves synthetic studies made from the recorded fixtures (new ids, shifted
positions, registry-like site counts). The store grows by incremental syncs
(`sync --status RECRUITING`: the new studies are the ones updated since the last run). At
each size it reports the sync's time and throughput, the store's bytes per study and per
site, the bytes written to storage (/proc/self/io, write-ahead log included), peak memory,
and the warm latency of `trialfinder.search.search` (as it is in this checkout) and of
`queries.nearest` from places near and far. At the largest size it then times a nightly
incremental run in which ``--updates`` studies changed (about what the whole registry
updates in a day), and prints the projection for a mirror of every recruiting study
(~70,000) and of the whole registry (~560,000).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import run_sync
from local_registry import LocalRegistry, Segment, warm

from trialfinder.store import Store

PLACES = ["Lyon", "Paris", "New York", "Chicago", "Berlin", "Madrid", "Tokyo", "Sydney",
          "Cape Town", "Buenos Aires", "Reykjavik", "Honolulu", "Anchorage"]
WEEK = timedelta(days=7)
NIGHT0 = date.today() - 6 * WEEK
"""The first simulated night; each step of the benchmark is a week later (so that a step's
incremental run, which asks from the previous run's day less one, finds only its own
studies)."""

LATENCY = r"""
import json, statistics, sys, time
from pathlib import Path
from trialfinder import queries
from trialfinder.search import search
from trialfinder.store import Store

db, places, nct = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
first = time.perf_counter()
search(places[0], db)  # builds whatever index the search keeps, if it must
first = time.perf_counter() - first
out = {"first_search": first}
for label, condition in (("search", None), ("search_condition", "cancer")):
    times = []
    for place in places:
        search(place, db, condition=condition)  # warm
        t = time.perf_counter()
        search(place, db, condition=condition)
        times.append(time.perf_counter() - t)
    out[label] = times
times = []
for place in places:
    try:
        queries.nearest(place, nct, db, max_km=40000)
    except Exception:
        pass
    t = time.perf_counter()
    try:
        queries.nearest(place, nct, db, max_km=40000)
    except Exception:
        pass
    times.append(time.perf_counter() - t)
out["nearest"] = times
with Store(db) as store:
    out["trials"], out["sites"] = store.counts()
print(json.dumps(out))
"""


def latencies(db: Path, nct: str, places: list[str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", LATENCY, str(db), json.dumps(places), nct],
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-2000:])
        raise SystemExit(1)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def ms(values: object) -> str:
    times = sorted(float(v) * 1000 for v in values)  # type: ignore[attr-defined]
    return f"median {statistics.median(times):7.1f} ms, max {times[-1]:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--updates", type=int, default=700)
    parser.add_argument("--store-dir")
    parser.add_argument("--queries", type=int, default=len(PLACES))
    parser.add_argument("--keep", type=Path, help="move the final store here (for later runs)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    places = PLACES[: args.queries]
    params = {"filter.overallStatus": "RECRUITING", "pageSize": "1000"}
    segments: list[Segment] = []
    rows = []
    with tempfile.TemporaryDirectory(dir=args.store_dir) as tmp:
        folder = Path(tmp)
        db = folder / "store.sqlite"
        have = 0
        written = 0.0
        for step, size in enumerate(sizes):
            night = NIGHT0 + step * WEEK
            # Updated two days before the run: the next run (a day of overlap) leaves them.
            updated = (night - timedelta(days=2)).isoformat()
            segments.append(Segment(90_000_000 + have, size - have, updated))
            since = (night - WEEK - timedelta(days=1)).isoformat()  # the last run's day, less 1
            with LocalRegistry(list(segments)) as url:
                t = time.perf_counter()
                # What the run will ask: the whole query first, then the updates (without the
                # status filter).
                warm(url, {"pageSize": "1000", "filter.advanced":
                           f"AREA[LastUpdatePostDate]RANGE[{since},MAX]"} if step else params)
                print(f"[{size:,}] registry pages generated in {time.perf_counter() - t:.0f} s")
                result = run_sync(url, folder, now=f"{night.isoformat()}T03:00:00+00:00")
            counts = result["counts"]
            assert isinstance(counts, dict) and counts["new"] == size - have, counts
            step_written = int(result["write_bytes"]) / 2**20  # type: ignore[call-overload]
            written += step_written
            lat = latencies(db, "NCT90000003", places)
            trials, sites = int(lat["trials"]), int(lat["sites"])  # type: ignore[call-overload]
            store_bytes = int(result["store_bytes"])  # type: ignore[call-overload]
            seconds = float(result["seconds"])  # type: ignore[arg-type]
            row = {
                "size": size, "new": size - have, "seconds": seconds,
                "rate": (size - have) / seconds, "cpu": result["cpu"],
                "rss": int(result["maxrss_kib"]) / 1024,  # type: ignore[call-overload]
                "store_mib": store_bytes / 2**20, "per_study": store_bytes / trials,
                "per_site": store_bytes / max(1, sites), "sites": sites,
                "written_mib": written, "lat": lat,
            }
            rows.append(row)
            have = size
            print(f"[{size:,}] sync of {row['new']:,} new studies: {seconds:.1f} s "
                  f"({row['rate']:.0f} studies/s, CPU {float(row['cpu']):.1f} s), "
                  f"peak RSS {row['rss']:.0f} MiB")
            grown = row["store_mib"] - (rows[-2]["store_mib"] if len(rows) > 1 else 0.0)
            print(f"[{size:,}] store {row['store_mib']:.0f} MiB: {row['per_study'] / 1024:.1f} "
                  f"KiB a study, {row['per_site']:.0f} B a site ({sites:,} sites); this sync "
                  f"wrote {step_written:.0f} MiB for {grown:.0f} MiB more store "
                  f"({step_written / max(grown, 1e-9):.2f}×); written so far {written:.0f} MiB "
                  f"({written / row['store_mib']:.2f}× the store)")
            print(f"[{size:,}] first search {float(lat['first_search']):.2f} s; "
                  f"search {ms(lat['search'])}; with a condition {ms(lat['search_condition'])};"
                  f" nearest {ms(lat['nearest'])}")
        # A night at the largest size: some studies updated, a few of them closed.
        updates = min(args.updates, have)
        night = NIGHT0 + (len(sizes) - 1) * WEEK + timedelta(days=1)
        yesterday = (night - timedelta(days=1)).isoformat()
        segments.append(Segment(90_000_000, updates, yesterday, seed=1))
        segments.append(Segment(90_000_000 + updates, updates // 10, yesterday,
                                status="COMPLETED"))
        since = (night - timedelta(days=2)).isoformat()
        with LocalRegistry(list(segments)) as url:
            warm(url, {"pageSize": "1000",
                       "filter.advanced": f"AREA[LastUpdatePostDate]RANGE[{since},MAX]"})
            night_result = run_sync(url, folder, now=f"{night.isoformat()}T03:00:00+00:00")
        print(f"[night] {updates + updates // 10:,} updated studies of {have:,}: "
              f"{float(night_result['seconds']):.1f} s, {night_result['counts']}")
        if args.keep is not None:
            with Store(db):  # a clean close folds the write-ahead log into the file
                pass
            db.replace(args.keep)
    print()
    print(f"{'studies':>8} {'sync s':>7} {'st/s':>6} {'KiB/st':>7} {'B/site':>7} "
          f"{'RSS MiB':>8} {'search med/max ms':>18} {'cond med/max ms':>16}")
    for r in rows:
        s = sorted(r["lat"]["search"])  # type: ignore[index]
        c = sorted(r["lat"]["search_condition"])  # type: ignore[index]
        print(f"{r['size']:>8,} {r['seconds']:7.1f} {r['rate']:6.0f} "
              f"{r['per_study'] / 1024:7.1f} {r['per_site']:7.0f} {r['rss']:8.0f} "
              f"{statistics.median(s) * 1e3:8.1f}/{s[-1] * 1e3:8.1f} "
              f"{statistics.median(c) * 1e3:7.1f}/{c[-1] * 1e3:7.1f}")
    last = rows[-1]
    rate = float(last["rate"])
    per_study = float(last["per_study"])
    print()
    for label, n in (("every recruiting study", 70_000), ("the whole registry", 560_000)):
        print(f"Projection, {label} (~{n:,}): first sync ≈ {n / rate / 60:.0f} min of our "
              f"processing at {rate:.0f} studies/s (the registry's pace, ~{n / 300 / 60:.0f} min "
              f"at 300 studies/s, decides when it is slower); store ≈ "
              f"{n * per_study / 2**30:.1f} GiB")
    print(f"Nightly incremental at {have:,}: {float(night_result['seconds']):.1f} s here for "
          f"{updates + updates // 10:,} updated studies.")


if __name__ == "__main__":
    main()
