"""Translations of everything a person reads (CLI text, errors, web pages, maps, sheets).

Write every human sentence as ``_("… {name} …").format(name=…)``: whole sentences with named
placeholders, never fragments glued together, so a translation can reorder them. Plural
forms go through ``ngettext``. JSON keys and enum values are never translated.

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

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
DOMAIN = "trialfinder"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_current: ContextVar[str] = ContextVar("trialfinder_language", default=DEFAULT_LANGUAGE)


def current_language() -> str:
    return _current.get()


@contextmanager
def language(code: str | None) -> Iterator[str]:
    """Run a block in one language ("en" or "fr"; anything else is English)."""
    chosen = supported(code) or DEFAULT_LANGUAGE
    token = _current.set(chosen)
    try:
        yield chosen
    finally:
        _current.reset(token)


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


def format_decimal(value: float, digits: int = 1) -> str:
    """A number with ``digits`` decimals as the current language writes it: "1,234.5" in
    English, "1 234,5" in French."""
    code = _current.get()
    if code == DEFAULT_LANGUAGE:
        return f"{value:,.{digits}f}"
    from babel.numbers import format_decimal as babel_decimal

    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return str(babel_decimal(round(value, digits), format=pattern, locale=code))
