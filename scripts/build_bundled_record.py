"""Build data/trials/NCT02260505.json from the bundled listing, the way `scrape` reads a page.

    python scripts/build_bundled_record.py

The source is data/sources/NCT02260505-listing-2019-01.txt (the seed listing, "Last updated on
January 2019"). It goes through `trialfinder.scrape.listing_copy`, the one path of the
`listing` command and of `scrape` (into a record file here rather than a store, so no store's
position cache): read, parsed, facility and city names repaired, sites placed by the offline
geocoding chain (the bundled gazetteer), `placed_by` saying which rules and gazetteer build
placed them. No special case: `trialfinder scrape data/sources/…` stores the same record in a
new store, and `trialfinder listing data/sources/… --json` prints it. tests/test_listing.py
fails when that output drifts from the committed record (a parser, repair, placing or
gazetteer change), so such a change means running this script again.
"""

from __future__ import annotations

import json
from pathlib import Path

from trialfinder.models import to_jsonable, trial_from_jsonable
from trialfinder.scrape import listing_copy

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "sources" / "NCT02260505-listing-2019-01.txt"
OUT = ROOT / "data" / "trials" / "NCT02260505.json"


def render() -> str:
    """The record's JSON text, as committed."""
    trial = listing_copy(SOURCE)
    text = json.dumps(to_jsonable(trial), ensure_ascii=False, indent=2) + "\n"
    if trial_from_jsonable(json.loads(text)) != trial:
        raise SystemExit("the record does not round-trip through trial_from_jsonable")
    return text


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
