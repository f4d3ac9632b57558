"""Dropped-accent repair: "CHRU de Besan on - H pital" -> "CHRU de Besançon - Hôpital".

Scraped listing pages lose accented letters in two ways: the letter becomes a space
("Centre L on B rard") or disappears ("Institut Bergoni", "Hpital"). The repair puts one
accented letter back wherever that yields a word of the bundled French vocabulary, and only
where the evidence says a letter was lost:

- a single space between two fragments of one word ("L on", "Salp tri re") is a lost letter
  when the joined word is in the vocabulary and the fragments are not both common words on
  their own ("de but" stays; "Le Mans" and "de Lyon" have no joined form anyway);
- a space before a hyphen or a second space ("Piti -Salp", "Universit  de") is a lost letter at
  the end of the word before it, and a space after a double space one at the start of the word
  after it;
- a fragment that is not a word ("Bergoni", "Hpital", "Debr") may have lost one letter anywhere;
  not tried on short fragments nor in names that read as English, where a French word with one
  letter more is too easy to find ("Mass" -> "Massé").

Among candidates the most frequent word wins (longer joins first). The original case pattern is
kept: inserted letters are lower case, or upper case in an all-capitals word. What cannot be
repaired confidently is left as it was and listed in ``Repair.unrepaired`` when it looks damaged
(a lone letter inside a word, a fragment before a dangling hyphen, a non-word ending in a
consonant cluster such as "Debr").
"""

from __future__ import annotations

import bisect
import functools
import gzip
import itertools
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trialfinder.resources import data_path

if TYPE_CHECKING:
    from trialfinder.gazetteer import Gazetteer

VOCABULARY_FILE = "vocabulary-fr.txt.gz"

# The letters French loses in scraping, lower case; upper-case forms are derived.
ACCENTED_LETTERS = "éèêëàâîïôûùüçœ"
_ACCENTED_SET = frozenset(ACCENTED_LETTERS + "äöÿæ")
COMMON_ZIPF = 3.0
"""A fragment at least this frequent (Zipf scale) is a word in its own right."""
MIN_DROP_LENGTH = 4
"""Fragments shorter than this are not tried for a letter dropped without a trace."""
EDGE_MARGIN = 1.0
"""A word in its own right next to an edge gap is repaired only into a word at most this much
less frequent (Zipf): "tienne" (4.4) -> "étienne" (4.0) yes, "de" (7.7) -> "dé" (4.1) no."""
MAX_JOIN = 4
"""At most this many space-separated fragments are joined into one word."""

_CHUNK = re.compile(r"[^\W\d_]+")
_VOWELS = frozenset("aeiouyàâäéèêëîïôöùûüÿœæ")
_LONE_LETTER_WORDS = frozenset("aày")
_DAMAGED_ENDING = re.compile(r"[bcdfgkptv][rl]$")
# Words that make a name read as English: no dropped-letter guesses there.
_ENGLISH_MARKERS = frozenset((
    "of", "the", "and", "hospital", "hospitals", "center", "university", "medical", "health",
    "institute", "clinic", "clinics", "memorial", "foundation", "research", "school", "college",
    "county", "regional", "national", "general", "children", "childrens", "st", "mount",
))


class Vocabulary:
    """Lower-case words with Zipf frequencies; membership and prefix tests by bisection.

    The bundled list (``data/vocabulary-fr.txt.gz``, built by ``scripts/build_vocabulary.py``)
    holds every French word with an accented letter and the common words without one.
    """

    __slots__ = ("_lines",)

    def __init__(self, lines: list[str]) -> None:
        """``lines`` are ``word<TAB>zipf×100`` sorted by code point (the bundled file's form)."""
        self._lines = lines

    @classmethod
    def from_words(cls, words: Mapping[str, float] | Iterable[str]) -> Vocabulary:
        """A vocabulary from words (Zipf frequency 3.0 unless a mapping gives one): for tests."""
        if not isinstance(words, Mapping):
            words = dict.fromkeys(words, 3.0)
        merged: dict[str, float] = {}
        for word, zipf in words.items():
            key = word.lower()
            merged[key] = max(zipf, merged.get(key, zipf))
        return cls(sorted(f"{w}\t{round(z * 100)}" for w, z in merged.items()))

    @classmethod
    def bundled(cls) -> Vocabulary:
        """The bundled French vocabulary, read on first use and cached."""
        return _bundled()

    def __len__(self) -> int:
        return len(self._lines)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.zipf(word) is not None

    def zipf(self, word: str) -> float | None:
        """Zipf frequency of ``word`` (case-insensitive, accents significant), None if absent."""
        key = word.lower() + "\t"
        lines = self._lines
        i = bisect.bisect_left(lines, key)
        if i < len(lines) and lines[i].startswith(key):
            return int(lines[i][len(key):]) / 100
        return None

    def has_prefix(self, prefix: str) -> bool:
        """True when some word starts with ``prefix`` (lower case)."""
        lines = self._lines
        i = bisect.bisect_left(lines, prefix)
        return i < len(lines) and lines[i].startswith(prefix)

    def is_common(self, word: str) -> bool:
        """A word frequent enough to stand on its own (so not a fragment of a damaged one)."""
        zipf = self.zipf(word)
        return zipf is not None and zipf >= COMMON_ZIPF


@functools.cache
def _bundled() -> Vocabulary:
    path = data_path(VOCABULARY_FILE)
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    return Vocabulary(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"))


@dataclass(frozen=True, slots=True)
class Repair:
    """The outcome of ``repair_name``."""

    text: str
    """The name with the lost letters put back where that was confident."""
    raw: str
    """The name as given."""
    changed: bool
    unrepaired: tuple[str, ...]
    """Fragments that look damaged but had no confident repair, in order of appearance."""


@dataclass(slots=True)
class _Chunk:
    text: str
    start: int
    end: int


def repair_name(raw: str, vocabulary: Vocabulary | None = None) -> Repair:
    """Put back accented letters lost in scraping; see the module docstring for the rules."""
    chunks = [_Chunk(m.group(), m.start(), m.end()) for m in _CHUNK.finditer(raw)]
    if not chunks:
        return Repair(text=raw, raw=raw, changed=False, unrepaired=())
    vocab = vocabulary or Vocabulary.bundled()
    seps = [raw[: chunks[0].start]]
    seps += [raw[a.end : b.start] for a, b in itertools.pairwise(chunks)]
    seps.append(raw[chunks[-1].end :])
    # seps[k] is the text before chunk k; seps[k + 1] the text after it.
    english = any(c.text.lower() in _ENGLISH_MARKERS for c in chunks)

    out: list[str] = []
    consumed_before = False  # the separator before chunk i lost a space to a repair
    i = 0
    n = len(chunks)
    while i < n:
        found = _best_at(chunks, seps, i, vocab, english)
        before = seps[i]
        if consumed_before:
            before = before[1:]
        if found is None:
            out.append(before)
            out.append(chunks[i].text)
            consumed_before = False
            i += 1
            continue
        j, word, lead, trail = found
        if lead:
            before = before[:-1]
        out.append(before)
        out.append(word)
        consumed_before = trail
        i = j + 1
    tail = seps[n][1:] if consumed_before else seps[n]
    out.append(tail)
    text = "".join(out)
    return Repair(
        text=text, raw=raw, changed=text != raw, unrepaired=tuple(_damaged(text, vocab))
    )


def _trail_ok(after: str, last: bool) -> bool:
    """Does the separator after a word show a lost final letter ("Piti -Salp", "Universit  de")?"""
    if not after.startswith(" "):
        return False
    rest = after[1:]
    if rest == "":
        return last
    if rest[0] == " ":
        return True
    return rest in ("-", "‐", "'", "’") or rest[0] in ",;:).'’/"


def _lead_ok(before: str, first: bool) -> bool:
    """Does the separator before a word show a lost first letter ("Hôpital  douard")?"""
    if not before.endswith(" "):
        return False
    rest = before[:-1]
    if rest == "":
        return first
    return rest.endswith((" ", "(", "-", "'", "’"))


def _plain_word(before: str, after: str) -> bool:
    """Is the chunk a word of a name, not part of code or markup ("alert(1)", "x=y")?
    Only such words get the no-trace dropped-letter guess."""
    return (not before or before[-1] in " -'’(") and (not after or after[0] in " -,.;:'’)")


def _best_at(
    chunks: list[_Chunk], seps: list[str], i: int, vocab: Vocabulary, english: bool
) -> tuple[int, str, bool, bool] | None:
    """The best repaired word starting at chunk i: (last chunk used, word, lead gap, trail gap)."""
    n = len(chunks)
    lead_possible = _lead_ok(seps[i], i == 0)
    last_j = i
    while last_j + 1 < n and last_j - i + 1 < MAX_JOIN and seps[last_j + 1] == " ":
        last_j += 1
    for j in range(last_j, i - 1, -1):
        parts = [c.text for c in chunks[i : j + 1]]
        trail_possible = _trail_ok(seps[j + 1], j == n - 1)
        best: tuple[float, str, bool, bool] | None = None
        if j > i:
            if all(len(p) >= 2 and vocab.is_common(p) for p in parts):
                continue  # "de but" is two words, not "début"
            options = [(False, False)]
            if trail_possible:
                options.append((False, True))
            if lead_possible:
                options.append((True, False))
            for lead, trail in options:
                for word, zipf in _candidates(parts, vocab, lead, trail, drop=False):
                    if best is None or zipf > best[0]:
                        best = (zipf, word, lead, trail)
        else:
            part = parts[0]
            own = vocab.zipf(part)
            hypotheses = []
            # A gap at the edge is evidence; a word in its own right still needs its repaired
            # form to be nearly as frequent ("Saint- tienne" -> "Étienne", "de  Lyon" stays).
            if trail_possible:
                hypotheses.append((False, True, False))
            if lead_possible:
                hypotheses.append((True, False, False))
            if (
                own is None
                and not english
                and sum(map(str.isalpha, part)) >= MIN_DROP_LENGTH
                and _plain_word(seps[i], seps[i + 1])
            ):
                hypotheses.append((False, False, True))
            for lead, trail, drop in hypotheses:
                for word, zipf in _candidates(parts, vocab, lead, trail, drop=drop):
                    if own is not None and zipf < own - EDGE_MARGIN:
                        continue
                    if best is None or zipf > best[0]:
                        best = (zipf, word, lead, trail)
        if best is not None:
            _, word, lead, trail = best
            return j, _apply_case(word, parts, lead, chunks, i), lead, trail
    return None


def _has_accent(text: str) -> bool:
    return any(ch in _ACCENTED_SET for ch in text.lower())


_GAP = None


def _candidates(
    parts: list[str], vocab: Vocabulary, lead: bool, trail: bool, *, drop: bool
) -> list[tuple[str, float]]:
    """Vocabulary words that fill each gap (between parts, and lead/trail) with one accented
    letter, plus at most one dropped letter anywhere when ``drop``; lower case."""
    seq: list[str | None] = []
    if lead:
        seq.append(_GAP)
    for k, part in enumerate(parts):
        if k:
            seq.append(_GAP)
        seq.extend(part.lower())
    if trail:
        seq.append(_GAP)
    results: dict[str, float] = {}
    prefix_cache: dict[str, bool] = {}

    def has_prefix(p: str) -> bool:
        known = prefix_cache.get(p)
        if known is None:
            known = prefix_cache[p] = vocab.has_prefix(p)
        return known

    def walk(k: int, prefix: str, drops: int) -> None:
        if drops:
            for letter in ACCENTED_LETTERS:
                p = prefix + letter
                if has_prefix(p):
                    walk(k, p, drops - 1)
        if k == len(seq):
            zipf = vocab.zipf(prefix)
            if zipf is not None:
                results[prefix] = zipf
            return
        item = seq[k]
        if item is _GAP:
            for letter in ACCENTED_LETTERS:
                p = prefix + letter
                if has_prefix(p):
                    walk(k + 1, p, drops)
        else:
            p = prefix + item
            if has_prefix(p):
                walk(k + 1, p, drops)

    walk(0, "", 1 if drop else 0)
    plain = "".join(p.lower() for p in parts)
    return [(w, z) for w, z in results.items() if w != plain]


def _apply_case(word: str, parts: list[str], lead: bool, chunks: list[_Chunk], i: int) -> str:
    """Give the vocabulary's lower-case word the case pattern of the fragments it replaces."""
    letters = "".join(parts)
    if len(letters) >= 2 and letters.isupper():
        return word.upper()
    original = iter("".join(parts))
    out = []
    pending = letters.lower()
    pos = 0
    for k, ch in enumerate(word):
        if pos < len(pending) and ch == pending[pos]:
            out.append(next(original))
            pos += 1
        else:
            # A lost first letter is a capital when the name is capitalised ("Hôpital  douard").
            upper = k == 0 and lead and chunks[0].text[:1].isupper()
            out.append(ch.upper() if upper else ch)
    return "".join(out)


def _damaged(text: str, vocab: Vocabulary) -> list[str]:
    """Fragments of the (repaired) name that still look like the debris of a lost letter."""
    found = list(_CHUNK.finditer(text))
    if not found:
        return []
    words = [m.group() for m in found]
    seps = [text[: found[0].start()]]
    seps += [text[a.end() : b.start()] for a, b in itertools.pairwise(found)]
    seps.append(text[found[-1].end() :])
    flagged: list[str] = []

    def flag(w: str) -> None:
        if w not in flagged:
            flagged.append(w)

    n = len(words)
    for k, w in enumerate(words):
        before, after = seps[k], seps[k + 1]
        low = w.lower()
        known = low in vocab
        if len(w) == 1 and low not in _LONE_LETTER_WORDS and not after.startswith(("'", "’")):
            # A lone letter glued by one space to a lower-case fragment ("R gional", "qz X")
            # is debris; between capitalised words ("J Paoli", "A B C") it is an initial.
            glued_after = after == " " and k + 1 < n
            glued_before = before == " " and k > 0
            lower_neighbour = (glued_after and words[k + 1][:1].islower()) or (
                glued_before and words[k - 1][:1].islower()
            )
            if (glued_after or glued_before) and (w.islower() or lower_neighbour):
                flag(w)
                if after == " " and k + 1 < n and words[k + 1].lower() not in vocab:
                    flag(words[k + 1])
                if before == " " and k > 0 and words[k - 1].lower() not in vocab:
                    flag(words[k - 1])
            continue
        if known or w.isupper():
            continue
        dangling = after in (" -", " ‐")  # "Piti -Salp": a lost letter before the hyphen
        if dangling or not set(low) & _VOWELS or _DAMAGED_ENDING.search(low):
            flag(w)
    return flagged


# --- cities -------------------------------------------------------------------------------

_LOST = frozenset(" ?\ufffd")
"""What a lost letter of a city name became: a space, a question mark, U+FFFD (or nothing)."""
_SEPARATOR = frozenset(" -‐'’")
MIN_CITY_LETTERS = 3
"""A city with fewer plain letters than this is not repaired (too many names fit)."""


@dataclass(frozen=True, slots=True)
class CityRepair:
    """The outcome of ``repair_city``."""

    text: str
    """The city with its lost letters put back when exactly one of the country's places fits;
    else as given."""
    raw: str
    changed: bool
    candidates: tuple[str, ...] = ()
    """When several places fit the damaged name equally well: their names (no repair)."""


class _CityIndex:
    """A country's place names by their plain letters ("Nîmes" and "N mes" -> "nmes")."""

    __slots__ = ("by_letters",)

    def __init__(self, names: Iterable[str]) -> None:
        self.by_letters: dict[str, list[str]] = {}
        for name in names:
            self.by_letters.setdefault(_plain_letters(name), []).append(name)


_NOT_PLAIN = re.compile(r"[^a-z0-9]+")


def _plain_letters(text: str) -> str:
    """The ASCII letters and digits of a name, lower case: what survives a lost letter."""
    return _NOT_PLAIN.sub("", text.encode("ascii", "ignore").decode("ascii").lower())


_CITY_INDEXES: weakref.WeakKeyDictionary[Gazetteer, dict[str, _CityIndex]] = (
    weakref.WeakKeyDictionary()
)


def _city_index(gazetteer: Gazetteer, code: str) -> _CityIndex:
    """The index of a country's place names ("FR": France and its overseas territories),
    built once per gazetteer and country."""
    per_gazetteer = _CITY_INDEXES.setdefault(gazetteer, {})
    index = per_gazetteer.get(code)
    if index is None:
        index = per_gazetteer[code] = _CityIndex(gazetteer.place_names(code))
    return index


def repair_city(
    city: str,
    country: str,
    gazetteer: Gazetteer | None = None,
    *,
    postal_code: str | None = None,
) -> CityRepair:
    """Put back the letters a city name lost in scraping, from the gazetteer's names for its
    country: "N mes" -> "Nîmes", "Bziers" -> "Béziers", "Saint- tienne" -> "Saint-Étienne".

    A name the gazetteer knows (accents aside) is left alone; so is a name no place of the
    country fits, or that several places fit (``candidates`` names them; a postal code, when
    given, first keeps only the places it covers). A place fits when its name, with some of its
    non-ASCII letters turned into a space, a '?', U+FFFD or nothing, is the city as given
    (case aside). The letters put back take the case of the name as given (all capitals stay
    all capitals); everything else is kept as given.
    """
    unchanged = CityRepair(text=city, raw=city, changed=False)
    letters = _plain_letters(city)
    if len(letters) < MIN_CITY_LETTERS or len(city) > 120:
        return unchanged
    if gazetteer is None:
        from trialfinder.gazetteer import Gazetteer

        gazetteer = Gazetteer.bundled()
    code = gazetteer.country_code(country)
    if code is None:
        return unchanged
    from trialfinder.gazetteer import name_key

    # A name the gazetteer knows as it is (accents aside) is sound: one indexed lookup.
    known = gazetteer.locate(city, country)
    if known is not None and name_key(known.name) == name_key(city):
        return unchanged
    fits: dict[str, str] = {}
    for name in _city_index(gazetteer, code).by_letters.get(letters, ()):
        repaired = _restore(city, name)
        if repaired == city:
            return unchanged  # a place of that very name ("Bard" is not "Béard" damaged)
        if repaired is not None:
            fits.setdefault(repaired, name)
    if postal_code and len(fits) > 1:
        covered = {
            text: name for text, name in fits.items()
            if (place := gazetteer.locate(name, country, postal_code)) is not None
            and place.postal_code is not None
            and place.postal_code.replace(" ", "") == postal_code.replace(" ", "")
        }
        fits = covered or fits
    if len(fits) == 1:
        (text,) = fits
        return CityRepair(text=text, raw=city, changed=True)
    return CityRepair(text=city, raw=city, changed=False, candidates=tuple(sorted(fits.values())))


def _restore(raw: str, name: str) -> str | None:
    """``raw`` with the letters it lost put back from ``name``; None when ``raw`` is not
    ``name`` with some non-ASCII letters lost (see ``repair_city``)."""
    n, m = len(name), len(raw)
    # reach[i][j]: name[i:] can produce raw[j:]. Names are short: a table is cheapest.
    reach = [[False] * (m + 1) for _ in range(n + 1)]
    reach[n][m] = True
    for i in range(n - 1, -1, -1):
        letter = name[i]
        lossy = not letter.isascii() and letter.isalpha()
        row, below = reach[i], reach[i + 1]
        for j in range(m, -1, -1):
            ok = False
            if j < m:
                ch = raw[j]
                same = ch.lower() == letter.lower() or (ch in _SEPARATOR and letter in _SEPARATOR)
                if same or (lossy and ch in _LOST):
                    ok = below[j + 1]
            if not ok and lossy:
                ok = below[j]
            row[j] = ok
    if not reach[0][0]:
        return None
    cased = [c for c in raw if c.isalpha()]
    upper = bool(cased) and all(c.isupper() for c in cased) and len(cased) > 1
    lower = bool(cased) and all(c.islower() for c in cased)
    out: list[str] = []
    i = j = 0
    while i < n:
        letter = name[i]
        lossy = not letter.isascii() and letter.isalpha()
        if j < m and (
            raw[j].lower() == letter.lower() or (raw[j] in _SEPARATOR and letter in _SEPARATOR)
        ) and reach[i + 1][j + 1]:
            out.append(raw[j])
            j += 1
        else:
            put = letter.upper() if upper else letter.lower() if lower else letter
            out.append(put)
            if j < m and raw[j] in _LOST and reach[i + 1][j + 1]:
                j += 1
        i += 1
    return "".join(out)
