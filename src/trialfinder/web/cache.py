"""Trials loaded and placed once, kept while the store and the day stay the same.

A nightly `sync` writes the store while the server runs: every request compares the store's
files (the database and its write-ahead log: inode, size, modification time) with what they
were when each trial was loaded, and loads again after any change. The day is part of the
key too, since the status and staleness rules depend on it. A stat of two files costs a few
microseconds; loading and placing the bundled record costs milliseconds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from trialfinder import clock

if TYPE_CHECKING:
    from trialfinder.queries import TrialView

Signature = tuple[tuple[int, int, int] | None, tuple[int, int, int] | None, date]


class TrialViews:
    """`queries.trial_view` with a cache of `size` trials, safe to share between threads."""

    def __init__(self, db_path: Path | None, size: int = 32) -> None:
        self.db_path = db_path
        self.size = size
        self._views: OrderedDict[str, tuple[Signature, TrialView]] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0
        """How many times a trial was loaded (tests and benchmarks read it)."""

    def signature(self) -> Signature:
        """What changes whenever the store is written (or created, replaced, removed)."""
        if self.db_path is None:
            return (None, None, clock.today())
        return (_stat(self.db_path), _stat(Path(f"{self.db_path}-wal")), clock.today())

    def cached(self, nct_id: str) -> TrialView | None:
        """The trial if it is loaded and the store has not changed since; else None (and
        nothing is loaded: cheap enough for the event loop)."""
        signature = self.signature()
        with self._lock:
            cached = self._views.get(nct_id)
        return cached[1] if cached is not None and cached[0] == signature else None

    def get(self, nct_id: str) -> TrialView:
        """The trial (store, else bundled) with its sites placed; raises as `trial_view`."""
        from trialfinder.ids import normalise_nct_id
        from trialfinder.queries import trial_view

        nct_id = normalise_nct_id(nct_id)
        signature = self.signature()  # before loading: a write during the load is seen next
        with self._lock:
            cached = self._views.get(nct_id)
            if cached is not None and cached[0] == signature:
                self._views.move_to_end(nct_id)
                return cached[1]
        view = trial_view(nct_id, self.db_path, today=signature[2])
        with self._lock:
            self.loads += 1
            self._views[nct_id] = (signature, view)
            self._views.move_to_end(nct_id)
            while len(self._views) > self.size:
                self._views.popitem(last=False)
        return view


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
