"""The seed listing of NCT02260505 as a Trial, typed from tests/fixtures/seed (for merge/sync
tests that must not depend on the listing parser): repaired facility names with the damaged
originals in facility_raw, investigators with their titles, no per-site status."""

from __future__ import annotations

from trialfinder.models import Contact, Site, Source, Status, Trial

# (investigator, title, repaired facility, facility as scraped, city as scraped)
SEED_SITES = [
    ("François BERTUCCI", "Pr", "Institut Paoli-Calmettes", None, "Marseille"),
    ("Florence DUFFAUD", "Pr", "Centre Hospitalier Universitaire La Timone", None,
     "Marseille"),
    ("Elsa KALBACHER", "Doctor", "CHRU de Besançon - Hôpital Minjoz",
     "CHRU de Besan on - H pital Minjoz", "Besançon"),
    ("Antoine ITALIANO", "Dr", "Institut Bergonié", "Institut Bergoni", "Bordeaux"),
    ("Rosine GUIMBAUD", "Pr", "Centre Hospitalier Universitaire Toulouse Purpan", None,
     "Toulouse"),
    ("Didier CUPISSOL", "Dr", "Centre Régional de Lutte contre le Cancer de Montpellier",
     "Centre R gional de Lutte contre le Cancer de Montpellier", "Montpellier"),
    ("Bruno LANDI", "Dr", "AP-HP Hôpital Européen Georges Pompidou",
     "AP-HP H pital Europ en Georges Pompidou", "Paris"),
    ("Elisabeth BOMPAS", "Dr", "Institut de Cancérologie de l'Ouest",
     "Institut de Canc rologie de l'Ouest", "Saint-Herblain"),
    ("Olivier COLLARD", "Dr", "Institut de cancérologie LUCIEN NEUWIRTH",
     "Institut de canc rologie LUCIEN NEUWIRTH", "Saint-priest-en-jarez"),
    ("Olivier BOUCHE", "Pr", "Centre Hospitalier universitaire Robert Debré",
     "Centre Hospitalier universitaire Robert Debr", "Reims"),
    ("Maria RIOS", "Dr", "Institut de Cancérologie de Lorraine",
     "Institut de Canc rologie de Lorraine", "Vandoeuvre-les-Nancy"),
    ("Nicolas PENEL", "Dr", "Centre Oscar Lambret", None, "Lille"),
    ("Jean-Yves BLAY", "Pr", "Centre Léon Bérard", "Centre L on B rard", "Lyon"),
    ("Axel LE CESNE", "Dr", "Institut de Cancérologie Gustave Roussy",
     "Institut de Canc rologie Gustave Roussy", "Villejuif"),
    ("Isabelle TROUILLOUD", "Dr", "AP-HP Hôpital Saint-Antoine", "AP-HP H pital Saint-Antoine",
     "Paris"),
    ("Jean-Emmanuel KURTZ", "Pr", "CHRU Strasbourg - Hôpital Hautepierre",
     "CHRU Strasbourg - H pital Hautepierre", "Strasbourg"),
]


def seed_listing_trial() -> Trial:
    sites = tuple(
        Site(
            facility=facility,
            city=city,
            country="France",
            facility_raw=raw,
            contacts=(Contact(name, role="PRINCIPAL_INVESTIGATOR", title=title),),
        )
        for name, title, facility, raw, city in SEED_SITES
    )
    return Trial(
        nct_id="NCT02260505",
        title="Efficiency of Imatinib Treatment Maintenance or Interruption After 3 Years of "
        "Adjuvant Treatment in Patients With Gastrointestinal Stromal Tumours (GIST)",
        source=Source(kind="listing", description="CenterWatch-style listing page",
                      as_of="2019-01"),
        status=Status.RECRUITING,
        last_update="2019-01",
        sites=sites,
    )
