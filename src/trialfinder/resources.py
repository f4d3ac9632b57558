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
