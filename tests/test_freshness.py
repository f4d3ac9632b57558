"""The one staleness rule and its plain words."""

from __future__ import annotations

from datetime import date

import pytest

from trialfinder.freshness import age_words, as_of_words, date_words, freshness
from trialfinder.models import Source, Trial

TODAY = date(2026, 11, 26)


def test_listing_is_as_old_as_its_page() -> None:
    trial = Trial("NCT02260505", "T", Source("listing", "page", "2019-01"))
    fresh = freshness(trial, TODAY)
    assert fresh.stale and not fresh.fetched and not fresh.unconfirmed
    assert as_of_words(fresh.copy_label, fresh.copy_date, TODAY) == (
        "January 2019, almost 8 years ago")


def test_a_copy_fetched_today_is_fresh_but_an_old_sponsor_word_is_a_caution() -> None:
    trial = Trial("NCT00000001", "T",
                  Source("registry", "API", "2024-02-01", retrieved="2026-11-26T03:00:00+00:00"),
                  last_update="2024-02-01", verified_date="2024-01")
    fresh = freshness(trial, TODAY)
    assert not fresh.stale and fresh.fetched and fresh.unconfirmed
    assert fresh.sponsor_label == "2024-02-01"


def test_a_copy_fetched_long_ago_is_stale_whatever_it_says() -> None:
    trial = Trial("NCT00000001", "T",
                  Source("registry", "API", "2026-01-10", retrieved="2026-02-01T03:00:00+00:00"),
                  last_update="2026-01-10")
    fresh = freshness(trial, TODAY)
    assert fresh.stale and not fresh.unconfirmed


@pytest.mark.parametrize(("then", "words"), [
    (date(2026, 11, 26), "today"), (date(2026, 11, 25), "yesterday"),
    (date(2026, 11, 20), "6 days ago"), (date(2026, 10, 20), "5 weeks ago"),
    (date(2026, 6, 1), "5 months ago"), (date(2025, 11, 1), "about a year ago"),
    (date(2025, 5, 1), "over a year ago"), (date(2024, 1, 15), "almost 3 years ago"),
    (date(2022, 11, 1), "about 4 years ago"),
])
def test_age_words(then: date, words: str) -> None:
    assert age_words(then, TODAY) == words


def test_date_words_keep_the_precision_given() -> None:
    assert date_words("2019") == "2019"
    assert date_words("2019-01") == "January 2019"
    assert date_words("2024-03-15") == "15 March 2024"
    assert date_words("") == "an unknown date"
