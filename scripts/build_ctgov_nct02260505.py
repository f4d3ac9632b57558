"""Build tests/fixtures/ctgov/built_NCT02260505_v{1,2}.json: BUILT records, not recorded.

No recorded API v2 response for NCT02260505 is available. These two files give the tests a
record of that trial in API v2 shape, assembled from the seed listing (title, descriptions,
the 16 centres and their investigators) plus facts typed by hand (accents restored, zip
codes, city-centre geoPoints copied from recorded responses of other studies for the same
cities). Site statuses, dates and contact desks are INVENTED for tests. Each file carries a
`_provenance` key saying so. v2 is v1 with a later lastUpdatePostDate, Centre Léon Bérard
ACTIVE_NOT_RECRUITING instead of RECRUITING, and Hôpital Saint-Antoine removed.

Run from the repository root: python scripts/build_ctgov_nct02260505.py
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "ctgov"
SEED = ROOT / "tests" / "fixtures" / "seed" / "000_6aeb1dc53d5a47c7.txt"

# City centres as the registry gives them (geoPoint), copied from recorded responses of other
# studies in tests/fixtures/ctgov; Besançon (absent there) from GeoNames.
CITY = {
    "Marseille": (43.29695, 5.38107),
    "Besançon": (47.24878, 6.01815),
    "Bordeaux": (44.84044, -0.5805),
    "Toulouse": (43.60426, 1.44367),
    "Montpellier": (43.61092, 3.87723),
    "Paris": (48.85341, 2.3488),
    "Saint-Herblain": (47.21765, -1.64841),
    "Saint-Priest-en-Jarez": (45.47501, 4.37614),
    "Reims": (49.25, 4.03333),
    "Vandœuvre-lès-Nancy": (48.65, 6.18333),
    "Lille": (50.63297, 3.05858),
    "Lyon": (45.74848, 4.84669),
    "Villejuif": (48.7939, 2.35992),
    "Strasbourg": (48.58392, 7.74553),
}

# (facility as a registry would spell it, city, zip, status, investigator as in the seed or
#  None when the registry record names nobody there, a contact desk or None)
SITES = [
    ("Institut Paoli-Calmettes", "Marseille", "13009", "RECRUITING",
     "François Bertucci, MD", None),
    ("CHU La Timone", "Marseille", "13005", "RECRUITING", "Florence Duffaud, MD", None),
    ("CHRU de Besançon - Hôpital Jean Minjoz", "Besançon", "25030", "RECRUITING",
     None, None),
    ("Institut Bergonié", "Bordeaux", "33076", "RECRUITING", "Antoine Italiano, MD",
     "recherche.clinique@bergonie.example.org"),
    ("CHU de Toulouse - Hôpital Purpan", "Toulouse", "31059", "RECRUITING",
     "Rosine Guimbaud, MD", None),
    ("Institut régional du Cancer de Montpellier", "Montpellier", "34298", "RECRUITING",
     None, None),
    ("Hôpital Européen Georges Pompidou", "Paris", "75015", "RECRUITING", "Bruno Landi, MD",
     None),
    ("Institut de Cancérologie de l'Ouest - Site Gauducheau", "Saint-Herblain", "44805",
     "RECRUITING", None, None),
    ("Institut de Cancérologie Lucien Neuwirth", "Saint-Priest-en-Jarez", "42270",
     "RECRUITING", "Olivier Collard, MD", None),
    ("CHU Reims - Hôpital Robert Debré", "Reims", "51092", "ACTIVE_NOT_RECRUITING",
     "Olivier Bouche, MD", None),
    ("Institut de Cancérologie de Lorraine", "Vandœuvre-lès-Nancy", "54519",
     "NOT_YET_RECRUITING", None, None),
    ("Centre Oscar Lambret", "Lille", "59020", "RECRUITING", "Nicolas Penel, MD", None),
    ("Centre Léon Bérard", "Lyon", "69373", "RECRUITING", "Jean-Yves Blay, MD",
     "essais.gist@clb.example.org"),
    ("Gustave Roussy", "Villejuif", "94805", "RECRUITING", "Axel Le Cesne, MD", None),
    ("Hôpital Saint-Antoine", "Paris", "75012", "RECRUITING", None, None),
    ("CHRU Strasbourg - Hôpital de Hautepierre", "Strasbourg", "67098", "RECRUITING",
     "Jean-Emmanuel Kurtz, MD", None),
]

PROVENANCE = {
    "kind": "BUILT, not recorded",
    "built_by": "scripts/build_ctgov_nct02260505.py",
    "from": "tests/fixtures/seed/000_6aeb1dc53d5a47c7.txt (listing, 'Last updated on "
    "January 2019'): title, descriptions, 16 centres, investigators",
    "typed_by_hand": "accents restored, registry-style facility names, zip codes (public "
    "hospital addresses, may be inexact), city-centre geoPoints copied from recorded "
    "responses for the same cities (Besançon from GeoNames)",
    "invented": "site statuses, overall status, all dates, contact desks (example.org)",
    "not_for": "any claim about the real trial",
}


def _seed_text(start: str, end: str) -> str:
    text = SEED.read_text(encoding="utf-8")
    body = text.split(start, 1)[1].split(end, 1)[0]
    return "\n\n".join(p.strip() for p in body.strip().split("\n\n") if p.strip())


def build_v1() -> dict:
    title = (
        "Efficiency of Imatinib Treatment Maintenance or Interruption After 3 Years of "
        "Adjuvant Treatment in Patients With Gastrointestinal Stromal Tumours (GIST)"
    )
    locations = []
    for facility, city, zip_code, status, investigator, desk in SITES:
        lat, lon = CITY[city]
        location: dict = {
            "facility": facility,
            "status": status,
            "city": city,
            "zip": zip_code,
            "country": "France",
        }
        contacts = []
        if desk:
            contacts.append({"name": "Clinical research office", "role": "CONTACT",
                             "email": desk})
        if investigator:
            contacts.append({"name": investigator, "role": "PRINCIPAL_INVESTIGATOR"})
        if contacts:
            location["contacts"] = contacts
        location["geoPoint"] = {"lat": lat, "lon": lon}
        locations.append(location)
    return {
        "_provenance": {**PROVENANCE, "version": "v1"},
        "protocolSection": {
            "identificationModule": {
                "nctId": "NCT02260505",
                "orgStudyIdInfo": {"id": "IMADGIST (built fixture)"},
                "organization": {"fullName": "Centre Leon Berard", "class": "OTHER"},
                "briefTitle": title,
                "officialTitle": title,
                "acronym": "IMADGIST",
            },
            "statusModule": {
                "statusVerifiedDate": "2023-04",
                "overallStatus": "RECRUITING",
                "startDateStruct": {"date": "2014-12", "type": "ACTUAL"},
                "lastUpdateSubmitDate": "2023-04-28",
                "lastUpdatePostDateStruct": {"date": "2023-05-02", "type": "ACTUAL"},
            },
            "sponsorCollaboratorsModule": {
                "leadSponsor": {"name": "Centre Leon Berard", "class": "OTHER"}
            },
            "descriptionModule": {
                "briefSummary": _seed_text("Brief description of study", "Detailed Study"),
                "detailedDescription": _seed_text("Detailed Study Description",
                                                  "Clinical Study Identifier"),
            },
            "conditionsModule": {"conditions": ["Gastrointestinal Stromal Tumors"]},
            "designModule": {"studyType": "INTERVENTIONAL", "phases": ["PHASE3"]},
            "contactsLocationsModule": {
                "centralContacts": [
                    {"name": "Study coordination (built fixture)", "role": "CONTACT",
                     "email": "imadgist@example.org"}
                ],
                "overallOfficials": [
                    {"name": "Jean-Yves Blay, MD", "affiliation": "Centre Léon Bérard",
                     "role": "PRINCIPAL_INVESTIGATOR"}
                ],
                "locations": locations,
            },
        },
        "hasResults": False,
    }


def build_v2(v1: dict) -> dict:
    v2 = copy.deepcopy(v1)
    v2["_provenance"]["version"] = "v2 = v1 + later update, Centre Léon Bérard "
    v2["_provenance"]["version"] += "ACTIVE_NOT_RECRUITING, Hôpital Saint-Antoine removed"
    status = v2["protocolSection"]["statusModule"]
    status["statusVerifiedDate"] = "2024-03"
    status["lastUpdateSubmitDate"] = "2024-03-12"
    status["lastUpdatePostDateStruct"] = {"date": "2024-03-15", "type": "ACTUAL"}
    locations = v2["protocolSection"]["contactsLocationsModule"]["locations"]
    for location in locations:
        if location["facility"] == "Centre Léon Bérard":
            location["status"] = "ACTIVE_NOT_RECRUITING"
    locations[:] = [loc for loc in locations if loc["facility"] != "Hôpital Saint-Antoine"]
    return v2


def main() -> None:
    v1 = build_v1()
    for name, record in (("v1", v1), ("v2", build_v2(v1))):
        path = OUT / f"built_NCT02260505_{name}.json"
        path.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", "utf-8")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
