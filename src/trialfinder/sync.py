"""Registry sync: fetch → parse → merge with the bundled listing → store, one trial at a time.

Made for cron. One sync at a time per store (an exclusive lock on ``<db>.lock``); each trial
is saved in its own transaction, so a failure (network down, registry erroring, truncated
body, process killed) loses nothing: the previous good record of that trial stays, and the
other trials of the run are still stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from trialfinder.errors import BadInput, StoreBusy, StoreError, TrialFinderError
from trialfinder.ids import normalise_nct_id
from trialfinder.models import Trial
from trialfinder.store import Change, ChangeKind, PreparedTrial, Store, prepare_trial, utc_now

LOCK_POLL_SECONDS = 0.1
LOCK_TIMEOUT = 10.0
"""How long a sync waits for another one to finish before giving up with StoreBusy."""


class Registry(Protocol):
    """What sync needs of `trialfinder.registry.RegistryClient`."""

    def get_study_text(self, nct_id: str) -> tuple[dict[str, Any], str]: ...

    def search(self, **kwargs: Any) -> Iterator[dict[str, Any]]: ...


_COUNT_WORDS = {
    ChangeKind.TRIAL_STATUS_CHANGED: ("trial status changed", "trial status changed"),
    ChangeKind.SITE_STATUS_CHANGED: ("site status changed", "site statuses changed"),
    ChangeKind.SITE_ADDED: ("site added", "sites added"),
    ChangeKind.SITE_REMOVED: ("site removed", "sites removed"),
    ChangeKind.SITE_CONTACT_CHANGED: ("site contact changed", "site contacts changed"),
}


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """What a sync did with one trial (or, with nct_id "search", with a failed search)."""

    nct_id: str
    outcome: str
    """"new", "updated", "unchanged" or "failed"."""
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
        """'NCT02260505 updated: 1 site status changed, 1 site removed'."""
        if self.outcome == "failed":
            reason = " ".join((self.error or "unknown error").split())
            return f"{self.nct_id} failed: {reason}"
        if self.outcome == "new":
            return f"{self.nct_id} new: {self.sites} site{'s' if self.sites != 1 else ''}"
        if self.outcome == "unchanged":
            return f"{self.nct_id} unchanged"
        counts = Counter(c.kind for c in self.changes)
        parts = [
            f"{n} {_COUNT_WORDS[kind][n != 1]}"
            for kind in _COUNT_WORDS
            if (n := counts[kind])
        ]
        return f"{self.nct_id} updated: {', '.join(parts) or 'record details changed'}"

    def to_jsonable(self) -> dict[str, Any]:
        return {
            "nct_id": self.nct_id,
            "outcome": self.outcome,
            "sites": self.sites,
            "changes": self.change_counts,
            "error": self.error,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True)
class SyncReport:
    store: str
    started: str
    finished: str
    trials: tuple[TrialOutcome, ...] = field(default_factory=tuple)
    sync_id: int | None = None

    @property
    def ok(self) -> bool:
        return not any(t.failed for t in self.trials)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_jsonable(self) -> dict[str, Any]:
        counts = Counter(t.outcome for t in self.trials)
        return {
            "store": self.store,
            "started": self.started,
            "finished": self.finished,
            "ok": self.ok,
            "counts": {k: counts[k] for k in ("new", "updated", "unchanged", "failed")},
            "trials": [t.to_jsonable() for t in self.trials],
        }


ProgressCallback = Callable[[TrialOutcome, int, int | None], None]


def sync(
    nct_ids: Iterable[str] = (),
    *,
    store_path: str | Path,
    client: Registry,
    listing_records: Mapping[str, Trial] | None = None,
    condition: str | None = None,
    country: str | None = None,
    on_progress: ProgressCallback | None = None,
    lock_timeout: float | None = None,
    now: str | None = None,
    page_size: int = 100,
    in_child: bool | None = None,
    keep_raw: bool = False,
) -> SyncReport:
    """Bring the store up to date with the registry for some trials.

    ``nct_ids`` are fetched one by one; with ``condition`` every study a registry search
    returns (filtered by ``country`` when given) is stored too, from the search's own
    answers. ``listing_records`` maps NCT ids to listing records to merge with; None means
    the bundled records. ``now`` fixes every timestamp (tests). Raises StoreBusy when
    another sync holds the store past ``lock_timeout`` seconds (default
    ``LOCK_TIMEOUT``), StoreError when the store
    itself fails; a trial that fails is reported and the run goes on.

    A trial fetched by id keeps its raw JSON; a search's studies keep theirs only with
    ``keep_raw`` (28 KB more a study on average, and 5–15 % of the ingest speed).

    A search's studies are fetched, parsed and turned into rows in a forked child process
    while this one writes them, so a sync uses two cores; each trial is still written in
    its own transaction, here. ``in_child``: None = whenever this process can safely fork
    (a platform with fork, one thread), else True or False.
    """
    ids = list(dict.fromkeys(normalise_nct_id(n) for n in nct_ids))
    if country and not condition:
        raise BadInput("--country filters a --condition search; give --condition too")
    if condition is not None and not condition.strip():
        raise BadInput("--condition is empty: give the condition to search for")
    if keep_raw and not condition:
        raise BadInput("--keep-raw is for --condition results (a trial named by id always "
                       "keeps its JSON)")
    expected: list[int | None] = [len(ids)]  # grows once a search tells its count
    outcomes: list[TrialOutcome] = []
    started = now or utc_now()

    def done(outcome: TrialOutcome) -> None:
        outcomes.append(outcome)
        if on_progress is not None:
            total = expected[0]
            if total is not None and total < len(outcomes):
                total = None
            on_progress(outcome, len(outcomes), total)

    timeout = LOCK_TIMEOUT if lock_timeout is None else lock_timeout
    with store_lock(store_path, timeout) as lock_fd, Store(store_path) as store:
        sync_id = store.start_sync(now=started)
        try:
            for nct_id in ids:
                done(_save_one(store, _fetch_one(client, nct_id, listing_records, now),
                               sync_id, now))
            if condition is not None:
                def search_items() -> Iterator[_SearchItem]:
                    return _prepared_search(
                        client, condition=condition, country=country, page_size=page_size,
                        listing_records=listing_records, now=now, skip=set(ids),
                        keep_raw=keep_raw,
                    )

                use_child = _can_fork() if in_child is None else in_child
                items = (_from_child(search_items, lock_fd,
                                     in_child=getattr(client, "after_fork", None))
                         if use_child else search_items())
                for item in items:
                    if isinstance(item, _SearchTotal):
                        expected[0] = len(ids) + item.count if item.count is not None else None
                    elif isinstance(item, _SearchFailed):
                        done(TrialOutcome("search", "failed", error=item.error))
                    elif isinstance(item, _Prepared):
                        done(_save_one(store, item, sync_id, now))
            failed = sum(o.failed for o in outcomes)
            result = "ok" if not failed else ("failed" if failed == len(outcomes) else "partial")
            finished = now or utc_now()
            store.finish_sync(sync_id, result, now=finished)
        except BaseException:
            with contextlib.suppress(StoreError):
                store.finish_sync(sync_id, "aborted", now=now)
            raise
    return SyncReport(str(store_path), started, finished, tuple(outcomes), sync_id)


def _study_id(study: Mapping[str, Any]) -> str:
    try:
        return str(study["protocolSection"]["identificationModule"]["nctId"])
    except (KeyError, TypeError):
        return "(unknown)"


class _Prepared(NamedTuple):
    """One study read and turned into rows (``prepared``), or why it could not be."""

    nct_id: str
    prepared: PreparedTrial | None
    sites: int = 0
    warnings: tuple[str, ...] = ()
    error: str | None = None


class _SearchTotal(NamedTuple):
    count: int | None


class _SearchFailed(NamedTuple):
    error: str


class _Flush(NamedTuple):
    """The child has nothing more buffered: send what it holds before it waits on the
    network again."""


_SearchItem = _Prepared | _SearchTotal | _SearchFailed | _Flush


def _fetch_one(
    client: Registry, nct_id: str, listing_records: Mapping[str, Trial] | None, now: str | None
) -> _Prepared:
    try:
        study, raw = client.get_study_text(nct_id)
    except StoreError:
        raise
    except TrialFinderError as exc:
        return _Prepared(nct_id, None, error=str(exc))
    return _prepare_one(nct_id, study, raw, listing_records, now)


def _prepare_one(
    nct_id: str,
    study: dict[str, Any],
    raw: str | None,
    listing_records: Mapping[str, Trial] | None,
    now: str | None,
) -> _Prepared:
    """Parse, merge with the listing, and turn into rows; never raises for a bad record."""
    from trialfinder.registry import parse_study

    try:
        parsed = parse_study(study, retrieved=now or utc_now())
        trial = parsed.trial
        listing = _listing_for(trial.nct_id, listing_records)
        if listing is not None:
            from trialfinder.merge import merge

            trial = merge(trial, listing)
        return _Prepared(trial.nct_id, prepare_trial(trial, raw), len(trial.sites),
                         tuple(parsed.warnings))
    except StoreError:
        raise
    except TrialFinderError as exc:
        return _Prepared(nct_id, None, error=str(exc))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # A record the parser could not read: report it, keep going with the others.
        return _Prepared(
            nct_id, None, error=f"unreadable registry record ({type(exc).__name__}: {exc})"
        )


def _save_one(store: Store, item: _Prepared, sync_id: int, now: str | None) -> TrialOutcome:
    if item.prepared is None:
        return TrialOutcome(item.nct_id, "failed", error=item.error)
    result = store.save_prepared(item.prepared, sync_id=sync_id, now=now)
    return TrialOutcome(item.nct_id, result.outcome, result.changes, item.sites,
                        warnings=item.warnings)


def _prepared_search(
    client: Registry,
    *,
    condition: str,
    country: str | None,
    page_size: int,
    listing_records: Mapping[str, Trial] | None,
    now: str | None,
    skip: set[str],
    keep_raw: bool = False,
) -> Iterator[_SearchItem]:
    """Every study a search returns, prepared for the store (those in ``skip`` left out),
    after its total count; a search that fails ends with `_SearchFailed`."""
    try:
        studies = client.search(condition=condition, location=country, page_size=page_size)
        found = getattr(studies, "total_count", None)
        yield _SearchTotal(found if isinstance(found, int) else None)
        pages = getattr(studies, "pages", None)
        groups = (page.studies for page in pages()) if pages else ([s] for s in studies)
        for group in groups:
            for study in group:
                nct_id = _study_id(study)
                if nct_id in skip:
                    continue
                skip.add(nct_id)
                # --keep-raw: the decoded study re-encoded (pages are no longer split into
                # each study's own text).
                raw = json.dumps(study, separators=(",", ":")) if keep_raw else None
                yield _prepare_one(nct_id, study, raw, listing_records, now)
            yield _Flush()  # a page ends: send what is held before waiting on the network
    except StoreError:
        raise
    except TrialFinderError as exc:
        yield _SearchFailed(str(exc))


# -- the child process -------------------------------------------------------------------

_BATCH = 16
"""Prepared studies sent to the writer at a time (fewer messages, same order)."""


def _can_fork() -> bool:
    """Fork only a single-threaded process: a lock another thread holds at the fork would
    stay locked forever in the child (the CLI has one thread; a host application may not)."""
    import multiprocessing
    import threading

    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


def _from_child(
    make_items: Callable[[], Iterator[_SearchItem]],
    lock_fd: int | None,
    on_idle: Callable[[], bool] | None = None,
    in_child: Callable[[], None] | None = None,
) -> Iterator[_SearchItem]:
    """The items of ``make_items()``, produced in a forked child process.

    The child inherits the registry client and the listing records; it never touches the
    store. If this process dies, the child's next send fails and it exits; if the child
    dies, the search is reported as failed and what arrived is kept. While nothing has
    arrived, ``on_idle`` is called until it returns False. ``in_child`` runs first thing in
    the child (the registry client's ``after_fork``).
    """
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    _widen(sender)
    child = context.Process(
        target=_child_main, args=(make_items, sender, receiver, lock_fd, in_child),
        daemon=True,
    )
    child.start()
    sender.close()
    try:
        while True:
            if on_idle is not None:
                while not receiver.poll() and on_idle():
                    pass
            try:
                batch = receiver.recv()
            except EOFError:
                child.join(1.0)
                yield _SearchFailed(
                    "the process reading the registry stopped unexpectedly "
                    f"(exit code {child.exitcode})"
                )
                return
            if batch is None:
                return
            yield from batch
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()
        child.join()


def _widen(connection: Any) -> None:
    """Let the child run a few batches ahead of the writer (Linux: a 1 MiB pipe, not 64 KiB),
    so neither waits for the other at every batch."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(connection.fileno(), set_size, 1 << 20)


def _child_main(
    make_items: Callable[[], Iterator[_SearchItem]],
    sender: Any,
    receiver: Any,
    lock_fd: int | None,
    in_child: Callable[[], None] | None = None,
) -> None:
    receiver.close()
    # A short-lived process whose objects (a decoded page, records) hold no reference
    # cycles: the cyclic collector would only rescan the page, again and again.
    gc.disable()
    if lock_fd is not None:
        os.close(lock_fd)  # the sync's lock belongs to the parent alone
    try:
        if in_child is not None:
            in_child()
        batch: list[_SearchItem] = []
        for item in make_items():
            if isinstance(item, _Flush):
                if batch:
                    sender.send(batch)
                    batch = []
                continue
            batch.append(item)
            if len(batch) >= _BATCH or not isinstance(item, _Prepared):
                sender.send(batch)
                batch = []
        sender.send(batch)
        sender.send(None)
    except (BrokenPipeError, KeyboardInterrupt):
        pass  # the parent is gone or stopping: nothing to tell it
    except BaseException as exc:  # a bug: say it in one line, the parent reports it
        with contextlib.suppress(OSError):
            sender.send([_SearchFailed(f"reading the registry failed: "
                                       f"{type(exc).__name__}: {exc}")])
            sender.send(None)
    finally:
        sender.close()


def _listing_for(nct_id: str, listing_records: Mapping[str, Trial] | None) -> Trial | None:
    if listing_records is not None:
        return listing_records.get(nct_id)
    from trialfinder.records import bundled_trial

    return bundled_trial(nct_id)


@contextlib.contextmanager
def store_lock(store_path: str | Path, timeout: float = 10.0) -> Iterator[int | None]:
    """Hold an exclusive lock on ``<db>.lock`` (poll until ``timeout``, then StoreBusy);
    yields the lock file's descriptor (None for an in-memory store)."""
    if str(store_path) == ":memory:":
        yield None
        return
    path = Path(f"{store_path}.lock").expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"Cannot create the lock file {path}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"Another trialfinder sync is running on {store_path}; try again later"
                    ) from None
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def recorded_changes(
    store_path: str | Path, *, nct_id: str | None = None, since: str | None = None
) -> list[Change]:
    """The history of changes the syncs recorded, oldest first (none if no store yet)."""
    from trialfinder.store import parse_since

    nct = normalise_nct_id(nct_id) if nct_id is not None else None  # "" is no trial
    since_key = parse_since(since) if since else None  # checked even without a store
    if str(store_path) != ":memory:" and not Path(store_path).expanduser().exists():
        return []  # reading never creates the store
    with Store(store_path) as store:
        return store.changes(nct, since_key)
