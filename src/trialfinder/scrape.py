"""Listing pages as a stored source: `trialfinder scrape PATH|URL`.

A page (a saved file, or an http(s) URL fetched with the listing module's timeouts, size cap,
deadline and User-Agent) is read, parsed and repaired by `listing.load_listing`; its sites are
placed by the offline chain with the store's position cache, as a sync places a registry
record. That is the page's own copy: what `trialfinder listing` prints (`listing_copy`) and
what `scrape` stores.

`scrape` takes the store's sync lock and saves in one transaction: the page's copy alone when
the store has no registry record of the trial, else the registry record merged with it the way
`sync` merges (`merge.combine`: the page adds investigators and the sites the registry lacks,
flagged; the trial's status is the more recent source's), the page's own copy kept beside the
merged record so that the next sync merges with it. Whichever comes first, scrape or sync, the
merged record is the same. History compares the page with its own previous copy only
(`store.trial_basis`): re-scraping an unchanged page changes nothing, and alternating scrapes
and syncs never flip-flop.

A page that cannot be used (a 404, a page that is no trial listing, binary data, an oversized
page) fails before the store is opened: nothing is created or written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from trialfinder.errors import BadInput
from trialfinder.i18n import _
from trialfinder.store import Change, Store, StoreLike, using_store, writable_path

if TYPE_CHECKING:
    import requests

    from trialfinder.gazetteer import Gazetteer
    from trialfinder.models import Trial

SOURCE_KIND = "listing"
"""The kind of source a listing page is, in the store's history (`Change.source`)."""


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """What a scrape did with one page."""

    nct_id: str
    outcome: str
    """"new" (the store had no copy of this trial from a listing page), "updated" or
    "unchanged" (English: scripts read these words)."""
    source: str
    """The page: its URL, or the file's name."""
    as_of: str
    """The page's "last updated" date (ISO, maybe partial; "" when it gives none)."""
    sites: int
    """Sites the page names."""
    changes: tuple[Change, ...] = ()
    merged: bool = False
    """The store holds the registry's record of the trial: the page was merged with it."""
    status_from: str = SOURCE_KIND
    """The kind of source the stored trial's status comes from ("listing", "registry")."""
    store: str = ""

    def summary(self) -> str:
        """One line, like `sync`'s: 'NCT… new: 16 sites', 'NCT… unchanged', 'NCT… updated: 1
        site added' (the outcome words stay English: scripts read them)."""
        from trialfinder.sync import TrialOutcome

        line = TrialOutcome(self.nct_id, self.outcome, self.changes, self.sites).summary()
        if self.merged:
            line += " (merged with the registry record)"  # a log line: English, as sync's
        return line

    def to_jsonable(self) -> dict[str, Any]:
        return {
            "nct_id": self.nct_id,
            "outcome": self.outcome,
            "source": self.source,
            "as_of": self.as_of or None,
            "sites": self.sites,
            "changes": {k: v for k, v in _counts(self.changes).items() if v},
            "merged": self.merged,
            "status_from": self.status_from,
            "store": self.store,
        }


def _counts(changes: tuple[Change, ...]) -> dict[str, int]:
    from trialfinder.sync import TrialOutcome

    return TrialOutcome("", "updated", changes).change_counts


def read_page(
    source: str | os.PathLike[str],
    *,
    session: requests.Session | None = None,
    gazetteer: Gazetteer | None = None,
) -> Trial:
    """A listing page read (fetched for a URL), parsed, facility and city names repaired, sites
    placed without a store: `listing.load_listing`. Raises `UnusableListing` (exit 2) or
    `ListingFetchError` (exit 1); touches no store."""
    from trialfinder.listing import load_listing

    return load_listing(source, session=session, gazetteer=gazetteer)


def place_page(page: Trial, store: Store | None, gazetteer: Gazetteer | None = None) -> Trial:
    """A page's sites placed as the store keeps them: the offline chain with the store's
    position cache (`geocode.place_offline`, what a sync uses), stamped with the placing
    version. The page as read when the store holds no cached position: `read_page` placed
    it with that very chain already."""
    if store is None or not store.geocode_holds_positions():
        return page
    from trialfinder.geocode import place_offline

    return place_offline(page, store, gazetteer)


def listing_copy(
    source: str | os.PathLike[str],
    *,
    db: StoreLike = None,
    session: requests.Session | None = None,
    gazetteer: Gazetteer | None = None,
) -> Trial:
    """What `scrape` stores as the page's own copy, and what `trialfinder listing` prints: the
    page read (`read_page`), then placed with the position cache of the store ``db`` when it
    exists (opened read-only, after the page was read: a bad page never opens it; never
    created, never written)."""
    page = read_page(source, session=session, gazetteer=gazetteer)
    with using_store(db, mode="read") as store:
        return place_page(page, store, gazetteer)


def scrape(
    source: str | os.PathLike[str],
    *,
    db: StoreLike,
    session: requests.Session | None = None,
    gazetteer: Gazetteer | None = None,
    lock_timeout: float | None = None,
    now: str | None = None,
    today: date | None = None,
) -> ScrapeResult:
    """Store a listing page's trial, with its history, in one transaction under the store's
    sync lock (see the module's docstring). ``now`` fixes the save's timestamp and ``today``
    the status rule's day (tests).

    Raises `UnusableListing` (exit 2) and `ListingFetchError` (exit 1) before the store is
    opened or created; `StoreBusy` (exit 75) when a sync holds the store past
    ``lock_timeout`` seconds (default `sync.LOCK_TIMEOUT`); `StoreError` when the store cannot
    be written (checked before the page is fetched).
    """
    from trialfinder import clock
    from trialfinder.geocode import placer
    from trialfinder.merge import combine
    from trialfinder.store import prepare_trial
    from trialfinder.sync import LOCK_TIMEOUT, store_lock

    path = writable_path(db)
    if path is None:
        raise BadInput(_("No store given to scrape into"))
    page = read_page(source, session=session, gazetteer=gazetteer)
    day = today or clock.today()
    timeout = LOCK_TIMEOUT if lock_timeout is None else lock_timeout
    with store_lock(path, timeout), using_store(db, create=True, mode="write") as store:
        assert store is not None
        store.prepare_for_writing()
        own = place_page(page, store, gazetteer)
        nct = own.nct_id
        had_copy = nct in store.source_copies([nct], SOURCE_KIND)
        registry = store.source_copies([nct], "registry").get(nct)
        if registry is None:
            record = own
            prepared = prepare_trial(own, None, today=day)
        else:
            record = combine(registry, own, placer(store))
            prepared = prepare_trial(record, store.get_raw(nct), today=day, copy_of=own)
        saved = store.save_prepared(prepared, now=now)
    outcome = saved.outcome
    if outcome != "unchanged" and not had_copy:
        outcome = "new"
    status_from = record.status_source.kind if record.status_source else SOURCE_KIND
    return ScrapeResult(nct, outcome, own.source.url or str(source), own.source.as_of,
                        len(own.sites), saved.changes, registry is not None, status_from, path)
