"""How to reach a site: the one rule every output follows, and phone numbers read as numbers.

The rule (`reach`): the site's own people who have a phone number or an e-mail; failing
those, the trial's central contacts who have one (they answer for every site); failing those,
nobody — and then a patient is told to ask their oncologist to contact the investigator. The
CLI answer, the JSON (`reach` of each site), the referral sheet and the web page all show
what `reach` gives.

Phone numbers are read with the `phonenumbers` library, in the region of the site's country
(`gazetteer.record_country_code`): `same_phone` tells "03 22 45 59 14" and "+33 3 22 45 59 14" are
one number (a sync records no change), `tel_uri` links a number for a phone
("tel:+33322455914").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from trialfinder.models import Contact, Site, Trial

ReachScope = Literal["site", "trial", "none"]


@dataclass(frozen=True, slots=True)
class Reach:
    """Whom to call or write to about a site."""

    contacts: tuple[Contact, ...]
    """People with a phone number or an e-mail, in record order."""
    scope: ReachScope
    """"site": the site's own people; "trial": the trial's central contacts (the site has
    none with a phone or e-mail); "none": nobody in the record can be reached."""


def reach(site: Site, trial: Trial) -> Reach:
    """The one rule for how to reach a site (see the module's docstring)."""
    own = tuple(c for c in site.contacts if c.phone or c.email)
    if own:
        return Reach(own, "site")
    central = tuple(c for c in trial.central_contacts if c.phone or c.email)
    if central:
        return Reach(central, "trial")
    return Reach((), "none")


def same_phone(a: str | None, b: str | None, country: str | None = None) -> bool:
    """Whether two phone numbers are the same number: the same text or digits, or the same
    number as `phonenumbers` reads them (national or international form, spaces, dots, a
    leading 0 or +33), national forms read in the region of the site's ``country``."""
    if (a or "").strip() == (b or "").strip():
        return True
    if not a or not b:
        return False
    if digits(a) and digits(a) == digits(b):
        return True
    first, second = e164(a, country), e164(b, country)
    return first is not None and first == second


def tel_uri(phone: str | None, country: str | None = None) -> str | None:
    """A phone number as a ``tel:`` link in international form ("tel:+33322455914",
    extension as ";ext=12"); None when it does not read as a phone number."""
    if not phone:
        return None
    number = e164(phone, country)
    return f"tel:{number}" if number is not None else None


@lru_cache(maxsize=4096)
def e164(phone: str, country: str | None = None) -> str | None:
    """The number in E.164 form ("+33322455914", ";ext=…" appended), or None."""
    import phonenumbers

    from trialfinder.gazetteer import record_country_code

    try:
        number = phonenumbers.parse(phone, record_country_code(country))
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"{text};ext={number.extension}" if number.extension else text


def digits(phone: str | None) -> str:
    """The digits of a phone number (any script's, as ``str.isdigit`` sees them)."""
    if not phone:
        return ""
    return "".join(ch for ch in phone if ch.isdigit())
