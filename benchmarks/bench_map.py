"""How much a map costs: a cold `import folium` against a cold build of the 16-site map.

Each figure is the median wall time of several fresh interpreter runs (`python -c …`), so
imports are paid every time, as a patient running `trialfinder map` pays them. Target: the
build at most 1.5x the bare import, and the page at most 600 KB.

    python benchmarks/bench_map.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = "import folium"

# The bundled record when there is one, else 16 synthetic French sites; placed near Lyon.
BUILD = r"""
import sys
from trialfinder.gazetteer import Place
from trialfinder.mapping import build_map, write_map
from trialfinder.models import Precision, Site, Source, Status, Trial
from trialfinder.records import bundled_trial

trial = bundled_trial("NCT02260505")
if trial is None:
    cities = [("Lyon", 45.75, 4.85), ("Paris", 48.86, 2.35), ("Marseille", 43.30, 5.37),
              ("Lille", 50.63, 3.06)] * 4
    trial = Trial(
        nct_id="NCT02260505", title="synthetic", status=Status.RECRUITING,
        source=Source(kind="built", description="synthetic", as_of="2019-01"),
        sites=tuple(Site(facility=f"Hôpital {i}", city=c, country="France", latitude=la,
                         longitude=lo, precision=Precision.CITY)
                    for i, (c, la, lo) in enumerate(cities)),
    )
lyon = Place(name="Lyon", country="FR", country_name="France", region=None, department="69",
             postal_code=None, latitude=45.7578, longitude=4.832, population=None,
             precision=Precision.CITY)
write_map(build_map(trial, place=lyon), sys.argv[1])
print(len(trial.sites))
"""


def timed(code: str, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "map.html"
        timed(BARE)  # warm the OS file cache once for both
        timed(BUILD, str(out))
        bare, build = [], []
        sites = ""
        for _ in range(args.runs):  # interleaved, so drift hits both alike
            bare.append(timed(BARE)[0])
            seconds, sites = timed(BUILD, str(out))
            build.append(seconds)
        size = out.stat().st_size
    bare_median, build_median = statistics.median(bare), statistics.median(build)
    ratio = build_median / bare_median
    print(f"runs: {args.runs} (cold interpreter each)")
    print(f"python -c 'import folium':  median {bare_median * 1000:7.1f} ms")
    print(f"build + write {sites}-site map: median {build_median * 1000:7.1f} ms"
          f"  ({ratio:.2f}x import folium; target <= 1.50x)")
    print(f"map size: {size / 1024:.1f} KiB ({size} bytes; target <= 600 KB)")
    return 0 if ratio <= 1.5 and size <= 600 * 1024 else 1


if __name__ == "__main__":
    sys.exit(main())
