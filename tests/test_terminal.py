"""Text on its way to the terminal: control characters neutralised, JSON exact, pipes closed
early dropped quietly."""

from __future__ import annotations

import io
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trialfinder.terminal import REPLACEMENT, SafeStream, json_text, printable

C0 = [chr(c) for c in range(0x20) if chr(c) not in "\t\n"]
C1 = [chr(c) for c in range(0x7F, 0xA0)]  # DEL and C1
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
UNSAFE = set(C0 + C1 + BIDI)
ATTACKS = [
    "\x1b]0;pwned\x07",  # set the terminal's title
    "\x1b[2J\x1b[H",  # clear the screen
    "\x9b31m",  # CSI as one C1 character
    "good\rEVIL",  # overwrite what was printed
    "\u202eLIVE\u202c",  # right-to-left override
    "\u2066isolated\u2069",
    "\x1bP+q\x1b\\",  # a DCS query
    "\x00\x7f\x85",
]

hostile_text = st.lists(
    st.one_of(
        st.sampled_from(ATTACKS),
        st.sampled_from(sorted(UNSAFE)),
        st.text(max_size=8),
    ),
    max_size=12,
).map("".join)


def test_every_control_character_is_replaced() -> None:
    """C0 (but tab and newline), DEL, C1 and the bidi overrides/isolates become U+FFFD."""
    assert printable("".join(sorted(UNSAFE))) == REPLACEMENT * len(UNSAFE)
    assert printable("\x1b]0;pwned\x07") == "\ufffd]0;pwned\ufffd"
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("a\tb\nc", layout=False) == "a\ufffdb\ufffdc"


def test_ordinary_text_is_left_alone() -> None:
    """Accents, non-Latin scripts, emoji, the BOM and right-to-left letters pass unchanged."""
    text = "Besançon — Łódź — 東京 — مركز — 🙂 \ufeff 10 km"
    assert printable(text) is text


@given(hostile_text)
def test_printable_leaves_no_control_character(text: str) -> None:
    """Whatever the text, none of the characters a terminal obeys remains, one replacement
    per character, everything else in place."""
    out = printable(text)
    assert not UNSAFE & set(out)
    assert len(out) == len(text)
    assert all(o == t or (t in UNSAFE and o == REPLACEMENT) for o, t in zip(out, text, strict=True))


@given(hostile_text)
def test_json_text_escapes_and_keeps_the_exact_value(text: str) -> None:
    """JSON output holds no raw control character, and decodes to the very same text."""
    out = json_text({"facility": text})
    assert not UNSAFE & set(out)
    assert json.loads(out) == {"facility": text}


def test_safe_stream_filters_what_is_written() -> None:
    """Everything written through the stream is made printable; the raw stream is ours."""
    raw = io.StringIO()
    stream = SafeStream(raw)
    stream.write("Centre \x1b[2J Léon\n")
    print("\u202etxt", file=stream)
    assert raw.getvalue() == "Centre \ufffd[2J Léon\n\ufffdtxt\n"
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]


def test_a_closed_pipe_is_dropped_quietly() -> None:
    """The reader goes away: the write does not fail, what follows is dropped, and the
    descriptor now leads to /dev/null so the last flush at exit is quiet too."""
    read_end, write_end = os.pipe()
    raw = io.TextIOWrapper(io.BufferedWriter(io.FileIO(write_end, "w")), encoding="utf-8")
    stream = SafeStream(raw)
    stream.write("first line\n")
    stream.flush()
    assert os.read(read_end, 100) == b"first line\n"
    os.close(read_end)
    stream.write("x" * 100_000)  # more than the pipe holds
    stream.flush()
    assert stream.closed_by_reader
    stream.write("later\n")
    stream.flush()
    raw.close()  # flushes what was buffered: into /dev/null, without error
