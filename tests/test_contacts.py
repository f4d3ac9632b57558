"""How to reach a site, and phone numbers read as numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trialfinder.contacts import digits, reach, same_phone, tel_uri
from trialfinder.models import Contact, Site, Source, Trial


def _trial(*sites: Site, central: tuple[Contact, ...] = ()) -> Trial:
    return Trial("NCT00000001", "T", Source("registry", "API", "2025-01"), sites=sites,
                 central_contacts=central)


def test_reach_the_site_first_then_the_trial_then_nobody() -> None:
    """The site's own people with a phone or e-mail come first; else the trial's central
    contacts with one; else nobody (a name alone is no way to reach anyone)."""
    desk = Contact("Desk", role="CONTACT", phone="04 78 78 28 28")
    named = Contact("Pr X", role="PRINCIPAL_INVESTIGATOR")
    central = Contact("Study office", email="study@example.org")
    with_desk = Site("A", "Lyon", "France", contacts=(named, desk))
    silent = Site("B", "Lyon", "France", contacts=(named,))
    assert reach(with_desk, _trial(with_desk, central=(central,))).contacts == (desk,)
    answer = reach(silent, _trial(silent, central=(central,)))
    assert answer.scope == "trial" and answer.contacts == (central,)
    nobody = reach(silent, _trial(silent, central=(Contact("No way"),)))
    assert nobody.scope == "none" and nobody.contacts == ()


@pytest.mark.parametrize(("phone", "country", "uri"), [
    ("03 22 45 59 14", "France", "tel:+33322455914"),
    ("+33 (0)3 22 45 59 14", None, "tel:+33322455914"),
    ("(212) 555-0100", "United States", "tel:+12125550100"),
    ("04 78 78 28 28 ext. 12", "France", "tel:+33478782828;ext=12"),
    ("0262 90 50 50", "Réunion", "tel:+262262905050"),
    ("not a number", "France", None),
    ("", "France", None),
])
def test_tel_links_are_international(phone: str, country: str | None, uri: str | None) -> None:
    """A number is linked in international form, read in the site's country; text that is
    no phone number gets no link."""
    assert tel_uri(phone, country) == uri


@pytest.mark.parametrize(("a", "b", "country", "same"), [
    ("03 22 45 59 14", "+33 3 22 45 59 14", "France", True),
    ("03.22.45.59.14", "+33 (0)3 22 45 59 14", "France", True),
    ("0322455914", "0033 3 22 45 59 14", "France", True),
    ("(212) 555-0100", "+1 212 555 0100", "United States", True),
    ("030 1234567", "+49 30 1234567", "Germany", True),
    ("03 22 45 59 14", "03 22 45 59 15", "France", False),
    ("03 22 45 59 14", "+32 3 22 45 59 14", "France", False),
    ("03 22 45 59 14", "+33 3 22 45 59 14", None, False),  # no region: not provably one
    ("+33 3 22 45 59 14 ext. 12", "+33 3 22 45 59 14", "France", False),
    (None, "", "France", True),
    (None, "03 22 45 59 14", "France", False),
    ("not a number", "+33 3 22 45 59 14", "France", False),
    ("N/A", "see the website", "France", False),  # two texts with no digits: not one number
    ("N/A", "N/A", "France", True),  # the same text
])
def test_phone_numbers_compared_as_numbers(a: str | None, b: str | None, country: str | None,
                                           same: bool) -> None:
    """Formatting, a national or international prefix and the trunk 0 do not make two numbers
    differ; other digits, another country's prefix or an extension do."""
    assert same_phone(a, b, country) is same
    assert same_phone(b, a, country) is same


@given(st.from_regex(r"0[1-9]( ?[0-9]{2}){4}", fullmatch=True))
def test_a_french_number_in_any_form_is_the_same(national: str) -> None:
    """Any French national number equals its international and dotted forms."""
    digits = national.replace(" ", "")
    international = "+33 " + digits[1:]
    dotted = ".".join(digits[i:i + 2] for i in range(0, 10, 2))
    assert same_phone(national, international, "France")
    assert same_phone(dotted, international, "France")
    assert same_phone(national, national, None)


def test_contact_phone_digits_in_any_script() -> None:
    """Digits of any script count, the rest is dropped."""
    assert digits("+33 (0)4 78-78") == "330478" + "78"
    assert digits("٠١٢ 34²") == "٠١٢34²"
    assert digits(None) == ""


def test_a_person_s_title_is_said_once() -> None:
    """A name with its title ("Jean DUPONT, MD"), unless the name already says it: the CLI,
    the map, the referral sheet (`Contact.display`) and the web page use the one rule."""
    from trialfinder.models import Contact, person_words

    assert Contact(name="Jean DUPONT", title="MD").display == "Jean DUPONT, MD"
    assert Contact(name="Jean DUPONT, MD", title="MD").display == "Jean DUPONT, MD"
    assert Contact(name="Desk").display == person_words("Desk", None) == "Desk"
