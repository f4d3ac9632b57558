"""`trialfinder search` at registry scale: a million sites over the world's cities, timed warm.

Builds a store (in a temporary folder, or ``--store PATH`` kept for the next run) of synthetic
trials made from the recorded registry fixtures in tests/fixtures/ctgov: each is a recorded
study with a new identifier, a size drawn from a heavy-tailed law like the registry's (median
5 sites, a few with thousands), its sites moved to cities of the bundled gazetteer (weighted
by population) in one to a dozen countries, most on the city centre as registry geoPoints
are, 2 % without a position; statuses and verification dates vary, so some sites have
stopped counting as recruiting on the day of the queries. Trials go in through
`Store.save_prepared`, the way a sync writes them, so the search index is the one the
store's triggers keep.

Then, for places near and far from every site (Honolulu, Anchorage, Sydney, Tokyo, Cape Town,
Buenos Aires, Reykjavik, mid-Pacific, Lyon, Paris, New York, …), it times, warm, with and
without a condition (a common one, a rare one, one studied in one country only):

- ``search``: `search.search`, the whole answer a user gets (the place resolved by the
  gazetteer, the ranking, the trials whose matching sites are unplaced, the hits loaded and
  worded by the rules, the MeSH notice): the goal is about this one;
- ``core``: `search.nearest_trials` alone (the ranking), for where the time goes;
- ``numpy``: in the same run, a numpy brute force over the same points (every matching
  site's haversine, the nearest per trial, the k best) as the reference. Every answer of
  `search` is checked against it: same trials, same distances (to 1 mm; numpy's
  trigonometry may differ from Python's in the last bit, so only near-ties may swap).

Places without a name the gazetteer knows (mid-Pacific, McMurdo) are given to `search` as
their coordinates, through a gazetteer that answers them (the others are resolved as users
type them).

    python benchmarks/bench_search.py [--sites 1000000] [--repeat 5] [--store PATH]

Goal (issue 13): at most 50 ms warm at 1M sites, max over places, with or without a condition,
for the whole `search` call. numpy is a benchmark-only dependency (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from trialfinder import clock
from trialfinder.gazetteer import Gazetteer, Place, Resolution
from trialfinder.models import Precision, Site, Status, Trial
from trialfinder.registry import parse_study
from trialfinder.resources import data_path
from trialfinder.search import nearest_trials, search
from trialfinder.store import Store, prepare_trial
from trialfinder.terms import condition_words, searchable_text, text_matches

DAY = date(2025, 3, 1)
"""The day of the queries (and of the saves): some verifications have run out by then."""
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ctgov"
PLACES = {
    "Honolulu": (21.3069, -157.8583), "Anchorage": (61.2181, -149.9003),
    "Sydney": (-33.8688, 151.2093), "Tokyo": (35.6762, 139.6503),
    "Cape Town": (-33.9249, 18.4241), "Buenos Aires": (-34.6037, -58.3816),
    "Reykjavik": (64.1466, -21.9426), "mid-Pacific": (-15.0, -140.0),
    "Lyon": (45.75, 4.85), "Paris": (48.8566, 2.3522), "New York": (40.7128, -74.006),
    "McMurdo": (-77.85, 166.67), "Nuuk": (64.18, -51.72),
}
NAMED = {"Honolulu", "Anchorage", "Sydney", "Tokyo", "Cape Town", "Buenos Aires", "Reykjavik",
         "Lyon", "Paris", "New York", "Nuuk"}
"""Places `search` is given by name (the gazetteer resolves them); the others by position."""
COMMON, RARE, REGIONAL = "cancer", "Phelan-McDermid Syndrome", "Nasopharyngeal Carcinoma"
OTHER_STATUSES = [Status.NOT_YET_RECRUITING, Status.ACTIVE_NOT_RECRUITING, Status.COMPLETED,
                  Status.WITHDRAWN, Status.SUSPENDED, Status.TERMINATED]


def templates() -> list[tuple[Trial, float]]:
    """The recorded studies (single records and search pages), with their MeSH terms, each with
    a weight: the Phelan-McDermid ones are rare (about 0.1 % of the trials)."""
    studies = []
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        studies += data.get("studies", []) if "studies" in data else [data]
    out = []
    for study in studies:
        if "protocolSection" not in study:
            continue
        trial = parse_study(study).trial
        browse = study.get("derivedSection", {}).get("conditionBrowseModule", {})
        terms = tuple(m["term"] for key in ("meshes", "ancestors")
                      for m in browse.get(key, []) if m.get("term"))
        if terms and not trial.condition_terms:
            trial = trial.replace(condition_terms=terms)
        rare = text_matches(condition_words(RARE), searchable_text(trial))
        out.append((trial, 0.0002 if rare else 1.0))
    return out


def world_cities() -> tuple[list[str], dict[str, list[tuple[str, float, float, float]]],
                            dict[str, str]]:
    """Countries weighted for research, their cities (name, lat, lon, weight), their names."""
    db = sqlite3.connect(data_path("gazetteer.sqlite"))
    names = dict(db.execute("SELECT code, name FROM country"))
    cities: dict[str, list[tuple[str, float, float, float]]] = {}
    for name, country, lat, lon, population in db.execute(
        "SELECT name, country, latitude, longitude, population FROM place "
        "WHERE population >= 15000"
    ):
        cities.setdefault(country, []).append((name, lat / 1e5, lon / 1e5, population ** 0.8))
    db.close()
    return sorted(cities), cities, names


def build(path: Path, target_sites: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    models = templates()
    weights = [w for _t, w in models]
    countries, cities, names = world_cities()
    boost = {"US": 8.0, "FR": 3.0, "DE": 3.0, "GB": 3.0, "ES": 3.0, "IT": 3.0, "CN": 3.0,
             "CA": 2.0, "JP": 2.0, "KR": 2.0, "AU": 2.0, "BE": 2.0, "NL": 2.0, "BR": 1.5}
    country_weights = [sum(c[3] for c in cities[k]) ** 0.6 * boost.get(k, 1.0)
                       for k in countries]
    city_weights = {k: [c[3] for c in cities[k]] for k in countries}
    months = [f"{y}-{m:02d}" for y in (2022, 2023, 2024, 2025) for m in range(1, 13)
              if (y, m) <= (2025, 2) and (y, m) >= (2022, 6)]
    sites_made = trials_made = 0
    with Store(path) as store, store.search_deferred():
        store.connection.execute("PRAGMA synchronous = OFF")
        while sites_made < target_sites:
            model = rng.choices(models, weights)[0][0]
            if rng.random() < 0.0005:
                n = rng.randint(1000, 3000)
            else:
                n = max(1, min(3000, round(rng.lognormvariate(math.log(5), 1.2))))
            n = min(n, target_sites - sites_made)
            k = 1 if n < 4 or rng.random() < 0.6 else min(12, 1 + int(rng.expovariate(0.4)))
            where = rng.choices(countries, country_weights, k=k)
            keywords = model.keywords
            if rng.random() < 0.02:  # a condition studied in one country only
                keywords, k, where = (*keywords, REGIONAL), 1, ["CN"]
            sites = []
            for p in range(n):
                country = where[p % k]
                name, lat, lon, _w = rng.choices(cities[country], city_weights[country])[0]
                if rng.random() < 0.2:  # a facility-level position near the centre
                    lat, lon = lat + rng.gauss(0, 0.03), lon + rng.gauss(0, 0.03)
                placed = rng.random() >= 0.02
                base = model.sites[p % len(model.sites)] if model.sites else None
                status = Status.RECRUITING if rng.random() < 0.6 else rng.choice(OTHER_STATUSES)
                sites.append(Site(
                    facility=f"{base.facility if base else 'Hospital'} #{p}", city=name,
                    country=names.get(country, country), status=status,
                    latitude=lat if placed else None, longitude=lon if placed else None,
                    contacts=base.contacts if base else (),
                ))
            trial = model.replace(
                nct_id=f"NCT9{trials_made:07d}",
                status=Status.RECRUITING if rng.random() < 0.8 else rng.choice(OTHER_STATUSES),
                verified_date=rng.choice(months), sites=tuple(sites), keywords=keywords,
                source=model.source.__class__(kind="registry", description="benchmark",
                                              as_of="2025-02-20",
                                              retrieved="2025-02-20T00:00:00+00:00"),
            )
            store.save_prepared(prepare_trial(trial, None, today=DAY))
            sites_made += n
            trials_made += 1
    return trials_made, sites_made


# -- the reference: numpy over the same points -------------------------------------------


class Reference:
    """Every site of the store as arrays, grouped by trial, for a numpy brute force."""

    def __init__(self, store: Store) -> None:
        rows = store.connection.execute(
            "SELECT trial, position, latitude, longitude, standing = 'recruiting' AND "
            "(recruiting_until IS NULL OR recruiting_until >= ?) FROM sites "
            "WHERE latitude IS NOT NULL AND longitude IS NOT NULL ORDER BY trial, position",
            (DAY.isoformat(),)).fetchall()
        self.ids = sorted({r[0] for r in rows})
        index = {n: i for i, n in enumerate(self.ids)}
        self.trial = np.array([index[r[0]] for r in rows], dtype=np.int64)
        self.position = np.array([r[1] for r in rows], dtype=np.int64)
        self.lat = np.radians(np.array([r[2] for r in rows]))
        self.lon = np.radians(np.array([r[3] for r in rows]))
        self.recruiting = np.array([bool(r[4]) for r in rows])
        self.starts = np.flatnonzero(np.r_[True, self.trial[1:] != self.trial[:-1]])
        self.texts = dict(store.connection.execute("SELECT nct_id, search_text FROM trials"))

    def matching(self, condition: str) -> np.ndarray:
        phrase = condition_words(condition)
        wanted = {i for i, n in enumerate(self.ids) if text_matches(phrase, self.texts[n])}
        return np.isin(self.trial, np.fromiter(wanted, dtype=np.int64))

    def nearest(self, lat: float, lon: float, limit: int, recruiting: bool,
                mask: np.ndarray | None) -> list[tuple[float, str]]:
        phi, lam = math.radians(lat), math.radians(lon)
        a = (np.sin((self.lat - phi) / 2) ** 2
             + math.cos(phi) * np.cos(self.lat) * np.sin((self.lon - lam) / 2) ** 2)
        d = 2 * 6371.0088 * np.arcsin(np.minimum(1.0, np.sqrt(a)))
        keep = self.recruiting if recruiting else np.ones_like(self.recruiting)
        if mask is not None:
            keep = keep & mask
        d = np.where(keep, d, np.inf)
        best = np.minimum.reduceat(d, self.starts)
        k = min(limit, int(np.isfinite(best).sum()))
        if k == 0:
            return []
        # The k smallest, and every trial tied with the k-th (ties go by identifier).
        kth = np.partition(best, k - 1)[k - 1]
        chosen = np.flatnonzero(best <= kth)
        return sorted((float(best[i]), self.ids[self.trial[self.starts[i]]])
                      for i in chosen)[:limit]


def agree(got: list[tuple[float, str, int]], want: list[tuple[float, str]]) -> bool:
    """Same trials, distances within 1 mm; order may differ only between near-ties."""
    if len(got) != len(want):
        return False
    if sorted(n for _d, n, _p in got) != sorted(n for _d, n in want):
        # the last place may be a near-tie that numpy's last bit decided otherwise
        return abs(got[-1][0] - want[-1][0]) < 1e-6 and \
            [n for _d, n, _p in got[:-1]] == [n for _d, n in want[:-1]]
    by_id = {n: d for d, n in want}
    return all(abs(d - by_id[n]) < 1e-6 for d, n, _p in got)


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - start) * 1000


def summary(runs: list[float], *, p95: bool = True) -> str:
    runs = sorted(runs)
    if not p95:
        return f"{statistics.median(runs):6.1f} {runs[-1]:6.1f}"
    high = runs[min(len(runs) - 1, round(0.95 * (len(runs) - 1)))]
    return f"{statistics.median(runs):6.1f} {high:6.1f} {runs[-1]:6.1f}"


class _Places:
    """The bundled gazetteer, which also answers the benchmark's unnamed places (given as
    "lat,lon") at their position."""

    def __init__(self, gazetteer: Gazetteer) -> None:
        self.gazetteer = gazetteer

    @staticmethod
    def query(place: str) -> str:
        return place if place in NAMED else "{},{}".format(*PLACES[place])

    def resolve(self, query: str) -> Resolution:
        if query in NAMED:
            return self.gazetteer.resolve(query)
        lat, lon = (float(v) for v in query.split(","))
        return Resolution(query, Place(query, "", "", None, None, None, lat, lon, None,
                                       Precision.CITY))


def _search_options(options: dict[str, object]) -> dict[str, object]:
    """`nearest_trials`' options as `search` takes them."""
    out = dict(options)
    if out.pop("recruiting_only", True) is False:
        out["status"] = "all"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs per place and scenario")
    parser.add_argument("--store", type=Path, help="build here, or reuse what is there")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--scan", action="store_true",
                        help="also time the search without its index (seconds per query)")
    args = parser.parse_args()
    clock.today = lambda: DAY  # the rules' day, for every call below
    folder = None
    if args.store is None:
        folder = Path(tempfile.mkdtemp(prefix="trialfinder-bench-"))
        path = folder / "bench.sqlite"
    else:
        path = args.store
    if not path.exists():
        (trials, sites), seconds = timed(lambda: build(path, args.sites, args.seed))
        print(f"built {trials:,} trials, {sites:,} sites in {seconds / 1000:.0f} s "
              f"(through Store.save_prepared, the index kept by its triggers)")
    size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + "-*"))
    with Store(path) as store:
        db = store.connection
        trials = db.execute("SELECT count(*) FROM trials").fetchone()[0]
        placed = db.execute("SELECT count(*) FROM search_cell").fetchone()[0]
        print(f"store: {trials:,} trials, {placed:,} placed sites, {size / 1e6:.0f} MB")
        reference, seconds = timed(lambda: Reference(store))
        print(f"reference arrays loaded in {seconds / 1000:.1f} s")
        masks = {c: reference.matching(c) for c in (COMMON, RARE, REGIONAL)}
        for c, m in masks.items():
            n = len(set(reference.trial[m].tolist()))
            print(f"condition {c!r}: {n:,} trials, {int(m.sum()):,} placed sites")
        scenarios = [
            ("recruiting, nearest 10", {}, None),
            ("any status, nearest 10", {"recruiting_only": False}, None),
            ("recruiting, nearest 50", {"limit": 50}, None),
            ("recruiting, within 100 km", {"radius_km": 100.0}, None),
            (f"condition {COMMON!r}", {"condition": COMMON}, COMMON),
            (f"rare condition {RARE!r}", {"condition": RARE}, RARE),
            (f"in China only: {REGIONAL!r}", {"condition": REGIONAL}, REGIONAL),
        ]
        gazetteer = _Places(Gazetteer.bundled())
        for place in NAMED:  # the core and numpy start from where the gazetteer puts it
            found = gazetteer.resolve(place).place
            PLACES[place] = (found.latitude, found.longitude)
        for place in PLACES:  # warm the page cache once
            search(gazetteer.query(place), store, gazetteer=gazetteer, today=DAY)
        print(f"\n{'scenario (ms, warm)':34} {'search: median':>14} {'p95':>6} {'max':>6}"
              f"  {'core: median':>12} {'max':>6}  {'numpy: median':>13} {'max':>6}"
              "  slowest place (its median search)")
        failures = []
        worst = 0.0
        for name, options, condition in scenarios:
            whole: list[float] = []
            ours: list[float] = []
            theirs: list[float] = []
            slowest = (0.0, "")  # the place whose median is highest: noise hits one run
            for place, (lat, lon) in PLACES.items():
                limit = int(options.get("limit", 10))
                here: list[float] = []
                for _ in range(args.repeat):
                    answer, ms = timed(lambda place=place, o=options: search(
                        gazetteer.query(place), store, gazetteer=gazetteer, today=DAY,
                        **_search_options(o)))
                    whole.append(ms)
                    here.append(ms)
                    with store.search_snapshot():
                        ranking, ms = timed(lambda lat=lat, lon=lon, o=options: nearest_trials(
                            store, lat, lon, today=DAY, **o))
                    ours.append(ms)
                    mask = masks[condition] if condition else None
                    recruiting = bool(options.get("recruiting_only", True))
                    want, ms = timed(lambda lat=lat, lon=lon, limit=limit, mask=mask,
                                     recruiting=recruiting: reference.nearest(
                                         lat, lon, limit, recruiting, mask))
                    theirs.append(ms)
                slowest = max(slowest, (statistics.median(here), f"{place} ({answer.method})"))
                radius = options.get("radius_km")
                if radius is not None:
                    want = [(d, n) for d, n in want if d <= radius]
                got = [(h.distance_km, h.nct_id, h.position) for h in answer.hits]
                if not agree(got, want) or not agree(ranking.ranked, want):  # type: ignore[arg-type]
                    failures.append((name, place, got[:3], want[:3]))
            worst = max(worst, max(whole))
            print(f"{name:34} {summary(whole):>28}  {summary(ours, p95=False):>19}  "
                  f"{summary(theirs, p95=False):>20}  {slowest[1]} {slowest[0]:.1f}")
        print(f"\nslowest `search` call: {worst:.1f} ms (goal ≤ 50 ms: "
              f"{'MET' if worst <= 50 else 'NOT MET'})")
        print(f"checked against numpy: {len(scenarios) * len(PLACES)} answers, "
              f"{len(failures)} differ")
        for failure in failures:
            print("  DIFFERS:", failure)
        if args.scan:
            runs = []
            for place in ("Lyon", "Sydney", "mid-Pacific"):
                ranking, ms = timed(lambda p=place: nearest_trials(store, *PLACES[p], today=DAY,
                                                                   method="scan"))
                runs.append(ms)
            print(f"without the index (read-only store, scan): {summary(runs)} ms")
    for place in ("Sydney", "Lyon"):
        runs = []
        for _ in range(3):
            _r, ms = timed(lambda p=place: subprocess.run(
                [sys.executable, "-m", "trialfinder", "search", "--near", p, "--db", str(path)],
                check=True, capture_output=True))
            runs.append(ms)
        print(f"`trialfinder search --near {place}` (whole process): {min(runs):.0f} ms best "
              "of 3")
    if folder is not None:
        for extra in folder.iterdir():
            extra.unlink()
        folder.rmdir()
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
