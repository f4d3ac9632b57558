"""A mirror sync against a registry that sets the pace: overlap, memory, disk writes.

    python benchmarks/bench_ingest.py [--rate 300] [--sizes 1000,2000,3000,6000]
                                      [--repeat 3] [--store-dir DIR]

A local registry (benchmarks/local_registry.py, its own process) serves N synthetic studies
(made from the recorded fixtures: new ids, shifted positions, registry-like site counts,
about 9 sites a study on average) at ``--rate`` studies a second, in pages of 1,000. For each
N it measures, in the same run:

1. a plain client downloading the same pages in turn (requests + json.loads, to read each
   page's next token): the time the registry's pace alone costs;
2. `trialfinder sync --status RECRUITING` into a new store, in its own process (fetch in a
   prefetch thread, parse, merge, place offline, one transaction per page): wall time, peak
   memory (ru_maxrss), bytes written to storage (/proc/self/io ``write_bytes``: database,
   write-ahead log and all) and the store's final size.

Goals (issue 13): the 3,000-study sync within 1.2 × the plain download + 1 s; memory flat
as N grows (from two pages on: one page has nothing to overlap, two pages are in flight
after that, a page being processed and the next one downloading); writes at most 3 × the
final store size. ``write_bytes`` counts what reaches the block layer: use a real disk for
``--store-dir`` (tmpfs counts nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_registry import LocalRegistry, Segment, download, warm

DRIVER = r"""
import json, resource, sys, time
from pathlib import Path
from trialfinder.registry import RegistryClient
from trialfinder.sync import sync

db, url, statuses, page_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
now = sys.argv[5] or None  # a simulated night (bench_scale), else the real time

def io():
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["write_bytes"]), int(fields["wchar"])

w0, c0 = io()
started = time.perf_counter()
cpu0 = time.process_time()
with RegistryClient(url, timeout=(5.0, 600.0)) as client:
    report = sync([], db=db, client=client, statuses=statuses, listing_records={},
                  page_size=page_size, now=now)
seconds = time.perf_counter() - started
cpu = time.process_time() - cpu0
w1, c1 = io()
size = sum(p.stat().st_size for p in Path(db).parent.glob(Path(db).name + "*")
           if not p.name.endswith(".lock"))
print(json.dumps({"seconds": seconds, "cpu": cpu, "counts": report.counts,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "write_bytes": w1 - w0, "wchar": c1 - c0, "store_bytes": size}))
"""


def run_sync(url: str, folder: Path, page_size: int = 1000, statuses: str = "RECRUITING",
             now: str | None = None) -> dict[str, object]:
    """`sync --status STATUSES` into ``folder``/store.sqlite, in its own process."""
    db = folder / "store.sqlite"
    done = subprocess.run([sys.executable, "-c", DRIVER, str(db), url, statuses,
                           str(page_size), now or ""], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the sync failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def bench(n: int, rate: float, repeat: int, store_dir: str | None) -> dict[str, float]:
    segments = [Segment(90_000_000, n, "2025-01-15")]
    params = {"filter.overallStatus": "RECRUITING", "pageSize": "1000"}
    rows = []
    with LocalRegistry(segments, rate=rate) as url:
        warm(url, params)
        for _ in range(repeat):
            plain, studies, size = download(url, params)
            with tempfile.TemporaryDirectory(dir=store_dir) as tmp:
                result = run_sync(url, Path(tmp))
            counts = result["counts"]
            assert isinstance(counts, dict) and counts["new"] == n == studies, counts
            seconds = float(result["seconds"])  # type: ignore[arg-type]
            rows.append({
                "plain": plain, "sync": seconds, "goal": 1.2 * plain + 1.0,
                "cpu": float(result["cpu"]),  # type: ignore[arg-type]
                "rss_mib": int(result["maxrss_kib"]) / 1024,  # type: ignore[call-overload]
                "written_mib": int(result["write_bytes"]) / 2**20,  # type: ignore[call-overload]
                "wchar_mib": int(result["wchar"]) / 2**20,  # type: ignore[call-overload]
                "store_mib": int(result["store_bytes"]) / 2**20,  # type: ignore[call-overload]
                "page_mib": size / 2**20 / max(1, -(-n // 1000)),
            })
            row = rows[-1]
            print(f"  {n:>6,} studies: plain download {row['plain']:6.2f} s, sync "
                  f"{row['sync']:6.2f} s (goal ≤ {row['goal']:.2f} s; CPU {row['cpu']:.2f} s), "
                  f"peak RSS {row['rss_mib']:5.0f} MiB, written {row['written_mib']:6.1f} MiB "
                  f"(write calls {row['wchar_mib']:6.1f} MiB) for a {row['store_mib']:5.1f} MiB "
                  f"store = {row['written_mib'] / row['store_mib']:.2f}×")
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="studies/s served")
    parser.add_argument("--sizes", default="1000,2000,3000,6000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store-dir", help="where the stores go (default: the system's "
                        "temporary folder; it must be a real disk for write_bytes)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"Registry pace {args.rate:g} studies/s, pages of 1,000 "
          f"(median of {args.repeat} runs per size)")
    results = {n: bench(n, args.rate, args.repeat, args.store_dir) for n in sizes}
    print()
    print(f"{'studies':>8} {'plain s':>8} {'sync s':>7} {'goal s':>7} {'RSS MiB':>8} "
          f"{'written':>8} {'store':>7} {'ratio':>6}")
    for n, r in results.items():
        print(f"{n:>8,} {r['plain']:8.2f} {r['sync']:7.2f} {r['goal']:7.2f} "
              f"{r['rss_mib']:8.0f} {r['written_mib']:8.1f} {r['store_mib']:7.1f} "
              f"{r['written_mib'] / r['store_mib']:6.2f}")
    goal_size = 3000 if 3000 in results else max(sizes)
    overlap = results[goal_size]["sync"] <= results[goal_size]["goal"]
    rss = [r["rss_mib"] for n, r in results.items() if n >= 2000] or [
        r["rss_mib"] for r in results.values()]
    flat = max(rss) <= 1.25 * min(rss)
    disk = all(r["written_mib"] <= 3 * r["store_mib"] for r in results.values())
    print(f"overlap goal (sync ≤ 1.2 × plain + 1 s at {goal_size:,}): "
          f"{'MET' if overlap else 'NOT MET'}")
    print(f"memory flat (peak RSS within 25 % from 2,000 studies on): "
          f"{'MET' if flat else 'NOT MET'}")
    print(f"disk writes ≤ 3 × store: {'MET' if disk else 'NOT MET'}")


if __name__ == "__main__":
    main()
