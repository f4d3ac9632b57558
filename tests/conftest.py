"""Fixtures shared by the whole suite."""

from __future__ import annotations

import datetime

import pytest

TODAY = datetime.date(2025, 3, 1)
"""The day every test runs on, unless it says otherwise. The status and staleness rules depend
on the day, and the recorded registry fixtures were verified between 2023 and 2025 (the built
NCT02260505 records in April 2023 and March 2024). A test about another day monkeypatches
`trialfinder.clock.today` itself or passes ``today``; a test that runs trialfinder in another
process sets `clock.today` there too."""


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> datetime.date:
    from trialfinder import clock

    monkeypatch.setattr(clock, "today", lambda: TODAY)
    return TODAY


@pytest.fixture(autouse=True)
def private_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each test its own user cache directory (platformdirs reads XDG_CACHE_HOME), made only
    if used: the Nominatim rate stamp shared by processes is never the real one, nor shared
    with another test or another run on this machine."""
    import uuid

    cache = tmp_path_factory.getbasetemp() / f"cache-{uuid.uuid4().hex}"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
