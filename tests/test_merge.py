"""Matching the listing's sites to the registry's, and what the merged record keeps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seed_listing import SEED_SITES, seed_listing_trial
from trialfinder.merge import (
    facility_similarity,
    match_sites,
    merge,
    registry_part,
    status_origin,
    status_origin_json,
)
from trialfinder.models import Contact, Site, Source, Status, Trial
from trialfinder.registry import parse_study

FIXTURES = Path(__file__).parent / "fixtures" / "ctgov"
TEMPOS = "study_NCT03830788_prostate_FR16sites_sitestatus_contacts.json"


def registry_site(facility: str, city: str, status: Status = Status.RECRUITING,
                  contacts: tuple[Contact, ...] = ()) -> Site:
    return Site(facility=facility, city=city, country="France", status=status,
                latitude=43.29695, longitude=5.38107, contacts=contacts)


def listing_site(facility: str, city: str, investigator: str) -> Site:
    return Site(facility=facility, city=city, country="France",
                contacts=(Contact(investigator, role="PRINCIPAL_INVESTIGATOR", title="Pr"),))


def registry_trial(*sites: Site) -> Trial:
    return Trial("NCT02260505", "IMADGIST", Source("registry", "API v2", "2024-03-15"),
                 status=Status.RECRUITING, sites=sites)


def listing_trial(*sites: Site) -> Trial:
    return Trial("NCT02260505", "IMADGIST", Source("listing", "listing", "2019-01"),
                 status=Status.RECRUITING, brief_summary="From the listing.", sites=sites)


def test_accents_and_case_do_not_matter() -> None:
    """'Centre Leon Berard' in one source is 'Centre Léon Bérard' in the other."""
    assert facility_similarity("Centre Leon Berard", "Centre Léon Bérard", city="Lyon") == 1.0
    assert facility_similarity("CENTRE LÉON BÉRARD", "centre leon berard") == 1.0


def test_abbreviations_are_expanded() -> None:
    """'CHU La Timone' is 'Centre Hospitalier Universitaire La Timone'."""
    assert facility_similarity("CHU La Timone",
                               "Centre Hospitalier Universitaire La Timone") == 1.0


def test_generic_words_weigh_little() -> None:
    """Two AP-HP hospitals of Paris share many words but are different sites."""
    score = facility_similarity("AP-HP Hôpital Saint-Antoine",
                                "AP-HP Hôpital Européen Georges Pompidou", city="Paris")
    assert score < 0.5
    assert facility_similarity("Institut Paoli-Calmettes",
                               "Centre Hospitalier Universitaire La Timone") == 0.0


def test_typos_and_lost_accents_still_match() -> None:
    """A scraped name that lost letters with its accents still finds its site."""
    assert facility_similarity("Institut Bergonié", "Institut Bergoni") >= 0.9
    assert facility_similarity("Institut de Cancérologie de l'Ouest",
                               "Institut de Canc rologie de l'Ouest") >= 0.9


def test_two_sites_in_one_city_are_not_crossed() -> None:
    """Marseille's two sites each get their own investigator."""
    reg = registry_trial(
        registry_site("CHU La Timone", "Marseille"),
        registry_site("Institut Paoli-Calmettes", "Marseille"),
    )
    lst = listing_trial(
        listing_site("Institut Paoli-Calmettes", "Marseille", "François BERTUCCI"),
        listing_site("Centre Hospitalier Universitaire La Timone", "Marseille",
                     "Florence DUFFAUD"),
    )
    merged = merge(reg, lst)
    assert [(s.facility, [c.name for c in s.contacts], s.listing_match) for s in merged.sites] == [
        ("CHU La Timone", ["Florence DUFFAUD"], True),
        ("Institut Paoli-Calmettes", ["François BERTUCCI"], True),
    ]


def test_city_alone_matches_only_a_lone_site() -> None:
    """A renamed centre matches by city when the city has one site on both sides, not when
    it has two."""
    reg = registry_trial(
        registry_site("Institut régional du Cancer de Montpellier", "Montpellier"),
        registry_site("Hôpital Nord", "Marseille"),
        registry_site("Hôpital de la Conception", "Marseille"),
    )
    lst = listing_trial(
        listing_site("Centre Régional de Lutte contre le Cancer Val d'Aurelle", "Montpellier",
                     "Didier CUPISSOL"),
        listing_site("Institut Paoli-Calmettes", "Marseille", "François BERTUCCI"),
    )
    assert match_sites(reg.sites, lst.sites) == [(0, 0)]


def test_registry_wins_and_listing_enriches() -> None:
    """Status, position and spelling come from the registry; investigators are added once."""
    reg = registry_trial(registry_site(
        "Centre Léon Bérard", "Lyon", Status.ACTIVE_NOT_RECRUITING,
        contacts=(Contact("Jean-Yves Blay, MD", role="PRINCIPAL_INVESTIGATOR"),
                  Contact("Desk", role="CONTACT", email="desk@example.org")),
    ))
    lst = listing_trial(
        Site("Centre Leon Berard", "LYON", "France", facility_raw="Centre L on B rard",
             contacts=(Contact("Jean-Yves BLAY", role="PRINCIPAL_INVESTIGATOR", title="Pr"),
                       Contact("Marie DUPONT", role="PRINCIPAL_INVESTIGATOR", title="Dr"))),
    )
    (merged,) = merge(reg, lst).sites
    assert merged.facility == "Centre Léon Bérard"
    assert merged.status is Status.ACTIVE_NOT_RECRUITING
    assert (merged.latitude, merged.longitude) == (43.29695, 5.38107)
    assert [c.name for c in merged.contacts] == ["Jean-Yves Blay, MD", "Desk", "Marie DUPONT"]
    assert merged.listing_match is True


def test_listing_facility_fills_a_blank_registry_facility() -> None:
    """A registry site without a facility name takes the listing's (repaired) one."""
    reg = registry_trial(registry_site("", "Lille"))
    lst = listing_trial(listing_site("Centre Oscar Lambret", "Lille", "Nicolas PENEL"))
    (merged,) = merge(reg, lst).sites
    assert merged.facility == "Centre Oscar Lambret"
    assert merged.status is Status.RECRUITING


def test_unmatched_sites_are_kept_and_flagged() -> None:
    """A site only the registry lists, and one only the listing names, both stay, flagged;
    the listing-only one is not presented as recruiting."""
    reg = registry_trial(registry_site("Centre Oscar Lambret", "Lille"),
                         registry_site("Gustave Roussy", "Villejuif"))
    lst = listing_trial(listing_site("Centre Oscar Lambret", "Lille", "Nicolas PENEL"),
                        listing_site("AP-HP Hôpital Saint-Antoine", "Paris",
                                     "Isabelle TROUILLOUD"))
    merged = merge(reg, lst)
    assert [(s.facility, s.listing_match, s.listing_only, s.status) for s in merged.sites] == [
        ("Centre Oscar Lambret", True, False, Status.RECRUITING),
        ("Gustave Roussy", False, False, Status.RECRUITING),
        ("AP-HP Hôpital Saint-Antoine", False, True, Status.UNKNOWN),
    ]
    assert merged.source.kind == "registry"
    assert merged.brief_summary == "From the listing."  # the registry left it empty


def test_built_registry_record_and_seed_listing_match_fully() -> None:
    """All 16 seed centres find their site in the built registry record of NCT02260505."""
    data = json.loads((FIXTURES / "built_NCT02260505_v1.json").read_text(encoding="utf-8"))
    registry = parse_study(data).trial
    merged = merge(registry, seed_listing_trial())
    assert len(merged.sites) == 16
    assert all(s.listing_match for s in merged.sites)
    by_facility = {s.facility: s for s in merged.sites}
    assert {c.name for c in by_facility["Institut régional du Cancer de Montpellier"].contacts} \
        == {"Didier CUPISSOL"}
    for (investigator, *_), site in zip(SEED_SITES, merged.sites, strict=True):
        assert any(
            set(investigator.lower().split()) <= set(c.name.lower().replace(",", "").split())
            for c in site.contacts
        ), (investigator, site.facility)


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(len(SEED_SITES))))
def test_matching_does_not_depend_on_listing_order(order: list[int]) -> None:
    """Shuffling the listing's sites pairs the same centres."""
    data = json.loads((FIXTURES / "built_NCT02260505_v1.json").read_text(encoding="utf-8"))
    registry = parse_study(data).trial
    seed = seed_listing_trial()
    shuffled = seed.replace(sites=tuple(seed.sites[i] for i in order))
    merged = merge(registry, shuffled)
    assert [s.contacts[-1].name for s in merged.sites] == [
        s.contacts[-1].name for s in merge(registry, seed).sites
    ]


# -- the trial's status: the more recent source's -------------------------------------------


def dated_registry(status: Status | None = Status.RECRUITING, last_update: str = "2024-03-15",
                   verified: str | None = "2024-03") -> Trial:
    return registry_trial(registry_site("Centre Léon Bérard", "Lyon")).replace(
        status=status, last_update=last_update, verified_date=verified,
        source=Source("registry", "ClinicalTrials.gov API v2", last_update,
                      retrieved="2025-03-01T03:00:00+00:00"))


def dated_page(updated: str | None, words: str | None = "Closed") -> Trial:
    return Trial("NCT02260505", "IMADGIST",
                 Source("listing", "CenterWatch-style listing page", updated or "2025-03-01",
                        url="page.html", retrieved="2025-03-01T04:00:00+00:00"),
                 status_text=words, last_update=updated,
                 sites=(listing_site("Centre Leon Berard", "Lyon", "Jean-Yves BLAY"),))


def test_a_more_recent_page_gives_the_status_in_its_own_words() -> None:
    """A page updated after the registry's last update and verification gives the trial's
    status, as its words; the merged record says which source and date, and keeps the page's
    source without its download time."""
    merged = merge(dated_registry(), dated_page("2024-06"))
    assert (merged.status, merged.status_text, merged.last_known_status) == (None, "Closed", None)
    assert merged.status_source == Source("listing", "CenterWatch-style listing page",
                                          "2024-06", url="page.html")
    assert merged.merged_with == merged.status_source
    assert merged.source.kind == "registry" and merged.verified_date == "2024-03"
    assert merged.sites[0].status is Status.RECRUITING  # the site's own, as recorded
    assert status_origin(merged) == (
        "Trial status from: CenterWatch-style listing page, as of June 2024 (of the two merged "
        "sources, the more recent that states a status; the other: ClinicalTrials.gov API v2, "
        "as of 15 March 2024)")


@pytest.mark.parametrize(("page", "words", "registry", "wins"), [
    ("2019-01", "Open", dated_registry(), False),  # older
    ("2024-03", "Closed", dated_registry(), False),  # the registry's day is in the page's month
    ("2024-04", "Closed", dated_registry(), True),
    ("2025-01", None, dated_registry(), False),  # a page that states no status never wins
    (None, "Closed", dated_registry(), False),  # nor one that gives no date of its own
    ("2019-01", "Open", dated_registry(status=None), True),  # a registry that states none
    ("2024-04", "Closed", dated_registry(last_update="2024-01-10", verified="2024-05"), False),
])
def test_which_source_gives_the_status(page: str | None, words: str | None, registry: Trial,
                                       wins: bool) -> None:
    """The page's status wins only when it states one and is more recent than the registry's
    last update and verification (a tie goes to the registry), or when the registry states
    none; the status source is dated as compared."""
    merged = merge(registry, dated_page(page, words))
    assert merged.status_source is not None
    assert (merged.status_source.kind == "listing") is wins
    if wins:
        assert (merged.status, merged.status_text) == (None, words)
    else:
        assert merged.status == registry.status
        assert merged.status_source.as_of == max(
            d for d in (registry.last_update, registry.verified_date) if d)


def test_status_origin_only_for_a_merged_record() -> None:
    """One source's copy names no status origin; the registry's own status says which page
    it was merged with."""
    assert status_origin(dated_registry()) is None
    assert status_origin_json(dated_page("2024-06")) is None
    merged = merge(dated_registry(), dated_page("2019-01", "Open"))
    assert status_origin_json(merged) == {
        "source_kind": "registry", "source": "ClinicalTrials.gov API v2", "as_of": "2024-03-15",
        "source_url": None, "other_source_kind": "listing",
        "other_source": "CenterWatch-style listing page", "other_as_of": "2019-01",
        "other_source_url": "page.html", "words": (
            "Trial status from: ClinicalTrials.gov API v2, as of 15 March 2024 (of the two "
            "merged sources, the more recent that states a status; the other: CenterWatch-style "
            "listing page, as of January 2019)"),
    }


def test_registry_part_undoes_what_a_merge_added() -> None:
    """The registry's part of a merged record has no listing-only site, no match flags and no
    merge provenance; a registry copy is its own registry part."""
    reg = registry_trial(registry_site("Centre Oscar Lambret", "Lille"),
                         registry_site("Gustave Roussy", "Villejuif"))
    lst = listing_trial(listing_site("Centre Oscar Lambret", "Lille", "Nicolas PENEL"),
                        listing_site("AP-HP Hôpital Saint-Antoine", "Paris", "Isabelle T"))
    assert registry_part(reg) is reg
    part = registry_part(merge(reg, lst))
    assert [(s.facility, s.listing_match, s.listing_only) for s in part.sites] == [
        ("Centre Oscar Lambret", None, False), ("Gustave Roussy", None, False)]
    assert (part.merged_with, part.status_source) == (None, None)
    assert merge(part, lst) == merge(reg, lst)  # investigators the merge added stay, once


@settings(max_examples=25, deadline=None)
@given(st.sets(st.integers(0, 15), max_size=16), st.sets(st.integers(0, 15), max_size=16),
       st.booleans())
def test_combine_does_not_depend_on_placing_first(listed: set[int], unplaced: set[int],
                                                  newer: bool) -> None:
    """Merging the registry's copy as fetched or as stored alone (placed) gives one record:
    what a sync stores and what a scrape stores after it are the same. The registry record
    is the recorded TEMPOS study with some positions removed; the page lists some of its
    sites with their accents lost, and one site of its own."""
    from trialfinder.geocode import placer
    from trialfinder.merge import combine
    from trialfinder.text import strip_accents

    reg = parse_study(json.loads((FIXTURES / TEMPOS).read_text(encoding="utf-8"))).trial
    reg = reg.replace(sites=tuple(
        dataclasses.replace(s, latitude=None, longitude=None) if i in unplaced else s
        for i, s in enumerate(reg.sites)))
    sites = [Site(strip_accents(s.facility), s.city, s.country,
                  contacts=(Contact("Ann OTHER", role="PRINCIPAL_INVESTIGATOR", title="Dr"),))
             for i, s in enumerate(reg.sites) if i in listed]
    sites.append(Site("Centre Hospitalier de Béziers", "Béziers", "France"))
    page = Trial(reg.nct_id, reg.title,
                 Source("listing", "CenterWatch-style listing page",
                        "2025-01" if newer else "2019-01"),
                 status_text="Closed", last_update="2025-01" if newer else "2019-01",
                 sites=tuple(sites))
    place = placer(None)
    page = place(page)
    assert combine(reg, page, place) == combine(place(reg), page, place)


def test_status_origin_in_french() -> None:
    """The status origin is a sentence for people: in French, its sources and dates too."""
    from trialfinder.i18n import language

    merged = merge(dated_registry(), dated_page("2024-06"))
    with language("fr"):
        words = status_origin(merged)
    assert words == (
        "Statut de l'essai tiré de\xa0: page d'annonce de type CenterWatch (date\xa0: juin "
        "2024), la plus récente des deux sources fusionnées qui indique un statut\xa0; "
        "l'autre\xa0: registre ClinicalTrials.gov (date\xa0: 15 mars 2024)")
