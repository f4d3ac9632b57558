"""How reading a listing page grows with its size: pages of 0.2, 2 and 20 MB.

Run: python benchmarks/bench_listing.py [--sizes 0.2 2 20] [--repeat 3] [--text]

Each page is built here from the seed listing's structure (tests/fixtures/seed): its title,
headings and identifier, the detailed description's paragraphs repeated, and its 16 site
blocks (investigator, damaged facility name, city, "Connect »") repeated, about half the bytes
each, as HTML (one <p> per paragraph, a <div> per site, as the built seed page) or, with
--text, as the text layout. The page is written to a temporary file and read the way the
`listing` command reads it (`trialfinder.listing.load_listing`: bounded read, decode, HTML to
lines, parse, repair, place). Prints, per size: the time of the whole path, of the HTML-to-
lines step alone, the throughput, the ratio to the previous size (a linear reader gives
about 10 per 10x) and the process's peak memory so far. The size cap is lifted for the run.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import resource
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "fixtures" / "seed" / "000_6aeb1dc53d5a47c7.txt"


def seed_parts() -> tuple[str, list[str], list[tuple[str, str, str]]]:
    """The seed's title, description paragraphs and (investigator, facility, place) sites."""
    lines = SEED.read_text(encoding="utf-8").split("\n")
    start = next(k for k, ln in enumerate(lines) if ln.startswith("Detailed Study Description"))
    end = next(k for k, ln in enumerate(lines) if ln.startswith("Clinical Study Identifier"))
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", "\n".join(lines[start + 1 : end]))]
    first = next(k for k, ln in enumerate(lines) if ln.startswith("Contact Investigators"))
    last = next(k for k, ln in enumerate(lines) if ln.startswith("Recruitment Status"))
    blocks = re.split(r"\n\s*Connect »\s*\n", "\n".join(lines[first + 1 : last]))
    sites = []
    for block in blocks:
        parts = [ln.strip() for ln in block.split("\n")]
        parts = [p for p in parts if p and p != "Start Over"]
        if len(parts) == 3:
            sites.append((parts[0], parts[1], parts[2]))
    title = next(ln for ln in lines[1:] if ln.strip())
    return title, [p for p in paragraphs if p], sites


def build_page(megabytes: float, *, as_text: bool) -> tuple[str, int, int]:
    """A page of about ``megabytes`` MB; returns it with its paragraph and site counts."""
    title, paragraphs, sites = seed_parts()
    target = int(megabytes * 1_000_000)
    e = html.escape
    if as_text:
        para = [p + "\n\n" for p in paragraphs]
        site = [f"{i}\n\n{f}\n{p}\n  Connect »\n\n" for i, f, p in sites]
    else:
        para = [f"<p>{e(p)}</p>\n" for p in paragraphs]
        site = [
            f'<div class="site"><div><strong>{e(i)}</strong></div><div>{e(f)}</div>'
            f'<div>{e(p)}</div><div><a href="#c">Connect &raquo;</a></div></div>\n'
            for i, f, p in sites
        ]
    body_paragraphs: list[str] = []
    size = 0
    while size < target / 2:
        piece = para[len(body_paragraphs) % len(para)]
        body_paragraphs.append(piece)
        size += len(piece.encode())
    body_sites: list[str] = []
    while size < target:
        piece = site[len(body_sites) % len(site)]
        body_sites.append(piece)
        size += len(piece.encode())
    if as_text:
        page = (
            f"Last updated on January 2019\n\n{title}\n\nDetailed Study Description\n\n"
            + "".join(body_paragraphs)
            + "Clinical Study Identifier: NCT02260505\n\n"
            "Contact Investigators or Research Sites near you\n\n"
            + "".join(body_sites)
            + "Recruitment Status: Open\n"
        )
    else:
        page = (
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body>'
            f"<p>Last updated on January 2019</p><h1>{e(title)}</h1>"
            "<h2>Detailed Study Description</h2>\n" + "".join(body_paragraphs)
            + "<p>Clinical Study Identifier: NCT02260505</p>"
            "<h2>Contact Investigators or Research Sites near you</h2>\n"
            + "".join(body_sites)
            + "<p>Recruitment Status: Open</p></body></html>\n"
        )
    return page, len(body_paragraphs), len(body_sites)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.2, 2.0, 20.0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size below 20 MB")
    parser.add_argument("--text", action="store_true", help="text layout instead of HTML")
    args = parser.parse_args()
    os.environ["TRIALFINDER_LISTING_MAX_BYTES"] = str(10**10)

    from trialfinder.gazetteer import Gazetteer
    from trialfinder.listing import html_to_text, load_listing

    Gazetteer.bundled().place_names("FR")  # warm: the city index is built once per process
    kind = "text" if args.text else "HTML"
    print(f"{kind} pages read by load_listing (read, decode, lines, parse, repair, place)")
    print(f"{'MB':>6} {'paras':>7} {'sites':>6} {'total s':>8} {'lines s':>8} {'MB/s':>6} "
          f"{'x prev':>7} {'peak MB':>8}")
    previous: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for megabytes in args.sizes:
            page, paragraphs, sites = build_page(megabytes, as_text=args.text)
            path = Path(tmp) / f"page-{megabytes}.{'txt' if args.text else 'html'}"
            path.write_text(page, encoding="utf-8")
            size = path.stat().st_size
            runs = 1 if megabytes >= 10 else args.repeat
            totals, steps = [], []
            for _ in range(runs):
                start = time.perf_counter()
                trial = load_listing(path)
                totals.append(time.perf_counter() - start)
                if not args.text:
                    start = time.perf_counter()
                    html_to_text(page)
                    steps.append(time.perf_counter() - start)
            assert len(trial.sites) == sites, (len(trial.sites), sites)
            total = statistics.median(totals)
            step = f"{statistics.median(steps):>8.2f}" if steps else f"{'-':>8}"
            ratio = f"{total / previous:>7.1f}" if previous else f"{'':>7}"
            print(f"{size / 1e6:>6.1f} {paragraphs:>7} {sites:>6} {total:>8.2f} {step} "
                  f"{size / 1e6 / total:>6.2f} {ratio} {peak_mb():>8.0f}")
            previous = total
    print(f"(median of {args.repeat} runs below 10 MB, one above; 'x prev': time ratio to the "
          "previous size, 10 for a linear reader over 10x the size)")


if __name__ == "__main__":
    main()
