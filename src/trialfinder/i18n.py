"""Translations of everything a person reads (CLI text, errors, web pages, maps, sheets).

Write every human sentence as ``_("… {name} …").format(name=…)``: whole sentences with named
placeholders, never fragments glued together, so a translation can reorder them. Plural
forms go through ``ngettext``. JSON keys and enum values are never translated.

The language is a context variable: the CLI sets it once per command (``--lang``, else the
locale environment), the web server once per request (``?lang=``, else Accept-Language).
Until the catalogues land, every message is returned as written (English).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"

_current: ContextVar[str] = ContextVar("trialfinder_language", default=DEFAULT_LANGUAGE)


def current_language() -> str:
    return _current.get()


@contextmanager
def language(code: str) -> Iterator[None]:
    """Run a block in one language ("en" or "fr")."""
    token = _current.set(code if code in LANGUAGES else DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        _current.reset(token)


def _(message: str) -> str:
    """``message`` in the current language."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the current language."""
    return singular if n == 1 else plural
