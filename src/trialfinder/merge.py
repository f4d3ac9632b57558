"""Merge a listing's view of a trial into the registry's record of the same trial.

The registry is the authority on which sites exist, their status, position and spelling; a
listing page knows the investigators by name. Sites are matched by facility within a city,
insensitive to accents, case and small typos, with abbreviations ("CHU") expanded and generic
words ("Centre", "Hospitalier") weighing little. The trial's status is the more recent
source's (of those that state one), and the merged record says which (`Trial.status_source`).

`merge` is a pure function of the two copies, so the merged record does not depend on which
copy reached the store first; `combine` is what `sync` and `scrape` store: the merge placed
again by the offline chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

from trialfinder.i18n import _
from trialfinder.models import Site, Source, Status, Trial
from trialfinder.text import fold

MATCH_THRESHOLD = 0.5
"""Weighted token similarity from which two facilities in one city are the same site."""
TOKEN_RATIO = 0.8
"""Similarity from which two words are the same word with a typo ("Bergoni" / "Bergonie")."""
JOINED_RATIO = 0.9
"""Similarity of whole names, spaces removed, that catches words split by a lost accent."""
GENERIC_WEIGHT = 0.15

# Abbreviations of French (and a few English) hospital names, folded.
_EXPANSIONS = {
    "chu": "centre hospitalier universitaire",
    "chru": "centre hospitalier regional universitaire",
    "chr": "centre hospitalier regional",
    "ch": "centre hospitalier",
    "chi": "centre hospitalier intercommunal",
    "clcc": "centre de lutte contre le cancer",
    "crlc": "centre regional de lutte contre le cancer",
    "aphp": "assistance publique hopitaux de paris",
    "ap hp": "assistance publique hopitaux de paris",
    "aphm": "assistance publique hopitaux de marseille",
    "ap hm": "assistance publique hopitaux de marseille",
    "hcl": "hospices civils de lyon",
    "hop": "hopital",
    "hosp": "hospital",
    "ctr": "centre",
    "center": "centre",
    "univ": "universite",
    "st": "saint",
    "ste": "sainte",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS = _words("de du des la le les l d et en sur a au aux of the and for in at di del y")
_GENERIC = _words(
    """
    centre hospitalier hospitaliere universitaire regional regionale hopital hopitaux
    hospital hospitals institut institute clinique clinic polyclinique groupe groupement
    hospitalier assistance publique lutte contre cancer cancerologie oncologie cancerology
    oncology medical medicale universite university site service departement department
    fondation foundation chu chru ch research recherche general generale saint sainte
    civils hospices sante health care medecine medicine intercommunal
    """
)


def combine(registry: Trial, listing: Trial, place: Callable[[Trial], Trial]) -> Trial:
    """The record the store keeps of a trial that the registry and a listing page both give:
    `merge` of the registry's copy (without what an earlier merge added to it:
    `registry_part`) and the page's, placed again by ``place`` (`geocode.placer`: positions a
    listing lent to registry sites are decided anew from the merged site's address)."""
    return place(merge(registry_part(registry), listing))


def registry_part(trial: Trial) -> Trial:
    """A registry record without what merging a listing added: the sites only the listing
    named, the match flags, the merge's provenance (investigators it added stay: merging the
    same people again adds nothing). The registry's own copy is unchanged."""
    if trial.merged_with is None and not any(
        s.listing_only or s.listing_match is not None for s in trial.sites
    ):
        return trial
    sites = tuple(dataclasses.replace(s, listing_match=None) for s in trial.sites
                  if not s.listing_only)
    return trial.replace(sites=sites, merged_with=None, status_source=None)


def merge(registry: Trial, listing: Trial) -> Trial:
    """The registry record with its sites matched to the listing's and enriched by them.

    Matched sites keep the registry's facility, status and position, gain the listing's
    investigators (unless already named) and get ``listing_match=True``. Sites only the
    registry lists get ``listing_match=False``; sites only the listing names are appended,
    flagged ``listing_match=False, listing_only=True`` with status UNKNOWN (the registry no
    longer vouches for them). Registry fields left empty are filled from the listing.

    The trial's status is the registry's unless the listing states one and is more recent
    (`status_date`): then it is the page's own (its words). ``merged_with`` keeps the page's
    source, ``status_source`` the source the status was taken from, dated as compared.
    """
    pairs = match_sites(registry.sites, listing.sites)
    by_registry = dict(pairs)
    matched_listing = {lst for _, lst in pairs}
    sites: list[Site] = []
    for i, site in enumerate(registry.sites):
        j = by_registry.get(i)
        if j is None:
            sites.append(dataclasses.replace(site, listing_match=False))
        else:
            sites.append(_enrich(site, listing.sites[j]))
    for j, site in enumerate(listing.sites):
        if j not in matched_listing:
            sites.append(
                dataclasses.replace(
                    site, listing_match=False, listing_only=True, status=Status.UNKNOWN
                )
            )
    filled = {
        name: getattr(listing, name)
        for name in ("acronym", "brief_summary", "detailed_description", "brief_title")
        if not getattr(registry, name) and getattr(listing, name)
    }
    merged = registry.replace(sites=tuple(sites), merged_with=_content_source(listing),
                              **filled)
    if _status_wins(listing, registry):
        return merged.replace(status=listing.status, status_text=listing.status_text,
                              last_known_status=listing.last_known_status,
                              status_source=_status_source(listing))
    return merged.replace(status_source=_status_source(registry))


# -- the trial's status: the more recent source's ------------------------------------------


def states_status(trial: Trial) -> bool:
    """Whether a copy states a status at all (a registry value, or a page's words)."""
    return trial.status is not None or bool(trial.status_text)


def status_date(trial: Trial) -> tuple[date, str] | None:
    """The day a copy's status is known to hold from, and that date as the copy gives it: a
    listing page's own "last updated" (never the day it was downloaded); for a registry
    record the newest of its last update, its status verification and its as-of date. A
    partial date ("2019-01") counts from its first day. None when the copy gives no date."""
    from trialfinder.freshness import newest_dated

    if trial.source.kind == "listing":
        return newest_dated(trial.last_update)
    return newest_dated(trial.last_update, trial.verified_date, trial.source.as_of)


def _status_wins(listing: Trial, registry: Trial) -> bool:
    """Whether the listing's status replaces the registry's: it states one, and it is more
    recent (a tie, or a page's month that holds the registry's day, goes to the registry) or
    the registry states none."""
    if not states_status(listing):
        return False
    if not states_status(registry):
        return True
    page, record = status_date(listing), status_date(registry)
    return page is not None and (record is None or page[0] > record[0])


def _content_source(trial: Trial) -> Source:
    """A copy's source without its download time (not part of the content: a copy fetched
    again is the same record)."""
    return dataclasses.replace(trial.source, retrieved=None)


def _status_source(trial: Trial) -> Source:
    """The source a status was taken from, dated as `status_date` compared it."""
    dated = status_date(trial)
    source = _content_source(trial)
    return dataclasses.replace(source, as_of=dated[1]) if dated else source


def status_origin(trial: Trial) -> str | None:
    """For a merged record, where the trial's status comes from, in one sentence; None for one
    source's copy."""
    origin, other = _origin_sources(trial)
    if origin is None or other is None:
        return None
    from trialfinder.freshness import date_words
    from trialfinder.words import record_source_words

    return _(
        "Trial status from: {source}, as of {date} (of the two merged sources, the more recent "
        "that states a status; the other: {other}, as of {other_date})"
    ).format(source=record_source_words(origin.description), date=date_words(origin.as_of),
             other=record_source_words(other.description), other_date=date_words(other.as_of))


def status_origin_json(trial: Trial) -> dict[str, Any] | None:
    """`status_origin` for JSON: both sources (kind, description, date, address) and the
    sentence; None for one source's copy."""
    origin, other = _origin_sources(trial)
    if origin is None or other is None:
        return None
    return {
        "source_kind": origin.kind, "source": origin.description, "as_of": origin.as_of,
        "source_url": origin.url, "other_source_kind": other.kind,
        "other_source": other.description, "other_as_of": other.as_of,
        "other_source_url": other.url, "words": status_origin(trial),
    }


def _origin_sources(trial: Trial) -> tuple[Source | None, Source | None]:
    origin, page = trial.status_source, trial.merged_with
    if origin is None or page is None:
        return None, None
    return origin, (trial.source if origin.kind == page.kind else page)


def match_sites(
    registry: tuple[Site, ...] | list[Site], listing: tuple[Site, ...] | list[Site]
) -> list[tuple[int, int]]:
    """One-to-one (registry index, listing index) pairs, best matches first."""
    candidates: list[tuple[float, int, int]] = []
    for i, r in enumerate(registry):
        for j, lst in enumerate(listing):
            if not same_city(r.city, lst.city):
                continue
            score = max(
                facility_similarity(r.facility, name, city=r.city)
                for name in {lst.facility, lst.facility_raw or lst.facility}
            )
            if score >= MATCH_THRESHOLD:
                candidates.append((score, i, j))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_r: set[int] = set()
    used_l: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for _score, i, j in candidates:
        if i in used_r or j in used_l:
            continue
        used_r.add(i)
        used_l.add(j)
        pairs.append((i, j))
    # A city with exactly one site on each side: the same site, whatever the names say
    # (a centre renamed, "CRLC Val d'Aurelle" become "Institut régional du Cancer").
    for i, r in enumerate(registry):
        if i in used_r:
            continue
        same_r = [k for k, other in enumerate(registry) if same_city(other.city, r.city)]
        same_l = [k for k, other in enumerate(listing) if same_city(other.city, r.city)]
        if len(same_r) == 1 and len(same_l) == 1 and same_l[0] not in used_l:
            used_r.add(i)
            used_l.add(same_l[0])
            pairs.append((i, same_l[0]))
    return pairs


def same_city(a: str, b: str) -> bool:
    fa, fb = _joined(a), _joined(b)
    if not fa or not fb:
        return False
    return fa == fb or SequenceMatcher(None, fa, fb).ratio() >= 0.85


def facility_similarity(a: str, b: str, *, city: str = "") -> float:
    """0..1: weighted share of words the two names have in common (typos allowed).

    Words that name nothing in particular ("Centre", "Hospitalier", the city's name) weigh
    little, so "CHU La Timone" and "Hôpital de la Timone" are close and two AP-HP hospitals
    of Paris are not.
    """
    ta, tb = _tokens(a, city), _tokens(b, city)
    if not ta or not tb:
        return 0.0
    matched = _matched_weight(ta, tb) + _matched_weight(tb, ta)
    total = sum(w for _, w in ta) + sum(w for _, w in tb)
    score = matched / total
    joined = SequenceMatcher(None, _joined(a), _joined(b)).ratio()
    if joined >= JOINED_RATIO:
        score = max(score, joined)
    return score


def _matched_weight(ta: tuple[tuple[str, float], ...], tb: tuple[tuple[str, float], ...]) -> float:
    words_b = [t for t, _ in tb]
    total = 0.0
    for token, weight in ta:
        if token in words_b or any(_similar_word(token, other) for other in words_b):
            total += weight
    return total


@lru_cache(maxsize=4096)
def _similar_word(a: str, b: str) -> bool:
    if len(a) <= 3 or len(b) <= 3:
        return False
    return SequenceMatcher(None, a, b).ratio() >= TOKEN_RATIO


@lru_cache(maxsize=4096)
def _tokens(name: str, city: str) -> tuple[tuple[str, float], ...]:
    text = f" {fold(name)} "
    for short, long in _EXPANSIONS.items():
        text = text.replace(f" {short} ", f" {long} ")
    city_words = set(fold(city).split())
    out: dict[str, float] = {}
    for token in text.split():
        if token in _STOPWORDS:
            continue
        generic = token in _GENERIC or token in city_words
        out[token] = GENERIC_WEIGHT if generic else 1.0
    return tuple(out.items())


def _joined(text: str) -> str:
    return fold(text).replace(" ", "")


def _enrich(site: Site, listing_site: Site) -> Site:
    contacts = list(site.contacts)
    known = {_person_key(c.name) for c in contacts}
    for contact in listing_site.contacts:
        key = _person_key(contact.name)
        if key and key not in known:
            contacts.append(contact)
            known.add(key)
    changes: dict[str, object] = {"contacts": tuple(contacts), "listing_match": True}
    if not site.facility.strip():
        changes["facility"] = listing_site.facility
        changes["facility_raw"] = listing_site.facility_raw
        changes["unrepaired"] = listing_site.unrepaired
    if not site.has_position and listing_site.has_position:
        for name in ("latitude", "longitude", "precision", "coordinate_source"):
            changes[name] = getattr(listing_site, name)
    if not site.zip and listing_site.zip:
        changes["zip"] = listing_site.zip
    return dataclasses.replace(site, **changes)  # type: ignore[arg-type]


_CREDENTIALS = _words("md phd pr prof professor dr doctor mr mrs ms msc pharmd")


def _person_key(name: str) -> frozenset[str]:
    """'Jean-Yves BLAY, MD' and 'Pr Jean-Yves Blay' give the same key."""
    return frozenset(w for w in fold(name.replace(",", " ")).split() if w not in _CREDENTIALS)

