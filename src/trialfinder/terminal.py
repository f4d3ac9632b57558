"""What reaches the user's terminal: text from records never drives it.

Registry records, listing pages and Nominatim answers are other people's text. A facility
named ``"…\\x1b]0;pwned\\x07"`` would set the terminal's title, ``"\\x1b[2J"`` clear the
screen, ``"\\r"`` overwrite a line already printed, and a right-to-left override (U+202E)
reorder what a reader sees. `printable` replaces every such character with U+FFFD; the CLI
applies it once, to everything it writes to stdout and stderr (`SafeStream`); JSON keeps the
exact text, escaped (`json_text`).

Our own terminal control (clearing the sync's progress line) is written to the raw stream,
never through the filter.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from typing import IO, Any

REPLACEMENT = "\ufffd"
_CONTROLS = (
    "\x00-\x08\x0b-\x1f"  # C0 (ESC, BEL, CR, form feed, …) but tab and newline
    "\x7f-\x9f"  # DEL and C1 (CSI, OSC, … as single characters)
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2066-\u2069"  # bidi isolates
)
_UNSAFE = re.compile(f"[{_CONTROLS}\t\n]")
_UNSAFE_KEEPING_LAYOUT = re.compile(f"[{_CONTROLS}]")
# What json.dumps(ensure_ascii=False) leaves raw: it escapes C0 only, as JSON requires.
_JSON_RAW = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, layout: bool = True) -> str:
    """``text`` with every control character a terminal would obey replaced by U+FFFD.

    ``layout`` keeps newline and tab (the shape of multi-line output); False replaces them
    too (one cell, one line).
    """
    pattern = _UNSAFE_KEEPING_LAYOUT if layout else _UNSAFE
    if pattern.search(text) is None:  # nearly always: no copy
        return text
    return pattern.sub(REPLACEMENT, text)


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """``data`` as JSON, non-ASCII text kept readable and every control character escaped
    (``\\u001b``, ``\\u0085``, ``\\u202e``): the exact value survives, the terminal sees none."""
    text = json.dumps(data, ensure_ascii=False, indent=indent)
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class SafeStream:
    """A text stream that passes everything written through `printable`, and drops output
    once the reader has gone (a closed pipe: ``trialfinder sync | head``).

    A closed pipe is not the command's failure: the first write that meets it points the
    file descriptor at /dev/null (so Python's last flush at exit is quiet too) and the
    command goes on to its real outcome and exit code.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.raw = stream
        """The stream underneath, for our own terminal control (never registry text)."""
        self.closed_by_reader = False

    # -- what echo and print use ------------------------------------------------------

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not self.closed_by_reader:
            with self._reader_gone():
                self.raw.write(printable(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.closed_by_reader:
            with self._reader_gone():
                self.raw.flush()

    def isatty(self) -> bool:
        return bool(self.raw.isatty())

    def fileno(self) -> int:
        return self.raw.fileno()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return str(getattr(self.raw, "encoding", None) or "utf-8")

    @property
    def errors(self) -> str:
        return str(getattr(self.raw, "errors", None) or "strict")

    @property
    def name(self) -> str:
        return str(getattr(self.raw, "name", "<stream>"))

    @property
    def closed(self) -> bool:
        return bool(getattr(self.raw, "closed", False))

    # -- a reader that went away ------------------------------------------------------

    @contextlib.contextmanager
    def _reader_gone(self) -> Any:
        try:
            yield
        except BrokenPipeError:
            self._drop_output()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            self._drop_output()

    def _drop_output(self) -> None:
        """Nobody reads any more: what is still buffered, and all that follows, goes to
        /dev/null (the recipe of Python's own documentation, "Note on SIGPIPE")."""
        self.closed_by_reader = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self.raw.fileno())
            finally:
                os.close(devnull)
