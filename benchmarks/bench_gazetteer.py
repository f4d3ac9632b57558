"""Time the bundled gazetteer: cold start, exact lookups, warm typo lookups, site matching.

    python benchmarks/bench_gazetteer.py

Budgets (issue): a cold process resolving "Lyon" costs at most 2x a cold `import typer`
(so opening the index plus an exact lookup must be a few ms); a warm typo lookup <= 5 ms.
Site matching (`match_site`) and placing a whole recorded trial (`geocode.place_offline`, what
a sync does for each study) are measured too, with the index size.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 15
EXACT = ["Lyon", "Saint-Étienne", "st etienne", "42000", "Saint-Denis 974", "Valence, Spain",
         "Londres", "75005", "42270 Saint-Priest-en-Jarez", "Bretagne", "La Réunion", "2A",
         "Paris XXe", "F-69008 Lyon", "Springfield, MA"]
TYPOS = ["Montpelier", "Bordaux", "Lyonn", "Marseile", "Toulouze", "Grenobel",
         "Clermond Ferand", "Strassbourgg", "Montpeliers", "Zzyzxville"]
SITES = [("Hollywood", "United States", "Florida", "33021"), ("Summit", "United States",
         "Wisconsin", None), ("Springfield", "United States", None, None),
         ("München", "Germany", "Bayern", "80331"), ("Saint-priest-en-jarez", "France", None,
         "42270"), ("Toronto", "Canada", "ON", "M5G 2M9"), ("Hanzhou", "China", "Zhejiang",
         None), ("Nowhere", "France", None, None)]
ROOT = Path(__file__).resolve().parents[1]
BIG_TRIAL = ROOT / "tests/fixtures/ctgov/study_NCT04267848_nsclc_1148sites_sitestatus_contacts.json"


# As installed from a wheel: byte-code cached (a PYTHONDONTWRITEBYTECODE=1 environment would
# otherwise recompile our modules, but not site-packages', on every run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cold(code: str) -> float:
    """Best wall time of a fresh interpreter running code, in ms (the least noisy figure)."""
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)  # writes .pyc files
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def warm(gazetteer, query: str, repeat: int = 30) -> float:
    from trialfinder.errors import UnknownPlace

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with contextlib.suppress(UnknownPlace):
            gazetteer.resolve(query)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def warm_site(gazetteer, fields: tuple, repeat: int = 30) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        gazetteer.match_site(*fields)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    python = cold("pass")
    typer = cold("import typer")
    resolve = "from trialfinder.gazetteer import Gazetteer; Gazetteer.bundled().resolve('Lyon')"
    lookup = cold(resolve)
    both = cold("import typer\n" + resolve)
    print(f"cold python -c pass                  {python:7.1f} ms")
    print(f"cold python -c 'import typer'        {typer:7.1f} ms")
    print(f"cold gazetteer import + open + Lyon  {lookup:7.1f} ms")
    print(f"cold typer + gazetteer + Lyon        {both:7.1f} ms  "
          f"({both / typer:.2f}x typer; budget 2x)")

    start = time.perf_counter()
    from trialfinder.gazetteer import Gazetteer

    imported = time.perf_counter()
    gazetteer = Gazetteer.bundled()
    opened = time.perf_counter()
    gazetteer.resolve("Lyon")
    looked = time.perf_counter()
    print(f"in process: import {1000 * (imported - start):.1f} ms, open "
          f"{1000 * (opened - imported):.1f} ms, first exact lookup "
          f"{1000 * (looked - opened):.2f} ms")

    for query in TYPOS:  # first contact: pages not yet in the OS/SQLite cache
        warm(gazetteer, query, repeat=1)
    print("warm exact lookups (median ms):")
    for query in EXACT:
        print(f"  {query:32} {warm(gazetteer, query):6.2f}")
    print("warm typo lookups (median ms; budget 5):")
    worst = 0.0
    for query in TYPOS:
        ms = warm(gazetteer, query)
        worst = max(worst, ms)
        print(f"  {query:32} {ms:6.2f}")
    print(f"worst warm typo lookup: {worst:.2f} ms")

    print("warm site matches (median ms):")
    for fields in SITES:
        label = ", ".join(f for f in fields if f)
        print(f"  {label[:40]:42} {warm_site(gazetteer, fields):6.2f}")

    from trialfinder.geocode import place_offline
    from trialfinder.registry import parse_study

    trial = parse_study(json.loads(BIG_TRIAL.read_text(encoding="utf-8"))).trial
    bare = trial.replace(sites=tuple(s.__class__(facility=s.facility, city=s.city,
                                                 country=s.country, state=s.state, zip=s.zip)
                                     for s in trial.sites))
    for name, subject in (("with registry points", trial), ("without (gazetteer only)", bare)):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            place_offline(subject, None, gazetteer)
            times.append((time.perf_counter() - start) * 1000)
        print(f"place_offline, {len(trial.sites):,} sites {name}: "
              f"{statistics.median(times):.0f} ms")
    index = gazetteer_path()
    print(f"index: {index.stat().st_size / 1e6:.1f} MB")


def gazetteer_path() -> Path:
    from trialfinder.gazetteer import INDEX_FILE
    from trialfinder.resources import data_path

    return data_path(INDEX_FILE)


if __name__ == "__main__":
    main()
