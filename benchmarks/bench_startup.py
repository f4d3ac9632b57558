"""Cold start-up: `trialfinder nearest Lyon` against `python -c "import typer"`, same run.

Each command runs in a fresh interpreter (cold as far as Python is concerned; the OS file
cache is warm after the first round, as it would be for a user running it twice). Prints the
median of N rounds and the ratio; the goal is at most 2x.

    python benchmarks/bench_startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        # A fresh HOME and no store: the bundled record and gazetteer, as on a new machine.
        env = {**os.environ, "HOME": home, "TRIALFINDER_DB": str(Path(home) / "none.sqlite")}
        # Byte-code cached, as after any installation (pip compiles it; a checkout writes it
        # on the first run): a shell with PYTHONDONTWRITEBYTECODE set would recompile every
        # changed module on every run and measure the compiler.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        baseline_cmd = [sys.executable, "-c", "import typer"]
        ours_cmd = [sys.executable, "-m", "trialfinder", "nearest", "Lyon"]
        _time(ours_cmd, env)  # warm the OS cache and byte-code once
        baseline, ours = [], []
        for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
            baseline.append(_time(baseline_cmd, env))
            ours.append(_time(ours_cmd, env))
    b, o = statistics.median(baseline), statistics.median(ours)
    print(f"python -c 'import typer'       median {b * 1000:7.1f} ms  ({args.rounds} rounds)")
    print(f"trialfinder nearest Lyon       median {o * 1000:7.1f} ms")
    print(f"ratio                          {o / b:7.2f}x  (goal <= 2.00x)")


if __name__ == "__main__":
    main()
