"""Ingest speed: parse + store of big recorded studies, and of a 1,000-study search page.

    python benchmarks/bench_ingest.py [--studies 1000] [--repeat 3]

1. The recorded 1,148-site (NCT04267848) and 437-site (NCT02513394) studies: JSON decode,
   parse_study, then Store.save_trial (new, then unchanged, then updated) in a fresh store on
   disk. studies/s = 1 / (decode + parse + save new).
2. A page of N studies cloned from the recorded ones with new NCT ids, pre-encoded once and
   served on 127.0.0.1 by http.server in a child process (so the server never competes with
   the ingest for this process's interpreter lock): the whole `sync(condition=…)` into a new
   store (search + JSON decode + parse + rows in sync's reader child, one transaction per
   study in this process, and the search index built), then again into the same store
   (every study unchanged). Goal: at least 1,000 studies/s. The stores go to the system's
   temporary folder, or --store-dir (e.g. /dev/shm, to see the figure without the disk).
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import resource
import statistics
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from trialfinder.registry import RegistryClient, parse_study
from trialfinder.store import Store
from trialfinder.sync import sync

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ctgov"
BIG = {
    "1148 sites": "study_NCT04267848_nsclc_1148sites_sitestatus_contacts.json",
    "437 sites": "study_NCT02513394_breast_437sites_21countries_withResults.json",
}
PAGE_SOURCES = [
    "study_NCT03830788_prostate_FR16sites_sitestatus_contacts.json",
    "study_NCT06620835_nsclc_FR27sites_sitestatus_withdrawn_contacts.json",
    "study_NCT03934567_26sites_1_no_geoPoint.json",
    "study_NCT01063855_73sites_no_facility_7_no_geoPoint.json",
    "study_NCT05960149_prostate_zero_locations.json",
]


def best(times: list[float]) -> float:
    return min(times)


def bench_big(repeat: int) -> dict[str, float]:
    """studies/s (decode + parse + save new) of each recorded big study."""
    print("Recorded big studies (best of", repeat, "runs, ms):")
    print(f"  {'study':<10} {'decode':>7} {'parse':>7} {'save new':>9} {'unchanged':>10} "
          f"{'updated':>8}")
    rates = {}
    for label, name in BIG.items():
        text = (FIXTURES / name).read_text(encoding="utf-8")
        decode_t, parse_t, new_t, same_t, upd_t = [], [], [], [], []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.sqlite") as store:
                d0 = time.perf_counter()
                data = json.loads(text)
                t0 = time.perf_counter()
                trial = parse_study(data, retrieved="2025-01-01T00:00:00+00:00").trial
                t1 = time.perf_counter()
                store.save_trial(trial, text)
                t2 = time.perf_counter()
                store.save_trial(trial, text)
                t3 = time.perf_counter()
                changed = trial.replace(last_update="2099-01-01", sites=trial.sites[1:])
                store.save_trial(changed, text)
                t4 = time.perf_counter()
            decode_t.append(t0 - d0)
            parse_t.append(t1 - t0)
            new_t.append(t2 - t1)
            same_t.append(t3 - t2)
            upd_t.append(t4 - t3)
        print(f"  {label:<10} {best(decode_t) * 1e3:7.1f} {best(parse_t) * 1e3:7.1f} "
              f"{best(new_t) * 1e3:9.1f} {best(same_t) * 1e3:10.1f} {best(upd_t) * 1e3:8.1f}")
        rates[label] = 1 / best([d + p + n for d, p, n in zip(decode_t, parse_t, new_t,
                                                                   strict=True)])
    return rates


def build_page(n: int) -> bytes:
    sources = [json.loads((FIXTURES / name).read_text(encoding="utf-8"))
               for name in PAGE_SOURCES]
    studies = []
    for i in range(n):
        study: dict[str, Any] = copy.deepcopy(sources[i % len(sources)])
        study["protocolSection"]["identificationModule"]["nctId"] = f"NCT9{i:07d}"
        studies.append(study)
    sites = sum(
        len(s["protocolSection"].get("contactsLocationsModule", {}).get("locations", []))
        for s in studies
    )
    print(f"Page: {n} studies cloned from {len(sources)} recorded ones, {sites} sites")
    return json.dumps({"studies": studies, "totalCount": n}).encode()


def _serve_forever(body: bytes, port_out: multiprocessing.connection.Connection) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.send(server.server_address[1])
    server.serve_forever()


def serve(body: bytes) -> tuple[multiprocessing.Process, str]:
    """Serve ``body`` (already encoded) to every GET, from a child process."""
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.get_context("fork").Process(
        target=_serve_forever, args=(body, send), daemon=True
    )
    server.start()
    port = receive.recv()
    return server, f"http://127.0.0.1:{port}"


def bench_page(
    n: int, repeat: int, keep_raw: bool = False, store_dir: str | None = None
) -> tuple[float, float, float]:
    """Best and median studies/s of a sync into a new store, and best of a re-sync with
    nothing changed."""
    body = build_page(n)
    sites = sum(len(s["protocolSection"].get("contactsLocationsModule", {}).get("locations", []))
                for s in json.loads(body)["studies"])
    server, url = serve(body)
    rates = []
    try:
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(dir=store_dir) as tmp, RegistryClient(url) as client:
                t0 = time.perf_counter()
                c0 = time.process_time()
                k0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                report = sync([], store_path=Path(tmp) / "s.sqlite", client=client,
                              listing_records={}, condition="bench", page_size=1000,
                              keep_raw=keep_raw)
                elapsed = time.perf_counter() - t0
                cpu = time.process_time() - c0
                k1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                child_cpu = (k1.ru_utime + k1.ru_stime) - (k0.ru_utime + k0.ru_stime)
                assert report.ok and len(report.trials) == n, report.to_jsonable()["counts"]
                t1 = time.perf_counter()
                again = sync([], store_path=Path(tmp) / "s.sqlite", client=client,
                             listing_records={}, condition="bench", page_size=1000,
                             keep_raw=keep_raw)
                elapsed_again = time.perf_counter() - t1
                assert all(t.outcome == "unchanged" for t in again.trials)
            rates.append((n / elapsed, n / elapsed_again))
            print(f"  run: {elapsed:.3f} s new ({n / elapsed:,.0f} studies/s, "
                  f"{sites / elapsed:,.0f} sites/s; CPU {cpu:.2f} s writer + "
                  f"{child_cpu:.2f} s reader); "
                  f"{elapsed_again:.3f} s re-sync unchanged ({n / elapsed_again:,.0f} studies/s)")
    finally:
        server.terminate()
        server.join()
    best_new = max(r[0] for r in rates)
    median_new = statistics.median(r[0] for r in rates)
    best_again = max(r[1] for r in rates)
    label = " with --keep-raw" if keep_raw else ""
    print(f"Ingest{label} (search + decode + parse + merge-free save + search index, new "
          f"store): best {best_new:,.0f} studies/s, median {median_new:,.0f}")
    return best_new, median_new, best_again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store-dir", help="where the page's stores go (default: the system's "
                        "temporary folder; /dev/shm takes the disk out of the figure)")
    args = parser.parse_args()
    big = bench_big(args.repeat)
    new, median, again = bench_page(args.studies, args.repeat, store_dir=args.store_dir)
    raw_new, raw_median, _ = bench_page(args.studies, args.repeat, keep_raw=True,
                                        store_dir=args.store_dir)
    print()
    print("Summary, studies/s (best run, median in brackets; goal 1,000):")
    for label, rate in big.items():
        print(f"  recorded {label.replace(' sites', '-site')} study "
              f"(decode + parse + save new){'':<6} {rate:>8,.1f}")
    print(f"  {args.studies:,}-study page, new store{'':<25} {new:>8,.0f} ({median:,.0f})")
    print(f"  {args.studies:,}-study page, re-sync unchanged{'':<18} {again:>8,.0f}")
    print(f"  {args.studies:,}-study page, new store, --keep-raw{'':<14} {raw_new:>8,.0f} "
          f"({raw_median:,.0f})")
    print("GOAL MET (median of the runs)" if median >= 1000 else "GOAL NOT MET (median)")


if __name__ == "__main__":
    main()
