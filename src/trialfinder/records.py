"""Where a trial record comes from: the local store if it holds one, else the bundled data.

Positions are decided once, by the offline placing chain (`geocode.placer`), and kept with the
version of the rules and gazetteer that decided them (`Trial.placed_by`). A record placed by
another version is placed again when it is loaded (and written back when the store can be
written); `refresh_positions` (`trialfinder geocode --refresh`) does it for every stored
trial at once. So `nearest`, `search`, maps and exports all read the same positions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from trialfinder.errors import TrialNotFound
from trialfinder.i18n import _
from trialfinder.ids import normalise_nct_id
from trialfinder.models import Trial, trial_from_jsonable
from trialfinder.resources import data_path, no_store_at

if TYPE_CHECKING:
    from trialfinder.store import Store, StoreLike

REFRESH_BATCH = 500
"""Trials re-placed per transaction by `refresh_positions`."""


@lru_cache(maxsize=8)
def bundled_record(nct_id: str) -> Trial | None:
    """The record shipped with trialfinder for this trial, as built (positions as the source
    gave them): what a sync merges with the registry's record."""
    path = data_path(f"trials/{nct_id}.json")
    if not path.is_file():
        return None
    return trial_from_jsonable(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=8)
def bundled_trial(nct_id: str) -> Trial | None:
    """The bundled record with its sites placed by the current placing rules (placed once
    per process)."""
    record = bundled_record(nct_id)
    if record is None:
        return None
    from trialfinder.geocode import ensure_placed

    return ensure_placed(record)


def _placing_version() -> str:
    from trialfinder.geocode import placing_version

    return placing_version()


def load_trial(nct_id: str, db: StoreLike) -> Trial:
    """The store's copy (kept fresh by `sync`) if it has one, else the bundled record.

    Stored positions are returned as they are, unless another version of the placing rules
    decided them: then the trial is placed again, and written back if the store can be
    written now (never waiting for a running sync). The bundled record, which no store
    holds, takes the store's cached facility positions (`geocode --online`) if it has any. A
    store that does not exist yet is not created here.
    """
    nct_id = normalise_nct_id(nct_id)
    if no_store_at(db):  # the bundled record (or nothing): no store code to load
        return _bundled_or_not_found(nct_id)
    from trialfinder.store import using_store

    with using_store(db) as store:
        stored = store.get_trial(nct_id) if store is not None else None
        if store is not None and stored is not None:
            from trialfinder.geocode import ensure_placed, keep_positions

            placed = ensure_placed(stored, store)
            # Written back as `keep_positions` does: only over the very record read.
            return placed if placed is stored else keep_positions(placed, store)
        bundled = _bundled_with_cache(nct_id, store)
        if bundled is not None:
            return bundled
    return _bundled_or_not_found(nct_id)


def _bundled_or_not_found(nct_id: str) -> Trial:
    bundled = bundled_trial(nct_id)
    if bundled is not None:
        return bundled
    raise TrialNotFound(_(
        "No record of {nct} here; fetch it with `trialfinder sync {nct}` (needs network)"
    ).format(nct=nct_id), nct_id)


def _bundled_with_cache(nct_id: str, store: Store | None) -> Trial | None:
    """The bundled record placed with the store's geocode cache when the cache holds a
    position for one of its facilities (`geocode --online` of the bundled trial: the record
    is not stored, its positions are the cache's); else None."""
    from trialfinder.geocode import cache_key

    record = bundled_record(nct_id)
    if store is None or record is None or not store.geocode_holds_positions() or not any(
            (cached := store.geocode_get(cache_key(site))) is not None
            and cached.latitude is not None for site in record.sites):
        return None
    from trialfinder.geocode import placer

    return placer(store)(record)


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What `refresh_positions` did."""

    trials: int
    sites: int
    placed: int
    """Sites with a position after the refresh."""
    version: str
    """The placing version now stamped on every stored trial."""


def refresh_positions(
    db: StoreLike, *, on_trial: Callable[[int, int], None] | None = None
) -> Refreshed:
    """Place every stored trial again with the current offline rules and gazetteer, and
    write the positions back (`trialfinder geocode --refresh`), ``REFRESH_BATCH`` trials a
    transaction. ``on_trial(done, total)`` after each trial."""
    from trialfinder.geocode import placer
    from trialfinder.store import using_store

    with using_store(db, mode="write") as store:
        if store is None:
            raise TrialNotFound(_("No store at {path}; fill it with `trialfinder sync`").format(
                path=db))
        store.prepare_for_writing()
        total = store.counts()[0]
        place = placer(store)
        done = sites = placed = 0
        batch: list[Trial] = []
        with store.search_deferred():  # the search index's tree is updated once, at the end
            for trial in store.iter_trials():
                again = place(trial)
                batch.append(again)
                done += 1
                sites += len(again.sites)
                placed += sum(1 for s in again.sites if s.has_position)
                if len(batch) >= REFRESH_BATCH:
                    store.rewrite_trials(batch)
                    batch = []
                if on_trial is not None:
                    on_trial(done, total)
            if batch:
                store.rewrite_trials(batch)
    return Refreshed(done, sites, placed, _placing_version())

