"""Keep trialfinder's translation catalogues current: extract, update, compile, check.

Run from anywhere, after changing any sentence a person reads (the test suite fails until
you do)::

    python scripts/catalogues.py            # extract the .pot, update every .po, compile .mo
    python scripts/catalogues.py check      # say what is out of date or untranslated; exit 1
    python scripts/catalogues.py init de    # start a new language (then translate its .po)

The files live in ``src/trialfinder/locale/``: ``trialfinder.pot`` (every message the code
and the web templates use, from ``babel.cfg``), ``<lang>/LC_MESSAGES/trialfinder.po`` (the
translation, edited by people) and ``trialfinder.mo`` (compiled from it, committed so that a
fresh install has it). After ``update``, new or changed messages in a ``.po`` are empty or
marked fuzzy: translate them, remove the fuzzy mark, and run the script again to compile.

Babel does the work (its extractors, ``Catalog.update``, ``write_mo``); the script only
fixes the options in one place and leaves files alone when nothing but a date would change,
so that diffs show translations, not timestamps. Needs Babel and Jinja2 (trialfinder's own
dependencies).
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "babel.cfg"
LOCALE_DIR = ROOT / "src" / "trialfinder" / "locale"
DOMAIN = "trialfinder"
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
COMMENT_TAGS = ("TRANSLATORS:",)
PLURAL_FORMS = {"fr": "nplurals=2; plural=(n > 1);"}
"""Plural rules as GNU gettext and most French tools write them (Babel's CLDR rule adds a
third form for exact millions, which nobody translates differently)."""
WIDTH = 100

_DATE_HEADER = re.compile(r'^"(POT-Creation-Date|PO-Revision-Date): .*\\n"$', re.MULTILINE)


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(lang: str) -> Path:
    return po_path(lang).with_suffix(".mo")


def languages() -> list[str]:
    """The languages that have a catalogue."""
    return sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


# -- extract ------------------------------------------------------------------------------


def extract() -> Catalog:
    """Every message the code and the templates use, as a template catalogue."""
    with MAPPING.open(encoding="utf-8") as fileobj:
        method_map, options_map = parse_mapping_cfg(fileobj)
    catalog = Catalog(project="trialfinder", version=_version(), charset="utf-8",
                      msgid_bugs_address="https://github.com/trialfinder/trialfinder/issues",
                      copyright_holder="trialfinder contributors")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=DEFAULT_KEYWORDS,
        comment_tags=COMMENT_TAGS, strip_comment_tags=True,
    ):
        catalog.add(message, None, [(Path(filename).as_posix(), lineno)],
                    auto_comments=comments, context=context)
    for filename, lineno, message, context in python_calls(ROOT / "src" / "trialfinder"):
        if catalog.get(message[0] if isinstance(message, tuple) else message,
                       context=context) is None:
            catalog.add(message, None, [(filename, lineno)], context=context)
    return catalog


def python_calls(folder: Path) -> Iterable[tuple[str, int, str | tuple[str, str], str | None]]:
    """The messages of every ``_()``, ``ngettext()``, ``pgettext()`` and ``N_()`` call with
    literal text in the Python files under ``folder``, read from Python's own syntax tree:
    (file, line, message or (singular, plural), context). Babel's Python extractor misses
    calls nested inside an f-string (``f"{_('Contact')}"``); this finds them too."""
    import ast

    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        name = (path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).as_posix()
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            texts = [a.value for a in node.args
                     if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if node.func.id in ("_", "N_") and len(texts) == 1 == len(node.args):
                yield name, node.lineno, texts[0], None
            elif node.func.id == "ngettext" and len(texts) == 2:
                yield name, node.lineno, (texts[0], texts[1]), None
            elif node.func.id == "pgettext" and len(texts) == 2 == len(node.args):
                yield name, node.lineno, texts[1], texts[0]


def _version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    return found.group(1) if found else "0"


def po_text(catalog: Catalog, *, template: bool = False) -> str:
    """A catalogue as the files keep it: sorted, file names without line numbers (a message
    moving within a file changes nothing), obsolete entries dropped."""
    out = io.BytesIO()
    write_po(out, catalog, width=WIDTH, sort_output=True, include_lineno=False,
             ignore_obsolete=True, omit_header=False, include_previous=False)
    text = out.getvalue().decode("utf-8")
    if template:
        text = text.replace("# Translations template for", "# Messages of")
    return text


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already says the same but for its dates."""
    if path.exists() and _undated(path.read_text(encoding="utf-8")) == _undated(text):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def _undated(text: str) -> str:
    return _DATE_HEADER.sub("", text)


# -- update, compile ------------------------------------------------------------------------


def read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fileobj:
        return read_po(fileobj, locale=locale)


def updated(lang: str, template: Catalog) -> Catalog:
    """``lang``'s catalogue with the template's messages: new ones empty, changed ones fuzzy
    (Babel's nearest match as a starting point), gone ones dropped."""
    catalog = read(po_path(lang), locale=lang)
    catalog.update(template, no_fuzzy_matching=False, update_header_comment=False)
    return catalog


def compiled(catalog: Catalog) -> bytes:
    """The .mo of a catalogue (fuzzy entries left out, as gettext would)."""
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def init(lang: str) -> Path:
    """Start ``lang``'s catalogue from the current template (every message untranslated)."""
    path = po_path(lang)
    if path.exists():
        raise SystemExit(f"{path} exists already: run the script without arguments to update it")
    template = read(TEMPLATE)
    catalog = Catalog(locale=lang, project=template.project, version=template.version,
                      charset="utf-8", msgid_bugs_address=template.msgid_bugs_address,
                      copyright_holder=template.copyright_holder,
                      language_team=f"{lang} <https://github.com/trialfinder/trialfinder>")
    catalog.header_comment = (f"# {lang} translation of trialfinder's messages.\n"
                              "# This file is distributed under the same license as the "
                              "trialfinder project.\n#")
    if lang in PLURAL_FORMS:
        catalog.mime_headers = [("Plural-Forms", PLURAL_FORMS[lang])]
    catalog.fuzzy = False
    catalog.update(template)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(po_text(catalog), encoding="utf-8")
    return path


# -- check ---------------------------------------------------------------------------------


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a message (``{{``/``}}`` are literal braces)."""
    from string import Formatter

    try:
        return {field for _lit, field, _spec, _conv in Formatter().parse(text)
                if field is not None}
    except ValueError:
        return {"<unbalanced braces>"}


def _ids(message: Message) -> list[str]:
    return list(message.id) if isinstance(message.id, list | tuple) else [message.id]


def _strings(message: Message) -> list[str]:
    if isinstance(message.string, list | tuple):
        return list(message.string)
    return [message.string]


def problems() -> list[str]:
    """Everything that keeps the catalogues from being current and complete (see
    `template_problems`, `translation_problems`, `compiled_problems`)."""
    found = template_problems()
    for lang in languages():
        found += translation_problems(lang) + compiled_problems(lang)
    return found


def template_problems(fresh: Catalog | None = None) -> list[str]:
    """Messages the code uses that the template misses, and messages it keeps that the code
    no longer uses."""
    fresh = fresh if fresh is not None else extract()
    used, kept = _keys(fresh), _keys(read(TEMPLATE))
    return ([f"{TEMPLATE.name} misses {_show(k)}" for k in sorted(used - kept, key=str)]
            + [f"{TEMPLATE.name} keeps {_show(k)}, which the code no longer uses"
               for k in sorted(kept - used, key=str)])


def translation_problems(lang: str) -> list[str]:
    """What keeps ``lang``'s .po from translating the template exactly: missing or extra
    messages, untranslated or fuzzy ones, placeholders that differ."""
    catalog = read(po_path(lang), locale=lang)
    name = f"{lang}/{po_path(lang).name}"
    used, have = _keys(read(TEMPLATE)), _keys(catalog)
    found = [f"{name} misses {_show(k)}" for k in sorted(used - have, key=str)]
    found += [f"{name} keeps {_show(k)}, which the code no longer uses"
              for k in sorted(have - used, key=str)]
    for message in catalog:
        if message.id:
            found += [f"{name}: {issue}" for issue in message_problems(message, catalog)]
    return found


def compiled_problems(lang: str) -> list[str]:
    """Whether ``lang``'s committed .mo is exactly what its .po compiles to."""
    mo = mo_path(lang)
    if not mo.exists():
        return [f"{lang}/{mo.name} is missing"]
    if mo.read_bytes() != compiled(read(po_path(lang), locale=lang)):
        return [f"{lang}/{mo.name} is not what {po_path(lang).name} compiles to"]
    return []


def _keys(catalog: Catalog) -> set[tuple[str | None, str]]:
    return {(m.context, _key(m)) for m in catalog if m.id}


def message_problems(message: Message, catalog: Catalog) -> Iterable[str]:
    """What is wrong with one translation: missing, fuzzy, or other placeholders."""
    ids = _ids(message)
    strings = _strings(message)
    shown = _show((message.context, ids[0]))
    if message.fuzzy:
        yield f"{shown} is marked fuzzy (check the translation, then remove the mark)"
    if not all(strings) or (len(ids) > 1 and len(strings) != catalog.num_plurals):
        yield f"{shown} is not translated"
        return
    expected = set().union(*(placeholders(i) for i in ids))
    for string in strings:
        got = placeholders(string)
        if got - expected:
            yield f"{shown}: the translation has {sorted(got - expected)}, the message does not"
        # A plural form may leave the number out ("une heure"), never another field.
        missing = expected - got - ({"n", "count"} if len(ids) > 1 else set())
        if missing:
            yield f"{shown}: the translation lacks {sorted(missing)}"


def _key(message: Message) -> str:
    """A message's identity: its text, and its plural text when it has one."""
    return " | ".join(_ids(message))


def _show(key: tuple[str | None, str]) -> str:
    context, msgid = key
    text = msgid if len(msgid) <= 70 else msgid[:67] + "…"
    return f"{text!r}" + (f" (context {context!r})" if context else "")


# -- main -----------------------------------------------------------------------------------


def refresh() -> list[str]:
    """Extract, update, compile; the files changed."""
    changed = []
    template = extract()
    if _write_if_changed(TEMPLATE, po_text(template, template=True)):
        changed.append(TEMPLATE)
    for lang in languages():
        if _write_if_changed(po_path(lang), po_text(updated(lang, template))):
            changed.append(po_path(lang))
        data = compiled(read(po_path(lang), locale=lang))  # the file as kept, dates included
        mo = mo_path(lang)
        if not mo.exists() or mo.read_bytes() != data:
            mo.write_bytes(data)
            changed.append(mo)
    return [str(p.relative_to(ROOT)) for p in changed]


def main(argv: list[str]) -> int:
    if not argv:
        changed = refresh()
        print("\n".join(f"wrote {p}" for p in changed) or "catalogues already current")
        left = problems()
        if left:
            print(f"{len(left)} message(s) to translate or fix:", *left, sep="\n  ")
            return 1
        return 0
    if argv[0] == "check" and len(argv) == 1:
        left = problems()
        print("\n".join(left) or "catalogues current and complete")
        return 1 if left else 0
    if argv[0] == "init" and len(argv) == 2:
        print(f"wrote {init(argv[1]).relative_to(ROOT)}: translate it, then run "
              "`python scripts/catalogues.py`")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
