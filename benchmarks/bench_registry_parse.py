"""How fast registry records turn into Trials: JSON decoding and ``parse_study``.

Run: python benchmarks/bench_registry_parse.py [--repeat N]
Reads the recorded responses in tests/fixtures/ctgov (the 1,148-site and 437-site studies)
and prints, for each, the decode and parse time per study with studies/s and sites/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from trialfinder.registry import parse_study

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ctgov"
CASES = (
    "study_NCT04267848_nsclc_1148sites_sitestatus_contacts.json",
    "study_NCT02513394_breast_437sites_21countries_withResults.json",
)


def best_of(repeat: int, func) -> float:
    """Median of ``repeat`` timings, in seconds (one warm-up call first)."""
    func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print(f"{'study':<13} {'bytes':>9} {'sites':>6} {'decode ms':>10} {'parse ms':>9} "
          f"{'studies/s':>10} {'sites/s':>10}")
    for name in CASES:
        raw = (FIXTURES / name).read_text(encoding="utf-8")
        data = json.loads(raw)
        result = parse_study(data)
        sites = len(result.trial.sites)
        decode = best_of(args.repeat, lambda raw=raw: json.loads(raw))
        parse = best_of(args.repeat, lambda data=data: parse_study(data))
        print(f"{result.trial.nct_id:<13} {len(raw.encode()):>9} {sites:>6} "
              f"{decode * 1000:>10.2f} {parse * 1000:>9.2f} {1 / parse:>10.0f} "
              f"{sites / parse:>10.0f}")
    print("(median of", args.repeat, "runs; parse excludes decode)")


if __name__ == "__main__":
    main()
