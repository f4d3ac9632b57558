"""Where bundled data and the user's store live."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TRIAL = "NCT02260505"


def data_path(name: str) -> Path:
    """A file of the bundled data: inside the installed package, else the checkout's data/."""
    # The wheel installs data/ as trialfinder/data, next to this file (a plain path: cheaper
    # at start-up than importlib.resources, and the package is never zipped).
    packaged = Path(__file__).resolve().parent / "data" / name
    if packaged.is_file():
        return packaged
    # Running from a source checkout (editable install): data/ sits at the top level.
    return Path(__file__).resolve().parents[2] / "data" / name


def default_db_path() -> Path:
    """--db, else $TRIALFINDER_DB, else the user's data directory."""
    env = os.environ.get("TRIALFINDER_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("trialfinder", appauthor=False) / "trialfinder.sqlite"


def no_store_at(db: object) -> bool:
    """Whether ``db`` (an open store, a path, or None) designates no store to read: None, or a
    path to no file (":memory:" aside). Here, not in store.py, so that an answer from the
    bundled record never loads the store's code (start-up)."""
    if db is None:
        return True
    if isinstance(db, str | os.PathLike):
        return str(db) != ":memory:" and not Path(db).expanduser().exists()
    return False
