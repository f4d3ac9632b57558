"""Writing files the user keeps (maps, referral sheets) without ever leaving half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomic(path: Path, text: str, *, mode: int = 0o644) -> Path:
    """Write text to path through a temporary file beside it, then an atomic rename.

    An interrupted write leaves the previous file (if any) untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).chmod(mode)  # mkstemp makes it 0600
        Path(tmp).replace(path)  # atomic within one directory
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
