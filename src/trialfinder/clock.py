"""Today's date, in one place: the rules ask here when no day is given, and tests set it."""

from __future__ import annotations

from datetime import date


def today() -> date:
    """The real today (tests monkeypatch this function)."""
    return date.today()
