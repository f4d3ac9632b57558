"""Language selection and number formatting."""

from __future__ import annotations

import pytest

from trialfinder.i18n import (
    _,
    current_language,
    format_decimal,
    language,
    language_from_environment,
    negotiate,
    ngettext,
    supported,
)


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "en"),
    ({"LANG": "fr_FR.UTF-8"}, "fr"),
    ({"LANG": "en_GB.UTF-8", "LC_ALL": "fr_CA.UTF-8"}, "fr"),
    ({"LANG": "fr_FR.UTF-8", "LC_MESSAGES": "de_DE.UTF-8"}, "en"),
    ({"LANG": "de_DE.UTF-8", "LANGUAGE": "de:fr:en"}, "fr"),
    ({"LANG": "C", "LANGUAGE": "fr"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LC_ALL": "", "LANG": "fr_BE"}, "fr"),
])
def test_language_from_environment_reads_it_as_gettext_does(
    environ: dict[str, str], expected: str
) -> None:
    assert language_from_environment(environ) == expected


@pytest.mark.parametrize(("header", "expected"), [
    (None, "en"), ("", "en"), ("fr-FR,fr;q=0.9,en;q=0.8", "fr"), ("en-US,fr;q=0.5", "en"),
    ("de, fr;q=0.3", "fr"), ("fr;q=0, en", "en"), ("*", "en"), ("es, it", "en"),
    ("fr;q=abc, en;q=0.1", "en"),
])
def test_negotiate_accept_language(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


def test_language_is_scoped_and_unknown_codes_are_english() -> None:
    assert current_language() == "en"
    with language("fr_FR.UTF-8") as chosen:
        assert chosen == "fr" and current_language() == "fr"
        with language("xx"):
            assert current_language() == "en"
        assert current_language() == "fr"
    assert current_language() == "en"
    assert supported("FR") == "fr" and supported("pt") is None


def test_english_is_the_source_text() -> None:
    assert _("Nearest recruiting sites") == "Nearest recruiting sites"
    assert ngettext("{n} site", "{n} sites", 1) == "{n} site"
    assert ngettext("{n} site", "{n} sites", 2) == "{n} sites"


def test_numbers_as_each_language_writes_them() -> None:
    assert format_decimal(1234.56) == "1,234.6"
    assert format_decimal(3.8) == "3.8"
    with language("fr"):
        assert format_decimal(3.8) == "3,8"
        assert format_decimal(1234.56).replace("\u202f", " ").replace("\xa0", " ") == "1 234,6"
        assert format_decimal(12.0, 0) == "12"
