"""trialfinder: find the clinical-trial site a patient can actually reach.

The library behind the command line. Each entry point is imported on first use (PEP 562), so
``import trialfinder`` costs nothing; the names do not shadow the submodules::

    import trialfinder

    answer = trialfinder.find_nearest("Lyon", "NCT02260505", db=None)  # the bundled record
    for site in answer.ranked:
        print(site.rank, site.site.facility, site.distance_km, site.recruitment.standing)

Calls that read the store take ``db``: an open `trialfinder.store.Store`, a path, or None.

| name | what it is |
|---|---|
| `find_nearest` | `queries.nearest`: the nearest sites of a trial to a place |
| `search_trials` | `search.search`: stored trials ranked by their nearest matching site |
| `sync_trials` | `sync.sync`: fetch records from ClinicalTrials.gov into the store |
| `load_trial` | `records.load_trial`: the store's record, else the bundled one |
| `trial_view` | `queries.trial_view`: a trial with its sites placed and the rules applied |
| `make_map` | `mapping.make_map`: write a self-contained HTML map |
| `referral_sheet` | `referral.referral_sheet`: a printable referral sheet as HTML |
| `trial_summary` | `summary.trial_summary`: the clinician's summary (`show --json`) |
| `parse_criteria` | `criteria.parse_criteria`: eligibility text as sections of criteria |
| `site_recruitment`, `trial_recruitment` | `recruitment`: the one status rule |
| `record_freshness` | `freshness.freshness`: the one staleness rule |
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

# Not `typing.TYPE_CHECKING`: importing typing would be most of this module's import time.
TYPE_CHECKING = False

_EXPORTS = {
    "find_nearest": ("trialfinder.queries", "nearest"),
    "search_trials": ("trialfinder.search", "search"),
    "sync_trials": ("trialfinder.sync", "sync"),
    "load_trial": ("trialfinder.records", "load_trial"),
    "trial_view": ("trialfinder.queries", "trial_view"),
    "make_map": ("trialfinder.mapping", "make_map"),
    "referral_sheet": ("trialfinder.referral", "referral_sheet"),
    "trial_summary": ("trialfinder.summary", "trial_summary"),
    "parse_criteria": ("trialfinder.criteria", "parse_criteria"),
    "site_recruitment": ("trialfinder.recruitment", "site_recruitment"),
    "trial_recruitment": ("trialfinder.recruitment", "trial_recruitment"),
    "record_freshness": ("trialfinder.freshness", "freshness"),
}

__all__ = [
    "__version__",
    "find_nearest",
    "load_trial",
    "make_map",
    "parse_criteria",
    "record_freshness",
    "referral_sheet",
    "search_trials",
    "site_recruitment",
    "sync_trials",
    "trial_recruitment",
    "trial_summary",
    "trial_view",
]

if TYPE_CHECKING:
    from trialfinder.criteria import parse_criteria
    from trialfinder.freshness import freshness as record_freshness
    from trialfinder.mapping import make_map
    from trialfinder.queries import nearest as find_nearest
    from trialfinder.queries import trial_view
    from trialfinder.records import load_trial
    from trialfinder.recruitment import site_recruitment, trial_recruitment
    from trialfinder.referral import referral_sheet
    from trialfinder.search import search as search_trials
    from trialfinder.summary import trial_summary
    from trialfinder.sync import sync as sync_trials


def __getattr__(name: str) -> object:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'trialfinder' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
