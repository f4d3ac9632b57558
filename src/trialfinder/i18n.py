"""Translations of everything a person reads (CLI text, errors, web pages, maps, sheets).

Write every human sentence as ``_("… {name} …").format(name=…)``: whole sentences with named
placeholders, never fragments glued together, so a translation can reorder them. Plural
forms go through ``ngettext``; a short word that could mean two things takes a context
(``pgettext("precision", "city")``); a message in a module-level table is marked with
``N_("…")`` and translated where it is shown, with ``_(text)``. JSON keys and enum values
are never translated. ``scripts/catalogues.py`` extracts the messages (``babel.cfg``) into
``locale/trialfinder.pot`` and keeps each language's ``.po`` and compiled ``.mo`` current.

The language is a context variable: the CLI sets it once per command (``--lang``, else the
locale environment as gettext reads it), the web server once per request (``?lang=``, else
Accept-Language). English is the source language: it costs nothing (no catalogue, no Babel).
Other languages read the compiled gettext catalogue shipped in ``trialfinder/locale`` and
format numbers and dates with Babel, both imported only then.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gettext
    from datetime import date

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
DOMAIN = "trialfinder"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_current: ContextVar[str] = ContextVar("trialfinder_language", default=DEFAULT_LANGUAGE)


def current_language() -> str:
    return _current.get()


@contextmanager
def language(code: str | None) -> Iterator[str]:
    """Run a block in one language ("en" or "fr"; anything else is English). Languages
    chosen inside the block with `use` end with it too."""
    chosen = supported(code) or DEFAULT_LANGUAGE
    token = _current.set(chosen)
    try:
        yield chosen
    finally:
        _current.reset(token)


def use(code: str | None) -> str:
    """Switch the rest of the current block (see `language`) to ``code``: the CLI's
    ``--lang``, read after the command's environment has chosen one."""
    chosen = supported(code) or DEFAULT_LANGUAGE
    _current.set(chosen)
    return chosen


def supported(code: str | None) -> str | None:
    """"fr", "fr_FR.UTF-8", "fr-CA", "FR" -> "fr"; None for a language we do not have."""
    if not code:
        return None
    base = code.strip().replace("-", "_").split(".")[0].split("@")[0].split("_")[0].lower()
    return base if base in LANGUAGES else None


def language_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """The language gettext would pick from the environment: the first of LANGUAGE (a
    colon-separated list), LC_ALL, LC_MESSAGES, LANG that is set; English when that one is
    "C"/"POSIX" or a language we do not have (LANGUAGE's later entries are tried in turn)."""
    env = os.environ if environ is None else environ
    locale_name = next((env[k] for k in ("LC_ALL", "LC_MESSAGES", "LANG") if env.get(k)), "")
    if locale_name in ("C", "POSIX") or locale_name.startswith("C."):
        return DEFAULT_LANGUAGE  # gettext ignores LANGUAGE under the C locale
    for candidate in env.get("LANGUAGE", "").split(":"):
        found = supported(candidate)
        if found:
            return found
    return supported(locale_name) or DEFAULT_LANGUAGE


def negotiate(accept_language: str | None) -> str:
    """The best of our languages for an HTTP Accept-Language header (q-values honoured)."""
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _sep, params = part.strip().partition(";")
        found = supported(tag) if tag.strip() != "*" else None
        if found is None:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _eq, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0 and (q > best_q or (q == best_q and position == 0)):
            best, best_q = found, q
    return best


@cache
def _translations(code: str) -> gettext.NullTranslations:
    import gettext

    try:
        return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[code])
    except OSError:  # no catalogue for this language: English, as written
        return gettext.NullTranslations()


def _(message: str) -> str:
    """``message`` in the current language."""
    code = _current.get()
    if code == DEFAULT_LANGUAGE:
        return message
    return _translations(code).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the current language."""
    code = _current.get()
    if code == DEFAULT_LANGUAGE:
        return singular if n == 1 else plural
    return _translations(code).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    """``message`` in the current language, where ``context`` says which of its meanings is
    meant (a short word, a date pattern)."""
    code = _current.get()
    if code == DEFAULT_LANGUAGE:
        return message
    return _translations(code).pgettext(context, message)


def N_(message: str) -> str:
    """``message`` unchanged, marked for the catalogue: for tables built at import, before
    any language is chosen. Translate it where it is shown, with ``_(text)``."""
    return message


def format_decimal(value: float, digits: int = 1, *, grouping: bool = True) -> str:
    """A number with ``digits`` decimals as the current language writes it: "1,234.5" in
    English, "1 234,5" in French. ``grouping`` False leaves out English's thousands separator
    (for messages that never had one); other languages always write theirs."""
    code = _current.get()
    if code == DEFAULT_LANGUAGE:
        return f"{value:{',' if grouping else ''}.{digits}f}"
    from babel.numbers import format_decimal as babel_decimal

    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return str(babel_decimal(round(value, digits), format=pattern, locale=code))


def format_date(value: date, *, day: bool = True) -> str:
    """A date as the current language writes it in a sentence: "15 March 2024" / "January
    2019" (``day`` False) in English; "15 mars 2024", "1er mars 2024", "janvier 2019" in
    French (Babel, with the patterns the catalogue gives)."""
    code = _current.get()
    if code == DEFAULT_LANGUAGE:
        import calendar

        month = calendar.month_name[value.month]
        return f"{value.day} {month} {value.year}" if day else f"{month} {value.year}"
    from babel.dates import format_date as babel_date

    if not day:
        # TRANSLATORS: a CLDR date pattern (https://babel.pocoo.org/en/latest/dates.html):
        # MMMM the month's name, y the year; text between 'quotes' is written as it is.
        pattern = pgettext("date pattern", "MMMM y")
    elif value.day == 1:
        # TRANSLATORS: a CLDR date pattern for the first day of a month ("1er mars 2024").
        pattern = pgettext("date pattern, first day of a month", "d MMMM y")
    else:
        # TRANSLATORS: a CLDR date pattern: d the day, MMMM the month's name, y the year.
        pattern = pgettext("date pattern", "d MMMM y")
    return str(babel_date(value, format=pattern, locale=code))


def country_name(name: str, code: str | None = None) -> str:
    """A country's name as the current language writes it, from CLDR (Babel): "Allemagne"
    for Germany in French. ``code`` is its ISO 3166-1 code when known; else ``name`` is
    looked up among CLDR's names. English, and a name CLDR does not know ("Korea, Republic
    of" as the registry writes it), are kept as written: the record's or gazetteer's words."""
    language = _current.get()
    if language == DEFAULT_LANGUAGE or not name:
        return name
    code = code or country_code(name)
    if code is None:
        return name
    return _territories(language).get(code.upper(), name)


def country_code(name: str) -> str | None:
    """The ISO 3166-1 code of a country named as CLDR names it in a language trialfinder
    speaks ("Allemagne", "Corée du Sud", "St. Kitts & Nevis"), accents and case aside; None
    when it names none. Every name `country_name` writes is read back here."""
    from trialfinder.text import fold

    return _codes_by_name().get(fold(name))


@cache
def _territories(language: str) -> dict[str, str]:
    from babel import Locale

    return {code: str(name) for code, name in Locale.parse(language).territories.items()
            if len(code) == 2 and code.isalpha()}


@cache
def _codes_by_name() -> dict[str, str]:
    from trialfinder.text import fold

    # Later languages never take a name an earlier one gave another country.
    found: dict[str, str] = {}
    for language in LANGUAGES:
        for code, name in _territories(language).items():
            found.setdefault(fold(name), code)
    return found
