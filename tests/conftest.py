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
