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


def _registry(retrieved: str, updated: str) -> Trial:
    return Trial("NCT00000001", "T", Source("registry", "API", updated, retrieved=retrieved),
                 last_update=updated)


def test_both_messages_in_plain_words() -> None:
    """A copy fetched long ago gets the warning (with the command to refresh, or for a
    patient the advice to confirm); an old sponsor's word the caution; both name their date."""
    from trialfinder.freshness import copy_warning, messages, sponsor_caution

    old_copy = freshness(_registry("2025-01-10T03:00:00+00:00", "2024-01-05"), TODAY)
    assert copy_warning(old_copy, "NCT00000001") == (
        "This copy was fetched from the registry on 10 January 2025, almost 2 years ago: "
        "recruitment may have changed since. Refresh it with `trialfinder sync NCT00000001` "
        "(needs network) and confirm with the site.")
    assert copy_warning(old_copy, "NCT00000001", terminal=False) == (
        "This copy was fetched from the registry on 10 January 2025, almost 2 years ago: "
        "recruitment may have changed since. Confirm with the site before you go.")
    assert sponsor_caution(old_copy) == (
        "Last updated or verified by the sponsor: 5 January 2024, almost 3 years ago. "
        "Confirm recruitment with the site.")
    assert messages(old_copy, "NCT00000001") == [
        copy_warning(old_copy, "NCT00000001"), sponsor_caution(old_copy)]
    fresh = freshness(_registry("2026-11-25T03:00:00+00:00", "2026-11-01"), TODAY)
    assert messages(fresh, "NCT00000001") == []


def test_age_sentence() -> None:
    """The plain answer's one line on age: the copy, and the sponsor's word when fetched."""
    from trialfinder.freshness import age_sentence

    fetched = freshness(_registry("2026-11-25T03:00:00+00:00", "2026-11-01"), TODAY)
    assert age_sentence(fetched, "ClinicalTrials.gov API v2") == (
        "Information fetched from the registry on 25 November 2026, yesterday; last updated "
        "by the sponsor: 1 November 2026, 4 weeks ago.")
    page = freshness(Trial("NCT02260505", "T", Source("listing", "page", "2026-09")), TODAY)
    assert age_sentence(page, "a listing page") == (
        "Information as of September 2026, 2 months ago (source: a listing page).")
    undated = freshness(Trial("NCT02260505", "T", Source("listing", "page", "")), TODAY)
    assert undated.stale
    from trialfinder.freshness import copy_warning

    assert copy_warning(undated, "NCT02260505", terminal=False) == (
        "This record gives no date: recruitment may have changed since. Confirm with the site "
        "before you go.")


@pytest.mark.parametrize(("then", "words"), [
    (date(2026, 11, 12), "2 weeks ago"), (date(2026, 10, 26), "4 weeks ago"),
    (date(2026, 9, 26), "2 months ago"), (date(2024, 11, 26), "about 2 years ago"),
    (date(2023, 8, 26), "over 3 years ago"), (date(2026, 12, 1), "in the future"),
])
def test_more_age_words(then: date, words: str) -> None:
    """Weeks, months and years, rounded the way people say them."""
    assert age_words(then, TODAY) == words
