"""Text and JSON renderings shared by the commands. Pure: values in, strings/dicts out.

Statuses are said as `recruitment` rules them, ages as `freshness` does; every sentence a
person reads goes through `i18n._`. JSON keys and enum values stay English and stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import groupby
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from trialfinder.contacts import reach, tel_uri
from trialfinder.freshness import (
    age_sentence,
    as_of_words,
    copy_warning,
    date_words,
    messages,
    sponsor_caution,
)
from trialfinder.i18n import _, ngettext, pgettext
from trialfinder.models import Contact, Precision, Site, Source, Trial
from trialfinder.recruitment import (
    Recruitment,
    Standing,
    StatusFrom,
    status_source_words,
    status_with_source,
    status_words,
)
from trialfinder.words import (
    distance_words,
    facility_words,
    matched_words,
    place_title,
    precision_name,
    precision_words,
    record_source_words,
    site_where,
    source_words,
    unplaced_words,
)

if TYPE_CHECKING:
    from trialfinder.gazetteer import Place, Resolution
    from trialfinder.geocode import Placement
    from trialfinder.nearest import RankedSite
    from trialfinder.queries import NearestAnswer, TrialView


def place_json(place: Place) -> dict[str, Any]:
    return {
        "name": place.name,
        "country": place.country,
        "country_name": place.country_name,
        "region": place.region,
        "department": place.department,
        "postal_code": place.postal_code,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "precision": place.precision.value,
    }


# --- the rules in words (status: recruitment.py; age: freshness.py) ------------------------


def as_of_text(source: Source) -> str:
    """`Source.as_of` as a source line gives it: "January 2019" ("janvier 2019"), a full date
    as written ("2024-03-15"), "an unknown date"."""
    if not source.as_of:
        return _("an unknown date")
    if len(source.as_of.split("-")) == 2:
        return date_words(source.as_of)
    return source.as_of


def position_text(site: Site) -> str:
    """How a site is placed: "city centre (city + state; bundled gazetteer)", "city centre
    (registry geoPoint)", "position unknown (…why…)"."""
    if not site.has_position:
        return unplaced_words(site.unplaced_reason)
    text = precision_words(site.precision)
    matched = " + ".join(matched_words(f) for f in site.matched) if site.matched else None
    source = source_words(site.coordinate_source) if site.coordinate_source else None
    if matched and source:
        return _("{precision} ({matched}; {source})").format(precision=text, matched=matched,
                                                             source=source)
    if matched or source:
        return _("{precision} ({how})").format(precision=text, how=matched or source)
    return text


def shared_words(site: Site, count: int) -> str:
    """Why sites sharing one position are equally near, said once per group."""
    if site.precision is Precision.CITY and site.city:
        return ngettext(
            "{count} site placed at the centre of {city} (the record gives no street address)",
            "{count} sites placed at one point, the centre of {city} (the record gives no "
            "street address)", count).format(count=count, city=site.city)
    if site.precision is Precision.POSTAL_CODE:
        return ngettext(
            "{count} site placed at the centre of its postal code area (the record gives no "
            "street address)",
            "{count} sites placed at one point, the centre of their postal code area (the "
            "record gives no street address)", count).format(count=count)
    return ngettext("{count} site at this point", "{count} sites placed at one point",
                    count).format(count=count)


def status_line(answer: Recruitment, words: str | None = None) -> str:
    """"Status: Recruiting", or the phrase alone when it says itself ("Status unknown (…)",
    "No status in the record"). ``words``: the status in other words (with its source)."""
    words = status_words(answer) if words is None else words
    if answer.standing in (Standing.UNKNOWN, Standing.NOT_STATED) and answer.status_from in (
        StatusFrom.TRIAL, StatusFrom.NONE, StatusFrom.LISTING_ONLY
    ):
        return words
    return _("Status: {status}").format(status=words)


def status_detail_line(answer: Recruitment, site: Site | None) -> str:
    """"Status: Recruiting (the trial's status; the record gives none for this site)"; a
    listing page's words say their source themselves."""
    return status_line(answer, status_with_source(answer, site))


def trial_status_line(view: TrialView) -> str:
    """"Trial status: Recruiting"; where it comes from when it is not the registry's status
    ("“Open” (as the listing page says)" says it itself)."""
    answer = view.recruitment
    if answer.status_from is StatusFrom.NONE:
        return _("Trial status: not stated in the record")
    return _("Trial status: {status}").format(status=status_words(answer))


# --- JSON -------------------------------------------------------------------------------------


def recruitment_json(answer: Recruitment, site: Site | None = None) -> dict[str, Any]:
    """The status rule's answer: stable values, and the words a person reads."""
    return {
        "status": answer.status.value if answer.status else None,
        "standing": answer.standing.value,
        "status_from": answer.status_from.value,
        "recruiting": answer.recruiting,
        "status_words": status_words(answer),
        "status_source": status_source_words(answer, site),
        "last_known_status": answer.last_known.value if answer.last_known else None,
        "status_verified": answer.verified,
        "not_seen_since": answer.not_seen_since,
    }


def freshness_json(view: TrialView) -> dict[str, Any]:
    fresh = view.freshness
    return {
        "copy_date": fresh.copy_label or None,
        "copy_age": as_of_words(fresh.copy_label, fresh.copy_date, fresh.today),
        "fetched": fresh.fetched,
        "stale": fresh.stale,
        "sponsor_date": fresh.sponsor_label,
        "sponsor_age": (as_of_words(fresh.sponsor_label, fresh.sponsor_date, fresh.today)
                        if fresh.sponsor_label and fresh.sponsor_date else None),
        "unconfirmed": fresh.unconfirmed,
        "today": fresh.today.isoformat(),
    }


def trial_json(view: TrialView) -> dict[str, Any]:
    from trialfinder.merge import status_origin_json

    trial = view.trial
    overall = recruitment_json(view.recruitment)
    return {
        "nct_id": trial.nct_id,
        "title": trial.title,
        "acronym": trial.acronym,
        "status": trial.status.value if trial.status else None,
        "status_text": trial.status_text,
        **{k: v for k, v in overall.items() if k != "status"},
        "as_of": trial.source.as_of,
        "source": trial.source.description,
        "source_kind": trial.source.kind,
        "source_url": trial.source.url,
        "status_origin": status_origin_json(trial),
        "stale": view.stale,
        "freshness": freshness_json(view),
        "registry_url": trial.registry_url,
    }


def site_json(site: Site, answer: Recruitment, ranked: RankedSite | None = None,
              *, trial: Trial | None = None) -> dict[str, Any]:
    """One site: where, its status by the rule (``status`` is the registry value it rests on,
    or null), and, in an answer, its distance and rank (equally near sites share one); with
    its ``trial``, how to reach it (`contacts.reach`: whom, phone links included)."""
    investigators = site.investigators
    data: dict[str, Any] = {
        "facility": site.facility,
        "facility_raw": site.facility_raw,
        "city": site.city,
        "state": site.state,
        "zip": site.zip,
        "country": site.country,
        **recruitment_json(answer, site),
        "recorded_status": site.status.value if site.status else None,
    }
    if ranked is not None:
        distance = ranked.distance_km
        data["distance_km"] = round(distance, 1) if distance is not None else None
        data["rank"] = ranked.rank
        data["equally_near"] = ranked.group_size if ranked.rank else 0
    data.update(
        {
            "latitude": site.latitude,
            "longitude": site.longitude,
            "precision": site.precision.value,
            "position": position_text(site),
            "matched": list(site.matched),
            "unplaced_reason": site.unplaced_reason,
            "coordinate_source": site.coordinate_source,
            "shared_position": site.shared_position,
            "investigator": investigators[0].display if investigators else None,
            "investigators": [c.display for c in investigators],
            "contacts": [
                {"name": c.name, "role": c.role, "title": c.title, "phone": c.phone,
                 "email": c.email}
                for c in site.contacts
            ],
            "unrepaired": list(site.unrepaired),
            "listing_match": site.listing_match,
        }
    )
    if trial is not None:
        data["reach"] = reach_json(site, trial)
    return data


def reach_json(site: Site, trial: Trial) -> dict[str, Any]:
    """`contacts.reach` as JSON: the scope ("site", "trial" or "none") and the people, each
    phone with its international ``tel:`` link (null when it is no phone number)."""
    found = reach(site, trial)
    return {
        "scope": found.scope,
        "contacts": [
            {"name": c.name, "title": c.title, "role": c.role, "phone": c.phone,
             "tel": tel_uri(c.phone, site.country), "email": c.email}
            for c in found.contacts
        ],
    }


def nearest_json(answer: NearestAnswer, *, terminal: bool = True) -> dict[str, Any]:
    """`nearest --json` (and the web API): ``terminal`` False gives advice for a patient
    instead of commands to run."""
    view = answer.view
    return {
        "place": place_json(answer.resolution.place),
        "place_notes": list(answer.resolution.notes),
        "place_alternatives": [p.label for p in answer.resolution.alternatives],
        "trial": trial_json(view),
        "warnings": warnings(view, terminal=terminal),
        "sites": [site_json(r.site, r.recruitment, r, trial=view.trial)
                  for r in answer.ranked],
        "sites_matching": answer.total_matching,
        "sites_unplaced": len(answer.unplaced),
        "limit": answer.limit,
        "include_all": answer.include_all,
    }


def sites_json(view: TrialView, *, terminal: bool = True) -> dict[str, Any]:
    return {
        "trial": trial_json(view),
        "warnings": warnings(view, terminal=terminal),
        "sites": [site_json(s, view.site_recruitment(s), trial=view.trial)
                  for s in view.trial.sites],
    }


def warnings(view: TrialView, *, terminal: bool = True) -> list[str]:
    """What every output says about the record's age (`freshness.messages`: the copy's age,
    the sponsor's word), then the notes from placing its sites."""
    return [*messages(view.freshness, view.trial.nct_id, terminal=terminal), *view.notes]


# --- text: the plain answer ---------------------------------------------------------------


def ask_for_line(site: Site) -> str | None:
    """Whom to ask for: "Ask for: Jean-Yves BLAY, Pr (investigator)"."""
    investigators = site.investigators
    if not investigators:
        return None
    names = "; ".join(c.display for c in investigators)
    return ngettext("Ask for: {names} (investigator)", "Ask for: {names} (investigators)",
                    len(investigators)).format(names=names)


def reach_lines(site: Site, trial: Trial) -> list[str]:
    """How to reach the site (`contacts.reach`): its people's phones and e-mails, else the
    trial's central contacts; nothing when nobody can be reached (`NO_CONTACT_ADVICE`)."""
    found = reach(site, trial)
    if found.scope == "site":
        return [_("Contact: {who}").format(who=_contact_words(c)) for c in found.contacts]
    return [_("Contact (for the whole trial): {who}").format(who=_contact_words(c))
            for c in found.contacts]


def no_contact_advice(count: int) -> str:
    """What a patient does when the record gives no phone or e-mail for ``count`` sites."""
    return ngettext(
        "No phone or e-mail in the record for this centre: ask your oncologist to contact the "
        "investigator (registry page below).",
        "No phone or e-mail in the record for these centres: ask your oncologist to contact "
        "the investigator (registry page below).", count)


def _contact_words(contact: Contact) -> str:
    return ", ".join([contact.display, *(b for b in (contact.phone, contact.email) if b)])


def _site_head(site: Site) -> str:
    name = facility_words(site)
    place = site_where(site)
    return f"{name} ({place})" if place else name


def _plain_site(site: Site, trial: Trial, answer: Recruitment, include_all: bool,
                indent: str, unreachable: list[Site]) -> list[str]:
    """A site's lines in the plain answer; a site nobody can be reached at goes into
    ``unreachable`` (the advice is given once, after the list)."""
    lines = []
    if include_all or not answer.recruiting:
        lines.append(indent + status_line(answer))
    ask = ask_for_line(site)
    if ask:
        lines.append(indent + ask)
    reach_now = reach_lines(site, trial)
    if not reach_now:
        unreachable.append(site)
    lines.extend(indent + line for line in reach_now)
    return lines


def rank_groups(placed: Iterable[RankedSite]) -> list[list[RankedSite]]:
    """Placed sites, ranked, in groups of one rank (equally near sites together)."""
    return [list(group) for _rank, group in groupby(placed, key=attrgetter("rank"))]


def _ranked_lines(answer: NearestAnswer, alone: Callable[[RankedSite], list[str]],
                  member: Callable[[RankedSite], list[str]], *, plain: bool) -> list[str]:
    """The ranking as both text answers lay it out: a rank for each site or group of equally
    near sites, then the recruiting sites with no position. ``alone`` words a site ranked on
    its own, ``member`` one in a group or unplaced; ``plain`` for the patient's distances."""
    lines: list[str] = []
    placed = rank_groups(answer.placed)
    for group in placed:
        first = group[0]
        if len(group) == 1:
            lines.extend(alone(first))
            continue
        lines.append(_("{rank}. Equally near, {distance}: {shared}").format(
            rank=first.rank, distance=distance_words(first.distance_km or 0.0, plain=plain),
            shared=shared_words(first.site, len(group))))
        for item in group:
            lines.extend(member(item))
    if not placed and not answer.unplaced:
        lines.extend(_nothing_lines(answer))
    if answer.unplaced:
        if placed:
            lines.append("")
        lines.append(_("Position unknown — may be near you:"))
        for item in answer.unplaced:
            lines.extend(member(item))
    return lines


def nearest_head(answer: NearestAnswer) -> str:
    place = place_title(answer.resolution.place)
    fresh = answer.view.freshness
    if answer.include_all:
        return _("Nearest sites to {place}, whatever their status").format(place=place)
    if fresh.stale:
        return _("Nearest sites recorded as recruiting in {date}, to {place}").format(
            date=date_words(fresh.copy_label), place=place)
    return _("Nearest recruiting sites to {place}").format(place=place)


def _nothing_lines(answer: NearestAnswer) -> list[str]:
    trial = answer.view.trial
    if not trial.sites:
        return [_("This record lists no site.")]
    if answer.include_all:
        return [_("No site of this trial is placed within reach.")]
    overall = answer.view.recruitment
    if overall.standing is Standing.UNKNOWN:
        return [_("No site of this trial is offered as recruiting. {status}.").format(
                    status=status_words(overall)),
                _("Use --all to see its sites.")]
    return [_("No site of this trial is recorded as recruiting (trial status: {status}).")
            .format(status=status_words(overall)),
            _("Use --all to see every site whatever its status.")]


def nearest_text(answer: NearestAnswer, *, details: bool = False) -> str:
    """The answer a patient reads first: the nearest site(s), how far, whom to ask for, how
    to reach them, how old the information is. ``details`` adds how each site is placed and
    where each status comes from."""
    if details:
        return _nearest_details(answer)
    view = answer.view
    trial = view.trial
    lines = [nearest_head(answer)]
    lines.extend(_("Note: {note}").format(note=n) for n in answer.resolution.notes)
    lines.append(_("Trial {nct_id}: {title}").format(nct_id=trial.nct_id, title=trial.title))
    lines.append("")
    unreachable: list[Site] = []

    def alone(item: RankedSite) -> list[str]:
        distance = distance_words(item.distance_km or 0.0, plain=True)
        return [f"{item.rank}. {_site_head(item.site)} — {distance}",
                *_plain_site(item.site, trial, item.recruitment, answer.include_all, "   ",
                             unreachable)]

    def member(item: RankedSite) -> list[str]:
        return ["   " + _site_head(item.site),
                *_plain_site(item.site, trial, item.recruitment, answer.include_all, "      ",
                             unreachable)]

    lines.extend(_ranked_lines(answer, alone, member, plain=True))
    lines.append("")
    if unreachable:
        lines.append(no_contact_advice(len(unreachable)))
    lines.extend(age_lines(view))
    lines.append(_("Registry page: {url}").format(url=trial.registry_url))
    lines.extend(_limit_lines(answer))
    return "\n".join(lines)


def _limit_lines(answer: NearestAnswer) -> list[str]:
    shown, total = len(answer.placed), answer.total_matching
    lines = []
    if answer.limit is not None and shown > answer.limit:
        lines.append(_("The limit of {limit} fell among equally near sites: all {shown} are "
                       "shown.").format(limit=answer.limit, shown=shown))
    if total > shown:
        lines.append(ngettext("Showing {shown} of {total}; use --limit to see more.",
                              "Showing {shown} of {total}; use --limit to see more.",
                              shown).format(shown=shown, total=total))
    return lines


# --- text: details, sites ----------------------------------------------------------------


def age_lines(view: TrialView, *, terminal: bool = True) -> list[str]:
    """How old the information is, said once: the warning and the caution when they apply
    (each names its date), else the plain age; then the notes from placing the sites."""
    return [line for line, _warns in age_notes(view, terminal=terminal)]


def age_notes(view: TrialView, *, terminal: bool = True) -> list[tuple[str, bool]]:
    """`age_lines`, each marked True when it warns (anything but the plain age)."""
    fresh = view.freshness
    warning = copy_warning(fresh, view.trial.nct_id, terminal=terminal)
    caution = sponsor_caution(fresh)
    lines = []
    if warning:
        lines.append((_("Warning: {warning}").format(warning=warning), True))
    if caution:
        lines.append((_("Caution: {caution}").format(caution=caution), True))
    if not lines:
        lines.append((age_sentence(fresh, record_source_words(view.trial.source.description)),
                      False))
    lines.extend((_("Warning: {warning}").format(warning=n), True) for n in view.notes)
    return lines


def provenance_lines(view: TrialView) -> list[str]:
    trial = view.trial
    source = trial.source
    if source.retrieved:
        where = _("Source: {source}, as of {as_of} (fetched {fetched})").format(
            source=record_source_words(source.description), as_of=as_of_text(source),
            fetched=source.retrieved[:10])
    else:
        where = _("Source: {source}, as of {as_of}").format(
            source=record_source_words(source.description), as_of=as_of_text(source))
    from trialfinder.merge import status_origin

    origin = status_origin(trial)  # a merged record: which source the status comes from
    return [
        _("{nct_id}: {title}").format(nct_id=trial.nct_id, title=trial.title),
        trial_status_line(view),
        where,
        *([origin] if origin else []),
        *age_lines(view),
    ]


def site_block(head: str, site: Site, answer: Recruitment, indent: str = "   ") -> list[str]:
    """A site in full: investigators, contacts, status and where it comes from, position."""
    lines = [head]
    investigators = site.investigators
    if investigators:
        lines.append(indent + _("Investigator: {names}").format(
            names="; ".join(c.display for c in investigators)))
    for contact in site.contacts:
        if contact.is_investigator and not (contact.phone or contact.email):
            continue
        lines.append(indent + _("Contact: {who}").format(who=_contact_words(contact)))
    lines.append(indent + status_detail_line(answer, site))
    lines.append(indent + _("Position: {position}").format(position=position_text(site)))
    if site.unrepaired:
        lines.append(indent + _("Note: the name may have lost accents here: {tokens}").format(
            tokens=", ".join(site.unrepaired)))
    return lines


def _detail_head(site: Site, distance_km: float | None, prefix: str) -> str:
    where = site_where(site)
    head = f"{prefix}{facility_words(site)} — {where}"
    if distance_km is not None:
        head += f" — {distance_words(distance_km)}"
    return head


def _nearest_details(answer: NearestAnswer) -> str:
    view = answer.view
    lines = [nearest_head(answer)]
    lines.extend(_("Note: {note}").format(note=n) for n in answer.resolution.notes)
    lines.extend(provenance_lines(view))
    lines.append("")

    def alone(item: RankedSite) -> list[str]:
        return site_block(_detail_head(item.site, item.distance_km, f"{item.rank}. "),
                          item.site, item.recruitment)

    def member(item: RankedSite) -> list[str]:
        return site_block(_detail_head(item.site, None, "   - "), item.site, item.recruitment,
                          indent="     ")

    lines.extend(_ranked_lines(answer, alone, member, plain=False))
    lines.append("")
    lines.append(_("Registry page: {url}").format(url=view.trial.registry_url))
    lines.extend(_limit_lines(answer))
    return "\n".join(lines)


def sites_text(view: TrialView) -> str:
    trial = view.trial
    lines = provenance_lines(view)
    lines.append(ngettext("{n} site", "{n} sites", len(trial.sites)).format(n=len(trial.sites)))
    lines.append("")
    for i, site in enumerate(trial.sites, start=1):
        lines.extend(site_block(_detail_head(site, None, f"{i}. "), site,
                                view.site_recruitment(site)))
    return "\n".join(lines)


SITE_CSV_FIELDS = (
    "nct_id", "facility", "city", "state", "zip", "country", "status", "status_from",
    "investigators", "contacts", "contact_names", "contact_phones", "contact_emails", "latitude",
    "longitude", "precision", "coordinate_source", "facility_raw", "standing", "status_words",
    "position",
)
"""One row a site. ``contacts`` keeps each person with their own phone and e-mail
("Name (role): phone, email; …"); the contact_* columns list them for filtering. ``status``
is the registry status the site's standing rests on (empty when none)."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula ("=HYPERLINK(…)", "+33 1 …",
    "-2+3", "@SUM(…)") gets a leading apostrophe, so it is shown as text (CSV injection).
    Control characters become U+FFFD (`trialfinder.terminal.printable`), as in every text
    output. Numbers (latitude, longitude) are left alone."""
    if not isinstance(value, str):
        return value
    from trialfinder.terminal import printable

    value = printable(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def _contact_cell(contact: Any) -> str:
    text = contact.display
    if contact.role:
        text += f" ({contact.role.replace('_', ' ').lower()})"
    reach = ", ".join(b for b in (contact.phone, contact.email) if b)
    return f"{text}: {reach}" if reach else text


def site_csv_row(site: Site, view: TrialView) -> dict[str, Any]:
    data = site_json(site, view.site_recruitment(site))
    plain = [c for c in site.contacts if not c.is_investigator]
    row = {
        "nct_id": view.trial.nct_id,
        **{k: data[k] for k in ("facility", "city", "state", "zip", "country", "status",
                                "status_from", "latitude", "longitude", "precision",
                                "coordinate_source", "facility_raw", "standing",
                                "status_words", "position")},
        "investigators": "; ".join(data["investigators"]),
        "contacts": "; ".join(_contact_cell(c) for c in site.contacts),
        "contact_names": "; ".join(c.name for c in plain),
        "contact_phones": "; ".join(c.phone for c in site.contacts if c.phone),
        "contact_emails": "; ".join(c.email for c in site.contacts if c.email),
    }
    return {k: csv_safe(v) for k, v in row.items()}


def sites_csv(view: TrialView, *, excel: bool = False) -> str:
    """Every site as CSV text: UTF-8 (a byte-order mark first when ``excel``, which older
    Excel needs to read accents), one row a site, "\\n" line ends, formula-like cells
    neutralised by `csv_safe`."""
    import csv
    import io

    out = io.StringIO()
    if excel:
        out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=SITE_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for site in view.trial.sites:
        writer.writerow(site_csv_row(site, view))
    return out.getvalue()


# --- geocode and where (trialfinder.geocode) ----------------------------------------------


def geocode_json(placement: Placement, *, online: bool) -> dict[str, Any]:
    trial = placement.trial
    return {
        "nct_id": trial.nct_id,
        "online": online,
        "requests": placement.requests,
        "warnings": list(placement.warnings),
        "sites": [
            {
                "facility": s.facility,
                "city": s.city,
                "zip": s.zip,
                "country": s.country,
                "latitude": s.latitude,
                "longitude": s.longitude,
                "precision": s.precision.value,
                "source": s.coordinate_source,
                "shared_position": s.shared_position,
            }
            for s in trial.sites
        ],
    }


def geocode_text(placement: Placement, *, online: bool) -> str:
    from collections import Counter

    trial = placement.trial
    how = (
        _("online: {n} request(s) to Nominatim/OpenStreetMap").format(n=placement.requests)
        if online
        else _("offline: record, geocode cache, bundled gazetteer")
    )
    lines = [ngettext("{nct_id}: {n} site ({how})", "{nct_id}: {n} sites ({how})",
                      len(trial.sites)).format(nct_id=trial.nct_id, n=len(trial.sites), how=how),
             ""]
    for i, site in enumerate(trial.sites, start=1):
        lines.append(_detail_head(site, None, f"{i}. "))
        point = (
            f"{site.latitude:.4f}, {site.longitude:.4f} — "
            if site.latitude is not None and site.longitude is not None
            else ""
        )
        lines.append("   " + _("Position: {position}").format(
            position=point + position_text(site)))
    counts = Counter(s.precision for s in trial.sites)
    lines.append("")
    lines.append(_("Precision: {counts}").format(
        counts=", ".join(_("{count} {precision}").format(count=n, precision=precision_name(p))
                         for p, n in counts.most_common())))
    lines.extend(_("Warning: {warning}").format(warning=w) for w in placement.warnings)
    return "\n".join(lines)


def where_json(resolution: Resolution) -> dict[str, Any]:
    return {
        "query": resolution.query,
        "place": place_json(resolution.place),
        "label": resolution.place.label,
        "corrected_from": resolution.corrected_from,
        "alternatives": [p.label for p in resolution.alternatives],
        "notes": list(resolution.notes),
    }


def where_text(resolution: Resolution) -> str:
    place = resolution.place
    country = f"{place.country_name} ({place.country})" if place.country else place.country_name
    unknown = _("not known")
    lines = [
        _("“{query}” resolves to {place}").format(query=resolution.query, place=place.label),
        _("Name: {name}").format(name=place.name),
        _("Region: {region}").format(region=place.region or unknown),
        _("Department: {department}").format(department=place.department or unknown),
        _("Country: {country}").format(country=country or unknown),
        _("Postal code: {code}").format(code=place.postal_code or pgettext("postal code",
                                                                            "none")),
        _("Position: {position}").format(position=_("{latitude}, {longitude} ({precision})")
                                         .format(latitude=f"{place.latitude:.4f}",
                                                 longitude=f"{place.longitude:.4f}",
                                                 precision=precision_name(place.precision))),
    ]
    if resolution.corrected_from:
        lines.append(_("Corrected from: {text}").format(text=resolution.corrected_from))
    others = [p.label for p in resolution.alternatives]
    lines.append(_("Other candidates: {places}").format(
        places="; ".join(others) if others else pgettext("other candidates", "none")))
    lines.extend(_("Note: {note}").format(note=n) for n in resolution.notes)
    return "\n".join(lines)


# =========================================================================================
# search (search.py's section): `trialfinder search` as text and JSON, in the rules' words.
# =========================================================================================

if TYPE_CHECKING:
    from trialfinder.search import SearchAnswer, TrialHit


def _search_site_status(hit: TrialHit) -> str:
    """The site's status, and where it comes from unless it is the site's own."""
    answer = hit.site_recruitment
    if answer.status_from is StatusFrom.SITE:
        return status_words(answer)
    return status_with_source(answer, hit.site)


def _search_hit_json(hit: TrialHit) -> dict[str, Any]:
    site = {
        **site_json(hit.site, hit.site_recruitment, trial=hit.view.trial),
        "distance_km": round(hit.distance_km, 1) if hit.distance_km is not None else None,
        "record_position": hit.position,
    }
    ranking = {"rank": hit.rank, "equally_near": hit.equally_near if hit.rank else 0}
    return {**trial_json(hit.view), **ranking, "site": site}


def search_notes(answer: SearchAnswer) -> list[str]:
    """What the user must know about how the answer was found (one sentence each)."""
    notes = []
    if answer.method == "scan":
        notes.append(_(
            "This store has no search index and cannot be written here, so every site was "
            "read (slower). Open it once with write access (e.g. `trialfinder sync`) to "
            "index it."))
    if answer.terms_missing is not None:
        without, registry = answer.terms_missing
        notes.append(_(
            "{without} of the {registry} registry records in the store have no MeSH "
            "condition terms (they were synced before trialfinder read them), so a broader "
            "condition (\"lung cancer\" for \"NSCLC\") may miss them. Refresh them with "
            "`trialfinder sync --full …` (needs network)."
        ).format(without=without, registry=registry))
    if answer.placed_otherwise:
        notes.append(ngettext(
            "{n} trial in the store was placed by another version of trialfinder's placing "
            "rules or gazetteer, so its positions may be out of date. Place it again "
            "with `trialfinder geocode --refresh` (offline), or the next `trialfinder sync` "
            "will.",
            "{n} trials in the store were placed by another version of trialfinder's placing "
            "rules or gazetteer, so their positions may be out of date. Place them again "
            "with `trialfinder geocode --refresh` (offline), or the next `trialfinder sync` "
            "will.", answer.placed_otherwise).format(n=answer.placed_otherwise))
    return notes


def search_json(answer: SearchAnswer) -> dict[str, Any]:
    missing = answer.terms_missing
    return {
        "place": place_json(answer.resolution.place),
        "place_notes": list(answer.resolution.notes),
        "condition": answer.condition,
        "status": answer.status,
        "radius_km": answer.radius_km,
        "limit": answer.limit,
        "trials_in_store": answer.trials_in_store,
        "trials_matching": answer.trials_matching,
        "index": {
            "method": answer.method,
            "records_without_condition_terms": missing[0] if missing else None,
            "registry_records": missing[1] if missing else None,
            "trials_placed_by_another_version": answer.placed_otherwise,
        },
        "notes": search_notes(answer),
        "trials": [_search_hit_json(h) for h in answer.hits],
        "unplaced_trials": [_search_hit_json(h) for h in answer.unplaced],
        "unplaced_total": answer.unplaced_total,
        "more_equally_near": answer.more_equally_near,
    }


def _search_hit_lines(number: int | None, hit: TrialHit) -> list[str]:
    """A trial of the answer: numbered, or (``number`` None) as a member of a group of
    equally near trials, its lines indented under the group's."""
    site, fresh = hit.site, hit.view.freshness
    where = site_where(site)
    facility = facility_words(site)
    status = _search_site_status(hit)
    if hit.distance_km is None:
        site_line = _("   Site: {facility} — {where} — {position}, may be near you — "
                      "{status}").format(facility=facility, where=where,
                                         position=position_text(site), status=status)
    else:
        site_line = _("   Nearest site: {facility} — {where} — {distance} — {status}").format(
            facility=facility, where=where, distance=distance_words(hit.distance_km),
            status=status)
    details = [
        _("   {status}; record as of {when}").format(
            status=trial_status_line(hit.view),
            when=as_of_words(fresh.copy_label, fresh.copy_date, fresh.today)),
        site_line,
    ]
    if number is None:
        head = _("{nct_id}: {title}").format(nct_id=hit.nct_id, title=hit.trial.title)
        return [f"   - {head}", *("  " + line for line in details)]
    return [_("{number}. {nct_id}: {title}").format(number=number, nct_id=hit.nct_id,
                                                     title=hit.trial.title), *details]


def equally_near_trials_words(site: Site, count: int) -> str:
    """Why trials whose nearest sites share one position are equally near, said once."""
    if site.precision is Precision.CITY and site.city:
        return ngettext(
            "{count} trial whose nearest site is placed at the centre of {city}",
            "{count} trials whose nearest sites are placed at one point, the centre of {city} "
            "(the records give no street address)", count).format(count=count, city=site.city)
    return ngettext("{count} trial whose nearest site is at this point",
                    "{count} trials whose nearest sites are placed at one point",
                    count).format(count=count)


def _search_ranked_lines(hits: tuple[TrialHit, ...]) -> list[str]:
    """The placed trials by rank: one number per rank; a group of equally near trials under
    one heading, its trials in identifier order (which says nothing of nearness)."""
    lines: list[str] = []
    for _rank, same_rank in groupby(hits, key=attrgetter("rank")):
        group = list(same_rank)
        first = group[0]
        if len(group) == 1:
            lines.extend(_search_hit_lines(first.rank, first))
            continue
        lines.append(_("{rank}. Equally near, {distance}: {shared}").format(
            rank=first.rank, distance=distance_words(first.distance_km or 0.0),
            shared=equally_near_trials_words(first.site, len(group))))
        for hit in group:
            lines.extend(_search_hit_lines(None, hit))
    return lines


def search_text(answer: SearchAnswer) -> str:
    place = place_title(answer.resolution.place)
    recruiting = answer.status == "recruiting"
    if answer.radius_km is None:
        head = (_("Trials with recruiting sites near {place}") if recruiting
                else _("Trials with sites (any status) near {place}")).format(place=place)
    else:
        head = (_("Trials with recruiting sites near {place}, within {km} km") if recruiting
                else _("Trials with sites (any status) near {place}, within {km} km")).format(
            place=place, km=f"{answer.radius_km:g}")
    lines = [head]
    lines.extend(_("Note: {note}").format(note=n) for n in answer.resolution.notes)
    scope = ngettext("{n} trial in the store", "{n} trials in the store",
                     answer.trials_in_store).format(n=answer.trials_in_store)
    if answer.condition is not None:
        scope = ngettext("{scope}, {n} matching “{condition}”",
                         "{scope}, {n} matching “{condition}”", answer.trials_matching).format(
            scope=scope, n=answer.trials_matching, condition=answer.condition)
    lines.append(scope)
    lines.extend(_("Note: {note}").format(note=n) for n in search_notes(answer))
    lines.append("")
    if not answer.hits and not answer.unplaced:
        lines.append(_("No trial has a matching site within {km} km.").format(
            km=f"{answer.radius_km:g}") if answer.radius_km is not None
            else _("No trial has a matching site."))
        if recruiting:
            lines.append(_("Use --status all to see sites whatever their status."))
    lines.extend(_search_ranked_lines(answer.hits))
    if answer.more_equally_near:
        lines.append(_("More trials are as near as the last ones shown (listed by identifier, "
                       "not by distance); use --limit to see more."))
    if answer.unplaced:
        lines.append("")
        lines.append(_("Trials whose matching sites have no known position (they may be near "
                       "you):"))
        last_rank = answer.hits[-1].rank or 0 if answer.hits else 0
        for number, hit in enumerate(answer.unplaced, start=last_rank + 1):
            lines.extend(_search_hit_lines(number, hit))
        more = answer.unplaced_total - len(answer.unplaced)
        if more > 0:
            lines.append(ngettext("{n} more such trial; use --limit to see more.",
                                  "{n} more such trials; use --limit to see more.",
                                  more).format(n=more))
    hits = answer.hits + answer.unplaced
    stale = [h.view.freshness for h in hits if h.view.freshness.stale]
    if stale:
        oldest = min(stale, key=lambda f: f.copy_date)
        lines += ["", ngettext(
            "Warning: {n} of these records is a copy more than six months old (the oldest: "
            "{when}): recruitment may have changed. Refresh it with `trialfinder sync` "
            "(needs network) and confirm with the site.",
            "Warning: {n} of these records are copies more than six months old (the oldest: "
            "{when}): recruitment may have changed. Refresh them with `trialfinder sync` "
            "(needs network) and confirm with the site.", len(stale)).format(
            n=len(stale), when=as_of_words(oldest.copy_label, oldest.copy_date, oldest.today))]
    unconfirmed = [h for h in hits if h.view.freshness.unconfirmed
                   and not h.view.freshness.stale]
    if unconfirmed:
        lines += ["", ngettext(
            "Caution: the sponsor had not updated or verified {n} of these records for more "
            "than six months when it was copied: confirm recruitment with the site.",
            "Caution: the sponsor had not updated or verified {n} of these records for more "
            "than six months when they were copied: confirm recruitment with the site.",
            len(unconfirmed)).format(n=len(unconfirmed))]
    return "\n".join(lines)
