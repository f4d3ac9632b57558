"""Where a trial record comes from: the local store if it holds one, else the bundled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from trialfinder.errors import TrialNotFound
from trialfinder.ids import normalise_nct_id
from trialfinder.models import Trial, trial_from_jsonable
from trialfinder.resources import data_path

if TYPE_CHECKING:
    from trialfinder.store import StoreLike


def bundled_trial(nct_id: str) -> Trial | None:
    """The record shipped with trialfinder for this trial, if there is one."""
    path = data_path(f"trials/{nct_id}.json")
    if not path.is_file():
        return None
    return trial_from_jsonable(json.loads(path.read_text(encoding="utf-8")))


def load_trial(nct_id: str, db: StoreLike) -> Trial:
    """The store's copy (kept fresh by `sync`) if it has one, else the bundled record.

    ``db``: an open `Store`, a path, or None (the bundled record only). A store that does not
    exist yet is not created here: reading never writes.
    """
    nct_id = normalise_nct_id(nct_id)
    if db is not None and (not isinstance(db, (str, Path)) or Path(db).exists()):
        from trialfinder.store import using_store

        with using_store(db) as store:
            stored = store.get_trial(nct_id) if store is not None else None
        if stored is not None:
            return stored
    bundled = bundled_trial(nct_id)
    if bundled is not None:
        return bundled
    from trialfinder.i18n import _

    raise TrialNotFound(_("No record of {nct_id} here; fetch it with `trialfinder sync "
                          "{nct_id}` (needs network)").format(nct_id=nct_id))
