"""A 16-site trial built from the models, for the map tests (no bundled record needed)."""

from __future__ import annotations

from trialfinder.gazetteer import Place
from trialfinder.models import Contact, Precision, Site, Source, Status, Trial

HOSTILE = "<img src=x onerror=alert(1)>"

# facility, city, latitude, longitude, own status
_SITES = [
    ("Hôpital Édouard Herriot", "Lyon", 45.7485, 4.8467, Status.RECRUITING),
    ("Centre Léon Bérard", "Lyon", 45.7485, 4.8467, None),
    ("CHU de Saint-Étienne", "Saint-Étienne", 45.4339, 4.3903, Status.NOT_YET_RECRUITING),
    ("CHU Grenoble Alpes", "Grenoble", 45.1885, 5.7245, Status.COMPLETED),
    ("Hôpital de la Timone", "Marseille", 43.2965, 5.3698, Status.RECRUITING),
    ("CHU de Montpellier", "Montpellier", 43.6109, 3.8772, Status.UNKNOWN),
    ("CHU de Toulouse", "Toulouse", 43.6047, 1.4442, Status.RECRUITING),
    ("CHU de Bordeaux", "Bordeaux", 44.8378, -0.5792, Status.ACTIVE_NOT_RECRUITING),
    ("CHU de Nantes", "Nantes", 47.2184, -1.5536, Status.RECRUITING),
    ("CHU de Rennes", "Rennes", 48.1173, -1.6778, Status.WITHDRAWN),
    ("Hôpital Européen Georges-Pompidou", "Paris", 48.8566, 2.3522, Status.RECRUITING),
    ("Hôpital Cochin", "Paris", 48.8566, 2.3522, Status.NOT_YET_RECRUITING),
    ("CHU de Lille", "Lille", 50.6292, 3.0573, Status.RECRUITING),
    ("CHU de Strasbourg", "Strasbourg", 48.5734, 7.7521, Status.TERMINATED),
    (HOSTILE, "Dijon", 47.322, 5.0415, Status.RECRUITING),
    ("Centre Hospitalier de Brive", "Brive-la-Gaillarde", None, None, Status.RECRUITING),
]


def sixteen_site_trial(*, as_of: str = "2019-01") -> Trial:
    sites = []
    for facility, city, lat, lon, status in _SITES:
        contacts = (
            Contact(name=f"Dr {city}", role="PRINCIPAL_INVESTIGATOR"),
            Contact(name="Secrétariat", role="CONTACT", phone="+33 4 72 00 00 00",
                    email="essais@example.org"),
        )
        if facility == HOSTILE:
            contacts = (
                Contact(name=HOSTILE, role="PRINCIPAL_INVESTIGATOR"),
                Contact(name="`${alert(2)}`", role="CONTACT", phone=HOSTILE,
                        email='"><script>alert(3)</script>'),
            )
        sites.append(
            Site(
                facility=facility,
                city=city,
                country="France",
                status=status,
                latitude=lat,
                longitude=lon,
                precision=Precision.CITY if lat is not None else Precision.UNKNOWN,
                coordinate_source="registry geoPoint" if lat is not None else None,
                contacts=contacts,
                shared_position=city in ("Lyon", "Paris"),
            )
        )
    return Trial(
        nct_id="NCT02260505",
        title="A trial with sixteen French sites {{ 7*7 }}",
        acronym="TEST",
        source=Source(kind="built", description="Built for tests", as_of=as_of),
        status=Status.RECRUITING,
        sites=tuple(sites),
    )


def lyon() -> Place:
    return Place(
        name="Lyon", country="FR", country_name="France", region="Auvergne-Rhône-Alpes",
        department="69", postal_code="69001", latitude=45.7578, longitude=4.8320,
        population=522000, precision=Precision.CITY,
    )
