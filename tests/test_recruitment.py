"""The one status rule: what a record's statuses mean for a patient."""

from __future__ import annotations

from datetime import date

import pytest

from trialfinder.models import Site, Source, Status, Trial
from trialfinder.recruitment import (
    Standing,
    StatusFrom,
    page_standing,
    site_recruitment,
    trial_recruitment,
)

TODAY = date(2026, 11, 26)


def _trial(status: Status | None, verified: str | None = None, **extra: object) -> Trial:
    return Trial("NCT00000001", "T", Source("registry", "API", "2026-01"), status=status,
                 verified_date=verified, **extra)  # type: ignore[arg-type]


def test_recruiting_verified_recently_is_recruiting() -> None:
    """A RECRUITING trial verified within two years is recruiting."""
    answer = trial_recruitment(_trial(Status.RECRUITING, "2025-06"), TODAY)
    assert answer.recruiting and answer.standing is Standing.RECRUITING


@pytest.mark.parametrize("status", [Status.RECRUITING, Status.NOT_YET_RECRUITING,
                                    Status.ACTIVE_NOT_RECRUITING])
def test_recruiting_type_unverified_for_two_years_is_unknown(status: Status) -> None:
    """The registry's own rule: a recruiting-type status not verified for two years is
    UNKNOWN, with its last known status and the verification date."""
    answer = trial_recruitment(_trial(status, "2024-09"), TODAY)
    assert answer.standing is Standing.UNKNOWN and not answer.recruiting
    assert answer.last_known is status and answer.verified == "2024-09"


def test_registry_unknown_keeps_its_last_known_status() -> None:
    answer = trial_recruitment(
        _trial(Status.UNKNOWN, "2019-03", last_known_status=Status.RECRUITING), TODAY)
    assert answer.standing is Standing.UNKNOWN
    assert answer.last_known is Status.RECRUITING


def test_no_status_is_not_stated_not_unknown() -> None:
    assert trial_recruitment(_trial(None), TODAY).standing is Standing.NOT_STATED


@pytest.mark.parametrize(("words", "standing"), [
    ("Open", Standing.RECRUITING), ("Closed", Standing.NOT_RECRUITING),
    ("Recruiting.", Standing.RECRUITING), ("Not yet recruiting", Standing.NOT_YET_RECRUITING),
    ("Maybe", Standing.NOT_STATED), ("", Standing.NOT_STATED),
])
def test_page_words_mean_only_what_they_say(words: str, standing: Standing) -> None:
    assert page_standing(words) is standing
    answer = trial_recruitment(_trial(None, status_text=words or None), TODAY)
    assert answer.standing is standing and answer.status is None


def test_site_still_marked_recruiting_in_a_closed_trial_is_not_recruiting() -> None:
    trial = _trial(Status.COMPLETED, "2026-01")
    site = Site("A", "Lyon", "France", status=Status.RECRUITING)
    answer = site_recruitment(site, trial, TODAY)
    assert answer.standing is Standing.NOT_RECRUITING and answer.recorded is Status.RECRUITING


def test_site_of_an_unverified_trial_is_unknown_even_if_marked_recruiting() -> None:
    trial = _trial(Status.RECRUITING, "2023-01")
    site = Site("A", "Lyon", "France", status=Status.RECRUITING)
    answer = site_recruitment(site, trial, TODAY)
    assert answer.standing is Standing.UNKNOWN and answer.last_known is Status.RECRUITING


def test_site_own_status_wins_otherwise() -> None:
    trial = _trial(Status.RECRUITING, "2026-01")
    closed = Site("A", "Lyon", "France", status=Status.COMPLETED)
    silent = Site("B", "Lyon", "France")
    assert site_recruitment(closed, trial, TODAY).standing is Standing.NOT_RECRUITING
    inherited = site_recruitment(silent, trial, TODAY)
    assert inherited.recruiting and inherited.status_from is StatusFrom.TRIAL


def test_listing_only_site_is_unknown() -> None:
    trial = _trial(Status.RECRUITING, "2026-01")
    site = Site("A", "Lyon", "France", listing_only=True)
    assert site_recruitment(site, trial, TODAY).standing is Standing.UNKNOWN


def test_a_study_a_full_refresh_no_longer_returns_is_unknown() -> None:
    trial = _trial(Status.RECRUITING, "2026-10", not_seen_since="2026-11-20")
    answer = trial_recruitment(trial, TODAY)
    assert answer.standing is Standing.UNKNOWN and answer.not_seen_since == "2026-11-20"
    assert answer.last_known is Status.RECRUITING
    site = Site("A", "Lyon", "France", status=Status.RECRUITING)
    assert site_recruitment(site, trial, TODAY).standing is Standing.UNKNOWN


# -- the words every output uses --------------------------------------------------------------


@pytest.mark.parametrize(("trial", "words"), [
    (_trial(Status.RECRUITING, "2026-06"), "Recruiting"),
    (_trial(Status.ACTIVE_NOT_RECRUITING, "2026-06"), "Active, not recruiting"),
    (_trial(Status.RECRUITING, "2024-09"),
     "Status unknown (last known: recruiting, not verified since September 2024)"),
    (_trial(Status.UNKNOWN, "2019-03", last_known_status=Status.NOT_YET_RECRUITING),
     "Status unknown (last known: not yet recruiting, not verified since March 2019)"),
    (_trial(Status.UNKNOWN), "Status unknown"),
    (_trial(Status.UNKNOWN, "2019-03-15"), "Status unknown (not verified since 15 March 2019)"),
    (_trial(Status.RECRUITING, "2026-10", not_seen_since="2026-11-20"),
     "Status unknown (last known: recruiting; no longer returned by the registry since "
     "20 November 2026)"),
    (_trial(None), "No status in the record"),
    (_trial(None, status_text="Open"), "“Open” (as the listing page says)"),
    (_trial(None, status_text="Peut-être"),
     "“Peut-être” (as the listing page says; not understood as a status)"),
])
def test_status_words(trial: Trial, words: str) -> None:
    """One phrase per answer of the rule; UNKNOWN always names what was last known and when;
    'no status' is not 'unknown'; a page's words are quoted as the page gave them."""
    from trialfinder.recruitment import status_words

    assert status_words(trial_recruitment(trial, TODAY)) == words


def test_where_a_site_status_comes_from() -> None:
    """The details say whose status it is, and when a site's own is overruled."""
    from trialfinder.recruitment import status_source_words

    trial = _trial(Status.COMPLETED, "2026-06")
    marked = Site("A", "Lyon", "France", status=Status.RECRUITING)
    silent = Site("B", "Lyon", "France")
    only = Site("C", "Lyon", "France", listing_only=True)
    assert status_source_words(site_recruitment(marked, trial, TODAY), marked) == (
        "the trial's status; the site is still marked recruiting")
    assert status_source_words(site_recruitment(silent, trial, TODAY), silent) == (
        "the trial's status; the record gives none for this site")
    assert status_source_words(site_recruitment(only, trial, TODAY), only) == (
        "the listing page names this site; the registry record does not")
    open_trial = _trial(Status.RECRUITING, "2026-06")
    assert status_source_words(site_recruitment(marked, open_trial, TODAY), marked) == (
        "the site's own status")
    unverified = _trial(Status.RECRUITING, "2023-06")
    assert status_source_words(site_recruitment(marked, unverified, TODAY), marked) == (
        "the trial's status is unknown: the site's own is not verified either")


def test_every_registry_status_has_words() -> None:
    """No registry value is ever shown raw."""
    from trialfinder.recruitment import status_label

    for status in Status:
        label = status_label(status)
        assert label and "_" not in label and label[0].isupper()
