"""Registry sync: fetch → parse → merge with a listing → place → store. Made for cron.

One sync at a time per store: an exclusive lock on ``<store>.lock`` beside the store's real
file (symlinks resolved), so two syncs through different paths to one store still exclude
each other. Writes are one transaction per trial named by id and one per search page, so a
failure (network down, registry erroring, a page cut short, the process killed) loses
nothing: the previous good records stay, and what earlier pages stored stays.

A search query (``condition``, ``country``, ``statuses``) is remembered by the store with its
last successful run: the next run asks the registry only for the studies updated since (a day
of overlap), *without* the status filter, so a study that stopped recruiting reaches the
store; ``full`` asks for everything again, and a study that a full refresh no longer returns
is kept, marked "not seen since", and no longer called recruiting. Trials named by id are
fetched on every run (one request each).

While one search page is parsed, placed and written, a prefetch thread already downloads
the next one.

Every run (by id, incremental, full) also places again the stored trials that another
version of the placing rules or gazetteer placed (`geocode.placing_version`: after an
upgrade), so that `search`, which ranks by the stored positions, agrees with `nearest`
without waiting for `trialfinder geocode --refresh`; offline work, ``PLACE_BATCH`` trials a
transaction, the search index's tree folded once at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from trialfinder import clock
from trialfinder.errors import BadInput, StoreBusy, StoreError, TrialFinderError
from trialfinder.i18n import DEFAULT_LANGUAGE, _, language, ngettext
from trialfinder.ids import normalise_nct_id
from trialfinder.models import Status, Trial, status_key
from trialfinder.store import (
    Change,
    ChangeKind,
    PreparedTrial,
    QueryState,
    Store,
    StoreLike,
    SyncRun,
    prepare_trial,
    using_store,
    utc_now,
    writable_path,
)
from trialfinder.text import fold

LOCK_POLL_SECONDS = 0.1
LOCK_TIMEOUT = 10.0
"""How long a sync waits for another one to finish before giving up with StoreBusy."""
PAGE_SIZE = 1000
"""Studies per search page: the most the API allows, so the registry's pace (and our
politeness pause between requests) is paid as few times as possible."""
PLACE_BATCH = 500
"""Outdated trials placed again per transaction at the end of a run."""
OVERLAP_DAYS = 1
"""An incremental run asks for studies updated since the day of the last success, minus
this: the registry's dates are days, and its clock is not ours."""


class Registry(Protocol):
    """What sync needs of `trialfinder.registry.RegistryClient`."""

    def get_study_text(self, nct_id: str) -> tuple[dict[str, Any], str]: ...

    def search(self, *args: Any, **kwargs: Any) -> Any:
        """A `StudySearch`: its ``pages()`` yield `SearchPage`s (studies, total_count)."""


@dataclass(frozen=True, slots=True)
class Query:
    """A search the store mirrors: a condition and/or registry statuses, maybe a country."""

    condition: str | None = None
    country: str | None = None
    statuses: tuple[str, ...] = ()
    """Registry status values (RECRUITING, …), sorted; empty: any status."""

    @classmethod
    def of(cls, condition: str | None, country: str | None,
           statuses: Iterable[str] | str | None) -> Query:
        """A query from what a user typed (checked: a one-line BadInput when unusable)."""
        if condition is not None and not condition.strip():
            raise BadInput(_("--condition is empty: give the condition to search for"))
        if country is not None and not country.strip():
            raise BadInput(_("--country is empty: give the country to search in"))
        return cls(" ".join(condition.split()) if condition else None,
                   " ".join(country.split()) if country else None, parse_statuses(statuses))

    @property
    def key(self) -> str:
        """The store's name for this query: case, accents and spacing do not count."""
        return "search:" + json.dumps([fold(self.condition) if self.condition else None,
                                       fold(self.country) if self.country else None,
                                       list(self.statuses)], ensure_ascii=False)

    def state(self) -> QueryState:
        return QueryState(self.key, "search", self.condition, self.country, self.statuses)

    def describe(self) -> str:
        """"'lung cancer' in France, statuses RECRUITING" (for logs)."""
        text = f"'{self.condition}'" if self.condition else _("every study")
        if self.country:
            text += " " + _("in {country}").format(country=self.country)
        if self.statuses:
            text += ", " + _("statuses {statuses}").format(statuses=",".join(self.statuses))
        return text


def parse_statuses(statuses: Iterable[str] | str | None) -> tuple[str, ...]:
    """Registry status values from "RECRUITING,not yet recruiting" or a list: upper case,
    sorted, each checked (BadInput names the ones we know)."""
    if statuses is None:
        return ()
    items = statuses.split(",") if isinstance(statuses, str) else list(statuses)
    found = set()
    for item in items:
        key = status_key(item)
        if not key:
            continue
        if key not in Status.__members__:
            raise BadInput(_("Unknown registry status '{status}' (expected some of {known})")
                           .format(status=item.strip(), known=", ".join(Status.__members__)))
        found.add(key)
    if not found and items:
        raise BadInput(_("--status is empty: give registry statuses, e.g. RECRUITING"))
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """What a sync did with one trial (or, with nct_id "search", with a failed search)."""

    nct_id: str
    outcome: str
    """"new", "updated", "unchanged" or "failed" (English: scripts read these words)."""
    changes: tuple[Change, ...] = ()
    sites: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    @property
    def change_counts(self) -> dict[str, int]:
        counts = Counter(c.kind.value for c in self.changes)
        return {kind.value: counts[kind.value] for kind in ChangeKind if counts[kind.value]}

    def summary(self) -> str:
        """'NCT02260505 updated: 1 site status changed, 1 site removed': a log line that
        scripts read, in English whatever the language (only a failure's reason, a message
        for people, is in the command's language)."""
        with language(DEFAULT_LANGUAGE):
            return self._summary()

    def _summary(self) -> str:
        if self.outcome == "failed":
            reason = " ".join((self.error or "unknown error").split())
            return f"{self.nct_id} failed: {reason}"
        if self.outcome == "new":
            return f"{self.nct_id} new: " + _count(self.sites, "site", "sites")
        if self.outcome == "unchanged":
            return f"{self.nct_id} unchanged"
        counts = Counter(c.kind for c in self.changes)
        parts = [_count(n, *_COUNT_WORDS[kind]) for kind in _COUNT_WORDS if (n := counts[kind])]
        return f"{self.nct_id} updated: {', '.join(parts) or _('record details changed')}"

    def to_jsonable(self) -> dict[str, Any]:
        return {
            "nct_id": self.nct_id,
            "outcome": self.outcome,
            "sites": self.sites,
            "changes": self.change_counts,
            "error": self.error,
            "warnings": list(self.warnings),
        }


_COUNT_WORDS = {
    ChangeKind.TRIAL_STATUS_CHANGED: ("trial status changed", "trial status changed"),
    ChangeKind.TRIAL_NOT_SEEN: ("no longer returned by the registry",
                                "no longer returned by the registry"),
    ChangeKind.TRIAL_SEEN_AGAIN: ("returned again", "returned again"),
    ChangeKind.TRIAL_CONTACT_CHANGED: ("trial contacts changed", "trial contacts changed"),
    ChangeKind.SITE_STATUS_CHANGED: ("site status changed", "site statuses changed"),
    ChangeKind.SITE_ADDED: ("site added", "sites added"),
    ChangeKind.SITE_REMOVED: ("site removed", "sites removed"),
    ChangeKind.SITE_CONTACT_CHANGED: ("site contact changed", "site contacts changed"),
}


def _count(n: int, singular: str, plural: str) -> str:
    """"3 sites added": the counts of the log lines (English: scripts read them)."""
    return f"{n} {singular if n == 1 else plural}"


OUTCOMES = ("new", "updated", "unchanged", "failed")


@dataclass(frozen=True, slots=True)
class SearchRun:
    """How a run asked the registry for one search query."""

    query: Query
    since: date | None
    """The LastUpdatePostDate asked from (an incremental run); None for a full refresh."""
    received: int = 0
    """Studies the registry returned (counted once, valid identifiers only)."""
    skipped: int = 0
    """Updates outside the query's statuses, of studies the store does not hold."""
    pages: int = 0
    marked_not_seen: tuple[str, ...] = ()
    ok: bool = False
    """Every page was read: the query's last success is this run."""
    retried: int = 0
    """Studies that failed on the query's previous run, asked for by id first."""

    def describe(self) -> str:
        how = (_("incremental since {day}").format(day=self.since.isoformat())
               if self.since is not None else _("full refresh"))
        return f"{self.query.describe()}: {how}"

    def to_jsonable(self) -> dict[str, Any]:
        return {"key": self.query.key, "condition": self.query.condition,
                "country": self.query.country, "statuses": list(self.query.statuses),
                "mode": "incremental" if self.since is not None else "full",
                "since": self.since.isoformat() if self.since else None,
                "received": self.received, "skipped": self.skipped, "pages": self.pages,
                "marked_not_seen": list(self.marked_not_seen), "ok": self.ok,
                "retried": self.retried}


@dataclass(frozen=True, slots=True)
class SyncReport:
    store: str
    started: str
    finished: str
    trials: tuple[TrialOutcome, ...] = field(default_factory=tuple)
    sync_id: int | None = None
    searches: tuple[SearchRun, ...] = ()
    warnings: tuple[str, ...] = ()
    """Run-level warnings: duplicated or malformed search results."""
    by_id: int = 0
    """Trials named by id."""
    placed_again: int = 0
    """Stored trials placed again because another version of the placing rules or
    gazetteer had placed them."""

    @property
    def ok(self) -> bool:
        return not any(t.failed for t in self.trials)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def counts(self) -> dict[str, int]:
        """asked, new, updated, unchanged, failed (and skipped) of the run."""
        outcomes = Counter(t.outcome for t in self.trials if t.nct_id != "search")
        counts = {"asked": self.by_id + sum(s.received for s in self.searches)}
        counts |= {k: outcomes[k] for k in OUTCOMES}
        counts["failed"] += sum(1 for t in self.trials if t.nct_id == "search")
        counts["skipped"] = sum(s.skipped for s in self.searches)
        counts["placed_again"] = self.placed_again
        return counts

    def summary(self) -> str:
        """The run's one line for a cron log, in English whatever the language (scripts read
        it): 'sync: 3012 asked, 12 new, 5 updated, 2990 unchanged, 0 failed; …'."""
        with language(DEFAULT_LANGUAGE):
            return self._summary()

    def _summary(self) -> str:
        counts = self.counts
        line = "sync: " + ", ".join(f"{counts[k]} {k}" for k in ("asked", *OUTCOMES))
        if counts["skipped"]:
            line += f", {counts['skipped']} skipped"
        if self.placed_again:
            line += ", " + _count(self.placed_again, "trial placed again by the current rules",
                                  "trials placed again by the current rules")
        what = [s.describe() for s in self.searches]
        if self.by_id:
            what.append(_count(self.by_id, "trial by id", "trials by id"))
        return line + (f" ({'; '.join(what)})" if what else "")

    def to_jsonable(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "store": self.store,
            "started": self.started,
            "finished": self.finished,
            "ok": self.ok,
            "counts": {k: counts[k] for k in OUTCOMES},
            "asked": counts["asked"],
            "skipped": counts["skipped"],
            "placed_again": self.placed_again,
            "searches": [s.to_jsonable() for s in self.searches],
            "warnings": list(self.warnings),
            "trials": [t.to_jsonable() for t in self.trials],
        }


ProgressCallback = Callable[[TrialOutcome, int, int | None], None]


def sync(
    nct_ids: Iterable[str] = (),
    *,
    db: StoreLike,
    client: Registry,
    listing_records: Mapping[str, Trial] | None = None,
    condition: str | None = None,
    country: str | None = None,
    statuses: Iterable[str] | str | None = None,
    full: bool = False,
    on_progress: ProgressCallback | None = None,
    on_warning: Callable[[str], None] | None = None,
    lock_timeout: float | None = None,
    now: str | None = None,
    page_size: int = PAGE_SIZE,
    today: date | None = None,
) -> SyncReport:
    """Bring the store up to date with the registry.

    ``nct_ids`` are fetched one by one (each saved in its own transaction). With a
    ``condition`` and/or ``statuses`` (registry status values) the studies of that search
    (in ``country`` when given) are stored too, a page per transaction: all of them the
    first time or with ``full``, else only those updated since the query's last successful
    run. ``listing_records`` maps NCT ids to listing records to merge with; None means the
    pages the store keeps (`trialfinder scrape`), else the bundled ones. ``now`` fixes every
    timestamp and ``today`` the rules' day (tests).

    Raises StoreBusy when another sync holds the store past ``lock_timeout`` seconds
    (default ``LOCK_TIMEOUT``), StoreError when the store cannot be written; a trial that
    fails is reported and the run goes on. SIGTERM (in the main thread) stops the run like
    Ctrl-C: KeyboardInterrupt, the run recorded as aborted.
    """
    ids = list(dict.fromkeys(normalise_nct_id(n) for n in nct_ids))
    searching = condition is not None or (statuses is not None and statuses != ())
    if country is not None and not searching:
        raise BadInput(_("--country filters a search: give --condition or --status too"))
    query = Query.of(condition, country, statuses) if searching else None
    if full and query is None:
        raise BadInput(_("--full refreshes a search: give --condition or --status too (trials "
                         "named by id are fetched whole on every run)"))
    if not ids and query is None:
        raise BadInput(_("Nothing to sync: name trials, or give --condition or --status"))
    if not 1 <= page_size <= PAGE_SIZE:
        raise BadInput(_("Page size must be between 1 and {most}").format(most=PAGE_SIZE))
    path = writable_path(db)
    if path is None:
        raise BadInput(_("No store given to sync into"))
    started = now or utc_now()
    arguments = {"nct_ids": ids, "condition": query.condition if query else None,
                 "country": query.country if query else None,
                 "statuses": list(query.statuses) if query else [], "full": full}
    timeout = LOCK_TIMEOUT if lock_timeout is None else lock_timeout
    with (_sigterm_as_interrupt(), store_lock(path, timeout),
          using_store(db, create=True, mode="write") as store):
        assert store is not None
        store.prepare_for_writing()
        store.abandon_unfinished(now)  # we hold the lock: an unfinished run is a dead one
        sync_id = store.start_sync(started, arguments=arguments, pid=os.getpid())
        run = _Run(store, client, sync_id, listing_records, now, today or clock.today(),
                   on_progress, on_warning, started, page_size)
        try:
            run.expected = len(ids)
            run.named = set(ids)
            for nct_id in ids:
                run.by_id(nct_id)
            store.record_queries(
                [(QueryState(f"trial:{n}", "trial", nct_id=n),
                  None if n in run.failed_ids else started, False) for n in ids],
                sync_id)
            if query is not None:
                run.search(query, full=full)
            run.place_outdated()
            finished = now or utc_now()
            report = run.report(path, finished, by_id=len(ids))
            store.finish_sync(sync_id, run.outcome(), finished, counts=report.counts,
                              note=run.first_error())
        except BaseException:
            with contextlib.suppress(StoreError):
                store.finish_sync(sync_id, "aborted", now,
                                  counts=run.report(path, now or utc_now(), len(ids)).counts,
                                  note=run.first_error())
            raise
    return report


class _Prepared(NamedTuple):
    """One study read and turned into rows (``prepared``), or why it could not be."""

    nct_id: str
    prepared: PreparedTrial | None
    sites: int = 0
    warnings: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class _SearchPass:
    """What one run of a search query has seen so far."""

    query: Query
    since: date | None
    seen: set[str] = field(default_factory=set)
    """Identifiers the search returned (valid, counted once)."""
    retried: list[str] = field(default_factory=list)
    received: int = 0
    skipped: int = 0
    pages: int = 0


class _Run:
    """The state of one sync run: the store, what happened to each trial, the warnings."""

    def __init__(
        self,
        store: Store,
        client: Registry,
        sync_id: int,
        listing_records: Mapping[str, Trial] | None,
        now: str | None,
        today: date,
        on_progress: ProgressCallback | None,
        on_warning: Callable[[str], None] | None,
        started: str,
        page_size: int,
    ) -> None:
        self.store = store
        self.client = client
        self.sync_id = sync_id
        self.listing_records = listing_records
        self.now = now
        self.today = today
        self.on_progress = on_progress
        self.on_warning = on_warning
        self.started = started
        self.page_size = page_size
        self.outcomes: list[TrialOutcome] = []
        self.searches: list[SearchRun] = []
        self.warnings: list[str] = []
        self.failed_ids: set[str] = set()
        self.fetched_by_id: set[str] = set()
        self.named: set[str] = set()
        """Trials named by id in this run."""
        self.expected: int | None = 0
        self.placed_again = 0
        self._placer: Callable[[Trial], Trial] | None = None

    # -- reporting -------------------------------------------------------------------------

    def done(self, outcome: TrialOutcome) -> None:
        self.outcomes.append(outcome)
        if outcome.failed and outcome.nct_id != "search":
            self.failed_ids.add(outcome.nct_id)
        if self.on_progress is not None:
            total = self.expected
            if total is not None and total < len(self.outcomes):
                total = None
            self.on_progress(outcome, len(self.outcomes), total)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if self.on_warning is not None:
            self.on_warning(message)

    def outcome(self) -> str:
        failed = sum(o.failed for o in self.outcomes)
        if not failed:
            return "ok"
        return "failed" if failed == len(self.outcomes) else "partial"

    def first_error(self) -> str | None:
        failed = next((o for o in self.outcomes if o.failed), None)
        return None if failed is None else failed.summary()

    def report(self, path: str, finished: str, by_id: int) -> SyncReport:
        return SyncReport(path, self.started, finished, tuple(self.outcomes), self.sync_id,
                          tuple(self.searches), tuple(self.warnings), by_id, self.placed_again)

    # -- one trial ---------------------------------------------------------------------------

    def by_id(self, nct_id: str) -> None:
        """Fetch one trial (one request) and save it in its own transaction."""
        try:
            study, raw = self.client.get_study_text(nct_id)
        except StoreError:
            raise
        except TrialFinderError as exc:  # the registry's one line, bad records included
            self.done(TrialOutcome(nct_id, "failed", error=str(exc)))
            return
        item = self.prepare(nct_id, study, raw, self.stored_listings([nct_id]))
        self.fetched_by_id.add(nct_id)
        if item.prepared is None:
            self.done(TrialOutcome(nct_id, "failed", error=item.error))
            return
        result = self.store.save_prepared(item.prepared, sync_id=self.sync_id, now=self.now)
        self.done(TrialOutcome(nct_id, result.outcome, result.changes, item.sites,
                               warnings=item.warnings))

    def stored_listings(self, nct_ids: list[str]) -> Mapping[str, Trial]:
        """The listing pages the store keeps of these trials (scraped), read at once; none
        when the run was given its listing records."""
        if self.listing_records is not None or not nct_ids:
            return {}
        return self.store.source_copies(nct_ids, "listing")

    def prepare(self, nct_id: str, study: Any, raw: str | None,
                stored: Mapping[str, Trial]) -> _Prepared:
        """Parse, merge with the listing (``stored``: the store's scraped pages), place, and
        turn into rows; a record that cannot be read fails alone (never the run)."""
        from trialfinder.registry import parse_study

        try:
            parsed = parse_study(study, retrieved=self.now or utc_now())
            trial = parsed.trial  # asked by an alias: stored under its own id
            listing = _listing_for(trial.nct_id, self.listing_records, stored)
            if listing is not None:
                from trialfinder.merge import combine

                own = self.place(trial)  # the registry's copy, kept beside the merged record
                trial = combine(own, listing, self.place)
                prepared = prepare_trial(trial, raw, today=self.today, copy_of=own)
            else:
                trial = self.place(trial)
                prepared = prepare_trial(trial, raw, today=self.today)
        except StoreError:
            raise
        except TrialFinderError as exc:
            return _Prepared(nct_id, None, error=str(exc))
        except Exception as exc:  # bad data never ends the run (RecursionError included)
            return _Prepared(nct_id, None, error=_("unreadable registry record ({kind}: "
                                                   "{reason})").format(
                kind=type(exc).__name__, reason=exc))
        return _Prepared(trial.nct_id, prepared, len(trial.sites), tuple(parsed.warnings))

    def place(self, trial: Trial) -> Trial:
        """Every site placed by the offline chain (record, the store's cache, gazetteer)."""
        if self._placer is None:
            from trialfinder.geocode import placer

            self._placer = placer(self.store)
        return self._placer(trial)

    # -- positions decided by an older version ------------------------------------------------

    def place_outdated(self) -> None:
        """Place again every stored trial that another version of the placing rules or
        gazetteer placed (or that was never stamped), ``PLACE_BATCH`` a transaction, the
        search index's tree folded once; nothing is written when all are current. A record
        that cannot be read or placed is left as it is, with a warning (the next run tries
        again)."""
        from trialfinder.geocode import placing_version

        store, version = self.store, placing_version()
        if not store.placed_otherwise_count(version):
            return

        def unreadable(error: StoreError) -> None:
            self.warn(_("could not place a stored record again: {reason}").format(reason=error))

        with store.search_deferred():
            for batch in store.trials_placed_otherwise(version, batch=PLACE_BATCH,
                                                        on_unreadable=unreadable):
                placed = []
                for trial in batch:
                    try:
                        placed.append(self.place(trial))
                    except StoreError:
                        raise
                    except Exception as exc:  # bad data never ends the run
                        self.warn(_("could not place {nct} again ({kind}: {reason}); its "
                                    "positions stay as they were").format(
                            nct=trial.nct_id, kind=type(exc).__name__, reason=exc))
                self.placed_again += store.rewrite_trials(placed)

    # -- a search ----------------------------------------------------------------------------

    def search(self, query: Query, *, full: bool) -> None:
        """Store the studies of a search query: those updated since its last success (or all
        of them the first time, or with ``full``), a page per transaction, the next page
        downloading meanwhile."""
        store = self.store
        state = store.query_state(query.key)
        since = None
        if not full and state is not None and state.last_success:
            since = date.fromisoformat(state.last_success[:10]) - timedelta(days=OVERLAP_DAYS)
        store.record_queries([(query.state(), None, False)], self.sync_id)
        passed = _SearchPass(query, since)
        failed_before = set(self.failed_ids)
        # What failed to be read last time is asked for by id first (before the prefetch
        # thread starts: the client serves one thread at a time).
        passed.retried = [n for n in (state.retry if state else ()) if n not in self.named]
        for nct in passed.retried:
            self.by_id(nct)
            passed.received += 1
        back = [n for n in passed.retried if n in self.fetched_by_id and n not in self.failed_ids]
        if back:
            store.save_page([], query=query.key, members=back)
        completed = False
        prefetch = _Prefetch(lambda: _search_pages(self.client, query, since, self.page_size))
        try:
            for studies, total in prefetch:
                if passed.pages == 0 and isinstance(total, int) and self.expected is not None:
                    self.expected += total
                passed.pages += 1
                self._search_page(passed, studies)
                del studies  # not kept while the next page arrives
            completed = True
        except StoreError:
            raise
        except TrialFinderError as exc:  # a page that failed: nothing of it was stored
            self.done(TrialOutcome("search", "failed", error=str(exc)))
        finally:
            prefetch.close()
        marked: list[str] = []
        if completed and since is None:
            marked = store.end_full_refresh(
                query.key, passed.seen, day=self.started[:10], statuses=query.statuses,
                sync_id=self.sync_id, now=self.now)
        if completed:  # every page read: the next run asks from here
            retry = tuple(sorted(self.failed_ids - failed_before))
            store.record_queries([(replace(query.state(), retry=retry), self.started,
                                   since is None)], self.sync_id)
        self.searches.append(SearchRun(query, since, passed.received, passed.skipped, passed.pages,
                                       tuple(marked), completed, len(passed.retried)))

    def _search_page(self, passed: _SearchPass, studies: Iterable[Any]) -> None:
        """One page of a search: read, placed and stored in one transaction, with the
        query's membership of its studies."""
        fresh: list[tuple[str, Any]] = []
        members: list[str] = []
        for study in studies:
            nct = self._search_id(study)
            if nct is None:
                continue
            if nct in passed.seen:
                self.warn(_("{nct} was returned twice by the search; counted once")
                          .format(nct=nct))
                continue
            passed.seen.add(nct)
            if nct not in self.named and nct not in passed.retried:
                passed.received += 1  # a trial fetched by id is counted once, there
            if nct in self.fetched_by_id:
                members.append(nct)  # fetched by id in this run already
            else:
                fresh.append((nct, study))
        statuses = passed.query.statuses
        if passed.since is not None and statuses:
            # Updates asked without the status filter: keep those of trials the store holds
            # (a status change must reach them) and those that now match.
            held = self.store.stored_ids(n for n, _ in fresh)
            kept = [(n, s) for n, s in fresh if n in held or _overall_status(s) in statuses]
            passed.skipped += len(fresh) - len(kept)
            fresh = kept
        stored = self.stored_listings([n for n, _ in fresh])
        items = [self.prepare(n, s, None, stored) for n, s in fresh]
        ready = [i.prepared for i in items if i.prepared is not None]
        saved = iter(self.store.save_page(
            ready, sync_id=self.sync_id, now=self.now, query=passed.query.key,
            members=[*members, *(p.nct_id for p in ready)]))
        for item in items:
            if item.prepared is None:
                self.done(TrialOutcome(item.nct_id, "failed", error=item.error))
            else:
                result = next(saved)
                self.done(TrialOutcome(item.nct_id, result.outcome, result.changes,
                                       item.sites, warnings=item.warnings))

    def _search_id(self, study: Any) -> str | None:
        """The study's identifier, or None (with a warning) when it is not a valid ASCII NCT
        identifier."""
        from trialfinder.registry import study_nct_id

        nct = study_nct_id(study)
        if nct is None:
            try:
                value = study["protocolSection"]["identificationModule"]["nctId"]
            except (KeyError, TypeError):
                value = None
            shown = value if isinstance(value, str) else "none"
            self.warn(_("skipped a search result whose identifier ({value}) is not a "
                        "ClinicalTrials.gov identifier").format(value=ascii(shown)))
        return nct


def _overall_status(study: Any) -> str | None:
    try:
        value = study["protocolSection"]["statusModule"]["overallStatus"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _search_pages(
    client: Registry, query: Query, since: date | None, page_size: int
) -> Iterator[tuple[tuple[Any, ...], int | None]]:
    """The search's pages as (studies, total count of the search).

    A full refresh asks with the query's statuses; an incremental one asks for the studies
    updated since ``since`` without them."""
    search = client.search(condition=query.condition, location=query.country,
                           statuses=None if since is not None else (query.statuses or None),
                           updated_since=since, page_size=page_size)
    for page in search.pages():
        yield page.studies, page.total_count


_END = object()


class _Failure(NamedTuple):
    error: BaseException


class _Prefetch:
    """Iterate ``make_pages()`` in a thread, one page ahead of the consumer: while one page
    is processed, the next downloads, and no further (memory: two pages at most). An error
    in the thread is raised to the consumer, at the page where it happened; `close` stops
    the thread (after its current request)."""

    def __init__(self, make_pages: Callable[[], Iterator[Any]]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make_pages,),
                                        name="trialfinder-prefetch", daemon=True)
        self._thread.start()

    def _hand_over(self, item: Any) -> bool:
        """Give ``item`` to the consumer and wait until it has taken it."""
        if self._stop.is_set():
            return False
        self._queue.put(item)
        self._queue.join()  # the consumer takes it (or `close` drains it)
        return not self._stop.is_set()

    def _run(self, make_pages: Callable[[], Iterator[Any]]) -> None:
        try:
            for page in make_pages():
                if not self._hand_over(page):
                    return
                del page  # not kept while the next one downloads
        except BaseException as exc:  # handed to the consumer, raised there
            self._hand_over(_Failure(exc))
            return
        self._hand_over(_END)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            self._queue.task_done()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
            del item

    def close(self, wait: float = 1.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty, ValueError):
            while True:
                self._queue.get_nowait()
                self._queue.task_done()
        self._thread.join(wait)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def _listing_for(nct_id: str, listing_records: Mapping[str, Trial] | None,
                 stored: Mapping[str, Trial]) -> Trial | None:
    """The listing page a registry record is merged with: the run's own records when given,
    else the page the store keeps (scraped), else the bundled one."""
    if listing_records is not None:
        return listing_records.get(nct_id)
    if nct_id in stored:
        return stored[nct_id]
    from trialfinder.records import bundled_record

    return bundled_record(nct_id)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """In the main thread, SIGTERM raises KeyboardInterrupt for the block (then as before):
    a sync stopped by `kill` or a service manager ends like one stopped with Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def lock_path(store_path: str | Path) -> Path:
    """The lock file of a store: beside its real file, symlinks resolved."""
    return Path(f"{Path(store_path).expanduser().resolve()}.lock")


@contextlib.contextmanager
def store_lock(store_path: str | Path, timeout: float = 10.0) -> Iterator[int | None]:
    """Hold an exclusive lock on the store's lock file (poll until ``timeout``, then
    StoreBusy); yields the lock file's descriptor (None for an in-memory store)."""
    if str(store_path) == ":memory:":
        yield None
        return
    path = lock_path(store_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(_("Cannot create the lock file {path}: {reason}").format(
            path=path, reason=exc.strerror or exc)) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreBusy(_("Another trialfinder sync is running on {path}; try "
                                      "again later").format(path=store_path)) from None
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def sync_running(store_path: str | Path) -> bool:
    """Whether a sync holds the store's lock now (False when there is no lock file)."""
    path = lock_path(store_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing the descriptor releases a lock we took
    return False


def recorded_changes(
    db: StoreLike, *, nct_id: str | None = None, since: str | None = None
) -> list[Change]:
    """The history of changes the syncs recorded, oldest first (none if no store yet)."""
    from trialfinder.store import parse_since

    nct = normalise_nct_id(nct_id) if nct_id is not None else None  # "" is no trial
    since_key = parse_since(since) if since else None  # checked even without a store
    with using_store(db) as store:
        return [] if store is None else store.changes(nct, since_key)


# -- `trialfinder status` ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """What a monitor needs to know about a store and its syncs."""

    path: str
    exists: bool
    schema: int | None = None
    read_only: bool = False
    trials: int = 0
    sites: int = 0
    last_success: SyncRun | None = None
    runs: tuple[SyncRun, ...] = ()
    queries: tuple[QueryState, ...] = ()
    running: bool = False
    """A sync holds the lock now."""
    marked_aborted: int = 0
    """Unfinished runs this call found dead (lock free) and marked aborted."""
    now: str = ""

    def age_hours(self) -> float | None:
        """Hours since the most recent successful sync finished; None if never."""
        if self.last_success is None:
            return None
        from datetime import datetime

        end = datetime.fromisoformat(self.last_success.finished or self.last_success.started)
        return (datetime.fromisoformat(self.now) - end).total_seconds() / 3600

    def to_jsonable(self) -> dict[str, Any]:
        age = self.age_hours()
        return {
            "store": self.path, "exists": self.exists, "schema": self.schema,
            "read_only": self.read_only, "trials": self.trials, "sites": self.sites,
            "running": self.running, "marked_aborted": self.marked_aborted,
            "last_success": self.last_success.to_jsonable() if self.last_success else None,
            "last_success_age_hours": None if age is None else round(age, 2),
            "runs": [r.to_jsonable() for r in self.runs],
            "queries": [q.to_jsonable() for q in self.queries],
        }


def store_status(db: StoreLike, *, runs: int = 5, now: str | None = None) -> StoreStatus:
    """The store's path and schema, its counts, the last runs, the last success per query.
    Unfinished runs whose lock is free are marked aborted (when the store can be written)."""
    now = now or utc_now()
    path = db.path if isinstance(db, Store) else str(db)
    with using_store(db) as store:
        if store is None:
            return StoreStatus(path, False, now=now)
        running = path != ":memory:" and sync_running(path)
        marked = 0
        if not running and not store.read_only:
            marked = store.abandon_unfinished(now)
        trials, sites = store.counts()
        return StoreStatus(path, True, store.schema_version, store.read_only, trials, sites,
                           store.last_success(), tuple(store.runs(runs)),
                           tuple(store.queries()), running, marked, now)


def status_text(status: StoreStatus) -> str:
    """`trialfinder status` for people and cron logs: a summary, not a line per trial."""
    if not status.exists:
        return _("No store at {path} yet; fill it with `trialfinder sync`.").format(
            path=status.path)
    mode = _(", read-only") if status.read_only else ""
    lines = [_("Store: {path} (schema {schema}{mode})").format(
        path=status.path, schema=status.schema, mode=mode),
        _("Trials: {trials}; sites: {sites}").format(trials=status.trials, sites=status.sites)]
    age = status.age_hours()
    if status.last_success is None or age is None:
        lines.append(_("Last successful sync: never"))
    else:
        lines.append(_("Last successful sync: {when} ({hours:.1f} hours ago)").format(
            when=status.last_success.finished or status.last_success.started, hours=age))
    if status.running:
        lines.append(_("A sync is running now."))
    if status.marked_aborted:
        lines.append(ngettext("{n} unfinished run marked aborted (its process is gone)",
                              "{n} unfinished runs marked aborted (their process is gone)",
                              status.marked_aborted).format(n=status.marked_aborted))
    if status.runs:
        lines.append(_("Last runs:"))
        lines += [f"  {run_line(r)}" for r in status.runs]
    if status.queries:
        lines.append(_("Queries:"))
        lines += [f"  {query_line(q)}" for q in status.queries]
    return "\n".join(lines)


def run_line(run: SyncRun) -> str:
    """'#12 2025-03-01T03:17:00+00:00 ok: 3012 asked, 12 new, … (args)'."""
    outcome = run.outcome or ("running" if run.finished is None else "?")
    counts = run.counts
    numbers = ", ".join(f"{counts[k]} {k}" for k in ("asked", *OUTCOMES) if k in counts)
    if counts.get("placed_again"):
        numbers += ", " + _count(counts["placed_again"], "trial placed again",
                                 "trials placed again")
    args = run.arguments
    asked: list[str] = []
    if args.get("nct_ids"):
        asked.append(" ".join(args["nct_ids"]))
    for option, key in (("--condition", "condition"), ("--country", "country")):
        if args.get(key):
            asked.append(f"{option} '{args[key]}'")
    if args.get("statuses"):
        asked.append("--status " + ",".join(args["statuses"]))
    if args.get("full"):
        asked.append("--full")
    line = f"#{run.id} {run.started} {outcome}"
    if numbers:
        line += f": {numbers}"
    if asked:
        line += f" [{' '.join(asked)}]"
    if run.note and outcome != "ok":
        line += f" — {' '.join(run.note.split())}"
    return line


def query_line(state: QueryState) -> str:
    if state.kind == "trial":
        what = state.nct_id or state.key
    else:
        what = Query(state.condition, state.country, state.statuses).describe()
        what += " — " + ngettext("{n} trial", "{n} trials", state.trials).format(
            n=state.trials)
    success = state.last_success or _("never")
    line = _("{what}: last success {when}").format(what=what, when=success)
    if state.kind == "search" and state.last_full:
        line += _(", last full refresh {when}").format(when=state.last_full)
    if state.retry:
        line += "; " + ngettext("{n} study to ask again by id",
                                "{n} studies to ask again by id",
                                len(state.retry)).format(n=len(state.retry))
    return line
