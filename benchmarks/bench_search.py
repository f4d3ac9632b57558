"""`trialfinder search` at registry scale: one million sites, ranked queries timed warm.

Builds a store (in a temporary folder) with ``--trials`` trials of ``--sites`` sites each
(default 20,000 × 50 = 1,000,000) spread over Europe and the United States the way registry
records are: most sites sit exactly on their city centre (the registry's geoPoint), big cities
hold many sites, about 40 % of sites recruit. Rows go straight into the store's tables in one
transaction (Store creates the schema; `save_trial` one trial at a time would take minutes).
Then it builds the search index once (timed) and runs ``--queries`` queries per scenario
(timed warm, index built), printing the median and 95th percentile. It also checks each
answer of the first scenario against a brute-force haversine over every site.

    python benchmarks/bench_search.py [--trials 20000] [--sites 50] [--queries 20] [--keep]

Goal: at most 100 ms per query beyond start-up.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from trialfinder.models import Status
from trialfinder.nearest import haversine_km
from trialfinder.search import connection_of, ensure_index, nearest_trials
from trialfinder.store import Store

CONDITIONS = [
    "Breast Cancer", "Prostate Cancer", "Non-small Cell Lung Cancer", "Colorectal Cancer",
    "Melanoma", "Gastrointestinal Stromal Tumor", "Glioblastoma", "Pancreatic Cancer",
    "Ovarian Cancer", "Leukemia, Myeloid, Acute", "Multiple Myeloma", "Lymphoma, Follicular",
    "Diabetes Mellitus, Type 2", "Heart Failure", "Asthma", "Alzheimer Disease",
    "Parkinson Disease", "Crohn Disease", "Psoriasis", "Atopic Dermatitis", "Hepatitis B",
    "HIV Infections", "Obesity", "Hypertension", "Depression", "Schizophrenia",
    "Rheumatoid Arthritis", "Lupus Erythematosus, Systemic", "Sickle Cell Disease",
    "Cystic Fibrosis", "Sarcoma", "Mésothéliome", "Phelan-McDermid Syndrome",
]
EUROPE = (36.0, 60.0, -10.0, 30.0)
USA = (25.0, 48.0, -124.0, -67.0)
QUERY_PLACES = [
    (45.75, 4.85), (48.8566, 2.3522), (52.52, 13.405), (40.4168, -3.7038), (41.9028, 12.4964),
    (51.5074, -0.1278), (43.2965, 5.3698), (47.3769, 8.5417), (50.8503, 4.3517), (59.33, 18.07),
    (40.7128, -74.006), (41.8781, -87.6298), (34.0522, -118.2437), (29.7604, -95.3698),
    (47.6062, -122.3321), (44.97, -103.77), (39.0, -5.0), (46.5, 2.5), (64.1, -21.9),
    (38.7223, -9.1393),
]


def build_store(path: Path, n_trials: int, sites_per_trial: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    cities = []
    for i in range(3000):
        lat_lo, lat_hi, lon_lo, lon_hi = EUROPE if i % 5 < 3 else USA
        lat, lon = round(rng.uniform(lat_lo, lat_hi), 5), round(rng.uniform(lon_lo, lon_hi), 5)
        cities.append((lat, lon, f"City {i}", "France" if i % 5 < 3 else "United States"))
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(cities))]  # a few big cities
    statuses = [Status.RECRUITING.value] * 4 + [
        Status.NOT_YET_RECRUITING.value, Status.ACTIVE_NOT_RECRUITING.value,
        Status.COMPLETED.value, Status.WITHDRAWN.value, Status.SUSPENDED.value,
        Status.RECRUITING.value,
    ]
    with Store(path) as store:
        db = connection_of(store)
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN")
        trials, sites = [], []
        for t in range(n_trials):
            nct = f"NCT{10_000_000 + t:08d}"
            conditions = rng.sample(CONDITIONS, rng.randint(1, 3))
            title = f"A study of treatment {t} in {conditions[0]}"
            record = {
                "nct_id": nct, "title": title, "status": "RECRUITING",
                "source": {"kind": "registry", "description": "generated for a benchmark",
                           "as_of": "2025-01-01"},
                "conditions": conditions, "keywords": [f"keyword {t % 97}"], "sites": [],
            }
            trials.append((nct, title, "RECRUITING", "2025-01-01", "2025-01-01", "registry",
                           str(t), "2025-01-01T00:00:00+00:00", json.dumps(record)))
            for p, city in enumerate(rng.choices(cities, weights, k=sites_per_trial)):
                lat, lon, name, country = city
                if rng.random() < 0.2:  # a facility-level position near the centre
                    lat, lon = lat + rng.gauss(0, 0.05), lon + rng.gauss(0, 0.05)
                own = rng.choice(statuses)
                sites.append((nct, p, f"site {p}|{name}", f"Hospital {p} of {name}", name,
                              None, None, country, own, own, lat, lon, "city centre",
                              "generated", 0, ""))
        db.executemany(
            "INSERT INTO trials (nct_id, title, overall_status, last_update, as_of, "
            "source_kind, content_hash, fetched_at, record_json) VALUES (?,?,?,?,?,?,?,?,?)",
            trials,
        )
        db.executemany(
            "INSERT INTO sites (trial, position, site_key, facility, city, state, zip, country, "
            "status, site_status, latitude, longitude, precision, coordinate_source, "
            "listing_only, contacts_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            sites,
        )
        db.execute("COMMIT")


def brute_force(db, lat: float, lon: float, limit: int) -> list[tuple[str, float]]:
    best: dict[str, float] = {}
    for nct, slat, slon in db.execute(
        "SELECT trial, latitude, longitude FROM sites WHERE status = 'RECRUITING' "
        "AND latitude IS NOT NULL"
    ):
        d = haversine_km(lat, lon, slat, slon)
        if d < best.get(nct, float("inf")):
            best[nct] = d
    return sorted(((n, d) for n, d in best.items()), key=lambda x: (x[1], x[0]))[:limit]


def timed(fn, runs: list[float]):
    start = time.perf_counter()
    result = fn()
    runs.append((time.perf_counter() - start) * 1000)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20_000)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the store and print its path")
    parser.add_argument("--no-check", action="store_true", help="skip the brute-force check")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="trialfinder-bench-"))
    path = folder / "bench.sqlite"
    start = time.perf_counter()
    build_store(path, args.trials, args.sites)
    fill = time.perf_counter() - start
    print(f"store: {args.trials:,} trials × {args.sites} sites = "
          f"{args.trials * args.sites:,} sites, filled in {fill:.1f} s")

    places = (QUERY_PLACES * (args.queries // len(QUERY_PLACES) + 1))[: args.queries]
    with Store(path) as store:
        db = connection_of(store)
        start = time.perf_counter()
        ensure_index(db)
        built = time.perf_counter() - start
        print(f"search index (R*Tree + condition text) built in {built:.1f} s")
        nearest_trials(db, *places[0], limit=10)  # warm the page cache once

        scenarios: dict[str, dict] = {
            "recruiting, nearest 10": {"limit": 10},
            "recruiting, nearest 50": {"limit": 50},
            "any status, nearest 10": {"limit": 10, "recruiting_only": False},
            "recruiting, within 50 km": {"limit": 10, "radius_km": 50},
            "condition 'cancer' (~30% of trials)": {"limit": 10, "condition": "cancer"},
            "condition 'melanoma' (~6%)": {"limit": 10, "condition": "melanoma"},
            "condition 'keyword 42' (~1%, direct)": {"limit": 10, "condition": "keyword 42"},
            "without the R*Tree (scans sites)": {"limit": 10, "use_index": False},
        }
        print(f"{'scenario':44} {'median':>9} {'p95':>9} {'max':>9}   "
              f"({args.queries} queries, warm)")
        for name, options in scenarios.items():
            runs: list[float] = []
            answers = [
                timed(lambda p=p, o=options: nearest_trials(db, *p, **o), runs) for p in places
            ]
            runs.sort()
            p95 = runs[min(len(runs) - 1, round(0.95 * (len(runs) - 1)))]
            print(f"{name:44} {statistics.median(runs):7.1f} ms {p95:7.1f} ms "
                  f"{runs[-1]:7.1f} ms")
            if name == "recruiting, nearest 10" and not args.no_check:
                for place, answer in zip(places[:5], answers[:5], strict=True):
                    expected = brute_force(db, *place, 10)
                    got = [(h.nct_id, h.site.distance_km) for h in answer]
                    assert got == expected, (place, got, expected)
                print(f"{'':44} (first 5 answers equal a brute-force scan of every site)")
    if args.keep:
        print(f"store kept at {path}")
    else:
        path.unlink()
        for extra in folder.iterdir():
            extra.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
