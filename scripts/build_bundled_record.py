"""Build data/trials/NCT02260505.json from the bundled listing with trialfinder's own parser.

    python scripts/build_bundled_record.py

The source is data/sources/NCT02260505-listing-2019-01.txt (the seed listing, "Last updated on
January 2019"). The record is parsed as is: no coordinates (sites are geocoded at run time from
the bundled gazetteer). tests/test_listing.py fails when the parser's output drifts from the
committed record, so a parser change means running this script again.
"""

from __future__ import annotations

import json
from pathlib import Path

from trialfinder.listing import parse_listing
from trialfinder.models import to_jsonable, trial_from_jsonable

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "sources" / "NCT02260505-listing-2019-01.txt"
OUT = ROOT / "data" / "trials" / "NCT02260505.json"


def render() -> str:
    """The record's JSON text, as committed."""
    trial = parse_listing(SOURCE.read_text(encoding="utf-8"))
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
